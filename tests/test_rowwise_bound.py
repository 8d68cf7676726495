"""The conditioning term per query row (conformance/judging/tolerance.py, docs/tolerance.md):
one ill-conditioned row (a finite −1e9 or finfo.min fill hiding a whole row: logits near
−1e9 whose rounding can move the row anywhere in its values' hull) loosens its own bound,
not its neighbours'.

Measured on the ``ci`` cases the covering array generates with such fills: the other rows
are held to the bound of the same case with the fill replaced by −inf (a well-conditioned
twin), where the one-number bound let them be off by O(1); wrong kernels whose error the
one-number bound hid on those cases now fail there.
"""

from __future__ import annotations

import inspect
import re
import sys
from functools import cache

import numpy as np
import pytest
from correct import CORRECT  # tests/ is on sys.path (tests/conftest.py)

from conformance.judging.compare import compare
from conformance.judging.tolerance import Bound, Conditioning, Tolerance, bound_for
from conformance.ops.sdpa import INPUT_OPTIONS, build_cases, expected, make_inputs
from conformance.profiles import PROFILES
from conformance.runner import DEFAULT_SEED

DEFAULTS = {"causal_alignment": "top_left", "fully_masked": "zeros",
            "masked_nonfinite": "propagates"}
ILL = 1e8  # a row whose |lse| is above this has logits near a finite fill


def _conditioning(magnitudes: list[float]) -> Conditioning:
    """Per-row magnitudes for an output of shape (1, rows, 2): row i's logits near M_i."""
    rows = np.asarray(magnitudes, np.float64)[None, :, None]
    return Conditioning(logit_magnitude=rows, dot_magnitude=np.full_like(rows, 4.0),
                        value_spread=np.ones_like(rows), value_magnitude=np.full_like(rows, 3.0),
                        dim=16, keys=7)


REF = np.array([[[0.25, -0.5], [1.5, 0.75], [-1.0, 0.5]]])


def test_an_ill_conditioned_row_loosens_its_own_bound_only():
    one_ill = bound_for("sdpa", "float32", REF, REF, Tolerance(),
                        _conditioning([3.0, 1e9, 3.0]))
    well = bound_for("sdpa", "float32", REF, REF, Tolerance(), _conditioning([3.0, 3.0, 3.0]))
    limit = np.broadcast_to(one_ill.limit, REF.shape)
    assert limit[0, 1, 0] > 1.0  # float32 logits near 1e9 are 64 apart: anything goes
    assert limit[0, 0, 0] == limit[0, 2, 0] == pytest.approx(well.value, rel=1e-12)
    assert one_ill.value == limit.max()  # the summary is the loosest row's bound


def test_an_error_on_a_well_conditioned_row_fails_and_the_message_names_that_row():
    bound = bound_for("sdpa", "float32", REF, REF, Tolerance(), _conditioning([3.0, 1e9, 3.0]))
    actual = REF.copy()
    actual[0, 2, 1] += 1e-3  # far under the ill row's bound, far over the row's own
    verdict = compare(actual, REF, bound)
    assert not verdict.ok and verdict.bound is not None and verdict.bound < 1e-4 < bound.value
    assert re.search(r"; for row \(0, 2\), the row most over its own bound \(bounds per row: "
                     r"\S+ to 64\)$", verdict.lines[0])
    # an error of the same size on the ill-conditioned row itself is within its bound
    actual = REF.copy()
    actual[0, 1, 1] += 1e-3
    assert compare(actual, REF, bound).ok


def test_the_message_explains_the_row_most_over_its_own_bound_and_its_dominant_term():
    bound = bound_for("sdpa", "float32", REF, REF, Tolerance(), _conditioning([3.0, 1e4, 3.0]))
    limit = np.broadcast_to(bound.limit, REF.shape)[0, :, 0]
    assert limit[1] > 100 * limit[2]  # float32 logits near 1e4 are ~1e-3 apart
    actual = REF.copy()
    actual[0, 2] += 2 * limit[2]  # twice its bound
    actual[0, 1] += 10 * limit[1]  # ten times its bound: the worst row
    verdict = compare(actual, REF, bound)
    assert verdict.bound == pytest.approx(limit[1])
    line = verdict.lines[0]
    assert f"= {limit[1]:.3g}, the conditioning term dominates" in line
    assert "mostly logits, for M = 1e+04" in line and "; for row (0, 1), the row most" in line


@pytest.mark.parametrize("k, atol", [(float("nan"), None), (-1.0, None), (2.0, float("nan")),
                                     (2.0, -1.0)])
def test_a_nan_or_negative_k_or_atol_never_passes_with_a_per_row_bound(k, atol):
    bound = bound_for("sdpa", "float32", REF, REF, Tolerance(k=k, atol=atol),
                      _conditioning([3.0, 1e9, 3.0]))
    assert np.isnan(bound.value) and np.isnan(bound.limit).all()
    verdict = compare(REF.copy(), REF, bound)
    assert not verdict.ok and verdict.lines[1] == "Mismatched elements: 6 / 6 (100%)"


