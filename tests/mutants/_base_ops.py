"""Correct NumPy versions of the non-SDPA ops (docs/ops.md), the starting point of their mutants.

Each op takes its one replaceable piece as a keyword (``split=``, ``delta=``,
``reduce_groups=``, ``skew=``) so a mutant changes exactly that and nothing
else. Written independently of ``reference``; float64 inside, inputs never
modified.
"""

from __future__ import annotations

import math

import numpy as np

from ._base import as_f64, attend, masked_softmax, probabilities

# --- rotary, ALiBi ------------------------------------------------------------


def rotary_embedding(x, positions=None, *, base=10000.0, convention="half"):
    """x (..., L, D): pairs (i, i+D/2) "half" or (2i, 2i+1) "interleaved" rotated by pos·θ_i."""
    x64 = as_f64(x)
    length, dim = x64.shape[-2:]
    pos = np.arange(length, dtype=np.float64) if positions is None else as_f64(positions)
    angle = pos[..., None] * float(base) ** (-2.0 * np.arange(dim // 2) / dim)
    cos, sin = np.cos(angle), np.sin(angle)
    if convention == "half":
        a, b = x64[..., : dim // 2], x64[..., dim // 2 :]
    elif convention == "interleaved":
        a, b = x64[..., 0::2], x64[..., 1::2]
    else:
        raise ValueError(f"convention must be 'half' or 'interleaved', got {convention!r}")
    ra, rb = a * cos - b * sin, a * sin + b * cos
    if convention == "half":
        out = np.concatenate([ra, rb], axis=-1)
    else:
        out = np.stack([ra, rb], axis=-1).reshape(x64.shape)
    return out.astype(np.asarray(x).dtype)


def geometric_slopes(n: int) -> list[float]:
    """2^(-8(i+1)/n), i < n: the ALiBi slopes when n is a power of 2."""
    return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]


def alibi_slopes(num_heads: int) -> np.ndarray:
    """Press et al. 2022: non-power-of-2 n takes the 2^k slopes plus every other 2^(k+1) slope."""
    if math.log2(num_heads).is_integer():
        return np.array(geometric_slopes(num_heads))
    closest = 2 ** math.floor(math.log2(num_heads))
    extra = geometric_slopes(2 * closest)[0::2][: num_heads - closest]
    return np.array(geometric_slopes(closest) + extra)


# --- relative attention (Music Transformer) -----------------------------------


def skew(rel_logits: np.ndarray) -> np.ndarray:
    """(..., L, L) with column r ↔ distance r - (L-1) to S[i, j] = rel[i, j - i + L - 1] (j <= i).

    Huang et al. 2018, section 3.4.1: pad a zero column on the left, reshape
    to (L+1, L), drop the first row.
    """
    length = rel_logits.shape[-1]
    padded = np.concatenate([np.zeros((*rel_logits.shape[:-1], 1)), rel_logits], axis=-1)
    return padded.reshape(*rel_logits.shape[:-2], length + 1, length)[..., 1:, :]


def relative_attention(query, key, value, rel_embeddings, *, skew=skew):
    """Causal softmax((Q Kᵀ + skew(Q Eᵀ)) / √D) V."""
    q, k, v, rel = (as_f64(x) for x in (query, key, value, rel_embeddings))
    length, dim = q.shape[-2:]
    logits = (q @ np.swapaxes(k, -1, -2) + skew(q @ rel.T)) / math.sqrt(dim)
    visible = np.broadcast_to(np.tril(np.ones((length, length), dtype=bool)), logits.shape)
    return (masked_softmax(logits, visible, None) @ v).astype(np.asarray(query).dtype)


# --- additive, decoding --------------------------------------------------------


def additive_attention(query, keys, values, w_query, w_key, w_score, mask=None):
    """Bahdanau: score[i, j] = w_score · tanh(q_i W_q + k_j W_k), softmax over visible j."""
    q, k, v = as_f64(query), as_f64(keys), as_f64(values)
    projected_q, projected_k = q @ as_f64(w_query), k @ as_f64(w_key)
    features = np.tanh(projected_q[..., :, None, :] + projected_k[..., None, :, :])
    scores = features @ as_f64(w_score)
    visible = np.ones(scores.shape, dtype=bool) if mask is None else np.asarray(mask)
    weights = masked_softmax(scores, np.broadcast_to(visible, scores.shape), None)
    return (weights @ v).astype(np.asarray(query).dtype)


def decode_step(query, key_cache, value_cache, new_key, new_value, scale=None, *,
                alignment="bottom_right"):
    """Append the new keys/values, then causal attention aligned to the cache's end."""
    keys = np.concatenate([np.asarray(key_cache), np.asarray(new_key)], axis=-2)
    values = np.concatenate([np.asarray(value_cache), np.asarray(new_value)], axis=-2)
    gqa = np.shape(query)[-3] != keys.shape[-3]
    out = attend(query, keys, values, is_causal=True, scale=scale, enable_gqa=gqa,
                 causal_alignment=alignment)
    return out, keys, values


# --- backward ------------------------------------------------------------------


def softmax_delta(grad_p: np.ndarray, p: np.ndarray) -> np.ndarray:
    """D_i = Σ_j dP_ij P_ij, the row term of the softmax Jacobian."""
    return (grad_p * p).sum(axis=-1, keepdims=True)


def sum_groups(grad: np.ndarray, heads_kv: int) -> np.ndarray:
    """GQA: a key/value head's gradient is the sum over the query heads that read it."""
    *lead, heads_q, length, dim = grad.shape
    return grad.reshape(*lead, heads_kv, heads_q // heads_kv, length, dim).sum(axis=-3)


def reduce_to(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the batch dims that were broadcast from ``shape``."""
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def sdpa_backward(query, key, value, grad_out, attn_mask=None, is_causal=False, scale=None,
                  enable_gqa=False, *, causal_alignment="top_left", delta=softmax_delta,
                  reduce_groups=sum_groups):
    """(dq, dk, dv) of out = softmax(S) V, S = scale · Q Kᵀ + bias; dS = P ⊙ (dP - D)."""
    p, q, k, v, scale = probabilities(query, key, value, attn_mask, is_causal, scale,
                                      enable_gqa, causal_alignment=causal_alignment)
    g = as_f64(grad_out)
    grad_v = np.swapaxes(p, -1, -2) @ g
    grad_p = g @ np.swapaxes(v, -1, -2)
    grad_s = p * (grad_p - delta(grad_p, p))
    grad_q = scale * grad_s @ k
    grad_k = scale * np.swapaxes(grad_s, -1, -2) @ q
    heads_kv = np.shape(key)[-3]
    if heads_kv != q.shape[-3]:
        grad_k, grad_v = reduce_groups(grad_k, heads_kv), reduce_groups(grad_v, heads_kv)
    return tuple(
        reduce_to(grad, np.shape(x)).astype(np.asarray(x).dtype)
        for grad, x in ((grad_q, query), (grad_k, key), (grad_v, value))
    )


# --- nn.MultiheadAttention ------------------------------------------------------


def split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(N, L, E) -> (N, H, L, E/H)."""
    n, length, embed = x.shape
    return x.reshape(n, length, heads, embed // heads).transpose(0, 2, 1, 3)


def additive_mask(mask) -> np.ndarray:
    """torch MHA convention: bool True = NOT allowed (-inf); float masks are added."""
    mask = np.asarray(mask)
    return np.where(mask, -np.inf, 0.0) if mask.dtype == np.bool_ else as_f64(mask)


def _mha_bias(attn_mask, key_padding_mask, n: int, heads: int) -> np.ndarray:
    bias = np.zeros(())
    if attn_mask is not None:
        bias = additive_mask(attn_mask)
        if bias.ndim == 3:
            bias = bias.reshape(n, heads, *bias.shape[-2:])
    if key_padding_mask is not None:
        bias = bias + additive_mask(key_padding_mask).reshape(n, 1, 1, -1)
    return bias


def multi_head_attention(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                         out_proj_weight, out_proj_bias, *, key_padding_mask=None,
                         attn_mask=None, need_weights=True, average_attn_weights=True,
                         batch_first=False, split=split_heads):
    """torch.nn.MultiheadAttention.forward with packed in-projection weights."""
    dtype = np.asarray(query).dtype
    q, k, v = as_f64(query), as_f64(key), as_f64(value)
    unbatched = q.ndim == 2
    if unbatched:
        q, k, v = q[None], k[None], v[None]
        key_padding_mask = None if key_padding_mask is None else np.asarray(key_padding_mask)[None]
    elif not batch_first:
        q, k, v = (np.swapaxes(x, 0, 1) for x in (q, k, v))
    n, length, embed = q.shape
    w = np.split(as_f64(in_proj_weight), 3)
    b = [0.0] * 3 if in_proj_bias is None else np.split(as_f64(in_proj_bias), 3)
    heads = [split(x @ wi.T + bi, num_heads) for x, wi, bi in zip((q, k, v), w, b, strict=True)]
    bias = _mha_bias(attn_mask, key_padding_mask, n, num_heads)
    weights, *_ = probabilities(*heads, attn_mask=np.broadcast_to(bias, (n, num_heads, length,
                                                                         k.shape[1])))
    out = (weights @ heads[2]).transpose(0, 2, 1, 3).reshape(n, length, embed)
    out = out @ as_f64(out_proj_weight).T
    if out_proj_bias is not None:
        out = out + as_f64(out_proj_bias)
    if not batch_first and not unbatched:
        out = np.swapaxes(out, 0, 1)
    if not need_weights:
        attn = None
    else:
        attn = weights.mean(axis=1) if average_attn_weights else weights
        attn = (attn[0] if unbatched else attn).astype(dtype)
    return (out[0] if unbatched else out).astype(dtype), attn
