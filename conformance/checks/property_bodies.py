"""The property bodies: each states the law it checks in its docstring."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from conformance.adapters.frameworks import DTYPE_BY_NAME, eps
from conformance.checks.base import RunContext
from conformance.checks.properties import (
    Property,
    PropertyFailure,
    aligned_positions,
    as_mask,
    assert_close,
    sdpa,
    sdpa_outcome,
)
from conformance.judging.tolerance import CONVEX_HULL_UNITS
from conformance.strategies import AttentionProblem, materialize

HUGE = {"float64": 1e4, "float32": 1e4, "float16": 60.0, "bfloat16": 60.0}


def _rng(problem: AttentionProblem) -> np.random.Generator:
    return np.random.default_rng(problem.seed + 1)


def masked_keys(ctx: RunContext, p: AttentionProblem) -> None:
    """Keys hidden by the mask have no effect, even with huge finite key/value entries."""
    x, dtype = materialize(p), DTYPE_BY_NAME[p.dtype]
    hidden = _rng(p).random(p.shapes.len_k) < 0.5
    if hidden.all() or not hidden.any():
        return
    visible = np.broadcast_to(~hidden, (*x["query"].shape[:-1], p.shapes.len_k))
    mask = as_mask(visible, p.mask, dtype)
    before = sdpa(ctx, x["query"], x["key"], x["value"], attn_mask=mask)
    key, value = x["key"].copy(), x["value"].copy()
    signs = np.where(_rng(p).random(key[..., hidden, :].shape) < 0.5, -1.0, 1.0)
    key[..., hidden, :] = (signs * HUGE[p.dtype]).astype(dtype)
    value[..., hidden, :] = np.asarray(HUGE[p.dtype] * 10, dtype)
    after = sdpa(ctx, x["query"], key, value, attn_mask=mask)
    assert_close("output changed when only masked keys/values changed", after, before, p.dtype)


def causality(ctx: RunContext, p: AttentionProblem) -> None:
    """With is_causal, keys/values after position t do not change queries aligned before t."""
    x, lk = materialize(p), p.shapes.len_k
    cut = int(_rng(p).integers(1, lk)) if lk > 1 else 1
    before = sdpa(ctx, x["query"], x["key"], x["value"], is_causal=True)
    key, value = x["key"].copy(), x["value"].copy()
    key[..., cut:, :] = (key[..., cut:, :].astype(np.float64) * -3 + 1).astype(key.dtype)
    value[..., cut:, :] = (value[..., cut:, :].astype(np.float64) * 5 - 2).astype(value.dtype)
    after = sdpa(ctx, x["query"], key, value, is_causal=True)
    qpos = aligned_positions(ctx, p.shapes.len_q, lk)
    rows = ((qpos < cut) & (qpos >= 0))[:, None]
    assert_close(f"future keys (≥ {cut}) changed earlier rows", after, before, p.dtype, rows)


def shift_invariance(ctx: RunContext, p: AttentionProblem) -> None:
    """Adding a constant c_i to every score of row i (via a float mask) changes nothing."""
    x, dtype = materialize(p), DTYPE_BY_NAME[p.dtype]
    shape = (*x["query"].shape[:-1], p.shapes.len_k)
    shifts = _rng(p).uniform(-8.0, 8.0, size=(*shape[:-1], 1))
    zero = np.zeros(shape, dtype)
    shifted = np.broadcast_to(shifts, shape).astype(dtype)
    base = sdpa(ctx, x["query"], x["key"], x["value"], attn_mask=zero)
    moved = sdpa(ctx, x["query"], x["key"], x["value"], attn_mask=shifted)
    assert_close("a per-row constant added to the scores changed the output", moved, base, p.dtype)


def permutation(ctx: RunContext, p: AttentionProblem) -> None:
    """Permuting key/value pairs (and mask columns) together leaves the output unchanged."""
    x = materialize(p)
    perm = _rng(p).permutation(p.shapes.len_k)
    mask = x.get("attn_mask")
    base = sdpa(ctx, x["query"], x["key"], x["value"], attn_mask=mask)
    moved = sdpa(ctx, x["query"], x["key"][..., perm, :], x["value"][..., perm, :],
                 attn_mask=None if mask is None else mask[..., perm])
    assert_close(f"permuting keys by {perm.tolist()} changed the output", moved, base, p.dtype)


def convex_hull(ctx: RunContext, p: AttentionProblem) -> None:
    """Each output row lies in the box spanned by the values of its visible keys."""
    x = materialize(p)
    mask = x.get("attn_mask")
    out = np.asarray(sdpa(ctx, x["query"], x["key"], x["value"], attn_mask=mask), np.float64)
    visible = np.ones((*out.shape[:-1], p.shapes.len_k), bool) if mask is None else (
        mask if mask.dtype == bool else np.isfinite(mask))
    v = np.asarray(x["value"], np.float64)[..., None, :, :]
    lo = np.where(visible[..., None], v, np.inf).min(axis=-2)
    hi = np.where(visible[..., None], v, -np.inf).max(axis=-2)
    tol = CONVEX_HULL_UNITS * eps(p.dtype) * max(1.0, float(np.abs(v).max()))
    outside = (out < lo - tol) | (out > hi + tol) | ~np.isfinite(out)
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        raise PropertyFailure(
            f"output {float(out[idx])!r} at {idx} outside the visible values' range "
            f"[{float(lo[idx])!r}, {float(hi[idx])!r}] (tolerance {tol:.3g})")


def independence(ctx: RunContext, p: AttentionProblem) -> None:
    """Each batch entry and each head computed alone equals its slice of the full call."""
    x = materialize(p)
    full = sdpa(ctx, x["query"], x["key"], x["value"])
    if p.shapes.batch:
        for b in range(p.shapes.batch[0]):
            alone = sdpa(ctx, *(x[n][b:b + 1] for n in ("query", "key", "value")))
            assert_close(f"batch entry {b} computed alone differs", alone, full[b:b + 1], p.dtype)
    for h in range(p.shapes.heads_q):
        alone = sdpa(ctx, *(x[n][..., h:h + 1, :, :] for n in ("query", "key", "value")))
        assert_close(f"head {h} computed alone differs", alone, full[..., h:h + 1, :, :], p.dtype)


def padding(ctx: RunContext, p: AttentionProblem) -> None:
    """Appending padded keys hidden by the mask leaves the output unchanged."""
    x, dtype, rng = materialize(p), DTYPE_BY_NAME[p.dtype], _rng(p)
    pad = int(rng.integers(1, 4))
    extra = {n: rng.standard_normal((*x[n].shape[:-2], pad, x[n].shape[-1])).astype(dtype)
             for n in ("key", "value")}
    key = np.concatenate([x["key"], extra["key"]], axis=-2)
    value = np.concatenate([x["value"], extra["value"]], axis=-2)
    shape = x["query"].shape[:-1]
    visible = np.concatenate([np.ones((*shape, p.shapes.len_k), bool),
                              np.zeros((*shape, pad), bool)], axis=-1)
    padded = sdpa(ctx, x["query"], key, value, attn_mask=as_mask(visible, p.mask, dtype))
    plain = sdpa(ctx, x["query"], x["key"], x["value"])
    assert_close(f"{pad} padded key(s) changed the output", padded, plain, p.dtype)


def decoding(ctx: RunContext, p: AttentionProblem) -> None:
    """Row t of full causal attention equals attending query t over keys 0..t alone."""
    x = materialize(p)
    full = sdpa(ctx, x["query"], x["key"], x["value"], is_causal=True)
    for t in range(p.shapes.len_q):
        step = sdpa(ctx, x["query"][..., t:t + 1, :], x["key"][..., :t + 1, :],
                    x["value"][..., :t + 1, :])
        assert_close(f"decoding step {t} differs from causal row {t}", step,
                     full[..., t:t + 1, :], p.dtype)


def gqa_repeat(ctx: RunContext, p: AttentionProblem) -> None:
    """GQA equals explicitly repeated heads: query head h reads key/value head h // g."""
    x = materialize(p)
    group = p.shapes.heads_q // p.shapes.heads_kv
    grouped = sdpa(ctx, x["query"], x["key"], x["value"], enable_gqa=True)
    repeated = sdpa(ctx, x["query"], np.repeat(x["key"], group, axis=-3),
                    np.repeat(x["value"], group, axis=-3))
    assert_close("enable_gqa differs from repeat_interleave'd heads", grouped, repeated, p.dtype)


