"""Every declaration the contract allows runs: an adapter honest under its declared
conventions is CONFORMANT, and no check stops on an exception (DESIGN.md, "Conventions are
declared data, and probed"; issue 14, "Every declaration runs").

The honest adapters are the NumPy reference run with the declared options. Which
``fully_masked`` policy a row gets is decided here, independently of the kit's own
attribution (conformance/judging/empty_rows.py), from the rule the declare validation states:
causality alone (bottom_right, Lq > Lk) → ``causal``; else the window alone → ``window``;
else the attn_mask's dtype.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import conformance
from conformance.adapters.load import resolve
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED
from conformance.runner import RunConfig, run
from reference.scaled_dot_product import sdpa as reference_sdpa

FEATURES = ("bool_mask", "float_mask", "causal", "bottom_right", "gqa", "scale", "window",
            "mask_with_causal")
# the checks a convention changes: the probe, the expected outputs, and the two properties
# that read conventions (masked NaN/inf only under "ignored"; empty rows by declared policy)
CONVENTION_CHECKS = ("conventions", "golden", "numeric", "masked_keys", "fully_masked")


# ---------------------------------------------------------------------------
# honest adapters


def _aligned(lq: int, lk: int, alignment: str) -> np.ndarray:
    return np.arange(lq) + (lk - lq if alignment == "bottom_right" else 0)


def _structural_visible(lq, lk, is_causal, window, alignment) -> tuple[np.ndarray, np.ndarray]:
    """(causal-only, causal-and-window) visibility, each (Lq, Lk)."""
    pos, keys = _aligned(lq, lk, alignment)[:, None], np.arange(lk)[None, :]
    causal = keys <= pos if is_causal else np.ones((lq, lk), bool)
    both = causal.copy()
    if window is not None:
        left, right = window
        if left is not None:
            both &= keys >= pos - left
        if right is not None:
            both &= keys <= pos + right
    return causal, both


def _visible(mask, shape, is_causal, window, alignment) -> np.ndarray:
    lq, lk = shape[-2:]
    _, structural = _structural_visible(lq, lk, is_causal, window, alignment)
    if mask is None:
        return np.broadcast_to(structural, shape)
    shown = mask if mask.dtype == bool else ~np.isneginf(mask.astype(np.float64))
    return np.broadcast_to(shown & structural, shape)


def _policy_per_row(fully_masked, mask, lq, lk, is_causal, window, alignment) -> np.ndarray:
    """(Lq,) the declared policy each row gets if it turns out empty."""
    if isinstance(fully_masked, str):
        return np.full(lq, fully_masked, dtype=object)
    causal, both = _structural_visible(lq, lk, is_causal, window, alignment)
    by_mask = "bool" if mask is not None and mask.dtype == bool else "float"
    kinds = np.where(~causal.any(-1), "causal", np.where(~both.any(-1), "window", by_mask))
    return np.array([fully_masked.get(kind, "zeros") for kind in kinds], dtype=object)


def honest_adapter(alignment="top_left", fully_masked="zeros", masked_nonfinite="propagates",
                   dtypes=None, features=FEATURES, declare=True):
    """The reference under these conventions, as a declared adapter (or an undeclared one).

    ``any`` rows are given NaN (any value is allowed); under ``ignored`` non-finite key or
    value entries that no query sees are zeroed before the reference runs, so NaN behind a
    mask cannot reach P·V through a zero weight (a row that sees one still gets NaN)."""

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False, causal_alignment=alignment, window=None):
        if dropout_p:
            raise NotImplementedError("dropout")
        options = dict(attn_mask=attn_mask, is_causal=is_causal, scale=scale,
                       enable_gqa=enable_gqa, causal_alignment=causal_alignment, window=window)
        if masked_nonfinite == "ignored":
            key, value, poisoned = _clean_hidden(query, key, value, options)
        lq, lk = query.shape[-2], key.shape[-2]
        per_row = _policy_per_row(fully_masked, attn_mask, lq, lk, is_causal, window,
                                  causal_alignment)
        out = reference_sdpa(query, key, value, **options)
        for policy in set(per_row) - {"zeros"}:
            other = reference_sdpa(query, key, value, fully_masked=(
                "nan" if policy == "any" else policy), **options)
            out = np.where((per_row == policy)[:, None], other, out)
        if masked_nonfinite == "ignored":
            out = np.where(poisoned[..., None], np.nan, out).astype(out.dtype)
        return out

    if not declare:
        return sdpa
    conventions = {"causal_alignment": alignment, "fully_masked": fully_masked,
                   "masked_nonfinite": masked_nonfinite}
    return conformance.adapter(sdpa, name="honest", dtypes=dtypes, features=features,
                               conventions=conventions)


def _clean_hidden(query, key, value, options):
    """(key, value, poisoned rows): non-finite entries zeroed; rows that see one flagged."""
    hq, lq = query.shape[-3:-1]
    hk, lk = key.shape[-3:-1]
    bad = ~np.isfinite(np.asarray(key, np.float64)).all(-1) | ~np.isfinite(
        np.asarray(value, np.float64)).all(-1)  # (..., Hk, Lk)
    bad = np.repeat(bad, hq // hk, axis=-2)[..., None, :]  # (..., Hq, 1, Lk)
    shape = np.broadcast_shapes((*bad.shape[:-2], lq, lk), (*query.shape[:-3], hq, lq, lk))
    seen = _visible(options["attn_mask"], shape, options["is_causal"], options["window"],
                    options["causal_alignment"])
    poisoned = (seen & bad).any(-1)
    clean = [np.where(np.isfinite(x), x, 0).astype(x.dtype) for x in (key, value)]
    return (*clean, poisoned)


def uniform_bottom_right(declare: bool):
    """The issue's kernel: bottom-right causal, rows emptied by causality uniform, rows an
    attn_mask empties zeros. Undeclared, it is a plain callable with torch's signature."""
    if declare:
        return honest_adapter("bottom_right", {"causal": "uniform"})
    inner = honest_adapter("bottom_right", {"causal": "uniform"}, declare=False)

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False):
        return inner(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)

    return sdpa


