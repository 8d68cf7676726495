"""Attention over a paged KV cache: each sequence's keys live in pages named by its block table.

A pool of ``num_pages`` pages holds ``page_size`` key/value slots each. Sequence
b has ``seq_lens[b]`` valid keys; its key at position t lives in page
``block_table[b, t // page_size]``, slot ``t % page_size``. With K_b, V_b the
seq_lens[b] keys/values gathered that way (in position order),

    out[b] = sdpa(Q_b, K_b, V_b, ...)                     for every b

with every option meaning what it means in ``reference.sdpa`` for sequence b
alone. The Lq queries of a sequence are its *newest* positions: with
``is_causal`` and the default ``causal_alignment="bottom_right"``, query i sits
at position seq_lens[b] − Lq + i (decode: Lq = 1 sees every key; chunked
prefill: Lq > 1 sees the cache and the chunk up to itself). ``seq_lens[b]`` may
be 0 (every row of b has no visible key and follows ``fully_masked``).

Only the first ceil(seq_lens[b] / page_size) entries of row b of ``block_table``
are read; the rest are padding and may hold anything (−1 by custom). Slots past
seq_lens[b] in the last page are never read, whatever they hold (NaN, inf, stale
keys). Pages may be in any order, and several sequences may share a page
(prefix caching): the table alone says which page is whose.

Shapes: query (B, Lq, Hq, E) (the same Lq for every sequence, as flash-attn's
``flash_attn_with_kvcache``); key_pages (num_pages, page_size, Hk, E) and
value_pages (num_pages, page_size, Hk, Ev) with ``page_layout="NHD"`` (default:
flash-attn's paged KV cache, FlashInfer's ``kv_layout="NHD"``, vLLM's flash-attn
backend), or (num_pages, Hk, page_size, E|Ev) with ``page_layout="HND"``
(FlashInfer's other layout); page_size is read from the arrays. block_table
integer (B, max_pages); seq_lens integer (B,). Returns out (B, Lq, Hq, Ev) in
the query's dtype, and with ``return_lse`` also lse (B, Hq, Lq) (natural log, as
flash-attn's ``softmax_lse``; float32, float64 for a float64 query).

Memory: one sdpa per sequence over its own seq_lens[b] keys (blocked for long
ones), never the whole pool.

Sources: vLLM PagedAttention (Kwon et al. 2023, "Efficient Memory Management
for Large Language Model Serving with PagedAttention"); flash-attention
``flash_attn_with_kvcache(q, k_cache, v_cache, cache_seqlens=, block_table=)``;
FlashInfer ``BatchDecodeWithPagedKVCacheWrapper`` / ``BatchPrefillWithPagedKVCacheWrapper``
(``kv_layout`` NHD/HND); PyTorch flex_attention's paged attention
(``torch.nn.attention.experimental._paged_attention``).
"""

from __future__ import annotations

import math

import numpy as np

from reference._common import check_float_array
from reference.scaled_dot_product import sdpa
from reference.varlen import lse_dtype

PAGE_LAYOUTS = ("NHD", "HND")


def _check_int(name: str, x, ndim: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != ndim or arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a {ndim}-D integer array, got dtype {arr.dtype} "
                         f"shape {arr.shape}")
    return arr.astype(np.int64)


