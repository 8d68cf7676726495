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
    check_float_array,
    masked_softmax,
    repeat_kv_heads,
    rounded,
    work_dtypes,
)


def _check_shapes(query, key, value, enable_gqa: bool) -> None:
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must share the last (head) dim E: "
            f"query shape {query.shape}, key shape {key.shape}"
        )
    if key.shape[:-1] != value.shape[:-1]:
        raise ValueError(
            f"key and value must agree on (..., H, L): "
            f"key shape {key.shape}, value shape {value.shape}"
        )
    if not enable_gqa and query.shape[-3] != key.shape[-3]:
        raise ValueError(
            f"query heads ({query.shape[-3]}) != key heads ({key.shape[-3]}); "
            f"pass enable_gqa=True for grouped-query attention "
            f"(query shape {query.shape}, key shape {key.shape})"
        )
    try:
        np.broadcast_shapes(query.shape[:-3], key.shape[:-3])
    except ValueError:
        raise ValueError(
            f"batch dims do not broadcast: query shape {query.shape}, key shape {key.shape}"
        ) from None


def _mask_terms(attn_mask, scores_shape, acc) -> tuple[np.ndarray, np.ndarray]:
    """(visible, bias) from attn_mask: bool → visibility, float → bias (-inf hides)."""
    if attn_mask is None:
        return np.ones((), dtype=bool), np.zeros((), dtype=acc)
    mask = np.asarray(attn_mask)
    if not _bcast_ok(mask.shape, scores_shape) or (
        np.broadcast_shapes(mask.shape, scores_shape) != tuple(scores_shape)
    ):
        raise ValueError(
            f"attn_mask of shape {mask.shape} does not broadcast to the scores "
            f"shape (..., Hq, Lq, Lk) = {tuple(scores_shape)}"
        )
    if mask.dtype == np.bool_:
        return mask, np.zeros((), dtype=acc)
    try:
        check_float_array("attn_mask", mask, min_ndim=0)
    except TypeError:
        raise TypeError(
            f"attn_mask must be bool (True = may attend) or float (added bias), "
            f"got dtype {mask.dtype}"
        ) from None
    bias = mask.astype(acc)
    if np.isnan(bias).any():
        raise ValueError("attn_mask contains NaN; use -inf to hide a key")
    return ~np.isneginf(bias), np.where(np.isneginf(bias), 0.0, bias).astype(acc)


def _bcast_ok(a: tuple, b: tuple) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def sdpa(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
    enable_gqa=False, *, causal_alignment="top_left", window=None, softcap=None,
    alibi_slopes=None, sinks=None, fully_masked="zeros", dropout_mask=None,
    return_lse=False, return_weights=False, compute_dtype=None,
):
    """Attention(Q, K, V) = softmax(scale · Q Kᵀ + bias, visible keys only) V.

    Returns ``out`` or, when asked, ``(out, lse?, weights?)`` in that order;
    lse: (..., Hq, Lq), weights: (..., Hq, Lq, Lk). Output dtype = query dtype.
    """
    query = check_float_array("query", query, 3)
    key = check_float_array("key", key, 3)
    value = check_float_array("value", value, 3)
    _check_shapes(query, key, value, enable_gqa)
    store, acc = work_dtypes(compute_dtype)
    hq, lq, e = query.shape[-3:]
    lk = key.shape[-2]
    if enable_gqa:
        key, value = repeat_kv_heads(key, hq, "key"), repeat_kv_heads(value, hq, "value")
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    q, k, v = (rounded(x, store, acc) for x in (query, key, value))
    scores = rounded(np.matmul(q, np.swapaxes(k, -1, -2)) * scale, store, acc)
    if softcap is not None:
        scores = rounded(softcap * np.tanh(scores / softcap), store, acc)
    visible, bias = _mask_terms(attn_mask, scores.shape, acc)
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
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0.0:
        if dropout_mask is None:
            raise ValueError(
                "dropout_p > 0 needs an explicit dropout_mask (keep-mask): "
                "the reference never draws random numbers"
            )
        weights = rounded(weights * np.asarray(dropout_mask) / (1.0 - dropout_p), store, acc)
    out = np.matmul(weights, v).astype(store).astype(query.dtype)
    extras = ([lse] if return_lse else []) + ([weights] if return_weights else [])
    return (out, *extras) if extras else out
