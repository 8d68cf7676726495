"""The property bodies: each states the law it checks in its docstring."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import ml_dtypes
import numpy as np
from hypothesis.strategies import SearchStrategy

from conformance.adapters.frameworks import DTYPE_BY_NAME, eps
from conformance.checks.base import RunContext
from conformance.checks.properties import (
    Property,
    PropertyFailure,
    aligned_positions,
    as_mask,
    assert_close,
    mask_kind,
    op_output,
    property_dtype,
    sdpa,
    sdpa_outcome,
)
from conformance.judging.tolerance import CONVEX_HULL_UNITS
from conformance.ops.paged import paged_layout
from conformance.ops.sdpa_axes import AXIS, WORK_CAP
from conformance.ops.varlen import offsets, pack
from conformance.strategies import (
    AttentionProblem,
    RaggedProblem,
    attention_problems,
    axis_shapes,
    materialize,
    materialize_sequences,
    paged_problems,
    varlen_problems,
)

HUGE = {"float64": 1e4, "float32": 1e4, "float16": 60.0, "bfloat16": 60.0}


def _rng(problem: AttentionProblem | RaggedProblem) -> np.random.Generator:
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
    with an explicit scale s, sdpa(q, k, v, scale=s) equals sdpa(q·s·√E, k, v).

    The values are duplicated too (output [o, o]), so a kernel that needs Ev = E (JAX's)
    is exercised whenever the drawn problem has Ev = E."""
    x = materialize(p)
    q, k, v = x["query"], x["key"], x["value"]
    wide = np.asarray(q, np.float64)
    doubled = sdpa(ctx, *(np.concatenate([a, a], -1) for a in (q, k, v)))
    scaled = sdpa(ctx, (wide * math.sqrt(2)).astype(q.dtype), k, v)
    assert_close("E → 2E by duplication is not q·√2: default scale is not 1/√E",
                 doubled, np.concatenate([scaled, scaled], -1), p.dtype)
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


# --- ops over many sequences: the adapter against itself --------------------------------

# the alignment an op's is_causal has when the adapter's function takes no causal_alignment
DEFAULT_ALIGNMENT = {"sdpa_varlen": "top_left", "paged_attention": "bottom_right"}


def causal_choices(ctx: RunContext, op: str) -> tuple[str, ...]:
    """What a problem's ``causal`` may be: "none", and the alignments the adapter's ``op``
    can be asked for (its default alone when it takes no ``causal_alignment``)."""
    params = ctx.adapter.ops[op].params
    if "is_causal" not in params:
        return ("none",)
    if "causal_alignment" not in params:
        return ("none", DEFAULT_ALIGNMENT[op])
    return ("none", "top_left", "bottom_right")


def ragged_options(ctx: RunContext, op: str, p: RaggedProblem) -> dict:
    """The keywords of the problem's call: enable_gqa, is_causal and causal_alignment."""
    options: dict = {}
    if p.heads_q != p.heads_kv:
        options["enable_gqa"] = True
    if p.causal != "none":
        options["is_causal"] = True
        if "causal_alignment" in ctx.adapter.ops[op].params:
            options["causal_alignment"] = p.causal
    return options


def compared_rows(ctx: RunContext, p: RaggedProblem, b: int) -> np.ndarray:
    """(Lq, 1, 1) bool: the rows of sequence b compared, those with a visible key; every row
    when the adapter declares fully_masked "zeros" (its rows without a key are then 0)."""
    lq, lk = p.lens_q[b], p.lens_k[b]
    shift = lk - lq if p.causal == "bottom_right" else 0
    seen = (np.arange(lq) + shift >= 0) if p.causal != "none" else np.ones(lq, bool)
    seen &= lk > 0
    strict = ctx.adapter.conventions.get("fully_masked") == "zeros"
    return (seen | strict)[:, None, None]


def _varlen_draw(ctx: RunContext) -> SearchStrategy:
    params = ctx.adapter.ops["sdpa_varlen"].params
    return varlen_problems(property_dtype(ctx), causals=causal_choices(ctx, "sdpa_varlen"),
                           gqa="enable_gqa" in params)


def _paged_draw(ctx: RunContext) -> SearchStrategy:
    params = ctx.adapter.ops["paged_attention"].params
    return paged_problems(property_dtype(ctx), causals=causal_choices(ctx, "paged_attention"),
                          gqa="enable_gqa" in params)


def _varlen(ctx: RunContext, p: RaggedProblem, sequences) -> np.ndarray:
    inputs = pack(sequences)
    expected = (len(inputs["query"]), p.heads_q, p.dim_v)
    args = [inputs[n] for n in ("query", "key", "value", "cu_seqlens_q", "cu_seqlens_k")]
    return op_output(ctx, "sdpa_varlen", args, ragged_options(ctx, "sdpa_varlen", p), expected)