def test_one_number_magnitudes_give_one_bound_as_before():
    c = Conditioning(logit_magnitude=1e5, dot_magnitude=8.0, value_spread=1.0,
                     value_magnitude=3.0, dim=16, keys=7)
    bound = bound_for("sdpa", "float64", REF, REF, Tolerance(), c)
    assert bound.row_conditioning is None and bound.limit == bound.value
    assert bound.at((0, 1, 1), REF.shape) is bound


# --- generated ci cases with an ill-conditioned row -------------------------------------


@cache
def mixed_cases() -> tuple:
    """(case, inputs, expected, per-row bound, one-number bound, ill rows) for every ci case
    whose finite fill makes some rows, not all, ill-conditioned."""
    found = []
    for case in build_cases(PROFILES["ci"], DEFAULT_SEED):
        if case.option("values") is None or case.option("mask_fill") not in (-1e9, "finfo_min"):
            continue
        inputs = make_inputs(case)
        [exp] = expected(inputs, case, DEFAULTS)
        rows_shape = (*exp.ref64.shape[:-1], 1)
        ill = np.broadcast_to(exp.conditioning.logit_magnitude, rows_shape)[..., 0] > ILL
        if ill.any() and not ill.all():
            per_row = bound_for("sdpa", case.dtype, exp.ref64, exp.ref_lowp, Tolerance(),
                                exp.conditioning)
            whole = bound_for("sdpa", case.dtype, exp.ref64, exp.ref_lowp, Tolerance(),
                              exp.conditioning.largest())
            found.append((case, inputs, exp, per_row, whole, ill))
    return tuple(found)


def twin_bound(case, inputs) -> Bound:
    """The one-number bound of the same case with its finite fill replaced by −inf."""
    mask = inputs["attn_mask"]
    wide = mask.astype(np.float64)
    twin = {**inputs, "attn_mask": np.where(wide <= -ILL, -np.inf, wide).astype(mask.dtype)}
    [exp] = expected(twin, case, DEFAULTS)
    return bound_for("sdpa", case.dtype, exp.ref64, exp.ref_lowp, Tolerance(),
                     exp.conditioning.largest())


def test_the_other_rows_are_as_tight_as_in_a_well_conditioned_case():
    cases = mixed_cases()
    assert len(cases) >= 4, [c.id for c, *_ in cases]
    gains = []
    for case, inputs, exp, per_row, whole, ill in cases:
        others = float(np.broadcast_to(per_row.limit, exp.ref64.shape)[..., 0][~ill].max())
        # the same-dtype term stays one number for the whole output (its atol scales with
        # max|ref64|, which the hidden rows' values may set): the conditioning term is per row
        twin = max(twin_bound(case, inputs).value, per_row.same_dtype)
        assert others <= 1.1 * twin, f"{case.id}: other rows' bound {others:.3g} vs {twin:.3g}"
        gains.append(whole.value / others)
    # the one-number bound was 0.7–1e293 on such cases: at least 1e3 times the other rows'
    assert sum(g >= 1e3 for g in gains) >= 3, gains


def _call(adapter, case, inputs):
    params = inspect.signature(adapter).parameters
    kwargs = {k: v for k, v in case.options if k not in INPUT_OPTIONS}
    if any(k not in params for k in kwargs):
        return None
    for key in ("alibi_slopes", "sinks"):
        if key in kwargs:
            kwargs[key] = np.asarray(kwargs[key], dtype=inputs["query"].dtype)
    return np.asarray(adapter(inputs["query"].copy(), inputs["key"].copy(),
                              inputs["value"].copy(), attn_mask=inputs["attn_mask"].copy(),
                              **kwargs))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["einsum_float64", "exp2_float64", "bias_last_float64",
                                  "blocked_online_float32", "online_7_forward_float32",
                                  "kahan_float32", "flash_lowp"])
def test_honest_kernels_pass_every_row_against_its_own_bound(name):
    adapter = CORRECT[name]
    checked = 0
    for case, inputs, exp, per_row, _, _ in mixed_cases():
        if case.dtype not in adapter.__attnconf__.dtypes:
            continue
        out = _call(adapter, case, inputs)
        if out is None:
            continue
        verdict = compare(out, exp.ref64, per_row, exp.ignore)
        assert verdict.ok, f"{name} on {case.id}:\n" + "\n".join(verdict.lines)
        checked += 1
    assert checked or name in ("kahan_float32",), name


@pytest.mark.slow
def test_wrong_kernels_the_one_number_bound_passed_now_fail():
    """Each of these mutants is O(1) wrong on the rows that see keys of a generated case
    whose −1e9 or finfo.min fill hides other rows, and passed it under the one-number bound
    (154 for a float32 GQA case, 1e293 for a float64 one): gqa_tile (kv heads tiled, not
    repeated), explicit_scale_ignored (scale 0 read as the default), float_mask_as_bool."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from mutants import MUTANTS

    caught = set()
    for name in ("gqa_tile", "explicit_scale_ignored", "float_mask_as_bool"):
        for case, inputs, exp, per_row, whole, _ in mixed_cases():
            out = _call(MUTANTS[name], case, inputs)
            if out is None or out.shape != exp.ref64.shape:
                continue
            if (compare(out, exp.ref64, whole, exp.ignore).ok
                    and not compare(out, exp.ref64, per_row, exp.ignore).ok):
                caught.add(name)
    assert caught == {"gqa_tile", "explicit_scale_ignored", "float_mask_as_bool"}
