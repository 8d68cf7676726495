"""Relative position representations (Shaw et al.).

    r(i, j) = clip(j − i, −k, k) + k                   row of the tables, k = max_distance
    e_ij    = q_i · (k_j + rel_keys[r(i, j)]) / √E      (eq. 4)
    α_ij    = softmax_j(e_ij) over the visible keys
    out_i   = Σ_j α_ij (v_j + rel_values[r(i, j)])       (eq. 3)

Source: Shaw, Uszkoreit & Vaswani 2018, "Self-attention with relative
position representations", §3.1–3.2 eq. 3–4 and the clipping
a_ij = w_clip(j − i, k). The tables are shared by all heads (as in the
paper). With ``is_causal`` key j is visible to query i iff j <= i; a row with
no visible key gives zeros.
"""

from __future__ import annotations

import numbers

import numpy as np

from reference._common import (
    band_visibility,
    broadcastable,
    check_float_array,
    masked_softmax,
)

_F64 = np.dtype(np.float64)


def _check(arrays: list[np.ndarray], max_distance: int) -> None:
    query, key, value, rel_keys, rel_values = arrays
    got = (f"query {query.shape}, key {key.shape}, value {value.shape}, "
           f"rel_keys {rel_keys.shape}, rel_values {rel_values.shape}")
    if isinstance(max_distance, bool) or not isinstance(max_distance, numbers.Integral):
        raise TypeError(f"max_distance must be an int, got {type(max_distance).__name__}")
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    if query.shape[-1] != key.shape[-1] or key.shape[:-1] != value.shape[:-1]:
        raise ValueError(f"need query (..., H, Lq, E), key (..., H, Lk, E), "
                         f"value (..., H, Lk, Ev); got {got}")
    rows = 2 * int(max_distance) + 1
    if rel_keys.shape != (rows, query.shape[-1]) or rel_values.shape != (rows, value.shape[-1]):
        raise ValueError(f"rel_keys must be (2·max_distance+1, E) = ({rows}, {query.shape[-1]}) "
                         f"and rel_values (2·max_distance+1, Ev) = ({rows}, {value.shape[-1]}); "
                         f"got {got}")
    if not broadcastable(query.shape[:-2], key.shape[:-2]):
        raise ValueError(f"batch/head dims of query and key do not broadcast; got {got}")


def shaw_relative_attention(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    rel_keys: np.ndarray,
    rel_values: np.ndarray,
    *,
    max_distance: int,
    is_causal: bool = False,
) -> np.ndarray:
    """Shapes: query (..., H, Lq, E), key (..., H, Lk, E), value (..., H, Lk, Ev),
    rel_keys (2·max_distance + 1, E), rel_values (2·max_distance + 1, Ev)
    → out (..., H, Lq, Ev). Computed in float64; output dtype = query dtype.
    """
    arrays = [check_float_array(n, a, d) for n, a, d in (
        ("query", query, 3), ("key", key, 3), ("value", value, 3),
        ("rel_keys", rel_keys, 2), ("rel_values", rel_values, 2))]
    _check(arrays, max_distance)
    q, k, v, rel_k, rel_v = (a.astype(np.float64) for a in arrays)
    lq, lk = q.shape[-2], k.shape[-2]
    rows = np.clip(np.arange(lk)[None, :] - np.arange(lq)[:, None], -max_distance, max_distance)
    a_k, a_v = rel_k[rows + max_distance], rel_v[rows + max_distance]  # (Lq, Lk, E|Ev)
    scores = (q @ np.swapaxes(k, -1, -2) + np.einsum("...ie,ije->...ij", q, a_k))
    scores = scores / np.sqrt(q.shape[-1])
    visible = band_visibility(lq, lk, "top_left", None, 0 if is_causal else None)
    weights, _ = masked_softmax(scores, np.broadcast_to(visible, scores.shape), "zeros", _F64, _F64)
    out = weights @ v + np.einsum("...ij,ijd->...id", weights, a_v)
    return out.astype(arrays[0].dtype)