def packing(ctx: RunContext, p: RaggedProblem) -> None:
    """A sdpa_varlen pack equals each of its sequences called alone.

    The last sequence with queries and keys and one other drawn at random, each called as a
    pack of one, give their rows of the packed call: no sequence depends on its neighbours
    or on its place in the pack."""
    # a sequence without query or key: its rows are the numeric cases'; two calls alone per
    # example (the last sequence, where offset bugs show, and another) keep slow kernels fast
    able = [b for b, (lq, lk) in enumerate(zip(p.lens_q, p.lens_k, strict=True)) if lq and lk]
    if not able:
        return  # no sequence with a query and a key: nothing to compare
    alone = [able[-1], *_rng(p).choice(able[:-1], size=min(1, len(able) - 1)).tolist()]
    sequences = materialize_sequences(p)
    packed = _varlen(ctx, p, sequences)
    rows = offsets(p.lens_q)
    for b in alone:
        by_itself = _varlen(ctx, p, [sequences[b]])
        assert_close(f"sequence {b} of {len(sequences)} (lq={p.lens_q[b]}, lk={p.lens_k[b]}) "
                     f"alone differs from its rows of the pack", by_itself,
                     packed[rows[b]:rows[b + 1]], p.dtype, compared_rows(ctx, p, b))


def _paged(ctx: RunContext, p: RaggedProblem, query: np.ndarray, layout: dict) -> np.ndarray:
    args = [query, layout["key_pages"], layout["value_pages"], layout["block_table"],
            np.asarray(p.lens_k, dtype=np.int32)]
    return op_output(ctx, "paged_attention", args,
                     ragged_options(ctx, "paged_attention", p), (*query.shape[:3], p.dim_v))


def _paged_inputs(p: RaggedProblem):
    sequences = materialize_sequences(p)
    query = np.stack([q for q, _, _ in sequences])
    return query, [k for _, k, _ in sequences], [v for _, _, v in sequences]


def _assert_paged_close(ctx: RunContext, p: RaggedProblem, what: str, actual, expected) -> None:
    rows = np.stack([compared_rows(ctx, p, b) for b in range(len(p.lens_k))])
    assert_close(what, actual, expected, p.dtype, rows)


def page_permutation(ctx: RunContext, p: RaggedProblem) -> None:
    """Where the pages lie in the pool, and how the block table numbers them, changes nothing.

    A shuffled pool with spare pages, the shared prefix pages stored once, the block table
    renumbered and padded with a real page's index gives the output of the identity table
    (each sequence's own pages in pool order, padded with −1)."""
    query, keys, values = _paged_inputs(p)
    plain = _paged(ctx, p, query, paged_layout(keys, values, p.page))
    rng = np.random.default_rng(p.seed + 1)
    moved_layout = paged_layout(keys, values, p.page, shared_pages=p.shared_pages, spare=2,
                                rng=rng, pad="spare")
    moved = _paged(ctx, p, query, moved_layout)
    order = moved_layout["block_table"].tolist()
    _assert_paged_close(ctx, p, f"the same pages shuffled (block table {order}) changed the "
                        f"output", moved, plain)


