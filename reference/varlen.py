"""Packed variable-length attention: each sequence of a packed batch attends within itself.

With cumulative offsets ``cu_seqlens_q`` = (0, q_1, …, q_B) and
``cu_seqlens_k`` = (0, k_1, …, k_B), sequence b owns query rows
``[cu_q[b], cu_q[b+1])`` and key/value rows ``[cu_k[b], cu_k[b+1])``, and

    out[cu_q[b]:cu_q[b+1]] = sdpa(Q_b, K_b, V_b, ...)       for every b

where Q_b, K_b, V_b are those slices moved to sdpa's (H, L, D) layout and
every option (``is_causal`` with its ``causal_alignment``, ``window``,
``softcap``, ``alibi_slopes``, ``enable_gqa``, ``fully_masked``, ``scale``)
means what it means in ``reference.sdpa``, *per sequence*: positions restart at 0
in every sequence, so causal and window bands, ALiBi distances and the
bottom-right offset Lk_b − Lq_b are those of sequence b alone. A query never
sees a key of another sequence. Sequences may be empty (Lq_b = 0: no rows;
Lk_b = 0 with Lq_b > 0: every row of b is an empty sum, 0 with lse −inf, whatever
``fully_masked`` says, as sdpa with Lk = 0; rows that causal or window empty in
a sequence with keys follow ``fully_masked``).

Shapes (flash-attention's varlen layout, "THD"): query (total_q, Hq, E), key
(total_k, Hk, E), value (total_k, Hk, Ev), cu_seqlens_q and cu_seqlens_k
integer (B + 1,), non-decreasing, starting at 0 and ending at total_q / total_k.
Returns out (total_q, Hq, Ev) in the query's dtype, and with ``return_lse``
also lse (Hq, total_q) — heads first, as flash-attn's ``softmax_lse`` of the
varlen functions — in natural log, −inf on rows with no visible key, in float32
(float64 for a float64 query).

Memory: one sdpa call per sequence, which takes the blocked path for long
sequences (``reference.sdpa.BLOCKED_ABOVE``), so no total_q × total_k matrix,
and no Lq_b × Lk_b one for long b, is ever built.

Sources: flash-attention ``flash_attn_varlen_func`` (Dao-AILab/flash-attention,
``cu_seqlens_q``/``cu_seqlens_k``, lse (nheads, total_q); causal aligned to the
bottom right since 2.1 — pass ``causal_alignment="bottom_right"`` for that);
xformers ``fmha.attn_bias.BlockDiagonalMask`` (block-diagonal attention over
concatenated sequences); PyTorch nested jagged tensors (``torch.nested``,
``layout=torch.jagged``, offsets = cu_seqlens); the document mask of
``torch.nn.attention.flex_attention``.
"""

from __future__ import annotations

import math

import numpy as np

from reference._common import check_float_array
from reference.scaled_dot_product import sdpa


def check_offsets(name: str, offsets, total: int) -> np.ndarray:
    """``offsets`` as an int64 (B + 1,) array: 0 first, non-decreasing, ``total`` last."""
    cu = np.asarray(offsets)
    if cu.ndim != 1 or cu.size < 1 or cu.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D integer array (B + 1,) of offsets, "
                         f"got dtype {cu.dtype} shape {cu.shape}")
    cu = cu.astype(np.int64)
    if cu[0] != 0 or cu[-1] != total or np.any(np.diff(cu) < 0):
        raise ValueError(f"{name} must start at 0, never decrease and end at {total} "
                         f"(the packed length); got {cu.tolist()[:8]}"
                         f"{'…' if cu.size > 8 else ''} (lengths? use np.cumsum with a 0 first)")
    return cu


def lse_dtype(query_dtype) -> np.dtype:
    """float64 for a float64 query, else float32 (flash-attn keeps lse in float32)."""
    return np.dtype(np.float64 if np.dtype(query_dtype) == np.float64 else np.float32)


def _heads_first(x: np.ndarray) -> np.ndarray:
    """(L, H, D) → (H, L, D), the layout reference.sdpa takes."""
    return np.swapaxes(x, 0, 1)


def sdpa_varlen(
    query: np.ndarray, key: np.ndarray, value: np.ndarray,
    cu_seqlens_q: np.ndarray, cu_seqlens_k: np.ndarray, *,
    is_causal: bool = False, causal_alignment: str = "top_left", scale: float | None = None,
    window: tuple[int | None, int | None] | None = None, softcap: float | None = None,
    alibi_slopes: np.ndarray | None = None, enable_gqa: bool = False,
    fully_masked: str = "zeros", return_lse: bool = False, compute_dtype=None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """out[cu_q[b]:cu_q[b+1]] = sdpa(Q_b, K_b, V_b) per sequence b; ``(out, lse)`` with lse."""
    query, key, value = (check_float_array(n, x, 3) for n, x in
                         (("query", query), ("key", key), ("value", value)))
    if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
        raise ValueError(f"packed query/key/value must be 3-D (total, H, D): got shapes "
                         f"{query.shape}, {key.shape}, {value.shape}")
    cu_q = check_offsets("cu_seqlens_q", cu_seqlens_q, query.shape[0])
    cu_k = check_offsets("cu_seqlens_k", cu_seqlens_k, key.shape[0])
    if cu_q.size != cu_k.size:
        raise ValueError(f"cu_seqlens_q and cu_seqlens_k must describe the same number of "
                         f"sequences: {cu_q.size - 1} vs {cu_k.size - 1}")
    if key.shape[0] != value.shape[0]:
        raise ValueError(f"key and value must have the same packed length: "
                         f"{key.shape[0]} vs {value.shape[0]}")
    heads_q, dim = query.shape[1], query.shape[2]
    scale = 1.0 / math.sqrt(dim) if scale is None else float(scale)
    out = np.zeros((query.shape[0], heads_q, value.shape[2]), dtype=query.dtype)
    lse = np.full((heads_q, query.shape[0]), -np.inf, dtype=lse_dtype(query.dtype))
    for b in range(cu_q.size - 1):
        rows, keys = slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1])
        if rows.start == rows.stop:
            continue
        out_b, lse_b = sdpa(
            _heads_first(query[rows]), _heads_first(key[keys]), _heads_first(value[keys]),
            is_causal=is_causal, scale=scale, enable_gqa=enable_gqa,
            causal_alignment=causal_alignment, window=window, softcap=softcap,
            alibi_slopes=alibi_slopes, fully_masked=fully_masked, return_lse=True,
            compute_dtype=compute_dtype)
        out[rows] = _heads_first(out_b)
        lse[:, rows] = lse_b
    return (out, lse) if return_lse else out
