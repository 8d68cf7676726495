"""Probe the conventions correct libraries disagree on, and hold the adapter to its declaration.

Each probe is a tiny case whose outcomes under the different conventions are
far apart. What the adapter does is recorded (``ctx.observed``, shown in the
"conventions" section of every report). A recognised behaviour that differs
from the declared (or default, torch's) value is one failure naming both
values and the declaration that would accept the observed one. ``any`` and
``propagates`` are never failed; an unrecognised behaviour is left to the
numeric check. A probe call that raises NotImplementedError skips its probe; one that
raises anything else, times out, or loses its worker fails it, naming what happened (as
every check does: conformance/errors.py), never reading as "unsupported".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from conformance.adapters.frameworks import DTYPE_BY_NAME
from conformance.checks.base import RunContext, guarded_call, headline, result
from conformance.judging.empty_rows import accepting_policy, policy_for
from conformance.judging.tolerance import PROBE_RTOL
from conformance.results import FAILED, PASSED, SKIPPED, Result
from reference.scaled_dot_product import sdpa as reference_sdpa

PROBE_SEED = 20240607


def probe_dtype(ctx: RunContext) -> str:
    for name in ("float32", "float64"):
        if name in ctx.adapter.dtypes:
            return name
    return ctx.adapter.dtypes[0]


def _qkv(ctx: RunContext, lq: int, lk: int):
    rng = np.random.default_rng(PROBE_SEED)
    dtype = DTYPE_BY_NAME[probe_dtype(ctx)]
    return [rng.standard_normal((1, 1, n, 4)).astype(dtype) for n in (lq, lk, lk)]


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return bool(np.all(np.isfinite(a))
                and np.max(np.abs(a - b)) <= PROBE_RTOL * (1 + np.abs(b).max()))


def _call(ctx, name, args, kwargs, what: str = ""):
    """(output array, None), (None, the skipped or failed result of the call), or (None, None)
    when the output is not one array. ``what`` is added to the failure's headline."""
    kwargs = dict(kwargs)
    if "dropout_p" in ctx.adapter.ops["sdpa"].params:
        kwargs["dropout_p"] = 0.0
    outcome = guarded_call(ctx, "sdpa", "conventions", f"probe:{name}",
                           f"convention probe {name}{what}", args, kwargs)
    if isinstance(outcome, Result):
        return None, outcome
    if not isinstance(outcome.value, np.ndarray):
        return None, None
    return outcome.value, None


def _probe(ctx: RunContext, name: str, status: str, message: str = "") -> Result:
    """The one result of the probe ``name`` (case id ``probe:<name>``)."""
    return result(ctx, "sdpa", "conventions", f"probe:{name}", status, message)


def _mismatch(ctx, name: str, declared, observed, accepting: dict) -> Result:
    """One failure: the declared (or default) value, the observed one, and the declaration
    (``accepting``: every convention it must name) that would accept what was observed."""
    origin = "declared" if name in ctx.adapter.declared_conventions else "default (torch's)"
    message = (f"{headline('sdpa', 'conventions', f'convention {name}')}\n"
               f"{name}: {origin} value {declared!r}, observed {observed!r}; "
               f"declare conventions={accepting!r} to accept it")
    return _probe(ctx, name, FAILED, message)


def probe_causal_alignment(ctx: RunContext) -> Iterator[Result]:
    if "causal" not in ctx.adapter.ops["sdpa"].features:
        yield _probe(ctx, "causal_alignment", SKIPPED,
                     "unsupported: adapter has no is_causal")
        return
    q, k, v = _qkv(ctx, 2, 5)
    out, bad = _call(ctx, "causal_alignment", [q, k, v], {"is_causal": True})
    if bad or out is None:
        yield bad or _probe(ctx, "causal_alignment", SKIPPED,
                            "output unusable; see output_contract")
        return
    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    observed = next((a for a in ("top_left", "bottom_right")
                     if _close(out, reference_sdpa(q64, k64, v64, is_causal=True,
                                                   causal_alignment=a))),
                    "unrecognised")
    ctx.observed["causal_alignment"] = observed
    declared = ctx.adapter.conventions["causal_alignment"]
    if observed in ("top_left", "bottom_right") and observed != declared:
        accepting = {"causal_alignment": observed, **_causal_rows_declaration(ctx, observed)}
        yield _mismatch(ctx, "causal_alignment", declared, observed, accepting)
    else:
        yield _probe(ctx, "causal_alignment", PASSED)


