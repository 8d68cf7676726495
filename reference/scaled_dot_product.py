"""Scaled dot-product attention: the spec every adapter is held to.

    S   = scale · Q Kᵀ                         scale = 1/√E by default
    S   ← c · tanh(S / c)                      softcap c (after scaling, before masks)
    S   ← S + B_float + B_alibi                biases are never scaled
    P   = softmax over visible keys (+ sink)   see reference._common
    P   ← P ⊙ keep / (1 − p)                   dropout only via an explicit keep-mask
    out = P V

Shapes: query (..., Hq, Lq, E), key (..., Hk, Lk, E), value (..., Hk, Lk, Ev),
output (..., Hq, Lq, Ev). Source: Vaswani et al. 2017 ("Attention is all you
need", eq. 1) with the parameter conventions of
``torch.nn.functional.scaled_dot_product_attention``; window as in
Longformer / flash-attn ``window_size``; softcap as in Gemma 2; ALiBi as in
Press et al. 2022; sinks as in gpt-oss / StreamingLLM.

The code below is the definition, at every size: it holds the Lq × Lk scores.
``reference.blocked_sdpa`` computes the same formula tile by tile with an online
softmax (equal to rounding: ≤ 1e-13 relative in float64) in bounded memory; its
callers choose it for long sequences (the harness: ``conformance.ops.sdpa``).
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np

from reference._common import (
    aligned_query_positions,
    attention_logits,
    check_attention_shapes,
    check_float_array,
    check_mask,
    check_sdpa_options,
    masked_softmax,
    repeat_kv_heads,
    rounded,
    work_dtypes,
)


# The return type follows the flags (for type checkers): the output alone, or a tuple.
@overload
def sdpa(
    query: np.ndarray, key: np.ndarray, value: np.ndarray,
    attn_mask: np.ndarray | None = ..., dropout_p: float = ..., is_causal: bool = ...,
    scale: float | None = ..., enable_gqa: bool = ..., *,
    causal_alignment: str = ..., window: tuple[int | None, int | None] | None = ...,
    softcap: float | None = ..., alibi_slopes: np.ndarray | None = ...,
    sinks: np.ndarray | None = ..., fully_masked: str = ...,
    dropout_mask: np.ndarray | None = ...,
    return_lse: Literal[False] = ..., return_weights: Literal[False] = ...,
    compute_dtype: Any = ...,
) -> np.ndarray: ...
@overload
def sdpa(
    query: np.ndarray, key: np.ndarray, value: np.ndarray,
    attn_mask: np.ndarray | None = ..., dropout_p: float = ..., is_causal: bool = ...,
    scale: float | None = ..., enable_gqa: bool = ..., *,
    causal_alignment: str = ..., window: tuple[int | None, int | None] | None = ...,
    softcap: float | None = ..., alibi_slopes: np.ndarray | None = ...,
    sinks: np.ndarray | None = ..., fully_masked: str = ...,
    dropout_mask: np.ndarray | None = ...,
    return_lse: Literal[True], return_weights: bool = ..., compute_dtype: Any = ...,
) -> tuple[np.ndarray, ...]: ...
@overload
def sdpa(
    query: np.ndarray, key: np.ndarray, value: np.ndarray,
    attn_mask: np.ndarray | None = ..., dropout_p: float = ..., is_causal: bool = ...,
    scale: float | None = ..., enable_gqa: bool = ..., *,
    causal_alignment: str = ..., window: tuple[int | None, int | None] | None = ...,
    softcap: float | None = ..., alibi_slopes: np.ndarray | None = ...,
    sinks: np.ndarray | None = ..., fully_masked: str = ...,
    dropout_mask: np.ndarray | None = ...,
    return_lse: bool = ..., return_weights: Literal[True], compute_dtype: Any = ...,
) -> tuple[np.ndarray, ...]: ...
@overload
def sdpa(
    query: np.ndarray, key: np.ndarray, value: np.ndarray,
    attn_mask: np.ndarray | None = ..., dropout_p: float = ..., is_causal: bool = ...,
    scale: float | None = ..., enable_gqa: bool = ..., *,
    causal_alignment: str = ..., window: tuple[int | None, int | None] | None = ...,
    softcap: float | None = ..., alibi_slopes: np.ndarray | None = ...,
    sinks: np.ndarray | None = ..., fully_masked: str = ...,
    dropout_mask: np.ndarray | None = ...,
    return_lse: bool = ..., return_weights: bool = ..., compute_dtype: Any = ...,
) -> np.ndarray | tuple[np.ndarray, ...]: ...


def sdpa(
    query: np.ndarray, key: np.ndarray, value: np.ndarray,
    attn_mask: np.ndarray | None = None, dropout_p: float = 0.0, is_causal: bool = False,
    scale: float | None = None, enable_gqa: bool = False, *,
    causal_alignment: str = "top_left", window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None, alibi_slopes: np.ndarray | None = None,
    sinks: np.ndarray | None = None, fully_masked: str = "zeros",
    dropout_mask: np.ndarray | None = None, return_lse: bool = False,
    return_weights: bool = False, compute_dtype: Any = None,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Attention(Q, K, V) = softmax(scale · Q Kᵀ + bias, visible keys only) V.

    Returns ``out`` or, when asked, ``(out, lse?, weights?)`` in that order;
    lse: (..., Hq, Lq), weights: (..., Hq, Lq, Lk). Output dtype = query dtype.
    """
    query = check_float_array("query", query, 3)
    key = check_float_array("key", key, 3)
    value = check_float_array("value", value, 3)
    check_attention_shapes(query, key, value, enable_gqa)
    hq, lq, e = query.shape[-3:]
    lk = key.shape[-2]
    batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3])
    store, acc = work_dtypes(compute_dtype)
    if enable_gqa:
        key, value = repeat_kv_heads(key, hq, "key"), repeat_kv_heads(value, hq, "value")
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    q, k, v = (rounded(x, store, acc) for x in (query, key, value))
    check_sdpa_options((*batch, hq, lq, lk), window, softcap, alibi_slopes, sinks, dropout_p,
                       dropout_mask)
    slopes = None if alibi_slopes is None else np.asarray(alibi_slopes, dtype=acc)[:, None, None]
    scores, visible = attention_logits(
        q, k, scale, check_mask(attn_mask, (*batch, hq, lq, lk)),
        aligned_query_positions(lq, lk, causal_alignment), np.arange(lk), store, acc,
        softcap=softcap, is_causal=is_causal, window=window, slopes=slopes)
    sink_logits = None if sinks is None else np.asarray(sinks, dtype=acc)[:, None]
    visible = np.broadcast_to(visible, scores.shape)
    weights, lse = masked_softmax(scores, visible, fully_masked, store, acc, sink_logits)
    if dropout_p > 0.0:
        weights = rounded(weights * np.asarray(dropout_mask) / (1.0 - dropout_p), store, acc)
    out = np.matmul(weights, v).astype(store).astype(query.dtype)
    extras = ([lse] if return_lse else []) + ([weights] if return_weights else [])
    return (out, *extras) if extras else out
