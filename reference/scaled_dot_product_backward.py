"""Analytic backward pass of scaled dot-product attention.

With S = scale · Q Kᵀ (+ mask bias), P = softmax(S) over visible keys and
O = P V, for an upstream gradient dO:

    dV = Pᵀ dO
    dP = dO Vᵀ
    dS = P ⊙ (dP − rowsum(dO ⊙ O))        computed as rowsum(P ⊙ dP), the same number
    dQ = scale · dS K
    dK = scale · dSᵀ Q

Shapes: query (..., Hq, Lq, E), key (..., Hk, Lk, E), value (..., Hk, Lk, Ev),
grad_out (..., Hq, Lq, Ev); dq, dk, dv have the shapes of query, key, value.
With ``enable_gqa`` the gradients of the Hq/Hk query heads that read one
key/value head are summed into it; gradients of broadcast batch dims are
summed too. A fully-masked row has P = 0 (the ``zeros`` policy), so it
contributes nothing to any gradient. Masks are constants (no gradient).

Source: the softmax Jacobian, as written in FlashAttention-2 (Dao 2023,
Algorithm 2) and computed by torch autograd for
``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import numpy as np

from reference._common import check_float_array, repeat_kv_heads
from reference.scaled_dot_product import sdpa


def _sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the leading dims broadcast away from ``shape``."""
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _sum_groups(grad: np.ndarray, heads_kv: int) -> np.ndarray:
    """(..., Hq, L, D) → (..., Hk, L, D): sum the g = Hq/Hk heads of each group."""
    *batch, heads_q, length, dim = grad.shape
    grouped = grad.reshape(*batch, heads_kv, heads_q // heads_kv, length, dim)
    return grouped.sum(axis=-3)


def sdpa_backward(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    grad_out: np.ndarray,
    attn_mask: np.ndarray | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    causal_alignment: str = "top_left",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dq, dk, dv) of ``sdpa(query, key, value, ...)`` for upstream ``grad_out``.

    Parameters mean what they mean for ``reference.sdpa``; computed in float64,
    each gradient returned in the dtype of its input.
    """
    out, weights = sdpa(
        query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa,
        causal_alignment=causal_alignment, return_weights=True,
    )
    grad_out = check_float_array("grad_out", grad_out, 3)
    if grad_out.shape != out.shape:
        raise ValueError(
            f"grad_out must have the output's shape {out.shape}, got shape {grad_out.shape}"
        )
    q, k, v, d_o = (np.asarray(x, dtype=np.float64) for x in (query, key, value, grad_out))
    heads_q, heads_kv = q.shape[-3], k.shape[-3]
    if enable_gqa:
        k, v = repeat_kv_heads(k, heads_q, "key"), repeat_kv_heads(v, heads_q, "value")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    d_v = np.swapaxes(weights, -1, -2) @ d_o
    d_p = d_o @ np.swapaxes(v, -1, -2)
    d_s = weights * (d_p - (weights * d_p).sum(axis=-1, keepdims=True))
    d_q = scale * (d_s @ k)
    d_k = scale * (np.swapaxes(d_s, -1, -2) @ q)
    if heads_q != heads_kv:
        d_k, d_v = _sum_groups(d_k, heads_kv), _sum_groups(d_v, heads_kv)
    grads = zip((d_q, d_k, d_v), (query, key, value), strict=True)
    d_q, d_k, d_v = (_sum_to_shape(g, x.shape).astype(x.dtype) for g, x in grads)
    return d_q, d_k, d_v