def _causal_rows_declaration(ctx: RunContext, alignment: str) -> dict:
    """{"fully_masked": …} when the adapter, causal in ``alignment`` (not the declared one),
    gives the rows causality empties a policy other than the declared one; else {}.

    Causality empties rows only under bottom_right; when the fully_masked probe cannot see
    them (the declared alignment is top_left and the adapter takes no causal_alignment),
    the declaration that fixes the alignment must fix their policy too."""
    if alignment != "bottom_right" or _causal_rows_call(ctx) is not None:
        return {}
    seen = _observe_rows(ctx, "causal", {"is_causal": True}, alignment)
    declared = ctx.adapter.conventions["fully_masked"]
    # a call that gave no answer (skipped, failed, unusable): the mismatch stands without it
    if not isinstance(seen, str) or seen == "unrecognised" or policy_for(
            declared, "causal") in ("any", seen):
        return {}
    return {"fully_masked": accepting_policy(declared, {"causal": seen})}


def _classify_empty_row(row: np.ndarray, values: np.ndarray) -> str:
    row = np.asarray(row, np.float64)
    if np.all(np.isnan(row)):
        return "nan"
    if np.all(row == 0):
        return "zeros"
    if _close(row, values.astype(np.float64).mean(axis=-2)[0, 0]):
        return "uniform"
    return "unrecognised"


# Lq > Lk: bottom-right causality, and a (0, 0) window in either alignment, empty rows.
STRUCTURAL_SHAPE = (5, 3)
MASK_SHAPE = (3, 4)


def _causal_rows_call(ctx: RunContext) -> dict | None:
    """The keyword arguments that make causality empty rows under the declared alignment
    (bottom_right, Lq > Lk), or None when this adapter cannot be asked for that."""
    features = ctx.adapter.ops["sdpa"].features
    if "causal" not in features:
        return None
    if ctx.adapter.conventions["causal_alignment"] == "bottom_right":
        return {"is_causal": True}
    return {"is_causal": True, "causal_alignment": "bottom_right"} if (
        "bottom_right" in features) else None


def _row_probes(ctx: RunContext) -> dict[str, dict[str, Any]]:
    """Per mask kind the adapter supports (conformance.judging.empty_rows.KINDS): the keyword
    arguments of a probe call whose empty rows that kind hid (attn_mask drawn later)."""
    features = ctx.adapter.ops["sdpa"].features
    probes: dict[str, dict[str, Any]] = {kind: {"attn_mask": kind} for kind in ("bool", "float")
              if f"{kind}_mask" in features}
    causal = _causal_rows_call(ctx)
    if causal is not None:
        probes["causal"] = causal
    if "window" in features:
        probes["window"] = {"window": (0, 0)}
    return probes


# what each kind of probe call hides, in a failure's headline
HIDDEN_BY = {"bool": "a bool attn_mask", "float": "a float attn_mask",
             "causal": "bottom_right causality", "window": "a (0, 0) window"}


def _observe_rows(ctx: RunContext, kind: str, kwargs: dict,
                  alignment: str) -> str | Result | None:
    """What the adapter gives the rows that ``kind`` empties in its probe call: one of
    zeros/nan/uniform, "unrecognised", None when the call gave no usable output, or the
    call's own result: skipped (it raised NotImplementedError) or failed (it raised anything
    else, timed out, or lost its worker)."""
    lq, lk = MASK_SHAPE if kind in ("bool", "float") else STRUCTURAL_SHAPE
    q, k, v = _qkv(ctx, lq, lk)
    kwargs = dict(kwargs)
    if kind in ("bool", "float"):
        visible = np.ones((lq, lk), bool)
        visible[1] = False
        kwargs["attn_mask"] = visible if kind == "bool" else np.where(
            visible, 0.0, -np.inf).astype(q.dtype)
    out, bad = _call(ctx, "fully_masked", [q, k, v], kwargs,
                     f" (rows emptied by {HIDDEN_BY[kind]})")
    if bad is not None:
        return bad
    if out is None or out.shape != (1, 1, lq, v.shape[-1]):
        return None
    reference_kwargs = {"causal_alignment": alignment, **kwargs}
    wide = [x.astype(np.float64) for x in (q, k, v)]
    _, lse = reference_sdpa(*wide, return_lse=True, **reference_kwargs)
    empty = np.flatnonzero(np.isneginf(lse[0, 0]))
    seen = {_classify_empty_row(out[0, 0, i], v) for i in empty}
    return seen.pop() if len(seen) == 1 else "unrecognised"


