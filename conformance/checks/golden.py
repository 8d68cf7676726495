"""The adapter's sdpa on the pinned golden cases (fixtures/golden/sdpa-*.npz).

Each file is loaded only after its sha256 is verified against the manifest
(never unpickled). A case is sent only the options the adapter supports;
cases about a convention the adapter does not follow (another causal
alignment or fully-masked policy) or about an explicit dropout keep-mask are
skipped with that reason. Only the output is compared (lse and weights are
pinned for the reference's own drift tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from conformance.adapters.frameworks import dtype_name
from conformance.checks.base import RunContext, guarded_call, headline, result
from conformance.judging.compare import check_contract, compare
from conformance.judging.empty_rows import EmptyRows, explain, explanation_origin, policy_for
from conformance.judging.empty_rows import find as find_empty_rows
from conformance.judging.tolerance import bound_for
from conformance.results import FAILED, PASSED, SKIPPED, Result
from reference.scaled_dot_product import sdpa as reference_sdpa

OPTION_FEATURES = {"is_causal": "causal", "scale": "scale", "enable_gqa": "gqa",
                   "window": "window", "softcap": "softcap", "alibi_slopes": "alibi",
                   "sinks": "sinks"}
ARRAY_OPTIONS = ("alibi_slopes", "sinks")
NOT_SENT = ("return_lse", "return_weights", "fully_masked", "causal_alignment")


def _golden_dir() -> Path:
    from conformance.fixtures.store import default_root

    return default_root() / "golden"


def _unsupported(ctx: RunContext, entry: dict, arrays: dict) -> str | None:
    features = ctx.adapter.ops["sdpa"].features
    kwargs = entry.get("kwargs", {})
    if "dropout_mask" in arrays or kwargs.get("dropout_p"):
        return "explicit dropout keep-mask: no adapter parameter takes one"
    if arrays["key"].shape[-2] == 0:
        return ("empty key sequence (Lk = 0): what a kernel returns there is not part of "
                "the contract (the reference, like torch, returns zeros)")
    if "compute_dtype" in kwargs:
        return "case pins the reference's own low-precision emulation (compute_dtype)"
    needed = {f for k, f in OPTION_FEATURES.items() if k in kwargs or k in arrays}
    if "attn_mask" in arrays:
        needed.add("bool_mask" if arrays["attn_mask"].dtype == bool else "float_mask")
    if kwargs.get("is_causal") and "attn_mask" in arrays:
        needed.add("mask_with_causal")
    missing = sorted(needed - features)
    if missing:
        return f"adapter does not support {missing}"
    alignment = kwargs.get("causal_alignment", "top_left")
    if _sends_alignment(ctx, entry, arrays) and "bottom_right" not in features:
        return (f"case is about causal_alignment={alignment!r}; the adapter follows "
                f"{ctx.adapter.conventions['causal_alignment']!r} and takes no causal_alignment")
    return None


def _sends_alignment(ctx: RunContext, entry: dict, arrays: dict) -> bool:
    """The case's alignment matters (causal, window or ALiBi positions) and differs from the
    adapter's own: it must be passed as ``causal_alignment``."""
    kwargs = entry.get("kwargs", {})
    positional = kwargs.get("is_causal") or "window" in kwargs or "alibi_slopes" in arrays
    alignment = kwargs.get("causal_alignment", "top_left")
    return bool(positional) and alignment != ctx.adapter.conventions["causal_alignment"]


def _reference(entry: dict, arrays: dict, policy: str, **extra) -> Any:
    """The float64 reference on the case's inputs under ``policy`` for its empty rows."""
    kwargs = {k: v for k, v in entry["kwargs"].items()
              if k not in ("return_lse", "return_weights", "fully_masked")}
    if "window" in kwargs:
        kwargs["window"] = tuple(kwargs["window"])
    given = {n: arrays[n].astype(np.float64) if arrays[n].dtype != bool else arrays[n]
             for n in ("attn_mask", *ARRAY_OPTIONS) if n in arrays}
    q, k, v = (arrays[n].astype(np.float64) for n in ("query", "key", "value"))
    return reference_sdpa(q, k, v, fully_masked=policy, **kwargs, **given, **extra)


def _empty_rows(entry: dict, arrays: dict) -> EmptyRows | None:
    """The case's rows with no visible key (reference lse = −inf) and what hid them."""
    kwargs = entry["kwargs"]
    _, lse = _reference(entry, arrays, "zeros", return_lse=True)
    window = kwargs.get("window")
    return find_empty_rows(
        lambda policy: _reference(entry, arrays, policy), lse, arrays["key"].shape[-2],
        arrays.get("attn_mask"), is_causal=bool(kwargs.get("is_causal")),
        window=None if window is None else tuple(window),
        alignment=kwargs.get("causal_alignment", "top_left"))


