"""Correct NumPy SDPA implementations in different styles and precisions.

* ``einsum_sdpa``: float64, einsum with grouped query heads (GQA without
  copying keys), every feature; the sanity tests' yardstick.
* ``logsumexp_sdpa``: float64, log-space: weights = exp(log_softmax(logits)).
* ``blocked_online_sdpa``: float32, flash-attention's online softmax over key
  blocks of 32 with a running max, denominator and output accumulator.
* ``loop_sdpa``: float32, one query row at a time in a Python loop.
* ``uniform_rows_sdpa``: float64 with JAX's finite fill value, so a fully
  masked row is uniform over the keys; declares that convention.
"""

from __future__ import annotations

import math

import numpy as np

import conformance

from ._visibility import no_dropout, to_float, visibility

ALL_DTYPES = ("float64", "float32", "float16", "bfloat16")
LOW_DTYPES = ("float32", "float16", "bfloat16")
BASIC = ("bool_mask", "float_mask", "causal", "gqa", "scale")
BLOCK = 32  # keys per block in blocked_online_sdpa


def _default_scale(scale, e: int) -> float:
    return 1.0 / math.sqrt(e) if scale is None else float(scale)


@conformance.adapter(
    name="correct-einsum-float64", dtypes=ALL_DTYPES,
    features=(*BASIC, "bottom_right", "window", "softcap", "alibi", "sinks", "mask_with_causal"),
)
def einsum_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                enable_gqa=False, *, causal_alignment="top_left", window=None, softcap=None,
                alibi_slopes=None, sinks=None):
    """float64 einsum; GQA by viewing the Hq query heads as (Hk, group)."""
    no_dropout(dropout_p)
    q, k, v = (to_float(x) for x in (query, key, value))
    hq, lq, e = q.shape[-3:]
    hk, lk = k.shape[-3], k.shape[-2]
    if hq != hk and not enable_gqa:
        raise ValueError(f"{hq} query heads vs {hk} key heads without enable_gqa")
    qg = q.reshape(*q.shape[:-3], hk, hq // hk, lq, e)
    s = np.einsum("...hgqe,...hke->...hgqk", qg, k) * _default_scale(scale, e)
    s = s.reshape(*s.shape[:-4], hq, lq, lk)
    if softcap is not None:
        s = softcap * np.tanh(s / softcap)
    visible, bias = visibility(attn_mask, lq, lk, is_causal=is_causal,
                               alignment=causal_alignment, window=window)
    if alibi_slopes is not None:
        shift = lk - lq if causal_alignment == "bottom_right" else 0
        dist = np.abs(np.arange(lq)[:, None] + shift - np.arange(lk)[None, :])
        bias = bias - to_float(alibi_slopes)[:, None, None] * dist
    logits = np.where(visible, s + bias, -np.inf)
    top = logits.max(axis=-1, initial=-np.inf)
    if sinks is not None:
        top = np.maximum(top, to_float(sinks)[:, None])
    top = np.where(np.isfinite(top), top, 0.0)
    p = np.exp(logits - top[..., None])
    denom = p.sum(axis=-1)
    if sinks is not None:
        denom = denom + np.exp(to_float(sinks)[:, None] - top)
    w = p / np.where(denom > 0, denom, 1.0)[..., None]
    wg = w.reshape(*w.shape[:-3], hk, hq // hk, lq, lk)
    out = np.einsum("...hgqk,...hkv->...hgqv", wg, v)
    return out.reshape(*out.shape[:-4], hq, lq, v.shape[-1]).astype(np.asarray(query).dtype)


def _prepared(query, key, value, dropout_p, enable_gqa: bool, dtype=np.float64):
    """(q, k, v) in ``dtype``, key/value heads repeated for GQA (h reads h // group)."""
    no_dropout(dropout_p)
    q, k, v = (to_float(x, dtype) for x in (query, key, value))
    hq, hk = q.shape[-3], k.shape[-3]
    if hk == hq:
        return q, k, v
    if not enable_gqa:
        raise ValueError(f"{hq} query heads vs {hk} key heads without enable_gqa")
    return q, np.repeat(k, hq // hk, axis=-3), np.repeat(v, hq // hk, axis=-3)


def _expanded(q, k, visible, bias):
    """Batch shape, and visible/bias materialized to (*batch, Lq, Lk)."""
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    full = (*batch, q.shape[-2], k.shape[-2])
    return batch, np.broadcast_to(visible, full), np.broadcast_to(bias, full)


@conformance.adapter(
    name="correct-logsumexp-float64", dtypes=ALL_DTYPES,
    features=(*BASIC, "bottom_right", "softcap", "mask_with_causal"),
)
def logsumexp_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                   scale=None, enable_gqa=False, *, causal_alignment="top_left", softcap=None):
    """float64, log-space: weights = exp(s - m - log Σ exp(s - m)), the log-softmax of the row."""
    q, k, v = _prepared(query, key, value, dropout_p, enable_gqa)
    lq, lk = q.shape[-2], k.shape[-2]
    s = q @ np.swapaxes(k, -1, -2) * _default_scale(scale, q.shape[-1])
    if softcap is not None:
        s = softcap * np.tanh(s / softcap)
    visible, bias = visibility(attn_mask, lq, lk, is_causal=is_causal, alignment=causal_alignment)
    logits = np.where(visible, s + bias, -np.inf)
    top = logits.max(axis=-1, keepdims=True, initial=-np.inf)
    shifted = logits - np.where(np.isfinite(top), top, 0.0)  # exact: no cancellation vs lse
    with np.errstate(divide="ignore"):
        log_denom = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    log_w = shifted - np.where(np.isfinite(log_denom), log_denom, 0.0)
    w = np.where(np.isfinite(log_denom), np.exp(log_w), 0.0)
    return (w @ v).astype(np.asarray(query).dtype)


@conformance.adapter(
    name="correct-blocked-online-float32", dtypes=LOW_DTYPES,
    features=(*BASIC, "bottom_right", "window", "mask_with_causal"),
)
def blocked_online_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                        scale=None, enable_gqa=False, *, causal_alignment="top_left",
                        window=None):
    """float32 online softmax over key blocks (flash-attention's recurrence)."""
    f32 = np.float32
    q, k, v = _prepared(query, key, value, dropout_p, enable_gqa, f32)
    lq, lk = q.shape[-2], k.shape[-2]
    q = q * f32(_default_scale(scale, q.shape[-1]))
    batch, visible, bias = _expanded(q, k, *visibility(
        attn_mask, lq, lk, is_causal=is_causal, alignment=causal_alignment, window=window,
        dtype=f32))
    m = np.full((*batch, lq, 1), -np.inf, dtype=f32)
    denom = np.zeros((*batch, lq, 1), dtype=f32)
    acc = np.zeros((*batch, lq, v.shape[-1]), dtype=f32)
    for start in range(0, lk, BLOCK):
        cols = slice(start, start + BLOCK)
        s = q @ np.swapaxes(k[..., cols, :], -1, -2) + bias[..., cols]
        s = np.where(visible[..., cols], s, f32(-np.inf))
        m_new = np.maximum(m, s.max(axis=-1, keepdims=True))
        safe = np.where(np.isfinite(m_new), m_new, f32(0))
        alpha = np.exp(m - safe)
        p = np.exp(s - safe)
        denom = denom * alpha + p.sum(axis=-1, keepdims=True, dtype=f32)
        acc = acc * alpha + p @ v[..., cols, :]
        m = m_new
    out = acc / np.where(denom > 0, denom, f32(1))
    return out.astype(np.asarray(query).dtype)


@conformance.adapter(name="correct-loop-float32", dtypes=LOW_DTYPES, features=BASIC)
def loop_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False):
    """float32, one (batch, head, query) row at a time."""
    f32 = np.float32
    q, k, v = _prepared(query, key, value, dropout_p, enable_gqa, f32)
    batch, visible, bias = _expanded(q, k, *visibility(
        attn_mask, q.shape[-2], k.shape[-2], is_causal=is_causal, dtype=f32))
    q, k, v = (np.broadcast_to(x, (*batch, *x.shape[-2:])) for x in (q, k, v))
    scale = f32(_default_scale(scale, q.shape[-1]))
    out = np.zeros((*batch, q.shape[-2], v.shape[-1]), dtype=f32)
    for idx in np.ndindex(*batch):
        for i in range(q.shape[-2]):
            seen = visible[idx][i]
            if not seen.any():
                continue
            row = (k[idx][seen] @ q[idx][i]) * scale + bias[idx][i][seen]
            e = np.exp(row - row.max())
            out[idx][i] = (e / e.sum(dtype=f32)) @ v[idx][seen]
    return out.astype(np.asarray(query).dtype)


@conformance.adapter(
    name="correct-uniform-rows-float64", dtypes=ALL_DTYPES, features=BASIC,
    conventions={"fully_masked": "uniform"},
)
def uniform_rows_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                      scale=None, enable_gqa=False):
    """float64 with jax.nn.dot_product_attention's fill: hidden logits = -0.7 · finfo.max."""
    q, k, v = _prepared(query, key, value, dropout_p, enable_gqa)
    s = q @ np.swapaxes(k, -1, -2) * _default_scale(scale, q.shape[-1])
    visible, bias = visibility(attn_mask, q.shape[-2], k.shape[-2], is_causal=is_causal)
    logits = np.where(visible, s + bias, -0.7 * np.finfo(np.float64).max)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True, initial=-np.inf))
    return (e / e.sum(axis=-1, keepdims=True) @ v).astype(np.asarray(query).dtype)
