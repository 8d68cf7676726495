"""Relative attention of the Music Transformer, with the memory-efficient skew.

    S_rel[i, j] = q_i · E[j − i + L − 1]      (row r of E ↔ distance r − (L − 1) = j − i ≤ 0)
    out         = softmax((Q Kᵀ + S_rel) / √D, causal: j <= i) V

Skew (Huang et al. 2018, "Music Transformer", arXiv 1809.04281, §3.4.1 and
Figure 1): QEᵀ (L, L) holds q_i · E[r]; pad one zero column on the left
(L, L + 1), reshape to (L + 1, L), drop the first row: entry (i, j) is then
q_i · E[j − i + L − 1] for every j <= i, with O(L D) extra memory instead of
the naive O(L² D). Entries j > i are junk and are hidden by the causal mask.
``rel_embeddings`` (L, D) is shared by all heads; a per-head table
(H, L, D) as in the paper broadcasts the same way against (..., H, L, D).
"""

from __future__ import annotations

import numpy as np

from reference._common import broadcasts_to, check_float_array
from reference.scaled_dot_product import sdpa


def _checked(query, key, value, rel_embeddings) -> list[np.ndarray]:
    arrays = [check_float_array(n, a, d) for n, a, d in (
        ("query", query, 3), ("key", key, 3), ("value", value, 3),
        ("rel_embeddings", rel_embeddings, 2))]
    q, k, v, e = (a.shape for a in arrays)
    got = f"query {q}, key {k}, value {v}, rel_embeddings {e}"
    if k[-3:] != q[-3:] or v[:-1] != k[:-1]:
        raise ValueError(f"need query and key (..., H, L, D), value (..., H, L, Dv); got {got}")
    if e[-2:] != q[-2:] or not broadcasts_to(e[:-2], q[:-2]):
        raise ValueError(f"rel_embeddings must be (L, D) = {q[-2:]} or (H, L, D); got {got}")
    return arrays


def _attend(query, key, value, s_rel) -> np.ndarray:
    """softmax((Q Kᵀ + S_rel)/√D, causal) V: S_rel/√D enters sdpa as an (unscaled) float bias."""
    q, k, v = (a.astype(np.float64) for a in (query, key, value))
    bias = s_rel / np.sqrt(q.shape[-1])
    return sdpa(q, k, v, attn_mask=bias, is_causal=True).astype(query.dtype)


def relative_attention(
    query: np.ndarray, key: np.ndarray, value: np.ndarray, rel_embeddings: np.ndarray
) -> np.ndarray:
    """Causal relative attention via the skew; shapes: query, key (..., H, L, D),
    value (..., H, L, Dv), rel_embeddings (L, D) → out (..., H, L, Dv).
    Computed in float64; output dtype = query dtype.
    """
    query, key, value, emb = _checked(query, key, value, rel_embeddings)
    q = query.astype(np.float64)
    seq = q.shape[-2]
    qe = q @ np.swapaxes(emb.astype(np.float64), -1, -2)  # (..., L, L): q_i · E[r]
    padded = np.concatenate([np.zeros((*qe.shape[:-1], 1)), qe], axis=-1)  # (..., L, L + 1)
    s_rel = padded.reshape(*qe.shape[:-2], seq + 1, seq)[..., 1:, :]  # (..., L, L)
    return _attend(query, key, value, s_rel)


def relative_attention_naive(
    query: np.ndarray, key: np.ndarray, value: np.ndarray, rel_embeddings: np.ndarray
) -> np.ndarray:
    """Same result as ``relative_attention``, gathering E[j − i + L − 1] for every
    pair (i, j <= i): O(L² D) memory. Same shapes and dtype rule.
    """
    query, key, value, emb = _checked(query, key, value, rel_embeddings)
    seq = query.shape[-2]
    pos = np.arange(seq)
    rows = np.minimum(pos[None, :] - pos[:, None] + seq - 1, seq - 1)  # j > i: masked anyway
    gathered = emb.astype(np.float64)[..., rows, :]  # (..., L, L, D)
    s_rel = np.einsum("...id,...ijd->...ij", query.astype(np.float64), gathered)
    s_rel = np.where(pos[None, :] <= pos[:, None], s_rel, 0.0)
    return _attend(query, key, value, s_rel)
