"""The tolerance table: float64 held to float64 accuracy, honest low precision passes, and the
per-run k / atol overrides show in the messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from harness_adapters import attnconf, spec

from conformance.adapters.frameworks import eps
from conformance.judging.tolerance import (
    ATOL_UNITS,
    DEFAULT_K,
    OVERRIDES,
    Tolerance,
    atol_for,
    bound_for,
)
from conformance.vocabulary import DTYPES, OPS


def test_one_table_keyed_by_dtype_with_reasoned_overrides():
    assert set(ATOL_UNITS) == set(DTYPES)
    for (op, dtype), (units, reason) in OVERRIDES.items():
        assert op in OPS and dtype in DTYPES and units > 0 and len(reason) > 20


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_atol_is_never_zero_and_scales_with_the_output(op, dtype):
    small, source = atol_for(op, dtype, 0.0)  # an output that can be all zeros
    assert small > 0 and source.startswith("atol = ")
    assert atol_for(op, dtype, 10.0)[0] == pytest.approx(10 * small)
    assert atol_for(op, dtype, 0.5)[0] == small  # below magnitude 1 it stays absolute


def test_low_precision_bound_is_k_times_a_same_precision_reference_error_plus_atol():
    ref64 = np.array([0.25, -0.5, 1.5])
    ref_lowp = ref64 + np.array([0.0, 2e-3, -1e-3])
    bound = bound_for("sdpa", "float16", ref64, ref_lowp, Tolerance())
    assert bound.k == DEFAULT_K == 2.0
    assert bound.lowp_err == pytest.approx(2e-3)
    assert bound.atol == pytest.approx(4 * eps("float16") * 1.5)
    assert bound.value == pytest.approx(2 * 2e-3 + bound.atol)
    # float64 has no lower precision to be relative to: atol alone, at float64's resolution
    exact = bound_for("sdpa", "float64", ref64, ref64, Tolerance())
    assert exact.lowp_err == 0 and exact.value == exact.atol < 1e-12


def _numeric_results(tmp_path, adapter: str, *extra: str) -> tuple[int, list[dict]]:
    report = tmp_path / "numeric.json"
    run = attnconf("run", "--adapter", spec(adapter), "--only", "numeric", *extra,
                   "--report", f"json:{report}")
    return run.code, json.loads(report.read_text())["results"]


def test_a_float64_kernel_computing_in_float32_fails_on_float64_only(tmp_path):
    code, results = _numeric_results(tmp_path, "float32_inside")
    assert code == 1
    by_dtype = {d: {r["status"] for r in results if r["case"].endswith(f"-{d}]")} - {"skipped"}
                for d in DTYPES}  # (skipped: cases needing a mask, causal, … it does not take)
    assert by_dtype["float64"] == {"failed"}  # every float64 case
    for dtype in ("float32", "float16", "bfloat16"):  # the same arithmetic is fine there
        assert by_dtype[dtype] == {"passed"}


def test_an_honest_low_precision_kernel_passes(tmp_path):
    code, results = _numeric_results(tmp_path, "honest_lowp")
    assert code == 0
    passed = {r["case"].rsplit("-", 1)[1] for r in results if r["status"] == "passed"}
    assert {"float16]", "bfloat16]", "float32]", "float64]"} <= passed
    assert not [r for r in results if r["status"] == "failed"]


CASE = "sdpa-plain[b2-h2-q7-k7-e16-float64]"


def test_k_and_atol_overrides_appear_in_the_message_and_the_repro(tmp_path):
    code, [result] = _numeric_results(tmp_path, "float32_inside", "--case", CASE,
                                      "--k", "3", "--atol", "1e-09")
    assert code == 1
    tolerance = result["message"].splitlines()[1]
    assert tolerance.startswith(
        "tolerance: max|cand − ref64| ≤ max(k·max|ref_lowp − ref64| + atol, conditioning) = "
        "max(3·0 + 1e-09, ")
    assert (") = 1e-09, the same-dtype term dominates (k = 3, set for this run (--k); atol = "
            "1e-09, set for this run (--atol); conditioning = ") in tolerance
    assert result["bound"] == 1e-09
    assert result["repro"].endswith(f"--only numeric --case '{CASE}' --k 3.0 --atol 1e-09")


def test_a_looser_atol_is_applied(tmp_path):
    code, [result] = _numeric_results(tmp_path, "float32_inside", "--case", CASE,
                                      "--atol", "1e-6")
    assert code == 0 and result["status"] == "passed" and result["bound"] == 1e-6


@pytest.mark.parametrize("k, atol", [(float("nan"), None), (2.0, float("nan")), (-1.0, None),
                                     (2.0, -1.0)])
def test_a_nan_or_negative_k_or_atol_never_passes(k, atol):
    from conformance.judging.compare import compare

    ref = np.array([0.25, -0.5, 1.5])
    bound = bound_for("sdpa", "float32", ref, ref + 1e-7, Tolerance(k=k, atol=atol))
    assert np.isnan(bound.value)
    assert not compare(ref.copy(), ref, bound).ok  # even an exact answer fails a NaN bound


def test_a_nan_error_fails_and_the_side_tables_live_in_the_one_table():
    from conformance.judging.compare import compare
    from conformance.judging.tolerance import CONVEX_HULL_UNITS, PROBE_RTOL, PROPERTY_UNITS

    ref = np.array([0.25, -0.5])
    assert not compare(np.array([0.25, np.nan]), ref, bound_for(
        "sdpa", "float64", ref, ref, Tolerance())).ok
    assert set(PROPERTY_UNITS) == set(DTYPES) and CONVEX_HULL_UNITS > 0 and 0 < PROBE_RTOL < 1


def test_the_conditioning_term_covers_logits_rounded_at_their_magnitude():
    from conformance.judging.tolerance import Conditioning, conditioning_terms

    ref = np.array([0.25, -0.5, 1.5])
    far = Conditioning(logit_magnitude=1e5, dot_magnitude=8.0, value_spread=1.0,
                       value_magnitude=3.0, dim=16, keys=7)
    bound = bound_for("sdpa", "float64", ref, ref, Tolerance(), far)
    # two float64 roundings of a logit near 1e5 differ by up to one ulp = 2^-36 ≈ 1.46e-11
    assert conditioning_terms("float64", far)["logits"] == pytest.approx(2 * 2.0 ** -36)
    assert bound.value == bound.conditioning > bound.same_dtype
    assert bound.dominant() == "the conditioning term dominates"
    near = Conditioning(logit_magnitude=3.0, dot_magnitude=8.0, value_spread=1.0,
                        value_magnitude=3.0, dim=16, keys=7)
    assert bound_for("sdpa", "float64", ref, ref, Tolerance(), near).value == bound.same_dtype


def test_ulp_is_elementwise_for_an_array_of_magnitudes():
    from conformance.judging.tolerance import ulp

    magnitudes = np.array([0.0, 1.0, 3.0, 1e5, 1e9, np.finfo(np.float64).max])
    spacings = ulp("float32", magnitudes)
    assert isinstance(spacings, np.ndarray)
    assert list(spacings) == [ulp("float32", float(m)) for m in magnitudes]
    assert ulp("float32", 1e9) == 64.0 and ulp("float64", 1.0) == eps("float64")


def test_the_bound_is_per_row_when_the_magnitudes_are():
    from conformance.judging.tolerance import Conditioning, conditioning_bound

    ref = np.zeros((2, 3, 4))  # (heads, rows, columns)
    magnitudes = np.array([[3.0, 1e9, 3.0], [3.0, 3.0, 1e5]])[..., None]
    rows = Conditioning(logit_magnitude=magnitudes, dot_magnitude=8.0,
                        value_spread=np.ones((2, 3, 1)), value_magnitude=3.0, dim=16, keys=7)
    bound = bound_for("sdpa", "float64", ref, ref, Tolerance(), rows)
    limit = np.broadcast_to(bound.limit, ref.shape)
    for head, row in np.ndindex(2, 3):  # each row: the scalar bound of its own magnitudes
        one = Conditioning(float(magnitudes[head, row, 0]), 8.0, 1.0, 3.0, 16, 7)
        expected = max(bound.same_dtype, conditioning_bound("float64", one)[0])
        assert list(limit[head, row]) == pytest.approx([expected] * 4, rel=1e-12)
    assert bound.value == limit.max() == limit[0, 1, 0]
    assert bound.conditioning_source.endswith("for M = 1e+09, Q = 8, σ = 1, V = 3, E = 16, "
                                              "Lk = 7 in float64")  # the loosest row's
    assert bound.at((1, 0, 2), ref.shape).value == limit[1, 0, 0]


def test_a_row_whose_logits_may_overflow_covers_the_fully_masked_answer():
    """A one-hot row (σ = 0) of logits near finfo.min: an honest exp2 kernel's log2(e)·logit
    overflows to −inf, the row empties and follows fully_masked (zeros): its bound covers any
    value in [−V, V]; a one-hot row of logits near −1e9 keeps its tight bound."""
    from conformance.judging.tolerance import Conditioning, conditioning_bound

    def one_hot(m: float) -> float:
        return conditioning_bound("float64", Conditioning(m, 8.0, 0.0, 3.0, 16, 7))[0]

    assert one_hot(float(np.finfo(np.float64).min) * -1) >= 3.0
    assert one_hot(1e9) < 1e-13
