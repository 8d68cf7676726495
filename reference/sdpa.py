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
"""

from __future__ import annotations

import math

import numpy as np

from reference._common import (
    aligned_query_positions,
    band_visibility,
    broadcasts_to,
    check_attention_shapes,
    check_float_array,
    check_mask,
    mask_terms,
    masked_softmax,
    repeat_kv_heads,
    rounded,
    work_dtypes,
)


def _check_options(scores_shape, window, softcap, alibi_slopes, sinks, dropout_p, dropout_mask):
    """Per-head arrays (Hq,), a (left, right) window, softcap > 0, dropout_p in [0, 1)."""
    heads_q = scores_shape[-3]
    for name, per_head in (("alibi_slopes", alibi_slopes), ("sinks", sinks)):
        if per_head is not None and np.shape(per_head) != (heads_q,):
            raise ValueError(f"{name} must have shape (Hq,) = ({heads_q},), "
                             f"got shape {np.shape(per_head)}")
    if window is not None and len(window) != 2:
        raise ValueError(f"window must be a (left, right) pair, got {window!r}")
    if softcap is not None and not softcap > 0:
        raise ValueError(f"softcap must be > 0, got {softcap}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0.0 and dropout_mask is None:
        raise ValueError("dropout_p > 0 needs an explicit dropout_mask (keep-mask): "
                         "the reference never draws random numbers")
    if dropout_mask is not None and not broadcasts_to(np.shape(dropout_mask), scores_shape):
        raise ValueError(f"dropout_mask of shape {np.shape(dropout_mask)} does not broadcast "
                         f"to the scores shape {tuple(scores_shape)}")


def sdpa(
    query: np.ndarray, key: np.ndarray, value: np.ndarray,
    attn_mask: np.ndarray | None = None, dropout_p: float = 0.0, is_causal: bool = False,
    scale: float | None = None, enable_gqa: bool = False, *,
    causal_alignment: str = "top_left", window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None, alibi_slopes: np.ndarray | None = None,
    sinks: np.ndarray | None = None, fully_masked: str = "zeros",
    dropout_mask: np.ndarray | None = None, return_lse: bool = False,
    return_weights: bool = False, compute_dtype=None,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Attention(Q, K, V) = softmax(scale · Q Kᵀ + bias, visible keys only) V.

    Returns ``out`` or, when asked, ``(out, lse?, weights?)`` in that order;
    lse: (..., Hq, Lq), weights: (..., Hq, Lq, Lk). Output dtype = query dtype.
    """
    query = check_float_array("query", query, 3)
    key = check_float_array("key", key, 3)
    value = check_float_array("value", value, 3)
    check_attention_shapes(query, key, value, enable_gqa)
    store, acc = work_dtypes(compute_dtype)
    hq, lq, e = query.shape[-3:]
    lk = key.shape[-2]
    if enable_gqa:
        key, value = repeat_kv_heads(key, hq, "key"), repeat_kv_heads(value, hq, "value")
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    q, k, v = (rounded(x, store, acc) for x in (query, key, value))
    batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3])
    _check_options((*batch, hq, lq, lk), window, softcap, alibi_slopes, sinks, dropout_p,
                   dropout_mask)
    scores = rounded(np.matmul(q, np.swapaxes(k, -1, -2)) * scale, store, acc)
    if softcap is not None:
        scores = rounded(softcap * np.tanh(scores / softcap), store, acc)
    visible, bias = mask_terms(check_mask(attn_mask, scores.shape), acc)
    if is_causal:
        visible = visible & band_visibility(lq, lk, causal_alignment, None, 0)
    if window is not None:
        visible = visible & band_visibility(lq, lk, causal_alignment, *window)
    if alibi_slopes is not None:
        distance = np.abs(aligned_query_positions(lq, lk, causal_alignment)[:, None]
                          - np.arange(lk)[None, :])
        bias = bias - np.asarray(alibi_slopes, dtype=acc)[:, None, None] * distance
    scores = rounded(scores + bias, store, acc)
    sink_logits = None if sinks is None else np.asarray(sinks, dtype=acc)[:, None]
    visible = np.broadcast_to(visible, scores.shape)
    weights, lse = masked_softmax(scores, visible, fully_masked, store, acc, sink_logits)
    if dropout_p > 0.0:
        weights = rounded(weights * np.asarray(dropout_mask) / (1.0 - dropout_p), store, acc)
    out = np.matmul(weights, v).astype(store).astype(query.dtype)
    extras = ([lse] if return_lse else []) + ([weights] if return_weights else [])
    return (out, *extras) if extras else out
