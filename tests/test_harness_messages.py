"""The one failure-message format (conformance/judging/compare.py), word for word.

A constructed mismatch pins every line: the tolerance with k and atol and
where each came from, ``Mismatched elements: k / n (p%)``, the first indices
with actual, expected, abs and rel error, the NaN/inf positions, the max
abs/rel error. A run through the CLI pins the lines the check adds around
them: op, check, case id and seed first, the repro command last.
"""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
from harness_adapters import attnconf, spec

from conformance.judging.compare import check_contract, compare
from conformance.judging.tolerance import Bound, Tolerance, bound_for

EXPECTED = np.array([[0.5, -1.25, 0.0], [2.0, np.inf, 1.0]])
LOWP = EXPECTED + np.array([[1e-6, 0.0, 0.0], [0.0, 0.0, 0.0]])  # a same-precision error of 1e-6


def test_constructed_mismatch_message_word_for_word():
    actual = np.array([[0.5, -1.2, 0.25], [2.0, np.inf, np.nan]], dtype=np.float32)
    verdict = compare(actual, EXPECTED, bound_for("sdpa", "float32", EXPECTED, LOWP, Tolerance()))
    assert not verdict.ok
    assert verdict.max_abs_err == np.inf  # a NaN where 1 is expected is unboundedly wrong
    assert verdict.lines == (
        "tolerance: max|cand − ref64| ≤ max(k·max|ref_lowp − ref64| + atol, conditioning) = "
        "max(2·1e-06 + 1.91e-06, 0) = 3.91e-06, the same-dtype term dominates (k = 2, the "
        "default; atol = 8 eps(float32) × max(1, max|ref64|) = 8·1.19e-07·2, from the "
        "tolerance table; conditioning not computed for this output)",
        "Mismatched elements: 3 / 6 (50%)",
        "first mismatches (index: actual, expected, abs err, rel err):",
        "  (0, 1): -1.2, -1.25, 0.05, 0.04",
        "  (0, 2): 0.25, 0, 0.25, inf",
        "  (1, 2): nan, 1, inf, inf",
        "actual NaN at [(1, 2)]",
        "actual inf at [(1, 1)]",
        "expected inf at [(1, 1)]",
        "Non-finite mismatches: 1 (NaN or inf where the other side is not the same); over the "
        "finite elements: Max absolute difference: 0.25",
        "Max relative difference: 0.04",
    )


def test_first_mismatches_are_five_and_values_get_the_digits_that_tell_them_apart():
    expected = np.linspace(1.0, 2.0, 12).reshape(3, 4)
    actual = expected + 1e-9  # a float64 kernel that lost 1e-9: equal to 6 digits
    bound = Bound(value=1e-12, k=2.0, lowp_err=0.0, atol=1e-12, source="k = 2, the default; "
                  "atol = 1e-12, set for this run (--atol)")
    lines = compare(actual, expected, bound).lines
    assert lines[0] == ("tolerance: max|cand − ref64| ≤ max(k·max|ref_lowp − ref64| + atol, "
                        "conditioning) = max(2·0 + 1e-12, 0) = 1e-12, the same-dtype term "
                        "dominates (k = 2, the default; atol = 1e-12, set for this run (--atol); "
                        "conditioning not computed for this output)")
    assert lines[1] == "Mismatched elements: 12 / 12 (100%)"
    shown = lines[3:8]
    assert shown[0] == "  (0, 0): 1.000000001, 1, 1e-09, 1e-09"
    assert [line.split(":")[0] for line in shown] == [
        "  (0, 0)", "  (0, 1)", "  (0, 2)", "  (0, 3)", "  (1, 0)"]
    assert lines[8].startswith("Max absolute difference: 1e-09")
    assert lines[9].startswith("Max relative difference: 1e-09")
    assert len(lines) == 10  # no NaN/inf lines when everything is finite


