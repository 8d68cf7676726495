"""A correct op-object exposing every op of docs/ops.md, NumPy float64, einsum/complex style.

RoPE with complex multiplication, relative attention in its naive gathered
form (no skew), decoding through the bottom-right causal rule, the backward
pass from the softmax Jacobian, nn.MultiheadAttention with einsum.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

import conformance
from conformance.adapters.declare import declaration_of

from . import numpy_ragged
from ._visibility import to_float, visibility
from .numpy_sdpa import ALL_DTYPES, einsum_sdpa


def _softmax_rows(logits):
    """Softmax over the last axis; -inf hides; a row with nothing visible is 0."""
    top = logits.max(axis=-1, keepdims=True, initial=-np.inf)
    p = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
    denom = p.sum(axis=-1, keepdims=True)
    return p / np.where(denom > 0, denom, 1.0)


def rotary_embedding(x, positions=None, *, base=10000.0, convention="half"):
    """Pairs as complex numbers z_i, rotated by exp(i · pos · base^(-2i/D))."""
    x64 = to_float(x)
    length, dim = x64.shape[-2:]
    half = dim // 2
    pos = np.arange(length) if positions is None else to_float(positions)
    rot = np.exp(1j * np.multiply.outer(pos, base ** (-np.arange(half) * 2.0 / dim)))
    if convention == "interleaved":
        z = (x64[..., 0::2] + 1j * x64[..., 1::2]) * rot
        out = np.empty_like(x64)
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
    elif convention == "half":
        z = (x64[..., :half] + 1j * x64[..., half:]) * rot
        out = np.concatenate([z.real, z.imag], axis=-1)
    else:
        raise ValueError(f"convention must be 'half' or 'interleaved', got {convention!r}")
    return out.astype(np.asarray(x).dtype)


def alibi_slopes(num_heads):
    """Press et al. 2022, the paper code's get_slopes (incl. its non-power-of-2 rule)."""

    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return np.array(power_of_2(num_heads))
    closest = 2 ** math.floor(math.log2(num_heads))
    rest = alibi_slopes(2 * closest)[0::2][: num_heads - closest]
    return np.concatenate([power_of_2(closest), rest])


def relative_attention(query, key, value, rel_embeddings):
    """Naive Music Transformer: S_rel[i, j] = q_i · E[j - i + L - 1] gathered directly, causal."""
    q, k, v, rel = (to_float(x) for x in (query, key, value, rel_embeddings))
    length, dim = q.shape[-2:]
    i, j = np.arange(length)[:, None], np.arange(length)[None, :]
    index = np.clip(j - i + length - 1, 0, length - 1)
    s_rel = np.einsum("...id,ijd->...ij", q, rel[index])
    logits = (np.einsum("...id,...jd->...ij", q, k) + s_rel) / math.sqrt(dim)
    w = _softmax_rows(np.where(j <= i, logits, -np.inf))
    return np.einsum("...ij,...jd->...id", w, v).astype(np.asarray(query).dtype)


def additive_attention(query, keys, values, w_query, w_key, w_score, mask=None):
    """Bahdanau: softmax_j(w_score · tanh(q_i W_q + k_j W_k)) over visible j."""
    q, k, v = (to_float(x) for x in (query, keys, values))
    hq = np.einsum("...qd,da->...qa", q, to_float(w_query))
    hk = np.einsum("...kd,da->...ka", k, to_float(w_key))
    scores = np.einsum("...qka,a->...qk", np.tanh(hq[..., :, None, :] + hk[..., None, :, :]),
                       to_float(w_score))
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return np.einsum("...qk,...kd->...qd", _softmax_rows(scores), v).astype(
        np.asarray(query).dtype)


def decode_step(query, key_cache, value_cache, new_key, new_value, scale=None):
    """Append to the cache; the new queries are the last Ln positions (bottom-right causal)."""
    keys = np.concatenate([key_cache, new_key], axis=-2)
    values = np.concatenate([value_cache, new_value], axis=-2)
    out = einsum_sdpa(query, keys, values, is_causal=True, scale=scale,
                      enable_gqa=np.shape(query)[-3] != keys.shape[-3],
                      causal_alignment="bottom_right")
    return out, keys, values


def _sum_like(grad, like):
    """Sum a broadcast gradient back to the shape of ``like``."""
    shape = np.shape(like)
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    keep = tuple(a for a, n in enumerate(shape) if n == 1 and grad.shape[a] > 1)
    return grad.sum(axis=keep, keepdims=True).astype(np.asarray(like).dtype)


