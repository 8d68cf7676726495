"""Correct SDPA kernels that order the arithmetic differently from the reference.

Each is honest, and each rounds differently: the tolerance must pass them at any logit
magnitude (docs/tolerance.md). Written independently of ``reference``.

* ``exp2_sdpa``: float64, base-2 exponentials on log2(e)-scaled logits (as flash kernels).
* ``online_sdpa(block, reverse, dtype)``: flash-attention's online softmax over key blocks of
  ``block``, in forward or reverse block order, in float64 or float32.
* ``kahan_sdpa``: float32, key by key with Kahan-compensated denominator and P·V sums.
* ``bias_last_sdpa``: float64, the row max taken first, then ``(bias − m) + s`` added in
  another order than the reference's ``(s + bias) − m``.
* ``flash_lowp_sdpa``: float32 logits and softmax from float16/bfloat16 inputs, P rounded
  to the input dtype before P·V, float32 accumulation (flash-attn's forward).
"""

from __future__ import annotations

import math

import numpy as np

import conformance

from ._visibility import no_dropout, to_float, visibility

BASIC = ("bool_mask", "float_mask", "causal", "gqa", "scale")
ALL_DTYPES = ("float64", "float32", "float16", "bfloat16")
LOW_DTYPES = ("float32", "float16", "bfloat16")
LOG2E = 1.4426950408889634  # log2(e)


def _prepared(query, key, value, dropout_p, enable_gqa, dtype):
    """(q, k, v) in ``dtype``, key/value heads repeated for GQA (head h reads h // group)."""
    no_dropout(dropout_p)
    q, k, v = (to_float(x, dtype) for x in (query, key, value))
    hq, hk = q.shape[-3], k.shape[-3]
    if hq != hk:
        if not enable_gqa:
            raise ValueError(f"{hq} query heads vs {hk} key heads without enable_gqa")
        k, v = np.repeat(k, hq // hk, axis=-3), np.repeat(v, hq // hk, axis=-3)
    return q, k, v


def _scale(scale, e: int) -> float:
    return 1.0 / math.sqrt(e) if scale is None else float(scale)


def _visible_bias(attn_mask, q, k, is_causal, alignment, dtype):
    """visible and bias materialized to (*batch, Lq, Lk)."""
    visible, bias = visibility(attn_mask, q.shape[-2], k.shape[-2], is_causal=is_causal,
                               alignment=alignment, dtype=dtype)
    full = (*np.broadcast_shapes(q.shape[:-2], k.shape[:-2]), q.shape[-2], k.shape[-2])
    return np.broadcast_to(visible, full), np.broadcast_to(bias, full)


@conformance.adapter(name="correct-exp2-float64", dtypes=ALL_DTYPES,
                     features=(*BASIC, "bottom_right", "mask_with_causal"))
def exp2_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False, *, causal_alignment="top_left"):
    """float64, p = 2^(t − max t) with t = log2(e)·(scale·q·k + bias): flash's exp2 trick."""
    q, k, v = _prepared(query, key, value, dropout_p, enable_gqa, np.float64)
    visible, bias = _visible_bias(attn_mask, q, k, is_causal, causal_alignment, np.float64)
    with np.errstate(over="ignore"):  # a finite bias near finfo.min: 2^(-inf) = 0 as e^(min)
        t = q @ np.swapaxes(k, -1, -2) * (_scale(scale, q.shape[-1]) * LOG2E) + bias * LOG2E
    t = np.where(visible, t, -np.inf)
    top = t.max(axis=-1, keepdims=True, initial=-np.inf)
    p = np.exp2(t - np.where(np.isfinite(top), top, 0.0))
    denom = p.sum(axis=-1, keepdims=True)
    return ((p @ v) / np.where(denom > 0, denom, 1.0)).astype(np.asarray(query).dtype)


def online_sdpa(block: int, reverse: bool, dtype):
    """An online-softmax kernel over key blocks of ``block`` (reverse: last block first)."""
    name = np.dtype(dtype).name
    order = "reverse" if reverse else "forward"

    @conformance.adapter(name=f"correct-online-{block}-{order}-{name}",
                         dtypes=ALL_DTYPES if name == "float64" else LOW_DTYPES,
                         features=(*BASIC, "bottom_right", "mask_with_causal"))
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False, *, causal_alignment="top_left"):
        q, k, v = _prepared(query, key, value, dropout_p, enable_gqa, dtype)
        q = q * dtype(_scale(scale, q.shape[-1]))
        visible, bias = _visible_bias(attn_mask, q, k, is_causal, causal_alignment, dtype)
        rows = (*visible.shape[:-1], 1)
        m, denom = np.full(rows, -np.inf, dtype), np.zeros(rows, dtype)
        acc = np.zeros((*visible.shape[:-1], v.shape[-1]), dtype)
        starts = range(0, k.shape[-2], block)
        for start in (reversed(starts) if reverse else starts):
            cols = slice(start, start + block)
            s = np.where(visible[..., cols],
                         q @ np.swapaxes(k[..., cols, :], -1, -2) + bias[..., cols], -np.inf)
            m_new = np.maximum(m, s.max(axis=-1, keepdims=True))
            safe = np.where(np.isfinite(m_new), m_new, dtype(0))
            alpha, p = np.exp(m - safe), np.exp(s - safe)
            denom = denom * alpha + p.sum(axis=-1, keepdims=True, dtype=dtype)
            acc = acc * alpha + p @ v[..., cols, :]
            m = m_new
        return (acc / np.where(denom > 0, denom, dtype(1))).astype(np.asarray(query).dtype)

    sdpa.__doc__ = (f"{name} online softmax over key blocks of {block}, {order} block order.")
    return sdpa


