"""Byte order is not part of an output's dtype: a big-endian float64 output is a float64 output.

``check_contract`` compares dtypes in native byte order, and names a non-native order when
the types differ, so a message never reads "got float64, expected float64". The adapter only
ever receives the kit's native-order arrays (drawn inputs; golden fixtures written on a
little-endian machine), so byte order is a question about outputs: both orders are judged
alike, in process and through the worker's wire (tests/hostile/big_endian_output.py)."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest

from conformance.adapters.load import resolve
from conformance.judging.compare import check_contract, compare
from conformance.judging.tolerance import Tolerance, bound_for
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED
from conformance.runner import RunConfig, run

SWAPPED = "big" if sys.byteorder == "little" else "little"  # the order this machine lacks
BIG_ENDIAN = "hostile.big_endian_output:sdpa"
BIG_ENDIAN_FLOAT32 = "hostile.big_endian_output:sdpa_wrong_dtype"


def swapped(dtype) -> np.dtype:
    return np.dtype(dtype).newbyteorder("S")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_either_byte_order_of_the_expected_dtype_passes_the_contract(dtype):
    assert check_contract(np.zeros((2, 3), swapped(dtype)), (2, 3), dtype) is None
    assert check_contract(np.zeros((2, 3), dtype), (2, 3), swapped(dtype)) is None
    assert check_contract(np.zeros((2, 3), swapped(dtype)), (2, 3), swapped(dtype)) is None


@pytest.mark.parametrize(("got", "want", "message"), [
    (swapped(np.float32), np.float64,
     f"dtype mismatch: got float32 ({SWAPPED}-endian), expected float64"),
    (swapped(np.float64), np.float32,
     f"dtype mismatch: got float64 ({SWAPPED}-endian), expected float32"),
    (np.float16, swapped(np.float64),
     f"dtype mismatch: got float16, expected float64 ({SWAPPED}-endian)"),
    (np.float64, np.float32, "dtype mismatch: got float64, expected float32"),
    (np.dtype("V8"), np.dtype([("a", "<f8")]),  # one name (void64): shown in full
     "dtype mismatch: got |V8, expected [('a', '<f8')]"),
])
def test_a_dtype_mismatch_names_a_non_native_byte_order(got, want, message):
    assert check_contract(np.zeros((2, 3), got), (2, 3), want) == message


def test_shape_is_still_checked_before_dtype():
    assert check_contract(np.zeros((2, 2), swapped(np.float32)), (2, 3), np.float64) == (
        "shape mismatch: got (2, 2), expected (2, 3)")


@pytest.mark.parametrize("offset", [0.0, 1e-3])
def test_compare_judges_both_byte_orders_alike(offset):
    expected = np.array([[0.5, -1.25, 0.0], [2.0, np.inf, 1.0]])
    native = expected + np.array([[offset, 0.0, 0.0], [0.0, 0.0, offset]])
    bound = bound_for("sdpa", "float64", expected, expected, Tolerance())
    assert compare(native.astype(swapped(np.float64)), expected, bound) == compare(
        native, expected, bound)
    assert compare(native, expected.astype(swapped(np.float64)), bound) == compare(
        native, expected, bound)
    assert compare(native, expected, bound).ok == (offset == 0.0)


def _statuses(spec: str, checks: tuple[str, ...], isolate: str = "inprocess",
              case: str | None = None) -> tuple[Counter, list]:
    results, _ = run(resolve(spec), RunConfig(profile=PROFILES["quick"], only=checks,
                                              case=case, isolate=isolate))
    return Counter(r.status for r in results), results


def test_a_big_endian_adapter_passes_the_output_contract_and_the_golden_cases():
    counts, results = _statuses(BIG_ENDIAN, ("output_contract", "golden"))
    assert counts[FAILED] == 0, [r.message for r in results if r.status == FAILED][:2]
    assert counts[PASSED] >= 20  # float64, float32 and float16 outputs, big-endian


@pytest.mark.parametrize("case", ["sdpa-plain[b2-h2-q7-k7-e16-float32]",
                                  "sdpa-empty-rows-bool[b2-h2-q7-k7-e16-float64]"])
def test_a_big_endian_adapter_passes_numeric_cases_in_process(case):
    counts, results = _statuses(BIG_ENDIAN, ("numeric",), case=case)
    assert counts == Counter({PASSED: 1}), [r.message for r in results]


def test_a_big_endian_output_crosses_the_worker_and_passes():
    case = "sdpa-plain[b2-h2-q7-k7-e16-float64]"
    counts, results = _statuses(BIG_ENDIAN, ("numeric",), isolate="subprocess", case=case)
    assert counts == Counter({PASSED: 1}), [r.message for r in results]


def test_a_big_endian_float32_for_float64_fails_and_says_so():
    _, results = _statuses(BIG_ENDIAN_FLOAT32, ("output_contract",))
    float64 = [r for r in results if r.case.endswith("float64]")]
    assert float64 and all(r.status == FAILED for r in float64)
    assert all(f"output: dtype mismatch: got float32 ({SWAPPED}-endian), expected float64"
               in r.message for r in float64)