def garbage(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Entries each NaN, +inf, −inf or ± the dtype's largest finite value."""
    top = float(ml_dtypes.finfo(DTYPE_BY_NAME[dtype]).max)
    choices = np.array([np.nan, np.inf, -np.inf, top, -top])
    return choices[rng.integers(0, len(choices), size=shape)]


def unused_slots(ctx: RunContext, p: RaggedProblem) -> None:
    """Garbage in the page slots no sequence reads changes nothing and never leaks a NaN.

    NaN, ±inf or ±the dtype's largest value past each seq_len, in a spare page and in the
    page the table's padding names give the output of zeros there, and no NaN in a row with
    a visible key."""
    query, keys, values = _paged_inputs(p)
    layout = paged_layout(keys, values, p.page, spare=1, rng=np.random.default_rng(p.seed + 1),
                          pad="spare")
    clean = _paged(ctx, p, query, layout)
    rng, unread = np.random.default_rng(p.seed + 2), layout["unread"]
    spoiled = dict(layout)
    for name in ("key_pages", "value_pages"):
        pages = layout[name].copy()
        pages[unread] = garbage(p.dtype, pages[unread].shape, rng).astype(pages.dtype)
        spoiled[name] = pages
    dirty = _paged(ctx, p, query, spoiled)
    rows = np.stack([compared_rows(ctx, p, b) for b in range(len(p.lens_k))])
    seen = np.broadcast_to(rows, dirty.shape)
    if np.isnan(np.asarray(dirty, np.float64)[seen]).any():
        b = int(np.argwhere(np.isnan(np.asarray(dirty, np.float64)) & seen)[0][0])
        raise PropertyFailure(f"NaN in the output of sequence {b} (seq_len {p.lens_k[b]}) with "
                              f"garbage in {int(unread.sum())} unread slot(s)")
    _assert_paged_close(ctx, p, f"garbage in {int(unread.sum())} unread slot(s) changed the "
                        f"output", dirty, clean)


def _doc(body: Callable[..., None]) -> str:
    """The property's description: its body's docstring (every body has one)."""
    return body.__doc__ or ""


# --- the sdpa properties' problems: every size and mask form a value of a case-space axis ---

# lengths up to one past the 128 tile (axis values 1 … 129): every tile boundary up to there
# is drawn, while a property calls the adapter 2 to Lq + 1 times per example; 255–257 would
# cost 4x per call and repeat boundaries already drawn at 63–65 and 127–129
PROPERTY_MAX_LEN = 129
# the most multiply-adds one property call may do (a 16th of the numeric cases' WORK_CAP):
# a long length leaves few heads and small head dims, so an example stays in milliseconds
PROPERTY_WORK = WORK_CAP >> 4


def axis_values(name: str) -> tuple:
    """The values of the sdpa axis ``name``, in the axis's order (shrinking goes to the first)."""
    return tuple(v.value for v in AXIS[name].values)


@functools.cache
def axis_problems(options: tuple[tuple[str, bool | int], ...], dtype: str,
                  mask: str) -> SearchStrategy[AttentionProblem]:
    """A property's problems from the axes: lengths ``min_len`` ≤ L ≤ PROPERTY_MAX_LEN,
    (Hq, Hk) with Hq = Hk (GQA and MQA pairs alone with ``gqa``), every (E, Ev), every batch,
    every mask form; each call within PROPERTY_WORK. Built once per arguments."""
    o = dict(options)
    lengths = tuple(n for n in axis_values("len_q")
                    if int(o.get("min_len", 1)) <= n <= PROPERTY_MAX_LEN)
    heads = tuple(h for h in axis_values("heads") if (h[0] != h[1]) == bool(o.get("gqa")))
    forms = tuple(f for f in axis_values("mask") if f is not None)
    shapes = axis_shapes(lengths=lengths, heads=heads, dims=axis_values("dims"),
                         batches=axis_values("batch"),
                         equal_lengths=bool(o.get("equal_lengths")), max_work=PROPERTY_WORK)
    return attention_problems(shapes, dtype=dtype, mask=mask, forms=forms)


def from_axes(wanted_mask: str, **options: bool | int) -> Callable[[RunContext], SearchStrategy]:
    """The draw of an sdpa property: ``axis_problems`` in the property's dtype and the mask
    kind ``wanted_mask`` resolves to for the adapter (``mask_kind``)."""

    def draw(ctx: RunContext) -> SearchStrategy:
        kind = mask_kind(ctx, wanted_mask) or "none"
        return axis_problems(tuple(sorted(options.items())), property_dtype(ctx), kind)

    return draw


def _sdpa(name: str, body: Callable[..., None], needs: tuple[str, ...], mask: str,
          **options: bool | int) -> Property:
    """An sdpa property drawing from the axes (``from_axes``); ``options`` are recorded as its
    shapes too."""
    return Property(name, body, needs, mask, options, _doc(body), draw=from_axes(mask, **options))


PROPERTIES = (
    _sdpa("masked_keys", masked_keys, (), "mask"),
    _sdpa("causality", causality, ("causal",), "none", min_len=2),
    _sdpa("shift_invariance", shift_invariance, ("float_mask",), "none"),
    _sdpa("permutation", permutation, (), "mask?"),
    _sdpa("convex_hull", convex_hull, (), "mask?"),
    _sdpa("independence", independence, (), "none"),
    _sdpa("padding", padding, (), "mask"),
    _sdpa("decoding", decoding, ("causal",), "none", equal_lengths=True),
    _sdpa("gqa_repeat", gqa_repeat, ("gqa",), "none", gqa=True),
    _sdpa("scale_law", scale_law, (), "none"),
    _sdpa("fully_masked", fully_masked, (), "mask"),
    _sdpa("determinism", determinism, (), "mask?"),
    _sdpa("no_mutation", no_mutation, (), "mask?"),
    # ops over many sequences: their problems come from conformance.strategies' ragged ones
    Property("packing", packing, (), "none", {}, _doc(packing), "sdpa_varlen", _varlen_draw),
    Property("page_permutation", page_permutation, (), "none", {}, _doc(page_permutation),
             "paged_attention", _paged_draw),
    Property("unused_slots", unused_slots, (), "none", {}, _doc(unused_slots),
             "paged_attention", _paged_draw),
)
