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

import numpy as np

from conformance.checks.base import RunContext, guarded_call, headline, result
from conformance.compare import check_contract, compare
from conformance.frameworks import dtype_name
from conformance.results import FAILED, PASSED, SKIPPED, Result
from conformance.tolerance import bound_for
from reference.sdpa import sdpa as reference_sdpa

OPTION_FEATURES = {"is_causal": "causal", "scale": "scale", "enable_gqa": "gqa",
                   "window": "window", "softcap": "softcap", "alibi_slopes": "alibi",
                   "sinks": "sinks"}
ARRAY_OPTIONS = ("alibi_slopes", "sinks")
NOT_SENT = ("return_lse", "return_weights", "fully_masked", "causal_alignment")


def _golden_dir() -> Path:
    from conformance.fixturestore import default_root

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
    alignment = kwargs.get("causal_alignment", "top_left")
    if (kwargs.get("is_causal") or "window" in kwargs or "alibi_slopes" in arrays) and (
            alignment != ctx.adapter.conventions["causal_alignment"]
            and "bottom_right" not in features):
        return f"case is about causal_alignment={alignment!r}"
    policy = kwargs.get("fully_masked")
    if policy is not None and policy != ctx.adapter.conventions["fully_masked"]:
        return f"case is about fully_masked={policy!r}"
    needed = {f for k, f in OPTION_FEATURES.items() if k in kwargs or k in arrays}
    if "attn_mask" in arrays:
        needed.add("bool_mask" if arrays["attn_mask"].dtype == bool else "float_mask")
    if kwargs.get("is_causal") and "attn_mask" in arrays:
        needed.add("mask_with_causal")
    missing = sorted(needed - features)
    return f"adapter does not support {missing}" if missing else None


def _call_arguments(ctx: RunContext, entry: dict, arrays: dict) -> tuple[list, dict]:
    kwargs = {k: v for k, v in entry.get("kwargs", {}).items() if k not in NOT_SENT}
    if "window" in kwargs:
        kwargs["window"] = tuple(kwargs["window"])
    if entry["kwargs"].get("causal_alignment", "top_left") != ctx.adapter.conventions[
            "causal_alignment"]:
        kwargs["causal_alignment"] = entry["kwargs"]["causal_alignment"]
    for name in ("attn_mask", *ARRAY_OPTIONS):
        if name in arrays:
            kwargs[name] = arrays[name]
    if "dropout_p" in ctx.adapter.ops["sdpa"].params:
        kwargs["dropout_p"] = 0.0
    return [arrays[n] for n in ("query", "key", "value")], kwargs


def _judge_case(ctx: RunContext, op: str, case_id: str, entry: dict, arrays: dict) -> Result:
    args, kwargs = _call_arguments(ctx, entry, arrays)
    what = f"golden {case_id} (seed {entry.get('seed')})"
    outcome, bad = guarded_call(ctx, op, "golden", case_id, what, args, kwargs)
    if bad:
        return bad
    expected = arrays["expected_output"]
    out = outcome.value
    problem = check_contract(out, expected.shape, expected.dtype) if isinstance(
        out, np.ndarray) else f"output is {type(out).__name__}, expected an array"
    if problem:
        return result(ctx, op, "golden", case_id, FAILED, headline(op, "golden", what) +
                      f"\n{problem}", seed=entry.get("seed"))
    dtype = dtype_name(expected.dtype)
    ref_lowp = expected if dtype == "float64" else reference_sdpa(
        *args, compute_dtype=expected.dtype, **{k: v for k, v in entry["kwargs"].items()
                                                if k not in ("return_lse", "return_weights")},
        **{n: arrays[n] for n in ("attn_mask", *ARRAY_OPTIONS) if n in arrays})
    bound = bound_for(op, dtype, expected, ref_lowp, ctx.tolerance)
    verdict = compare(out, expected, bound)
    if not verdict.ok:
        return result(ctx, op, "golden", case_id, FAILED, headline(op, "golden", what) + "\n" +
                      "\n".join(verdict.lines), seed=entry.get("seed"),
                      max_abs_err=verdict.max_abs_err, bound=bound.value)
    return result(ctx, op, "golden", case_id, PASSED, seed=entry.get("seed"),
                  max_abs_err=verdict.max_abs_err, bound=bound.value)


def golden(ctx: RunContext, op: str) -> Iterator[Result]:
    """The adapter reproduces the pinned golden sdpa outputs (sha256-verified fixtures)."""
    from conformance.fixturestore import FixtureError, load_arrays, read_manifest

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
        if why:
            yield result(ctx, op, "golden", case_id, SKIPPED, f"unsupported: {why}")
            continue
        yield _judge_case(ctx, op, case_id, entry, arrays)
