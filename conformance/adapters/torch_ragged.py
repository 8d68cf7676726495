"""The built-in ``torch`` adapter's ops over many sequences: ``sdpa_varlen``, ``paged_attention``.

Both run ``torch.nn.attention.flex_attention`` eagerly (under
``torch.compiler.set_stance("force_eager")``; compiling would cost ~25 s per shape
on CPU) with the sequence structure in a ``score_mod``:

    key j visible to query i  iff  pos_i(j) ≥ 0  (and the causal and window bands)
    score'(i, j) = softcap · tanh(score / softcap) − slope_h · |a_i − pos_i(j)|

where pos_i(j) is key column j's position in query i's sequence (−1 when the
key is not in that sequence), a_i the query's aligned position (i, or
i + Lk_b − Lq_b for ``bottom_right``), and the bands ``pos ≤ a_i`` (causal) and
``a_i − left ≤ pos ≤ a_i + right`` (window), as in docs/ops.md.

* ``sdpa_varlen`` — a document mask: pos_i(j) comes from per-token sequence
  ids and positions of the packed keys.
* ``paged_attention`` — a paged mask over the page pool: an inverse block
  table maps each pool slot to its logical position in sequence b
  (``inverse[b, page]`` = logical page index, −1 if b does not use the page;
  pages shared between sequences, prefix caching, stay one pool page). A page
  that one sequence's table names twice gets one pool copy per occurrence,
  so the inverse table stays a function. Slots no sequence of the call reads
  are zeroed in the compacted pool: a masked score has weight 0, but 0 · NaN is
  still NaN in P @ V, so the NaN/inf the cases leave there must not be read.

Eager flex_attention materialises each call's (Hq, rows, keys) scores, so
memory is bounded by splitting the work into calls (``plan_calls``): each
sequence's query rows are cut into pieces of at most ``ROWS_PER_PIECE`` rows that
fit ``ELEMENTS_PER_CALL`` (scores plus the GQA-expanded keys and values), each
piece reads only the key range its rows can see (causal and window trimmed), and
consecutive pieces share a call while rows × keys ≤ ``SHARED_AREA``; a paged call
compacts only its own pages. A 16k-token pack or a 256-sequence decode never
holds total_q × total_k or B × pool (benchmarks/bench_ragged.py prints the peaks).
Sequences share a call only when the keys and values they read are all finite;
otherwise each sequence gets its own call, so a NaN reaches exactly
the rows it reaches in the reference (within a sequence, a NaN behind a causal
mask still propagates, as in torch SDPA: ``masked_nonfinite="propagates"``).

Rows without a visible key (a sequence with no key, bottom-right rows before
the first key, an empty window) are 0 with lse −inf (``fully_masked="zeros"``).
The lse (``return_lse``) is flex_attention's, natural log, float32 (float64 for
float64 inputs), (Hq, total_q) for varlen and (B, Hq, Lq) for paged.
Window, softcap and ALiBi are supported; ``causal_alignment`` other than
``top_left``/``bottom_right`` is a ValueError, a ``page_layout`` other than
NHD/HND a NotImplementedError. The per-sequence SDPA form these replaced is
in the correct zoo (tests/correct/torch_ragged_sdpa.py).

Sources: PyTorch's flex_attention (``torch.nn.attention.flex_attention``; its
document mask over packed sequences, "FlexAttention" blog post, 2024) and its
paged attention (``torch.nn.attention.experimental._paged_attention``: a mask_mod
that maps physical to logical blocks through an inverse page table).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

# scores plus the GQA-expanded keys and values of one flex_attention call, in elements
# (16M: 64 MiB each in float32; eager flex holds a few score-sized temporaries)
ELEMENTS_PER_CALL = 1 << 24
# query rows of one piece: a long causal sequence cut in pieces reads a key range that
# grows with the piece, so about half the triangle above the diagonal is never scored
ROWS_PER_PIECE = 512
# pieces share a call while rows × keys stays under this: a call costs ~10 ms of eager
# set-up, and every (row, key) pair of a shared call is scored, even across sequences
SHARED_AREA = 1 << 18
ALIGNMENTS = ("top_left", "bottom_right")


class Piece(NamedTuple):
    """Query rows [row_lo, row_hi) of sequence ``seq`` and the key positions
    [key_lo, key_hi) of that sequence those rows can see."""

    seq: int
    row_lo: int
    row_hi: int
    key_lo: int
    key_hi: int


@dataclass(frozen=True)
class Options:
    """What a call needs besides the tensors (docs/ops.md's options)."""

    is_causal: bool
    alignment: str
    window: tuple[int | None, int | None] | None
    softcap: float | None
    alibi_slopes: Any  # torch tensor (Hq,) or None
    scale: float | None
    enable_gqa: bool


def visible_keys(row_lo: int, row_hi: int, lq: int, lk: int, options: Options
                 ) -> tuple[int, int]:
    """[lo, hi): the key positions rows [row_lo, row_hi) of a (lq, lk) sequence can see."""
    offset = lk - lq if options.alignment == "bottom_right" else 0
    lo, hi = 0, lk
    if options.is_causal:
        hi = min(hi, row_hi + offset)
    if options.window is not None:
        left, right = options.window
        if left is not None:
            lo = max(lo, row_lo + offset - left)
        if right is not None:
            hi = min(hi, row_hi + offset + right)
    return lo, max(lo, hi)


def call_cost(rows: int, keys: int, heads_q: int, dims: int) -> int:
    """Elements one call holds: scores (Hq · rows · keys) and keys+values (Hq · keys · dims)."""
    return heads_q * keys * (rows + dims)


def _span(piece: Piece, page: int) -> int:
    """Key columns a piece brings to a call: its key range, widened to whole pages."""
    return (-(-piece.key_hi // page) - piece.key_lo // page) * page


def plan_calls(lens_q: Sequence[int], lens_k: Sequence[int], options: Options, *,
               heads_q: int, dims: int, page: int = 1, budget: int = ELEMENTS_PER_CALL,
               rows_per_piece: int = ROWS_PER_PIECE, shared_area: int = SHARED_AREA
               ) -> list[list[Piece]]:
    """The flex_attention calls: lists of pieces. A piece is at most ``rows_per_piece``
    rows of one sequence, within ``budget`` elements unless one row alone exceeds it;
    consecutive pieces share a call while its rows × keys stays within ``shared_area``
    (and ``budget``). A piece whose rows see no key is dropped (its rows stay 0, lse −inf);
    rows of a piece that see none come out so from flex_attention."""
    pieces = []
    for b, (lq, lk) in enumerate(zip(lens_q, lens_k, strict=True)):
        if lq == 0 or lk == 0:
            continue
        span = -(-lk // page) * page
        step = max(1, min(rows_per_piece, budget // (heads_q * span) - dims))
        for lo in range(0, lq, step):
            hi = min(lq, lo + step)
            key_lo, key_hi = visible_keys(lo, hi, lq, lk, options)
            if key_hi > key_lo:
                pieces.append(Piece(b, lo, hi, key_lo, key_hi))
    calls: list[list[Piece]] = []
    rows = keys = 0
    for p in pieces:
        r, k = p.row_hi - p.row_lo, _span(p, page)
        if (calls and (rows + r) * (keys + k) <= shared_area
                and call_cost(rows + r, keys + k, heads_q, dims) <= budget):
            calls[-1].append(p)
            rows, keys = rows + r, keys + k
        else:
            calls.append([p])
            rows, keys = r, k
    return calls


class CallInputs(NamedTuple):
    """One call's tensors: rows (C, Hq, E), keys (S, Hk, E), values (S, Hk, Ev); per row its
    piece and aligned position (C,); key_pos (pieces, S): column j's position in piece p's
    sequence, −1 if j is not one of its visible keys."""

    rows: Any
    keys: Any
    values: Any
    row_piece: Any
    row_pos: Any
    key_pos: Any


def _rows_of(torch, pieces: list[Piece], lens_q, lens_k, alignment: str):
    """(row_piece, aligned row positions) of a call's rows, piece after piece."""
    parts = [torch.arange(p.row_lo, p.row_hi) + (lens_k[p.seq] - lens_q[p.seq]
                                                  if alignment == "bottom_right" else 0)
             for p in pieces]
    sizes = torch.tensor([p.row_hi - p.row_lo for p in pieces])
    return torch.repeat_interleave(torch.arange(len(pieces)), sizes), torch.cat(parts)


def flex_call(inputs: CallInputs, options: Options, *, want_lse: bool):
    """flex_attention over one call: out (C, Hq, Ev) and lse (Hq, C) (None unless asked)."""
    import torch
    from torch.nn.attention.flex_attention import AuxRequest, flex_attention

    q, k, v = (x.transpose(0, 1).unsqueeze(0) for x in (inputs.rows, inputs.keys,
                                                        inputs.values))
    row_piece, row_pos, key_pos = inputs.row_piece, inputs.row_pos, inputs.key_pos
    wide = torch.float64 if q.dtype == torch.float64 else torch.float32
    slopes = None if options.alibi_slopes is None else options.alibi_slopes.to(wide)
    causal, window, softcap = options.is_causal, options.window, options.softcap
    left, right = (None, None) if window is None else window

    def score_mod(score, b, h, i, j):
        pos, at = key_pos[row_piece[i], j], row_pos[i]
        visible = pos >= 0
        if causal:
            visible = visible & (pos <= at)
        if left is not None:
            visible = visible & (pos >= at - left)
        if right is not None:
            visible = visible & (pos <= at + right)
        if softcap is not None:
            score = softcap * torch.tanh(score / softcap)
        if slopes is not None:
            score = score - slopes[h] * (at - pos).abs()
        return torch.where(visible, score, -math.inf)

    # force_eager: flex_attention wraps its eager path in torch.compile, whose tracing and
    # recompiles (one per shape, dtype and option set) cost more than the calls themselves
    with warnings.catch_warnings(), torch.compiler.set_stance("force_eager"):
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
        out, aux = flex_attention(q, k, v, score_mod=score_mod, scale=options.scale,
                                  enable_gqa=options.enable_gqa,
                                  return_aux=AuxRequest(lse=True))
    lse = aux.lse if want_lse else None
    return out[0].transpose(0, 1), (None if lse is None else lse[0])


def _all_finite(torch, inputs: CallInputs) -> bool:
    """Whether every key and value of the call is finite (slots no piece reads are zero):
    a sum is finite only if its terms are; one that overflows says no, which only costs
    a split."""
    wide = torch.float64 if inputs.keys.dtype == torch.float64 else torch.float32
    return bool(torch.isfinite(inputs.keys.sum(dtype=wide) + inputs.values.sum(dtype=wide)))


def run_calls(torch, calls: list[list[Piece]], gather: Callable[[list[Piece]], CallInputs],
              place: Callable[[list[Piece], Any, Any], None], options: Options,
              want_lse: bool) -> None:
    """Each call through ``flex_call``; a call mixing sequences whose keys or values are not
    all finite is split into one call per sequence (0 · NaN would cross the boundary)."""
    pending = list(calls)
    while pending:
        pieces = pending.pop()
        inputs = gather(pieces)
        seqs = sorted({p.seq for p in pieces})
        if len(seqs) > 1 and not _all_finite(torch, inputs):
            pending.extend([p for p in pieces if p.seq == s] for s in seqs)
            continue
        out, lse = flex_call(inputs, options, want_lse=want_lse)
        place(pieces, out, lse)


def _lse_dtype(q):
    import torch

    return torch.float64 if q.dtype == torch.float64 else torch.float32


def _options(is_causal, causal_alignment, window, softcap, alibi_slopes, scale, enable_gqa
             ) -> Options:
    if causal_alignment not in ALIGNMENTS:
        raise ValueError(f"causal_alignment must be top_left or bottom_right, got "
                         f"{causal_alignment!r}")
    return Options(bool(is_causal), causal_alignment,
                   None if window is None else (window[0], window[1]),
                   None if softcap is None else float(softcap), alibi_slopes,
                   None if scale is None else float(scale), bool(enable_gqa))


def _limits() -> dict[str, int]:
    """The module's call limits, read at call time (the tests shrink them)."""
    return {"budget": ELEMENTS_PER_CALL, "rows_per_piece": ROWS_PER_PIECE,
            "shared_area": SHARED_AREA}


def _row_indices(torch, pieces: list[Piece], starts: list[int]):
    """Global row indices of a call's rows; sequence b's rows start at ``starts[b]``."""
    return torch.cat([torch.arange(p.row_lo, p.row_hi) + starts[p.seq] for p in pieces])


def _placer(torch, out, lse, starts: list[int]) -> Callable[[list[Piece], Any, Any], None]:
    """Writes a call's output rows (and lse columns) into ``out`` (rows, H, Ev) and ``lse``
    (H, rows) at the rows ``_row_indices`` gives; both ops keep this flat row layout."""

    def place(pieces: list[Piece], out_c, lse_c) -> None:
        rows = _row_indices(torch, pieces, starts)
        out[rows] = out_c
        if lse_c is not None:
            lse[:, rows] = lse_c

    return place


def sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, *, is_causal=False,
                causal_alignment="top_left", scale=None, window=None, softcap=None,
                alibi_slopes=None, enable_gqa=False, return_lse=False):
    """Packed (total, H, D) sequences under a document mask, in bounded calls (docs/ops.md)."""
    import torch

    options = _options(is_causal, causal_alignment, window, softcap, alibi_slopes, scale,
                       enable_gqa)
    cu_q, cu_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    lens_q = [b - a for a, b in itertools.pairwise(cu_q)]
    lens_k = [b - a for a, b in itertools.pairwise(cu_k)]
    out = query.new_zeros((query.shape[0], query.shape[1], value.shape[2]))
    lse = torch.full((query.shape[1], query.shape[0]), -math.inf, dtype=_lse_dtype(query))
    calls = plan_calls(lens_q, lens_k, options, heads_q=query.shape[1],
                       dims=key.shape[2] + value.shape[2], **_limits())

    def gather(pieces: list[Piece]) -> CallInputs:
        keys = torch.cat([torch.arange(p.key_lo, p.key_hi) + cu_k[p.seq] for p in pieces])
        key_pos = torch.full((len(pieces), keys.numel()), -1, dtype=torch.long)
        column = 0
        for n, p in enumerate(pieces):
            width = p.key_hi - p.key_lo
            key_pos[n, column:column + width] = torch.arange(p.key_lo, p.key_hi)
            column += width
        row_piece, row_pos = _rows_of(torch, pieces, lens_q, lens_k, options.alignment)
        return CallInputs(query[_row_indices(torch, pieces, cu_q)], key[keys], value[keys],
                          row_piece, row_pos, key_pos)

    run_calls(torch, calls, gather, _placer(torch, out, lse, cu_q), options, return_lse)
    return (out, lse) if return_lse else out


def page_occurrences(pages: Sequence[int]) -> list[tuple[int, int]]:
    """(page, k) for each entry of one sequence's table: the k-th time that page is named in
    it (0 the first). The pool keeps one copy per (page, k), so sequences sharing a page
    share a copy, and a sequence naming a page twice reads two."""
    seen: dict[int, int] = {}
    keyed = []
    for page in pages:
        keyed.append((page, seen.get(page, 0)))
        seen[page] = seen.get(page, 0) + 1
    return keyed


def inverse_table(pieces: list[Piece], tables: list[list[int]], page: int
                  ) -> tuple[list[int], list[list[int]]]:
    """(pool, inverse): the physical page of each compacted pool page, and for each piece
    ``inverse[p][u]`` = the logical page index of pool page u in that piece's sequence
    (−1 if absent), over the pages the piece's key range touches."""
    where: dict[tuple[int, int], int] = {}
    pool: list[int] = []
    logical_of: list[dict[int, int]] = []
    for p in pieces:
        keyed = page_occurrences(tables[p.seq])
        mine = {}
        for t in range(p.key_lo // page, -(-p.key_hi // page)):
            if keyed[t] not in where:
                where[keyed[t]] = len(pool)
                pool.append(keyed[t][0])
            mine[where[keyed[t]]] = t
        logical_of.append(mine)
    return pool, [[mine.get(u, -1) for u in range(len(pool))] for mine in logical_of]


def slot_positions(torch, inverse: list[list[int]], pieces: list[Piece], page: int):
    """(pieces, pool pages · page) long: each pool slot's position in the piece's sequence
    (logical page · page + slot), −1 outside the piece's visible key range."""
    logical = torch.tensor(inverse, dtype=torch.long).reshape(len(pieces), -1)
    pos = (logical[:, :, None] * page + torch.arange(page)).reshape(len(pieces), -1)
    lo = torch.tensor([p.key_lo for p in pieces])[:, None]
    hi = torch.tensor([p.key_hi for p in pieces])[:, None]
    inside = (logical.repeat_interleave(page, dim=1) >= 0) & (pos >= lo) & (pos < hi)
    return torch.where(inside, pos, -1)


def paged_attention(query, key_pages, value_pages, block_table, seq_lens, *, is_causal=False,
                    causal_alignment="bottom_right", scale=None, window=None, softcap=None,
                    alibi_slopes=None, enable_gqa=False, page_layout="NHD", return_lse=False):
    """query (B, Lq, Hq, E) over a paged mask on each call's compacted pool (docs/ops.md)."""
    import torch

    if page_layout == "HND":
        key_pages, value_pages = key_pages.transpose(1, 2), value_pages.transpose(1, 2)
    elif page_layout != "NHD":
        raise NotImplementedError(f"page_layout {page_layout!r}")
    options = _options(is_causal, causal_alignment, window, softcap, alibi_slopes, scale,
                       enable_gqa)
    page = key_pages.shape[1]
    batch, lq, hq, _ = query.shape
    lens_k = [int(n) for n in seq_lens.tolist()]
    tables = [row[:-(-n // page)] for row, n in zip(block_table.tolist(), lens_k, strict=True)]
    rows_in = query.reshape(batch * lq, hq, query.shape[3])
    out = query.new_zeros((batch * lq, hq, value_pages.shape[-1]))
    lse = torch.full((hq, batch * lq), -math.inf, dtype=_lse_dtype(query))
    calls = plan_calls([lq] * batch, lens_k, options, heads_q=hq,
                       dims=key_pages.shape[3] + value_pages.shape[3], page=page, **_limits())
    starts = [b * lq for b in range(batch)]

    def gather(pieces: list[Piece]) -> CallInputs:
        pool, inverse = inverse_table(pieces, tables, page)
        key_pos = slot_positions(torch, inverse, pieces, page)
        unread = (key_pos < 0).all(dim=0)[:, None, None]
        keys, values = (x[pool].reshape(-1, *x.shape[2:]).masked_fill_(unread, 0)
                        for x in (key_pages, value_pages))
        row_piece, row_pos = _rows_of(torch, pieces, [lq] * batch, lens_k, options.alignment)
        return CallInputs(rows_in[_row_indices(torch, pieces, starts)], keys, values,
                          row_piece, row_pos, key_pos)

    run_calls(torch, calls, gather, _placer(torch, out, lse, starts), options, return_lse)
    out = out.reshape(batch, lq, hq, -1)
    lse_b = lse.reshape(hq, batch, lq).transpose(0, 1).contiguous()
    return (out, lse_b) if return_lse else out


def ragged_ops() -> dict[str, Any]:
    """The two ops by name, for an adapter namespace."""
    return {"sdpa_varlen": sdpa_varlen, "paged_attention": paged_attention}
