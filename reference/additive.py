"""Additive (Bahdanau, "concat") attention.

    score[i, j] = w_score · tanh(query_i W_q + key_j W_k)
    α[i, :]     = softmax over the visible keys of score[i, :]
    out_i       = Σ_j α[i, j] value_j

Source: Bahdanau, Cho & Bengio 2015, "Neural machine translation by jointly
learning to align and translate", §3.1 eq. 5–6, alignment model
a(s, h) = v_aᵀ tanh(W_a s + U_a h) in Appendix A.1.2 (here w_score = v_a,
w_query = W_aᵀ, w_key = U_aᵀ, applied to row vectors). A query row with no
visible key gives zeros (the ``fully_masked="zeros"`` convention).
"""

from __future__ import annotations

import numpy as np

from reference._common import broadcastable, check_float_array, masked_softmax

_F64 = np.dtype(np.float64)


def _check_shapes(query, keys, values, w_query, w_key, w_score) -> None:
    got = (f"query {query.shape}, keys {keys.shape}, values {values.shape}, "
           f"w_query {w_query.shape}, w_key {w_key.shape}, w_score {w_score.shape}")
    if keys.shape[:-1] != values.shape[:-1]:
        raise ValueError(f"keys and values must agree on (..., Lk); got {got}")
    if w_query.ndim != 2 or w_query.shape[0] != query.shape[-1]:
        raise ValueError(f"w_query must have shape (Dq, A) with Dq = query.shape[-1]; got {got}")
    if w_key.ndim != 2 or w_key.shape[0] != keys.shape[-1]:
        raise ValueError(f"w_key must have shape (Dk, A) with Dk = keys.shape[-1]; got {got}")
    if w_key.shape[1] != w_query.shape[1] or w_score.shape != (w_query.shape[1],):
        raise ValueError(f"w_query, w_key and w_score must share the attention dim A; got {got}")
    if not broadcastable(query.shape[:-2], keys.shape[:-2]):
        raise ValueError(f"batch dims of query and keys do not broadcast; got {got}")


def additive_attention(
    query: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    w_query: np.ndarray,
    w_key: np.ndarray,
    w_score: np.ndarray,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Bahdanau attention; shapes: query (..., Lq, Dq), keys (..., Lk, Dk),
    values (..., Lk, Dv), w_query (Dq, A), w_key (Dk, A), w_score (A,),
    mask bool broadcastable to (..., Lq, Lk), True = may attend → out (..., Lq, Dv).
    Computed in float64; output dtype = query dtype.
    """
    arrays = [check_float_array(n, a, d) for n, a, d in (
        ("query", query, 2), ("keys", keys, 2), ("values", values, 2),
        ("w_query", w_query, 2), ("w_key", w_key, 2), ("w_score", w_score, 1))]
    _check_shapes(*arrays)
    q, k, v, wq, wk, ws = (a.astype(np.float64) for a in arrays)
    hidden = np.tanh((q @ wq)[..., :, None, :] + (k @ wk)[..., None, :, :])  # (..., Lq, Lk, A)
    scores = hidden @ ws
    visible = np.ones((), dtype=bool) if mask is None else np.asarray(mask)
    if visible.dtype != np.bool_:
        raise TypeError(f"mask must be a bool array (True = may attend), got dtype {visible.dtype}")
    try:
        visible = np.broadcast_to(visible, scores.shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {visible.shape} does not broadcast to the scores shape "
            f"(..., Lq, Lk) = {scores.shape}"
        ) from None
    weights, _ = masked_softmax(scores, visible, "zeros", _F64, _F64)
    return (weights @ v).astype(arrays[0].dtype)