def scale_law(ctx: RunContext, p: AttentionProblem) -> None:
    """Default scale is 1/√E: duplicating features (E → 2E) equals scaling q by √2;
    with an explicit scale s, sdpa(q, k, v, scale=s) equals sdpa(q·s·√E, k, v)."""
    x = materialize(p)
    q, k, v = x["query"], x["key"], x["value"]
    wide = np.asarray(q, np.float64)
    doubled = sdpa(ctx, np.concatenate([q, q], -1), np.concatenate([k, k], -1), v)
    scaled = sdpa(ctx, (wide * math.sqrt(2)).astype(q.dtype), k, v)
    assert_close("E → 2E by duplication is not q·√2: default scale is not 1/√E",
                 doubled, scaled, p.dtype)
    if "scale" in ctx.adapter.ops["sdpa"].features:
        s = 0.5 + float(_rng(p).random())
        explicit = sdpa(ctx, q, k, v, scale=s)
        folded = sdpa(ctx, (wide * s * math.sqrt(p.shapes.dim)).astype(q.dtype), k, v)
        assert_close(f"scale={s:.4g} is not q·{s:.4g}·√E", explicit, folded, p.dtype)


def fully_masked(ctx: RunContext, p: AttentionProblem) -> None:
    """Rows with no visible key follow the declared policy; the other rows stay finite."""
    x, dtype = materialize(p), DTYPE_BY_NAME[p.dtype]
    declared = ctx.adapter.conventions["fully_masked"]
    policy = declared.get(p.mask, "zeros") if isinstance(declared, dict) else declared
    if policy == "any":
        return
    shape = (*x["query"].shape[:-1], p.shapes.len_k)
    visible = np.broadcast_to(x["attn_mask"] if p.mask == "bool" else
                              np.isfinite(x["attn_mask"]), shape).copy()
    empty = _rng(p).random(shape[:-1]) < 0.4
    visible[empty] = False
    out = np.asarray(sdpa(ctx, x["query"], x["key"], x["value"],
                          attn_mask=as_mask(visible, p.mask, dtype)), np.float64)
    v = np.asarray(x["value"], np.float64)
    rows = out[empty]
    if policy == "zeros" and not np.all(rows == 0):
        raise PropertyFailure(f"fully-masked rows are not zeros: {rows[:1].tolist()}")
    if policy == "nan" and not np.all(np.isnan(rows)):
        raise PropertyFailure(f"fully-masked rows are not NaN: {rows[:1].tolist()}")
    if policy == "uniform":
        heads_q, heads_kv = p.shapes.heads_q, p.shapes.heads_kv
        mean = np.repeat(v.mean(axis=-2, keepdims=True), heads_q // heads_kv, axis=-3)
        assert_close("fully-masked rows are not the mean of the values",
                     out, np.broadcast_to(mean, out.shape), p.dtype, empty[..., None])
    if not np.all(np.isfinite(out[~empty])):
        raise PropertyFailure("rows with visible keys are not finite")


def determinism(ctx: RunContext, p: AttentionProblem) -> None:
    """Two calls with the same inputs give bit-identical outputs."""
    x = materialize(p)
    first = sdpa(ctx, x["query"], x["key"], x["value"], attn_mask=x.get("attn_mask"))
    second = sdpa(ctx, x["query"], x["key"], x["value"], attn_mask=x.get("attn_mask"))
    if not np.array_equal(first, second, equal_nan=True):
        diff = np.abs(first.astype(np.float64) - second.astype(np.float64))
        raise PropertyFailure(f"two identical calls differ (max abs {np.nanmax(diff):.3g})")


def no_mutation(ctx: RunContext, p: AttentionProblem) -> None:
    """The adapter does not modify its inputs in place."""
    x = materialize(p)
    outcome = sdpa_outcome(ctx, x["query"], x["key"], x["value"], attn_mask=x.get("attn_mask"))
    if outcome.mutated:
        raise PropertyFailure(f"the adapter modified its input(s) in place: "
                              f"{', '.join(outcome.mutated)}")


def _doc(body: Callable[..., None]) -> str:
    """The property's description: its body's docstring (every body has one)."""
    return body.__doc__ or ""


SMALL = {"max_len": 7, "max_dim": 8}
PROPERTIES = (
    Property("masked_keys", masked_keys, (), "mask", SMALL, _doc(masked_keys)),
    Property("causality", causality, ("causal",), "none", {**SMALL, "min_len": 2},
             _doc(causality)),
    Property("shift_invariance", shift_invariance, ("float_mask",), "none", SMALL,
             _doc(shift_invariance)),
    Property("permutation", permutation, (), "mask?", SMALL, _doc(permutation)),
    Property("convex_hull", convex_hull, (), "mask?", SMALL, _doc(convex_hull)),
    Property("independence", independence, (), "none", {**SMALL, "max_heads": 3},
             _doc(independence)),
    Property("padding", padding, (), "mask", SMALL, _doc(padding)),
    Property("decoding", decoding, ("causal",), "none", {**SMALL, "equal_lengths": True},
             _doc(decoding)),
    Property("gqa_repeat", gqa_repeat, ("gqa",), "none", {**SMALL, "gqa": True},
             _doc(gqa_repeat)),
    Property("scale_law", scale_law, (), "none", SMALL, _doc(scale_law)),
    Property("fully_masked", fully_masked, (), "mask", SMALL, _doc(fully_masked)),
    Property("determinism", determinism, (), "mask?", SMALL, _doc(determinism)),
    Property("no_mutation", no_mutation, (), "mask?", SMALL, _doc(no_mutation)),
)