def sdpa_backward(query, key, value, grad_out, attn_mask=None, is_causal=False, scale=None,
                  enable_gqa=False, *, causal_alignment="top_left"):
    """dV = Pᵀ dO; dS = P ⊙ (dO Vᵀ - rowsum(dO ⊙ O)); dQ = scale dS K; dK = scale dSᵀ Q."""
    q, k, v, g = (to_float(x) for x in (query, key, value, grad_out))
    hq, lq, e = q.shape[-3:]
    hk, lk = k.shape[-3], k.shape[-2]
    if hq != hk and not enable_gqa:
        raise ValueError(f"{hq} query heads vs {hk} key heads without enable_gqa")
    group = hq // hk
    kq, vq = np.repeat(k, group, axis=-3), np.repeat(v, group, axis=-3)
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    visible, bias = visibility(attn_mask, lq, lk, is_causal=is_causal, alignment=causal_alignment)
    s = np.einsum("...qe,...ke->...qk", q, kq) * scale + bias
    p = _softmax_rows(np.where(visible, s, -np.inf))
    out = np.einsum("...qk,...kv->...qv", p, vq)
    ds = p * (np.einsum("...qv,...kv->...qk", g, vq) - (g * out).sum(axis=-1, keepdims=True))
    dq = scale * np.einsum("...qk,...ke->...qe", ds, kq)
    dk = scale * np.einsum("...qk,...qe->...ke", ds, q)
    dv = np.einsum("...qk,...qv->...kv", p, g)
    dk, dv = (x.reshape(*x.shape[:-3], hk, group, *x.shape[-2:]).sum(axis=-3) for x in (dk, dv))
    return _sum_like(dq, query), _sum_like(dk, key), _sum_like(dv, value)


def _mha_logit_bias(attn_mask, key_padding_mask, n, heads, lq, lk):
    """(N, H, L, S) additive bias; bool masks: True = NOT allowed (torch MHA)."""
    bias = np.zeros((n, heads, lq, lk))
    for mask, shape in ((attn_mask, None), (key_padding_mask, (n, 1, 1, lk))):
        if mask is None:
            continue
        mask = np.asarray(mask)
        add = np.where(mask, -np.inf, 0.0) if mask.dtype == np.bool_ else to_float(mask)
        if shape is None and add.ndim == 3:
            shape = (n, heads, lq, lk)
        bias = bias + (add if shape is None else add.reshape(shape))
    return bias


def multi_head_attention(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                         out_proj_weight, out_proj_bias, *, key_padding_mask=None,
                         attn_mask=None, need_weights=True, average_attn_weights=True,
                         batch_first=False):
    """nn.MultiheadAttention: packed in-projection, H heads, out-projection."""
    unbatched = np.ndim(query) == 2
    x = [to_float(t) for t in (query, key, value)]
    if unbatched:
        x = [t[:, None] for t in x]
        if key_padding_mask is not None:
            key_padding_mask = np.asarray(key_padding_mask)[None]
    elif batch_first:
        x = [np.swapaxes(t, 0, 1) for t in x]
    (lq, n, embed), lk = x[0].shape, x[1].shape[0]
    d = embed // num_heads
    b = np.zeros(3 * embed) if in_proj_bias is None else to_float(in_proj_bias)
    w = to_float(in_proj_weight)
    q, k, v = (
        (np.einsum("lne,fe->lnf", t, wi) + bi).reshape(t.shape[0], n, num_heads, d)
        for t, wi, bi in zip(x, np.split(w, 3), np.split(b, 3), strict=True)
    )
    s = np.einsum("qnhd,knhd->nhqk", q, k) / math.sqrt(d)
    p = _softmax_rows(s + _mha_logit_bias(attn_mask, key_padding_mask, n, num_heads, lq, lk))
    ctx = np.einsum("nhqk,knhd->qnhd", p, v).reshape(lq, n, embed)
    out = np.einsum("qne,fe->qnf", ctx, to_float(out_proj_weight))
    if out_proj_bias is not None:
        out = out + to_float(out_proj_bias)
    out = out[:, 0] if unbatched else (np.swapaxes(out, 0, 1) if batch_first else out)
    weights = None
    if need_weights:
        weights = p.mean(axis=1) if average_attn_weights else p
        weights = (weights[0] if unbatched else weights).astype(np.asarray(query).dtype)
    return out.astype(np.asarray(query).dtype), weights


NUMPY_OPS = conformance.adapter(
    SimpleNamespace(
        sdpa=einsum_sdpa, sdpa_backward=sdpa_backward,
        multi_head_attention=multi_head_attention, rotary_embedding=rotary_embedding,
        alibi_slopes=alibi_slopes, relative_attention=relative_attention,
        additive_attention=additive_attention, decode_step=decode_step,
        sdpa_varlen=numpy_ragged.sdpa_varlen, paged_attention=numpy_ragged.paged_attention,
    ),
    name="correct-numpy-ops", dtypes=ALL_DTYPES,
    features=declaration_of(einsum_sdpa).features,
)
