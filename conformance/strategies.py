"""Hypothesis strategies for attention problems.

Read like ``hypothesis.extra.numpy``: essentials positional, options
keyword-only, a value or a strategy accepted, bounded defaults, arguments
checked eagerly. A problem is drawn as shapes + a seed; its arrays come from
``np.random.default_rng(seed)``, so shrinking gives small shapes quickly and a
failing example is reproduced from four numbers.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

from conformance.adapters.frameworks import DTYPE_BY_NAME
from conformance.cases import AttentionShapes
from conformance.vocabulary import MASK_KINDS

# the masks a drawn problem may carry: none, or a vocabulary mask kind that is an array
# (causal and window are flags, not arrays)
MASK_CHOICES = ("none", *(kind for kind in MASK_KINDS if kind in ("bool", "float")))


class AttentionProblem(NamedTuple):
    """Shapes, dtype, seed and mask kind; ``form`` is the mask's trailing dims as a mask-form
    axis value ("b" the batch dims, "h" Hq, "q" Lq, "k" Lk, "1" a broadcast dim), None for
    the full (*batch, Hq, Lq, Lk)."""

    shapes: AttentionShapes
    dtype: str
    seed: int
    mask: str
    form: tuple[str, ...] | None = None

    def describe(self) -> str:
        form = f" form=({', '.join(self.form)})" if self.form and self.mask != "none" else ""
        return f"[{self.shapes.label}-{self.dtype}] mask={self.mask}{form} seed={self.seed}"


def _as_strategy(value):
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def _check_int(name: str, value, low: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int ≥ {low}, got {value!r}: {fix}")


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


@functools.cache
def _value_dims(dim: int) -> st.SearchStrategy[int]:
    return st.sampled_from((dim, max(1, dim // 2) + 1))


@st.composite
def _shapes(draw, batches, heads, groups, lengths, dims, gqa, equal_lengths):
    # the strategies are built once, by attention_shapes, not at every draw: the same
    # draws (so the same examples) at a fraction of the cost
    batch = tuple(draw(batches))
    heads_kv = draw(heads)
    heads_q = heads_kv * (draw(groups) if gqa else 1)
    len_q = draw(lengths)
    len_k = len_q if equal_lengths else draw(lengths)
    dim = draw(dims)
    dim_v = draw(_value_dims(dim))
    return AttentionShapes(batch, heads_q, heads_kv, len_q, len_k, dim, dim_v)


def attention_shapes(
    *,
    max_batch_dims: int = 2,
    max_heads: int = 3,
    max_len: int = 9,
    max_dim: int = 16,
    min_len: int = 1,
    gqa: bool = False,
    equal_lengths: bool = False,
) -> st.SearchStrategy[AttentionShapes]:
    """Shapes of one attention call, every size drawn from 1 (or ``min_len``) to its bound.

    ``max_batch_dims`` leading batch dims of size 1–2 each; ``max_heads`` key/value heads,
    and as many query heads, or 2–3 times as many with ``gqa``; Lq and Lk in
    ``[min_len, max_len]`` (equal with ``equal_lengths``); E ≤ ``max_dim`` and Ev either E or
    max(1, E // 2) + 1 (so Ev ≠ E is drawn even for E = 1). The defaults keep every array
    tiny: at most 2·2·3·9·16 elements (with ``gqa``, queries 2·2·9·9·16).
    """
    _check_int("max_batch_dims", max_batch_dims, 0, "use 0 for no batch dims")
    _check_int("max_heads", max_heads, 1, "an attention call has at least one head")
    _check_int("min_len", min_len, 1, "sequences have at least one position")
    _check_int("max_len", max_len, min_len,
               f"max_len bounds min_len ({min_len}) from above; raise max_len or lower min_len")
    _check_int("max_dim", max_dim, 1, "the head dimension E is at least 1")
    _check_flag("gqa", gqa)
    _check_flag("equal_lengths", equal_lengths)
    return _shapes(st.lists(st.integers(1, 2), max_size=max_batch_dims),
                   st.integers(1, max_heads), st.integers(2, 3), st.integers(min_len, max_len),
                   st.integers(1, max_dim), gqa, equal_lengths)


def _work(batch: tuple[int, ...], heads_q: int, len_q: int, len_k: int, dims: tuple[int, int]
          ) -> int:
    """batch x Hq x Lq x Lk x (E + Ev): the multiply-adds of one call."""
    return math.prod(batch) * heads_q * len_q * len_k * sum(dims)


def _affordable(values: tuple, cost, budget: int) -> tuple:
    """The ``values`` whose ``cost`` fits ``budget``, in their order; the cheapest alone when
    none does (so a draw always has a value)."""
    fits = tuple(v for v in values if cost(v) <= budget)
    return fits or (min(values, key=cost),)


@st.composite
def _axis_shapes(draw, lengths, heads, dims, batches, equal_lengths, max_work):
    # drawn in this order, each from the values that fit the budget with the cheapest of the
    # rest: lengths first, so every length is drawn, and a long one leaves small heads/dims
    cheap_dims = min(map(sum, dims))
    cheap_batch = min(math.prod(b) for b in batches)
    len_q = draw(st.sampled_from(lengths))
    len_k = len_q if equal_lengths else draw(st.sampled_from(lengths))
    head = draw(st.sampled_from(_affordable(heads, lambda h: _work(
        (cheap_batch,), h[0], len_q, len_k, (cheap_dims, 0)), max_work)))
    dim = draw(st.sampled_from(_affordable(dims, lambda d: _work(
        (cheap_batch,), head[0], len_q, len_k, d), max_work)))
    batch = draw(st.sampled_from(_affordable(batches, lambda b: _work(
        b, head[0], len_q, len_k, dim), max_work)))
    return AttentionShapes(tuple(batch), head[0], head[1], len_q, len_k, dim[0], dim[1])


def _pool(name: str, values, fix: str) -> tuple:
    found = tuple(values)
    if not found:
        raise ValueError(f"{name} must hold at least one value, got {values!r}: {fix}")
    return found


def axis_shapes(
    *,
    lengths: tuple[int, ...],
    heads: tuple[tuple[int, int], ...],
    dims: tuple[tuple[int, int], ...],
    batches: tuple[tuple[int, ...], ...],
    equal_lengths: bool = False,
    max_work: int = 1 << 17,
) -> st.SearchStrategy[AttentionShapes]:
    """Shapes whose every size is one of the given values (a case-space axis's): Lq and Lk
    from ``lengths`` (equal with ``equal_lengths``), (Hq, Hk) from ``heads``, (E, Ev) from
    ``dims``, the batch dims from ``batches``. Drawn in that order, each from the values whose
    call fits ``max_work`` multiply-adds (batch x Hq x Lq x Lk x (E + Ev)) with the cheapest
    of the sizes still to draw, the cheapest value when none fits. ``sampled_from`` each:
    shrinking goes to each pool's first value."""
    pools = (_pool("lengths", lengths, "give the sequence lengths to draw"),
             _pool("heads", heads, "give (Hq, Hk) pairs to draw"),
             _pool("dims", dims, "give (E, Ev) pairs to draw"),
             _pool("batches", batches, "give batch-dim tuples to draw, () for none"))
    _check_flag("equal_lengths", equal_lengths)
    _check_int("max_work", max_work, 1, "a call does at least one multiply-add")
    return _axis_shapes(*pools, equal_lengths, max_work)


def attention_problems(
    shapes: AttentionShapes | st.SearchStrategy[AttentionShapes] | None = None,
    *,
    dtype: str | st.SearchStrategy[str] = "float64",
    mask: str | st.SearchStrategy[str] = "none",
    forms: tuple[tuple[str, ...], ...] = (),
) -> st.SearchStrategy[AttentionProblem]:
    """Problems (shapes, dtype, seed, mask kind); ``materialize`` makes the arrays. The mask's
    shape is drawn from ``forms`` (mask-form values, those naming "b" only when the shapes
    have a batch dim), the full (*batch, Hq, Lq, Lk) when none is given or fits."""
    if not (shapes is None or isinstance(shapes, (AttentionShapes, st.SearchStrategy))):
        raise ValueError(f"shapes must be an AttentionShapes, a strategy of them (e.g. "
                         f"attention_shapes(max_len=5)) or None, got {shapes!r}")
    if not isinstance(dtype, st.SearchStrategy) and dtype not in DTYPE_BY_NAME:
        raise ValueError(f"dtype must be one of {list(DTYPE_BY_NAME)} or a strategy of them, "
                         f"got {dtype!r}")
    if not isinstance(mask, st.SearchStrategy) and mask not in MASK_CHOICES:
        raise ValueError(f"mask must be one of {list(MASK_CHOICES)} or a strategy of them, "
                         f"got {mask!r}")
    unknown = [f for f in forms if not set(f) <= set(FORM_DIMS)]
    if unknown:
        raise ValueError(f"forms must be tuples of {list(FORM_DIMS)}, got {unknown!r}")
    shapes_st = attention_shapes() if shapes is None else _as_strategy(shapes)
    # form given (None): builds would infer a strategy for a defaulted NamedTuple field
    problems = st.builds(AttentionProblem, shapes_st, _as_strategy(dtype),
                         st.integers(0, 2**31 - 1), _as_strategy(mask), st.none())
    return problems.flatmap(functools.partial(_with_form, tuple(forms))) if forms else problems


# the dims a mask form names: the batch dims, Hq, Lq, Lk, or a broadcast 1
FORM_DIMS = ("b", "h", "q", "k", "1")


def _with_form(forms: tuple[tuple[str, ...], ...], problem: AttentionProblem
               ) -> st.SearchStrategy[AttentionProblem]:
    fits = [f for f in forms if problem.shapes.batch or "b" not in f]
    if problem.mask == "none" or not fits:
        return st.just(problem)
    return st.sampled_from(fits).map(lambda form: problem._replace(form=form))


def mask_shape(problem: AttentionProblem) -> tuple[int, ...]:
    """The mask's shape: its form's dims as sizes, (*batch, Hq, Lq, Lk) without a form."""
    sh = problem.shapes
    sizes = {"b": sh.batch, "h": (sh.heads_q,), "q": (sh.len_q,), "k": (sh.len_k,), "1": (1,)}
    form = problem.form or ("b", "h", "q", "k")
    return tuple(n for dim in form for n in sizes[dim])


def materialize(problem: AttentionProblem) -> dict[str, np.ndarray]:
    """query, key, value and (per ``problem.mask``) an attn_mask of ``mask_shape`` (70 % of
    keys visible, one at least per row, so no row is empty once broadcast)."""
    sh, rng = problem.shapes, np.random.default_rng(problem.seed)
    dtype = DTYPE_BY_NAME[problem.dtype]
    arrays: dict[str, np.ndarray] = {
        "query": rng.standard_normal((*sh.batch, sh.heads_q, sh.len_q, sh.dim)),
        "key": rng.standard_normal((*sh.batch, sh.heads_kv, sh.len_k, sh.dim)),
        "value": rng.standard_normal((*sh.batch, sh.heads_kv, sh.len_k, sh.dim_v)),
    }
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    if problem.mask != "none":
        visible = rng.random(mask_shape(problem)) < 0.7
        keep = rng.integers(0, sh.len_k, size=visible.shape[:-1])
        np.put_along_axis(visible, keep[..., None], True, axis=-1)
        arrays["attn_mask"] = visible if problem.mask == "bool" else (
            np.where(visible, 0.0, -np.inf).astype(dtype))
    return arrays


# --- ops over many sequences (sdpa_varlen, paged_attention) ------------------------------

# causal choices of a ragged problem: no causal mask, or causal in one alignment
CAUSAL_CHOICES = ("none", "top_left", "bottom_right")
# page sizes drawn: one slot per page, a power of 2, and two that are not
PAGE_SIZES = (1, 16, 5, 7)


class RaggedProblem(NamedTuple):
    """Sequences for an op over many sequences, numbers only: ``materialize_sequences`` makes
    each sequence's (L, H, D) query, key and value from ``seed``.

    sdpa_varlen: query lengths ``lens_q``, key lengths ``lens_k``, ``page`` 0. paged_attention:
    every sequence has ``lens_q[0]`` queries (its newest positions) and ``lens_k[b]`` keys in
    pages of ``page`` slots; sequences b > 0 begin with the ``shared_pages`` first pages of
    sequence 0 (the same keys and values: prefix caching). ``causal`` is "none" or the
    alignment of ``is_causal``; heads_q > heads_kv means GQA.
    """

    lens_q: tuple[int, ...]
    lens_k: tuple[int, ...]
    heads_q: int
    heads_kv: int
    dim: int
    dim_v: int
    causal: str
    page: int
    shared_pages: int
    dtype: str
    seed: int

    def describe(self) -> str:
        heads = f"h{self.heads_q}" + (f"/{self.heads_kv}" if self.heads_kv != self.heads_q
                                      else "")
        layout = (f" page={self.page} shared_pages={self.shared_pages}" if self.page else "")
        return (f"[lens_q={list(self.lens_q)} lens_k={list(self.lens_k)} {heads} e{self.dim}"
                f"v{self.dim_v}-{self.dtype}] causal={self.causal}{layout} seed={self.seed}")


def _one_long(long: int, short: list[int], at: int) -> list[int]:
    return [*short[:at], long, *short[at:]]


def sequence_lengths(max_len: int, *, max_seqs: int = 5,
                     page: int | None = None) -> st.SearchStrategy[list[int]]:
    """Length mixes of 1 to ``max_seqs`` sequences: any lengths in [0, ``max_len``] (zeros
    included), one long sequence (up to 2·``max_len``) among short ones (0–2), and, with a
    ``page`` size, lengths at page boundaries k·page − 1, k·page, k·page + 1 (k ≤ 3)."""
    _check_int("max_len", max_len, 1, "a mix has room for at least one position")
    _check_int("max_seqs", max_seqs, 1, "a mix has at least one sequence")
    mixes = [st.lists(st.integers(0, max_len), min_size=1, max_size=max_seqs)]
    if max_seqs > 1:
        mixes.append(st.builds(_one_long, st.integers(max_len, 2 * max_len),
                               st.lists(st.integers(0, 2), min_size=1, max_size=max_seqs - 1),
                               st.integers(0, max_seqs - 1)))
    if page is not None:
        _check_int("page", page, 1, "a page holds at least one slot")
        boundary = st.builds(lambda k, d: max(0, k * page + d), st.integers(0, 3),
                             st.sampled_from((0, -1, 1)))
        mixes.append(st.lists(boundary, min_size=1, max_size=max_seqs))
    return st.one_of(mixes)


def _heads(draw, gqa: bool) -> tuple[int, int]:
    heads_kv = draw(st.integers(1, 2))
    return heads_kv * (draw(st.sampled_from((1, 2, 3))) if gqa else 1), heads_kv


@st.composite
def _varlen(draw, lengths, max_len, dtype, causals, gqa):
    lens_q = draw(lengths)
    lens_k = lens_q if draw(st.booleans()) else draw(
        st.lists(st.integers(0, max_len), min_size=len(lens_q), max_size=len(lens_q)))
    heads_q, heads_kv = _heads(draw, gqa)
    dim = draw(st.integers(1, 8))
    return RaggedProblem(tuple(lens_q), tuple(lens_k), heads_q, heads_kv, dim,
                         draw(_value_dims(dim)), draw(st.sampled_from(causals)), 0, 0, dtype,
                         draw(st.integers(0, 2**31 - 1)))


@st.composite
def _paged(draw, max_seqs, dtype, causals, gqa):
    page = draw(st.sampled_from(PAGE_SIZES))
    lens = draw(sequence_lengths(max(2, 2 * page), max_seqs=max_seqs, page=page))
    lq = draw(st.integers(1, 3))
    # shared prefix pages must be full pages of every sequence
    fits = min(n // page for n in lens) if len(lens) > 1 else 0
    shared = draw(st.integers(0, min(fits, 2)))
    heads_q, heads_kv = _heads(draw, gqa)
    dim = draw(st.integers(1, 8))
    return RaggedProblem((lq,) * len(lens), tuple(lens), heads_q, heads_kv, dim,
                         draw(_value_dims(dim)), draw(st.sampled_from(causals)), page, shared,
                         dtype, draw(st.integers(0, 2**31 - 1)))


def _check_ragged(dtype: str, causals: tuple[str, ...]) -> None:
    if dtype not in DTYPE_BY_NAME:
        raise ValueError(f"dtype must be one of {list(DTYPE_BY_NAME)}, got {dtype!r}")
    unknown = [c for c in causals if c not in CAUSAL_CHOICES]
    if not causals or unknown:
        raise ValueError(f"causals must be a non-empty tuple of {list(CAUSAL_CHOICES)}, "
                         f"got {causals!r}")


@functools.cache
def varlen_problems(dtype: str = "float64", *, causals: tuple[str, ...] = ("none",),
                    gqa: bool = False, max_len: int = 12,
                    max_seqs: int = 5) -> st.SearchStrategy[RaggedProblem]:
    """Packs for ``sdpa_varlen``: ``sequence_lengths(max_len)`` queries, keys either as many
    or drawn apart (a sequence may have queries and no key, or keys and no query), causal
    drawn from ``causals``, GQA ratios 2–3 with ``gqa``; E ≤ 8. Built once per arguments."""
    _check_ragged(dtype, causals)
    _check_flag("gqa", gqa)
    return _varlen(sequence_lengths(max_len, max_seqs=max_seqs), max_len, dtype, causals, gqa)


@functools.cache
def paged_problems(dtype: str = "float64", *, causals: tuple[str, ...] = ("none",),
                   gqa: bool = False, max_seqs: int = 4) -> st.SearchStrategy[RaggedProblem]:
    """Paged caches for ``paged_attention``: a page size from ``PAGE_SIZES``, sequence lengths
    ``sequence_lengths(max(2, 2·page), page=page)`` (so at most 4·page), 1–3 queries per
    sequence, up to two shared prefix pages, causal from ``causals``, GQA ratios 2–3 with
    ``gqa``; E ≤ 8. Built once per arguments."""
    _check_ragged(dtype, causals)
    _check_flag("gqa", gqa)
    return _paged(max_seqs, dtype, causals, gqa)


def materialize_sequences(problem: RaggedProblem) -> list[tuple[np.ndarray, ...]]:
    """Each sequence's (query (Lq, Hq, E), key (Lk, Hk, E), value (Lk, Hk, Ev)) in the problem's
    dtype; with shared pages, sequence b > 0 starts with sequence 0's first keys/values."""
    p, rng = problem, np.random.default_rng(problem.seed)
    dtype = DTYPE_BY_NAME[p.dtype]
    found = []
    for lq, lk in zip(p.lens_q, p.lens_k, strict=True):
        found.append(tuple(rng.standard_normal(shape).astype(dtype) for shape in (
            (lq, p.heads_q, p.dim), (lk, p.heads_kv, p.dim), (lk, p.heads_kv, p.dim_v))))
    prefix = p.shared_pages * p.page
    for b in range(1, len(found)) if prefix else ():
        _, k, v = found[b]
        k[:prefix], v[:prefix] = found[0][1][:prefix], found[0][2][:prefix]
    return found


def shared_prefix_table(counts: list[int], shared: int, ids, width: int,
                        pad: int) -> np.ndarray:
    """(B, width) int32 block table: sequence b's ``counts[b]`` pages, the first ``shared`` of
    sequence b > 0 being sequence 0's (prefix caching), the others taken from ``ids`` in turn
    (sequence 0's first); ``pad`` after each sequence's last page."""
    table = np.full((len(counts), width), pad, dtype=np.int32)
    nxt = 0
    for b, c in enumerate(counts):
        start = shared if b else 0
        table[b, :start] = table[0, :start]
        table[b, start:c] = ids[nxt:nxt + c - start]
        nxt += c - start
    return table
