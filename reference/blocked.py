"""Blocked scaled dot-product attention with an online softmax (flash-style).

For each block of queries, the keys are visited block by block, keeping per
query row a running max m, running denominator ℓ and unnormalised output A:

    S_b   = scale · Q K_bᵀ + bias_b              (hidden keys → −inf)
    m'    = max(m, rowmax S_b)
    ℓ     ← e^(m − m') ℓ + rowsum e^(S_b − m')
    A     ← e^(m − m') A + e^(S_b − m') V_b
    out   = A / ℓ                                after the last key block

so only (block_size × block_size) scores exist at any time, never a whole
(Lq, Lk) row block. The result equals ``reference.sdpa`` with the same
arguments (parameters, masks, alignment, GQA and ``fully_masked`` mean what
they mean there). Shapes: query (..., Hq, Lq, E), key (..., Hk, Lk, E),
value (..., Hk, Lk, Ev) → (..., Hq, Lq, Ev). Computed in float64.

Source: Milakov & Gimelshein 2018 ("Online normalizer calculation for
softmax"); Dao et al. 2022 (FlashAttention, Algorithm 1).
"""

from __future__ import annotations

import math

import numpy as np

from reference._common import (
    FULLY_MASKED_POLICIES,
    aligned_query_positions,
    check_attention_shapes,
    check_float_array,
    check_mask,
    mask_terms,
    repeat_kv_heads,
)


def _query_block(q, key, value, mask, qpos, scale, block, causal):
    """Online softmax of one query block over every key block → (A, ℓ, m)."""
    heads_q, lk = q.shape[-3], key.shape[-2]
    row_max = np.full(q.shape[:-1], -np.inf)
    denom = np.zeros(q.shape[:-1])
    acc = np.zeros((*q.shape[:-1], value.shape[-1]))
    for k0 in range(0, lk, block):
        k_b = repeat_kv_heads(key[..., k0:k0 + block, :], heads_q, "key")
        v_b = repeat_kv_heads(value[..., k0:k0 + block, :], heads_q, "value")
        visible, bias = mask_terms(None if mask is None else mask[..., k0:k0 + block], np.float64)
        if causal:
            visible = visible & (np.arange(k0, k0 + k_b.shape[-2]) <= qpos[:, None])
        scores = np.where(visible, scale * (q @ np.swapaxes(k_b, -1, -2)) + bias, -np.inf)
        new_max = np.maximum(row_max, scores.max(axis=-1))
        safe = np.where(np.isneginf(new_max), 0.0, new_max)
        rescale = np.exp(row_max - safe)
        probs = np.exp(scores - safe[..., None])
        denom = rescale * denom + probs.sum(axis=-1)
        acc = rescale[..., None] * acc + probs @ v_b
        row_max = new_max
    return acc, denom, row_max


def blocked_sdpa(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    attn_mask: np.ndarray | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    causal_alignment: str = "top_left",
    block_size: int = 128,
    fully_masked: str = "zeros",
) -> np.ndarray:
    """Same numbers as ``reference.sdpa``, in memory bounded by ``block_size``."""
    query, key, value = (check_float_array(n, x, 3) for n, x in
                         (("query", query), ("key", key), ("value", value)))
    check_attention_shapes(query, key, value, enable_gqa)
    if not (isinstance(block_size, int) and block_size >= 1):
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    if fully_masked not in FULLY_MASKED_POLICIES:
        raise ValueError(
            f"fully_masked must be one of {FULLY_MASKED_POLICIES}, got {fully_masked!r}"
        )
    (hq, lq, e), lk = query.shape[-3:], key.shape[-2]
    batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3])
    mask = check_mask(attn_mask, (*batch, hq, lq, lk))
    mask = None if mask is None else np.broadcast_to(mask, (*batch, hq, lq, lk))
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    positions = aligned_query_positions(lq, lk, causal_alignment)
    q64, k64, v64 = (x.astype(np.float64) for x in (query, key, value))
    out = np.empty((*batch, hq, lq, value.shape[-1]))
    mean_v = repeat_kv_heads(v64.sum(axis=-2, keepdims=True) / max(lk, 1), hq, "value")
    for q0 in range(0, lq, block_size):
        rows = slice(q0, q0 + block_size)
        acc, denom, row_max = _query_block(
            q64[..., rows, :], k64, v64, None if mask is None else mask[..., rows, :],
            positions[rows], scale, block_size, is_causal)
        empty = np.isneginf(row_max)[..., None]
        out[..., rows, :] = acc / np.where(empty, 1.0, denom[..., None])
        if fully_masked == "nan":
            out[..., rows, :] = np.where(empty, np.nan, out[..., rows, :])
        elif fully_masked == "uniform":
            out[..., rows, :] = np.where(empty, mean_v, out[..., rows, :])
    return out.astype(query.dtype)
