"""Correct ``sdpa_varlen`` and ``paged_attention`` in NumPy, written apart from ``reference``.

varlen: one document id and one in-document position per packed token; each
sequence's queries meet only its own keys (the document mask restricted to the
sequence's block, so memory stays per sequence), positions restart at 0.
paged: each key's (page, slot) is looked up token by token from the block table
(``np.divmod``), never assuming page order. Both through the zoo's float64
``einsum_sdpa``; the lse from a log-sum-exp over the same visible logits.
"""

from __future__ import annotations

import math

import numpy as np

from ._visibility import to_float, visibility
from .numpy_sdpa import einsum_sdpa


def _one_sequence(q, k, v, *, is_causal, alignment, scale, enable_gqa, window, softcap,
                  alibi_slopes):
    """(L, H, D) in: out (Lq, Hq, Ev) float64 and lse (Hq, Lq); no key at all → 0 and −inf."""
    lq, hq = q.shape[0], q.shape[1]
    if k.shape[0] == 0:
        return np.zeros((lq, hq, v.shape[2])), np.full((hq, lq), -np.inf)
    qh, kh, vh = (np.transpose(to_float(x), (1, 0, 2)) for x in (q, k, v))
    options = {"is_causal": is_causal, "scale": scale, "enable_gqa": enable_gqa,
               "causal_alignment": alignment, "window": window, "softcap": softcap,
               "alibi_slopes": alibi_slopes}
    out = einsum_sdpa(qh, kh, vh, **options)
    kx = np.repeat(kh, hq // kh.shape[0], axis=0)
    logits = np.einsum("hqe,hke->hqk", qh, kx) * (1 / math.sqrt(q.shape[2]) if scale is None
                                                    else scale)
    if softcap is not None:
        logits = softcap * np.tanh(logits / softcap)
    visible, _ = visibility(None, lq, k.shape[0], is_causal=is_causal, alignment=alignment,
                            window=window)
    if alibi_slopes is not None:
        shift = k.shape[0] - lq if alignment == "bottom_right" else 0
        dist = np.abs(np.arange(lq)[:, None] + shift - np.arange(k.shape[0])[None, :])
        logits = logits - to_float(alibi_slopes)[:, None, None] * dist
    hidden = np.where(visible, logits, -np.inf)
    with np.errstate(divide="ignore"):
        lse = np.logaddexp.reduce(hidden, axis=-1)
    return np.transpose(out, (1, 0, 2)), lse


def _finish(out, lse, query, return_lse):
    dtype = np.asarray(query).dtype
    out = out.astype(dtype)
    lse = lse.astype(np.float64 if dtype == np.float64 else np.float32)
    return (out, lse) if return_lse else out


def sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, *, is_causal=False,
                causal_alignment="top_left", scale=None, window=None, softcap=None,
                alibi_slopes=None, enable_gqa=False, return_lse=False):
    """Queries of document d see keys of document d only (ids from np.searchsorted)."""
    cu_q, cu_k = np.asarray(cu_seqlens_q), np.asarray(cu_seqlens_k)
    doc_q = np.searchsorted(cu_q, np.arange(query.shape[0]), side="right") - 1
    doc_k = np.searchsorted(cu_k, np.arange(key.shape[0]), side="right") - 1
    out = np.zeros((query.shape[0], query.shape[1], value.shape[2]))
    lse = np.full((query.shape[1], query.shape[0]), -np.inf)
    for d in np.unique(doc_q):
        rows, keys = np.flatnonzero(doc_q == d), np.flatnonzero(doc_k == d)
        out[rows], lse[:, rows] = _one_sequence(
            query[rows], key[keys], value[keys], is_causal=is_causal, alignment=causal_alignment,
            scale=scale, enable_gqa=enable_gqa, window=window, softcap=softcap,
            alibi_slopes=alibi_slopes)
    return _finish(out, lse, query, return_lse)


def paged_attention(query, key_pages, value_pages, block_table, seq_lens, *, is_causal=False,
                    causal_alignment="bottom_right", scale=None, window=None, softcap=None,
                    alibi_slopes=None, enable_gqa=False, page_layout="NHD", return_lse=False):
    """Key t of sequence b from (block_table[b, t // P], t % P), token by token."""
    if page_layout == "HND":
        key_pages, value_pages = (np.transpose(p, (0, 2, 1, 3)) for p in (key_pages, value_pages))
    elif page_layout != "NHD":
        raise NotImplementedError(f"page_layout {page_layout!r}")
    batch, lq, hq = query.shape[:3]
    out = np.zeros((batch, lq, hq, value_pages.shape[-1]))
    lse = np.full((batch, hq, lq), -np.inf)
    for b, n in enumerate(np.asarray(seq_lens).tolist()):
        slot_page, slot = np.divmod(np.arange(n), key_pages.shape[1])
        pages = np.asarray(block_table)[b][slot_page]
        out[b], lse[b] = _one_sequence(
            query[b], key_pages[pages, slot], value_pages[pages, slot], is_causal=is_causal,
            alignment=causal_alignment, scale=scale, enable_gqa=enable_gqa, window=window,
            softcap=softcap, alibi_slopes=alibi_slopes)
    return _finish(out, lse, query, return_lse)