# ---------------------------------------------------------------------------
# the pairwise sweep

ALIGNMENTS = ("top_left", "bottom_right")
FULLY_MASKED = ("zeros", "nan", "uniform", "any",
                {"causal": "uniform"}, {"bool": "uniform", "float": "nan"},
                {"bool": "nan", "float": "uniform", "causal": "nan", "window": "uniform"},
                {"bool": "any", "causal": "any", "window": "nan"})
MASKED_NONFINITE = ("propagates", "ignored")
DTYPES = (("float64",), ("float32", "float16"), ("bfloat16",),
          ("float64", "float32", "float16", "bfloat16"))
FACTORS = (ALIGNMENTS, FULLY_MASKED, MASKED_NONFINITE, DTYPES)


def _pairs(row) -> set:
    return {(i, repr(row[i]), j, repr(row[j])) for i, j in itertools.combinations(range(4), 2)}


def all_pairs() -> list[tuple]:
    """Rows of FACTORS covering every pair of values of two factors (greedy: each next row
    is the product row covering most pairs not yet covered, the first such in order)."""
    product = list(itertools.product(*FACTORS))
    wanted = set().union(*(_pairs(row) for row in product))
    rows = []
    while wanted:
        best = max(product, key=lambda row: len(_pairs(row) & wanted))
        rows.append(best)
        wanted -= _pairs(best)
    return rows


ROWS = all_pairs()


def test_the_sweep_covers_every_pair_and_stays_small():
    covered = set().union(*(_pairs(row) for row in ROWS))
    assert covered == set().union(*(_pairs(r) for r in itertools.product(*FACTORS)))
    assert len(ROWS) <= 40  # of 128 in the full product


def _run(adapter, profile="quick", only=CONVENTION_CHECKS):
    resolved = resolve("tests.test_declarations:honest", obj=adapter)
    config = RunConfig(profile=PROFILES[profile], only=only, isolate="inprocess")
    results, _ = run(resolved, config)
    return results


def _stopped(results) -> list:
    """Results of a check that stopped on an exception inside the kit."""
    return [r for r in results if r.case == "check-error" or r.status not in (
        PASSED, FAILED, "skipped")]