@conformance.adapter(name="correct-kahan-float32", dtypes=LOW_DTYPES, features=BASIC)
def kahan_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
               enable_gqa=False):
    """float32, key by key: Kahan-compensated sums of exp(s − m) and of exp(s − m)·v."""
    f32 = np.float32
    q, k, v = _prepared(query, key, value, dropout_p, enable_gqa, f32)
    visible, bias = _visible_bias(attn_mask, q, k, is_causal, "top_left", f32)
    s = np.where(visible, q @ np.swapaxes(k, -1, -2) * f32(_scale(scale, q.shape[-1])) + bias,
                 -np.inf)
    top = s.max(axis=-1, keepdims=True, initial=-np.inf)
    p = np.exp(s - np.where(np.isfinite(top), top, f32(0)))
    shape = (*p.shape[:-1], v.shape[-1])
    denom, denom_c = np.zeros((*p.shape[:-1], 1), f32), np.zeros((*p.shape[:-1], 1), f32)
    acc, acc_c = np.zeros(shape, f32), np.zeros(shape, f32)
    for j in range(p.shape[-1]):
        pj = p[..., j:j + 1]
        denom, denom_c = _kahan(denom, denom_c, pj)
        acc, acc_c = _kahan(acc, acc_c, pj * v[..., j:j + 1, :])
    return (acc / np.where(denom > 0, denom, f32(1))).astype(np.asarray(query).dtype)


def _kahan(total, carry, term):
    """One Kahan step: (total + term, the low-order part lost), compensated by ``carry``."""
    y = term - carry
    t = total + y
    return t, (t - total) - y


@conformance.adapter(name="correct-bias-last-float64", dtypes=ALL_DTYPES,
                     features=(*BASIC, "mask_with_causal"))
def bias_last_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                   scale=None, enable_gqa=False):
    """float64, logits − max formed as (bias − m) + scale·q·k: the bias is added last."""
    q, k, v = _prepared(query, key, value, dropout_p, enable_gqa, np.float64)
    visible, bias = _visible_bias(attn_mask, q, k, is_causal, "top_left", np.float64)
    s = q @ np.swapaxes(k, -1, -2) * _scale(scale, q.shape[-1])
    top = np.where(visible, s + bias, -np.inf).max(axis=-1, keepdims=True, initial=-np.inf)
    shifted = np.where(visible, (bias - np.where(np.isfinite(top), top, 0.0)) + s, -np.inf)
    p = np.exp(shifted)
    denom = p.sum(axis=-1, keepdims=True)
    return (p / np.where(denom > 0, denom, 1.0) @ v).astype(np.asarray(query).dtype)


@conformance.adapter(name="correct-flash-lowp", dtypes=LOW_DTYPES,
                     features=(*BASIC, "bottom_right", "mask_with_causal"))
def flash_lowp_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                    scale=None, enable_gqa=False, *, causal_alignment="top_left"):
    """float32 logits and softmax from the inputs; P rounded to the input dtype before P·V,
    accumulated in float32 and divided by the float32 denominator (flash-attn's forward)."""
    f32, low = np.float32, np.asarray(query).dtype
    q, k, v = _prepared(query, key, value, dropout_p, enable_gqa, f32)
    visible, bias = _visible_bias(attn_mask, q, k, is_causal, causal_alignment, f32)
    s = np.where(visible, q @ np.swapaxes(k, -1, -2) * f32(_scale(scale, q.shape[-1])) + bias,
                 -np.inf)
    top = s.max(axis=-1, keepdims=True, initial=-np.inf)
    p = np.exp(s - np.where(np.isfinite(top), top, f32(0)))
    denom = p.sum(axis=-1, keepdims=True, dtype=f32)
    pv = p.astype(low).astype(f32) @ v  # v is the input rounded already: exact in float32
    return (pv / np.where(denom > 0, denom, f32(1))).astype(low)