def pages_needed(seq_len: int, page_size: int) -> int:
    """ceil(seq_len / page_size): the block-table entries a sequence of seq_len keys reads."""
    return -(-int(seq_len) // page_size)


def gather_sequence(pages: np.ndarray, table_row: np.ndarray, seq_len: int) -> np.ndarray:
    """(seq_len, H, D): the first seq_len slots of the pages ``table_row`` names (NHD pages)."""
    page_size = pages.shape[1]
    used = table_row[:pages_needed(seq_len, page_size)]
    return pages[used].reshape(-1, *pages.shape[2:])[:seq_len]


def _check_tables(block_table: np.ndarray, seq_lens: np.ndarray, batch: int, num_pages: int,
                  page_size: int) -> None:
    if block_table.shape[0] != batch or seq_lens.shape != (batch,):
        raise ValueError(f"block_table (B, max_pages) and seq_lens (B,) must match the query's "
                         f"batch B = {batch}: got {block_table.shape} and {seq_lens.shape}")
    for b, length in enumerate(seq_lens):
        need = pages_needed(length, page_size)
        if length < 0 or need > block_table.shape[1]:
            raise ValueError(f"seq_lens[{b}] = {length} needs {need} pages of {page_size}; "
                             f"block_table has {block_table.shape[1]} per sequence")
        used = block_table[b, :need]
        if np.any((used < 0) | (used >= num_pages)):
            raise ValueError(f"block_table[{b}, :{need}] = {used.tolist()[:8]} names a page "
                             f"outside [0, {num_pages}); only entries past the sequence's "
                             f"last page may be padding")


def paged_attention(
    query: np.ndarray, key_pages: np.ndarray, value_pages: np.ndarray,
    block_table: np.ndarray, seq_lens: np.ndarray, *,
    is_causal: bool = False, causal_alignment: str = "bottom_right",
    scale: float | None = None, window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None, alibi_slopes: np.ndarray | None = None,
    enable_gqa: bool = False, page_layout: str = "NHD", fully_masked: str = "zeros",
    return_lse: bool = False, compute_dtype=None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """out[b] = sdpa(Q_b, K_b, V_b) over sequence b's gathered keys; ``(out, lse)`` with lse."""
    query = check_float_array("query", query, 4)
    key_pages = check_float_array("key_pages", key_pages, 4)
    value_pages = check_float_array("value_pages", value_pages, 4)
    if page_layout not in PAGE_LAYOUTS:
        raise ValueError(f"page_layout must be one of {PAGE_LAYOUTS}, got {page_layout!r}")
    if query.ndim != 4 or key_pages.ndim != 4 or value_pages.ndim != 4:
        raise ValueError(f"query (B, Lq, Hq, E) and pages (num_pages, ·, ·, D) must be 4-D: "
                         f"got {query.shape}, {key_pages.shape}, {value_pages.shape}")
    if page_layout == "HND":  # (num_pages, Hk, page_size, D) → NHD
        key_pages, value_pages = (np.swapaxes(p, 1, 2) for p in (key_pages, value_pages))
    if key_pages.shape[:3] != value_pages.shape[:3]:
        raise ValueError(f"key_pages and value_pages must agree on (num_pages, page_size, Hk): "
                         f"{key_pages.shape} vs {value_pages.shape} (as {page_layout})")
    block_table = _check_int("block_table", block_table, 2)
    seq_lens = _check_int("seq_lens", seq_lens, 1)
    batch, _, heads_q, dim = query.shape
    num_pages, page_size = key_pages.shape[:2]
    _check_tables(block_table, seq_lens, batch, num_pages, page_size)
    scale = 1.0 / math.sqrt(dim) if scale is None else float(scale)
    out = np.zeros((*query.shape[:3], value_pages.shape[-1]), dtype=query.dtype)
    lse = np.full((batch, heads_q, query.shape[1]), -np.inf, dtype=lse_dtype(query.dtype))
    for b in range(batch):
        keys = gather_sequence(key_pages, block_table[b], seq_lens[b])
        values = gather_sequence(value_pages, block_table[b], seq_lens[b])
        out_b, lse[b] = sdpa(
            np.swapaxes(query[b], 0, 1), np.swapaxes(keys, 0, 1), np.swapaxes(values, 0, 1),
            is_causal=is_causal, scale=scale, enable_gqa=enable_gqa,
            causal_alignment=causal_alignment, window=window, softcap=softcap,
            alibi_slopes=alibi_slopes, fully_masked=fully_masked, return_lse=True,
            compute_dtype=compute_dtype)
        out[b] = np.swapaxes(out_b, 0, 1)
    return (out, lse) if return_lse else out
