"""Multi-head attention with the parameters and packing of ``torch.nn.MultiheadAttention``.

    [Q | K | V] = [query W_qᵀ + b_q | key W_kᵀ + b_k | value W_vᵀ + b_v]
    head_h      = sdpa(Q_h, K_h, V_h, mask)              h = 0 … H−1, E/H columns each
    out         = concat(head_0 … head_{H−1}) W_oᵀ + b_o

Conventions (torch's, not sdpa's): ``in_proj_weight`` (3E, E) packs W_q, W_k,
W_v row-wise, ``out_proj_weight`` (E, E), weights are (out, in) as in
``nn.Linear``; biases (3E,) and (E,) may be None. A *bool* mask means
True = NOT allowed; a float mask is added to the scaled scores.
``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N·H, L, S) are both
turned into additive biases (True → −inf) and summed, as torch does.

Shapes: query (L, N, E), key/value (S, N, E); batch_first: (N, L, E), (N, S, E);
unbatched: (L, E), (S, E) with key_padding_mask (S,) and attn_mask (L, S) or
(H, L, S). Returns (out, weights): out in the query's layout; weights (N, L, S)
averaged over heads, (N, H, L, S) if not ``average_attn_weights``, without N
when unbatched, None unless ``need_weights``.

A query row whose keys are all hidden gets weights 0 and output b_o (the
``zeros`` policy of ``reference.sdpa``); torch returns NaN for that row when
``need_weights`` is True (plain softmax) and zeros when it is False.

Source: Vaswani et al. 2017, section 3.2.2; ``torch.nn.MultiheadAttention``.
"""

from __future__ import annotations

import numpy as np

from reference._common import check_float_array, is_float_dtype
from reference.scaled_dot_product import sdpa


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """x Wᵀ + b, weight (out, in) as in nn.Linear."""
    y = x @ weight.T
    return y if bias is None else y + bias


def _as_bias(mask, name: str) -> np.ndarray | None:
    """torch MHA mask → additive float64 bias: bool True → −inf, float kept."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return np.where(mask, -np.inf, 0.0)
    if not is_float_dtype(mask.dtype):
        raise TypeError(
            f"{name} must be bool (True = NOT allowed, torch MHA convention) or float "
            f"(added), got dtype {mask.dtype} (shape {mask.shape})"
        )
    return mask.astype(np.float64)


def _check_projections(e: int, *params) -> None:
    """in_proj_weight (3E, E), in_proj_bias (3E,), out_proj_weight (E, E), out_proj_bias (E,)."""
    names = ("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias")
    shapes = ((3 * e, e), (3 * e,), (e, e), (e,))
    for name, param, shape in zip(names, params, shapes, strict=True):
        if param is None and name.endswith("bias"):
            continue
        param = check_float_array(name, param, 1)
        if param.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for E={e}, got {param.shape}")


def _merged_mask(key_padding_mask, attn_mask, n, heads, lq, ls) -> np.ndarray | None:
    """Sum of both biases, shaped (N, H, L, S) or broadcastable to it."""
    kpm, am = _as_bias(key_padding_mask, "key_padding_mask"), _as_bias(attn_mask, "attn_mask")
    if kpm is not None:
        if kpm.shape != (n, ls):
            raise ValueError(f"key_padding_mask must have shape {(n, ls)}, got {kpm.shape}")
        kpm = kpm[:, None, None, :]
    if am is not None:
        if am.shape not in ((lq, ls), (n * heads, lq, ls)):
            raise ValueError(
                f"attn_mask must have shape {(lq, ls)} or {(n * heads, lq, ls)}, got {am.shape}"
            )
        am = am.reshape(n, heads, lq, ls) if am.ndim == 3 else am
    if kpm is None or am is None:
        return kpm if am is None else am
    return am + kpm


def multi_head_attention(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    num_heads: int,
    in_proj_weight: np.ndarray,
    in_proj_bias: np.ndarray | None,
    out_proj_weight: np.ndarray,
    out_proj_bias: np.ndarray | None,
    *,
    key_padding_mask: np.ndarray | None = None,
    attn_mask: np.ndarray | None = None,
    need_weights: bool = True,
    average_attn_weights: bool = True,
    batch_first: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``nn.MultiheadAttention(E, num_heads)(query, key, value, ...)`` in eval mode."""
    query, key, value = (check_float_array(n, x, 2) for n, x in
                         (("query", query), ("key", key), ("value", value)))
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = query[:, None], key[:, None], value[:, None]
        if key_padding_mask is not None:
            key_padding_mask = np.asarray(key_padding_mask)[None]
    elif batch_first:
        query, key, value = (np.swapaxes(x, 0, 1) for x in (query, key, value))
    lq, n, e = query.shape
    ls = key.shape[0]
    if e % num_heads or key.shape != value.shape or key.shape[1:] != (n, e):
        raise ValueError(
            f"need embed dim E divisible by num_heads={num_heads} and key, value of shape "
            f"(S, N, E) = (S, {n}, {e}); got query {query.shape}, key {key.shape}, "
            f"value {value.shape} (in (L, N, E) layout)"
        )
    _check_projections(e, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias)
    w_q, w_k, w_v = np.split(np.asarray(in_proj_weight, dtype=np.float64), 3)
    b_q, b_k, b_v = (None,) * 3 if in_proj_bias is None else np.split(
        np.asarray(in_proj_bias, dtype=np.float64), 3)

    def heads(x, w, b):  # (L, N, E) → (N, H, L, E/H)
        y = _linear(x.astype(np.float64), w, b).reshape(x.shape[0], n, num_heads, -1)
        return y.transpose(1, 2, 0, 3)

    q, k, v = heads(query, w_q, b_q), heads(key, w_k, b_k), heads(value, w_v, b_v)
    mask = _merged_mask(key_padding_mask, attn_mask, n, num_heads, lq, ls)
    out, weights = sdpa(q, k, v, mask, return_weights=True)
    out = out.transpose(2, 0, 1, 3).reshape(lq, n, e)
    out = _linear(out, np.asarray(out_proj_weight, dtype=np.float64), out_proj_bias)
    out = out[:, 0] if unbatched else (np.swapaxes(out, 0, 1) if batch_first else out)
    if not need_weights:
        return out.astype(query.dtype), None
    weights = (weights.mean(axis=1) if average_attn_weights else weights).astype(query.dtype)
    return out.astype(query.dtype), (weights[0] if unbatched else weights)
