"""Probe the conventions correct libraries disagree on, and hold the adapter to its declaration.

Each probe is a tiny case whose outcomes under the different conventions are
far apart. What the adapter does is recorded (``ctx.observed``, shown in the
"conventions" section of every report). A recognised behaviour that differs
from the declared (or default, torch's) value is one failure naming both
values and the declaration that would accept the observed one. ``any`` and
``propagates`` are never failed; an unrecognised behaviour is left to the
numeric check.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from conformance.checks.base import RunContext, guarded_call, headline, result
from conformance.frameworks import DTYPE_BY_NAME
from conformance.results import FAILED, PASSED, SKIPPED, Result
from reference.sdpa import sdpa as reference_sdpa

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
    return bool(np.all(np.isfinite(a)) and np.max(np.abs(a - b)) <= 2e-2 * (1 + np.abs(b).max()))


def _call(ctx, name, args, kwargs):
    kwargs = dict(kwargs)
    if "dropout_p" in ctx.adapter.ops["sdpa"].params:
        kwargs["dropout_p"] = 0.0
    outcome, bad = guarded_call(ctx, "sdpa", "conventions", f"probe:{name}",
                                f"convention probe {name}", args, kwargs)
    if bad:
        return None, bad
    if not isinstance(outcome.value, np.ndarray):
        return None, None
    return outcome.value, None


def _probe(ctx: RunContext, name: str, status: str, message: str = "") -> Result:
    """The one result of the probe ``name`` (case id ``probe:<name>``)."""
    return result(ctx, "sdpa", "conventions", f"probe:{name}", status, message)


def _mismatch(ctx, name: str, declared, observed, suggestion) -> Result:
    origin = "declared" if name in ctx.adapter.declared_conventions else "default (torch's)"
    message = (f"{headline('sdpa', 'conventions', f'convention {name}')}\n"
               f"{name}: {origin} value {declared!r}, observed {observed!r}; "
               f"declare conventions={{{name!r}: {suggestion!r}}} to accept it")
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
    wide = [x.astype(np.float64) for x in (q, k, v)]
    observed = next((a for a in ("top_left", "bottom_right")
                     if _close(out, reference_sdpa(*wide, is_causal=True, causal_alignment=a))),
                    "unrecognised")
    ctx.observed["causal_alignment"] = observed
    declared = ctx.adapter.conventions["causal_alignment"]
    if observed in ("top_left", "bottom_right") and observed != declared:
        yield _mismatch(ctx, "causal_alignment", declared, observed, observed)
    else:
        yield _probe(ctx, "causal_alignment", PASSED)


def _classify_empty_row(row: np.ndarray, values: np.ndarray) -> str:
    row = np.asarray(row, np.float64)
    if np.all(np.isnan(row)):
        return "nan"
    if np.all(row == 0):
        return "zeros"
    if _close(row, values.astype(np.float64).mean(axis=-2)[0, 0]):
        return "uniform"
    return "unrecognised"


def _observe_empty_rows(ctx: RunContext) -> dict[str, str]:
    q, k, v = _qkv(ctx, 3, 4)
    visible = np.ones((3, 4), bool)
    visible[1] = False
    masks = {"bool": visible,
             "float": np.where(visible, 0.0, -np.inf).astype(q.dtype)}
    observed = {}
    for kind, mask in masks.items():
        if f"{kind}_mask" not in ctx.adapter.ops["sdpa"].features:
            continue
        out, _bad = _call(ctx, "fully_masked", [q, k, v], {"attn_mask": mask})
        if out is not None and out.shape == (1, 1, 3, 4):
            observed[kind] = _classify_empty_row(out[0, 0, 1], v)
    return observed


def probe_fully_masked(ctx: RunContext) -> Iterator[Result]:
    observed = _observe_empty_rows(ctx)
    if not observed:
        yield _probe(ctx, "fully_masked", SKIPPED,
                     "unsupported: adapter takes no attn_mask, or its output was unusable")
        return
    ctx.observed["fully_masked"] = observed
    declared = ctx.adapter.conventions["fully_masked"]
    expected = {kind: declared.get(kind, "zeros") if isinstance(declared, dict) else declared
                for kind in observed}
    wrong = {kind: obs for kind, obs in observed.items()
             if obs != "unrecognised" and expected[kind] not in ("any", obs)}
    if not wrong:
        yield _probe(ctx, "fully_masked", PASSED)
        return
    recognised = {k: v for k, v in observed.items() if v != "unrecognised"}
    suggestion = (next(iter(recognised.values())) if len(set(recognised.values())) == 1
                  else recognised)
    yield _mismatch(ctx, "fully_masked", declared, observed, suggestion)


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
        yield _mismatch(ctx, "masked_nonfinite", declared, observed, observed)
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