def test_more_than_three_nonfinite_positions_are_counted():
    expected = np.zeros(6)
    actual = np.full(6, np.nan)
    bound = bound_for("sdpa", "float64", expected, expected, Tolerance())
    lines = compare(actual, expected, bound).lines
    assert "actual NaN at [(0,), (1,), (2,)] (+3 more)" in lines
    assert lines[-2:] == ("Non-finite mismatches: 6 (NaN or inf where the other side is not the "
                          "same); over the finite elements: Max absolute difference: 0",
                          "Max relative difference: 0")


def test_within_bound_passes_and_ignored_elements_are_not_compared():
    bound = bound_for("sdpa", "float32", EXPECTED, LOWP, Tolerance())
    close = EXPECTED + 3e-6
    assert compare(close, EXPECTED, bound).ok
    wild = np.where([[False, False, False], [False, False, True]], 99.0, EXPECTED)
    assert not compare(wild, EXPECTED, bound).ok
    ignore = np.array([[False], [True]])  # the second row's value is not specified
    assert compare(wild, EXPECTED, bound, ignore).ok


def test_matching_nonfinite_values_agree():
    expected = np.array([np.nan, np.inf, -np.inf, 1.0])
    bound = bound_for("sdpa", "float64", expected, expected, Tolerance())
    assert compare(expected.copy(), expected, bound).ok
    assert not compare(np.array([np.nan, -np.inf, -np.inf, 1.0]), expected, bound).ok


@pytest.mark.parametrize("shape, dtype, message", [
    ((2, 4), np.float32, "shape mismatch: got (2, 4), expected (2, 3)"),
    ((2, 3), np.float64, "dtype mismatch: got float64, expected float32"),
    ((2, 3), np.float32, None),
])
def test_shape_and_dtype_are_checked_strictly(shape, dtype, message):
    assert check_contract(np.zeros(shape, dtype), (2, 3), np.float32) == message


CASE = "sdpa-large-logits[b2-h2-q7-k7-e16-float64]"


def test_a_failure_through_the_cli_has_headline_body_and_repro(tmp_path):
    run = attnconf("run", "--adapter", spec("float32_inside"), "--only", "numeric",
                   "--case", CASE, "--report", f"json:{tmp_path / 'r.json'}")
    assert run.code == 1
    [failure] = json.loads((tmp_path / "r.json").read_text())["results"]
    lines = failure["message"].splitlines()
    # op, check, case id, seed and flags; then compare's lines; then the repro command
    assert re.fullmatch(re.escape(f"sdpa / numeric: {CASE} (seed ") + r"\d+" +
                        re.escape("; input_scale=40.0, mask='none') — output"), lines[0])
    assert re.fullmatch(re.escape("tolerance: max|cand − ref64| ≤ max(k·max|ref_lowp − ref64| + "
                                  "atol, conditioning) = max(2·0 + ") + r"(\S+), \S+\) = \1"
                        + re.escape(", the same-dtype term dominates (k = 2, the default; atol = "
                                    "512 eps(float64) × max(1, max|ref64|) = 512·2.22e-16·")
                        + r"\S+" + re.escape(", from the tolerance table; conditioning = ")
                        + r"\S+ \(logits\) \+ \S+ \(dot product\) \+ \S+ \(weights\), "
                        r"mostly (logits|dot product|weights), for M = \S+, Q = \S+, "
                        r"σ = \S+, V = \S+, E = 16, Lk = 7 in float64\)", lines[1])
    assert lines[2] == "Mismatched elements: 448 / 448 (100%)"
    assert lines[3] == "first mismatches (index: actual, expected, abs err, rel err):"
    assert all(re.fullmatch(r"  \(0, 0, 0, \d\): \S+, \S+, \S+, \S+", x) for x in lines[4:9])
    assert lines[9].startswith("Max absolute difference: ")
    assert lines[10].startswith("Max relative difference: ")
    assert lines[11] == "repro: " + shlex.join([
        "attnconf", "run", "--adapter", spec("float32_inside"), "--profile", "quick", "--seed",
        "20260101", "--only", "numeric", "--case", CASE])
    assert len(lines) == 12
    assert failure["repro"] == lines[11].removeprefix("repro: ")
    assert failure["max_abs_err"] > failure["bound"]
    assert "FAILED " + failure["message"] in run.out  # the terminal shows the same message