def _observe_empty_rows(ctx: RunContext) -> dict[str, str] | Result:
    """Mask kind → what the adapter gives the rows it empties (kinds whose call raised
    NotImplementedError or gave no usable output are left out); or the failed result of the
    first call that failed: the probes stop there, as one more call on a kernel that just
    crashed or hung would cost another worker or another timeout; or, when no kind could be
    observed and a call raised NotImplementedError, that call's skipped result (with the
    adapter's message)."""
    alignment = ctx.adapter.conventions["causal_alignment"]
    observed: dict[str, str] = {}
    skipped: Result | None = None
    for kind, kwargs in _row_probes(ctx).items():
        seen = _observe_rows(ctx, kind, kwargs, kwargs.get("causal_alignment", alignment))
        if isinstance(seen, Result) and seen.status == FAILED:
            return seen
        if isinstance(seen, Result):
            skipped = skipped or seen
        elif seen is not None:
            observed[kind] = seen
    return skipped if not observed and skipped else observed


def probe_fully_masked(ctx: RunContext) -> Iterator[Result]:
    """Rows emptied by each mask kind the adapter supports (bool, float, causality under
    bottom_right, window) against the declared policy for that kind.

    A probe call that fails — the adapter raised something other than NotImplementedError,
    timed out, or its worker died — is this probe's failed result, with that diagnosis
    (never "unsupported"); only NotImplementedError, or no mask kind to probe, skips."""
    observed = _observe_empty_rows(ctx)
    if isinstance(observed, Result):  # failed, or skipped with the adapter's message
        yield observed
        return
    if not observed:
        yield _probe(ctx, "fully_masked", SKIPPED,
                     "unsupported: adapter takes no attn_mask, or its output was unusable")
        return
    ctx.observed["fully_masked"] = observed
    declared = ctx.adapter.conventions["fully_masked"]
    wrong = {kind: obs for kind, obs in observed.items()
             if obs != "unrecognised" and policy_for(declared, kind) not in ("any", obs)}
    if not wrong:
        yield _probe(ctx, "fully_masked", PASSED)
        return
    recognised = {k: v for k, v in observed.items() if v != "unrecognised"}
    yield _mismatch(ctx, "fully_masked", declared, observed,
                    {"fully_masked": accepting_policy(declared, recognised, keep=tuple(observed))})


def probe_masked_nonfinite(ctx: RunContext) -> Iterator[Result]:
    if "bool_mask" not in ctx.adapter.ops["sdpa"].features:
        yield _probe(ctx, "masked_nonfinite", SKIPPED,
                     "unsupported: adapter takes no bool attn_mask")
        return
    q, k, v = _qkv(ctx, 3, 4)
    visible = np.ones((3, 4), bool)
    visible[:, 2] = False
    v = v.copy()
    v[..., 2, :] = np.nan
    out, bad = _call(ctx, "masked_nonfinite", [q, k, v], {"attn_mask": visible})
    if bad or out is None:
        yield bad or _probe(ctx, "masked_nonfinite", SKIPPED,
                            "output unusable; see output_contract")
        return
    observed = "propagates" if np.isnan(np.asarray(out, np.float64)).any() else "ignored"
    ctx.observed["masked_nonfinite"] = observed
    declared = ctx.adapter.conventions["masked_nonfinite"]
    if declared == "ignored" and observed == "propagates":
        yield _mismatch(ctx, "masked_nonfinite", declared, observed,
                        {"masked_nonfinite": observed})
    else:
        yield _probe(ctx, "masked_nonfinite", PASSED)


def conventions(ctx: RunContext, op: str) -> Iterator[Result]:
    """Probe causal_alignment, fully_masked and masked_nonfinite; fail on a recognised mismatch."""
    if ctx.case_filter and not ctx.case_filter.startswith("probe:"):
        return
    for probe in (probe_causal_alignment, probe_fully_masked, probe_masked_nonfinite):
        for r in probe(ctx):
            if ctx.case_filter in (None, r.case):
                yield r