def _policy_clash(ctx: RunContext, entry: dict, rows: EmptyRows | None) -> str | None:
    """Why the case cannot judge this adapter's empty rows: it pins another policy for them."""
    if rows is None:
        return None
    pinned = entry["kwargs"].get("fully_masked", "zeros")
    declared = ctx.adapter.conventions["fully_masked"]
    for kind in sorted(set(rows.kinds.ravel()) - {""}):
        held = policy_for(declared, kind)
        if held not in (pinned, "any"):
            return (f"case is about fully_masked={pinned!r} for rows hidden by {kind}; "
                    f"the adapter is held to {held!r} there")
    return None


def _ignored_rows(ctx: RunContext, rows: EmptyRows | None) -> np.ndarray | None:
    """The empty rows the adapter declares ``any`` for: not compared."""
    if rows is None:
        return None
    declared = ctx.adapter.conventions["fully_masked"]
    held_to_any = np.vectorize(lambda kind: bool(kind) and policy_for(declared, kind) == "any",
                               otypes=[bool])(rows.kinds)
    return held_to_any[..., None] if held_to_any.any() else None


def _call_arguments(ctx: RunContext, entry: dict, arrays: dict) -> tuple[list, dict]:
    kwargs = {k: v for k, v in entry.get("kwargs", {}).items() if k not in NOT_SENT}
    if "window" in kwargs:
        kwargs["window"] = tuple(kwargs["window"])
    if _sends_alignment(ctx, entry, arrays):
        kwargs["causal_alignment"] = entry["kwargs"].get("causal_alignment", "top_left")
    for name in ("attn_mask", *ARRAY_OPTIONS):
        if name in arrays:
            kwargs[name] = arrays[name]
    if "dropout_p" in ctx.adapter.ops["sdpa"].params:
        kwargs["dropout_p"] = 0.0
    return [arrays[n] for n in ("query", "key", "value")], kwargs


def _judge_case(ctx: RunContext, op: str, case_id: str, entry: dict, arrays: dict,
                rows: EmptyRows | None) -> Result:
    args, kwargs = _call_arguments(ctx, entry, arrays)
    what = f"golden {case_id} (seed {entry.get('seed')})"
    outcome = guarded_call(ctx, op, "golden", case_id, what, args, kwargs)
    if isinstance(outcome, Result):
        return outcome
    expected = arrays["expected_output"]
    out = outcome.value
    problem = check_contract(out, expected.shape, expected.dtype) if isinstance(
        out, np.ndarray) else f"output is {type(out).__name__}, expected an array"
    if problem:
        return result(ctx, op, "golden", case_id, FAILED, headline(op, "golden", what) +
                      f"\n{problem}", seed=entry.get("seed"))
    dtype = dtype_name(expected.dtype)
    query, key, value = args
    ref_lowp = expected if dtype == "float64" else reference_sdpa(
        query, key, value, compute_dtype=expected.dtype, **{k: v for k, v in entry["kwargs"].items()
                                                if k not in ("return_lse", "return_weights")},
        **{n: arrays[n] for n in ("attn_mask", *ARRAY_OPTIONS) if n in arrays})
    bound = bound_for(op, dtype, expected, ref_lowp, ctx.tolerance)
    verdict = compare(out, expected, bound, _ignored_rows(ctx, rows))
    if not verdict.ok:
        why = explain(out, expected, bound, rows, ctx.adapter.conventions["fully_masked"],
                      explanation_origin(ctx.adapter.declared_conventions))
        return result(ctx, op, "golden", case_id, FAILED, headline(op, "golden", what) + "\n" +
                      "\n".join((*verdict.lines, why) if why else verdict.lines),
                      seed=entry.get("seed"),
                      max_abs_err=verdict.max_abs_err, bound=bound.value)
    return result(ctx, op, "golden", case_id, PASSED, seed=entry.get("seed"),
                  max_abs_err=verdict.max_abs_err, bound=bound.value)


def golden(ctx: RunContext, op: str) -> Iterator[Result]:
    """The adapter reproduces the pinned golden sdpa outputs (sha256-verified fixtures)."""
    from conformance.fixtures.store import FixtureError, load_arrays, read_manifest

    directory = _golden_dir()
    try:
        manifest = read_manifest(directory)
    except FixtureError as exc:
        yield result(ctx, op, "golden", "fixtures", FAILED, f"golden fixtures unusable: {exc}")
        return
    for name, entry in sorted(manifest["files"].items()):
        case_id = f"golden:{entry.get('case', name)}"
        if entry.get("variant") != "sdpa" or ctx.case_filter not in (None, case_id):
            continue
        try:
            arrays = load_arrays(directory / name, manifest=manifest)
        except FixtureError as exc:
            yield result(ctx, op, "golden", case_id, FAILED, f"golden fixture unusable: {exc}")
            continue
        why = _unsupported(ctx, entry, arrays)
        if why is None and dtype_name(arrays["query"].dtype) not in ctx.adapter.dtypes:
            why = f"dtype {arrays['query'].dtype} not in the adapter's dtypes"
        rows = None if why else _empty_rows(entry, arrays)
        why = why or _policy_clash(ctx, entry, rows)
        if why:
            yield result(ctx, op, "golden", case_id, SKIPPED, f"unsupported: {why}")
            continue
        yield _judge_case(ctx, op, case_id, entry, arrays, rows)