@pytest.mark.slow  # whole runs of the checks: tox -e py, not the inner loop
def test_every_pairwise_declaration_is_conformant_on_its_honest_adapter():
    verdicts = {}
    for alignment, policy, nonfinite, dtypes in ROWS:
        results = _run(honest_adapter(alignment, policy, nonfinite, dtypes))
        failed = [f"{r.check} {r.case}: {r.message}" for r in results if r.status != PASSED
                  and r.status != "skipped"]
        checks = {r.check for r in results if r.status == PASSED}
        verdicts[(alignment, repr(policy), nonfinite, dtypes)] = (failed, checks)
    wrong = {k: v[0] for k, v in verdicts.items() if v[0]}
    assert not wrong, wrong
    # exercised, not vacuous: each run passed the probe and numeric cases
    assert all({"conventions", "numeric"} <= checks for _, checks in verdicts.values())


@pytest.mark.slow  # whole quick and ci runs: tox -e py, not the inner loop
@pytest.mark.parametrize("profile", ["quick", "ci"])
def test_bottom_right_uniform_causal_rows_declared_is_conformant(profile):
    results = _run(uniform_bottom_right(declare=True), profile, only=())
    bad = [f"{r.check} {r.case}: {r.message[:300]}" for r in results
           if r.status not in (PASSED, "skipped")]
    assert not bad and not _stopped(results)
    # the causal cases with Lq > Lk (first rows emptied by causality) ran and passed
    assert any(r.check == "numeric" and r.case.startswith("sdpa-causal[") and "-q7-k5-" in r.case
               and r.status == PASSED for r in results)


def test_bottom_right_uniform_causal_rows_undeclared_fails_once_in_conventions():
    results = _run(uniform_bottom_right(declare=False), only=("conventions",))
    failed = [r for r in results if r.status == FAILED]
    assert [r.case for r in failed] == ["probe:causal_alignment"]
    assert ("declare conventions={'causal_alignment': 'bottom_right', "
            "'fully_masked': {'causal': 'uniform'}} to accept it") in failed[0].message


def test_window_emptied_rows_are_probed_and_named():
    """Rows a window alone empties (Lq > Lk) are their own kind in the probe."""
    kernel = honest_adapter(fully_masked={"window": "uniform"}, declare=False)
    results = _run(conformance.adapter(kernel, features=FEATURES), only=("conventions",))
    failed = [r for r in results if r.status == FAILED]
    assert [r.case for r in failed] == ["probe:fully_masked"]
    assert "declare conventions={'fully_masked': {'window': 'uniform'}}" in failed[0].message


@pytest.mark.slow  # whole runs of the checks: tox -e py, not the inner loop
def test_mismatches_beyond_the_empty_rows_are_not_blamed_on_the_convention():
    inner = honest_adapter("bottom_right", {"causal": "uniform"}, declare=False)

    def off_by_half(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                     scale=None, enable_gqa=False, causal_alignment="bottom_right", window=None):
        out = inner(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa,
                    causal_alignment=causal_alignment, window=window)
        return (out * 1.5).astype(out.dtype)

    adapter = conformance.adapter(off_by_half, features=FEATURES,
                                  conventions={"causal_alignment": "bottom_right"})
    results = _run(adapter, only=("numeric",))
    failed = [r for r in results if r.status == FAILED]
    assert failed and not any("no visible key" in r.message for r in failed)


@pytest.mark.parametrize(("conventions", "words"), [
    ({"fully_masked": {"diagonal": "zeros"}}, "unknown key(s) ['diagonal']; the keys say what "
                                              "hid the row: 'bool'"),
    ({"fully_masked": {"causal": "maybe"}}, "value(s) {'causal': 'maybe'} not one of"),
    ({"fully_masked": ["zeros"]}, "or a mapping from ['bool', 'float', 'causal', 'window']"),
    ({"causal_alignment": "left"}, "causal_alignment must be one of ['top_left', 'bottom_right']"),
    ({"masked_nonfinite": "hidden"}, "masked_nonfinite must be one of ['ignored', 'propagates']"),
])
def test_a_bad_declaration_is_one_line_naming_the_allowed_values(conventions, words):
    with pytest.raises(ValueError) as raised:
        conformance.adapter(lambda query, key, value: query, conventions=conventions)
    assert words in str(raised.value) and "\n" not in str(raised.value)
