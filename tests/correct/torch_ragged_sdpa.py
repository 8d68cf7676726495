"""Correct ``sdpa_varlen`` and ``paged_attention`` on torch: one SDPA call per sequence.

Each sequence runs ``torch.nn.functional.scaled_dot_product_attention`` alone,
on its slice of the pack (varlen) or on its pages gathered in table order and
cut at seq_lens[b] (paged), the way PyTorch's nested jagged tensors run SDPA on
CPU: memory stays per sequence (the CPU SDPA kernel is tiled), and garbage past
seq_lens[b] is never gathered. Bottom-right causal goes through
``torch.nn.attention.bias.causal_lower_right``. The lse (``return_lse``) is
``torch.logsumexp`` of the sequence's scores, float32 (float64 for float64
inputs) as flash-attn returns it; a sequence with no key gives 0 and lse −inf.
Window, softcap and ALiBi are not parameters (SDPA lacks them): those cases are
skipped as unsupported. This was the built-in torch adapter's form before it
moved to flex_attention (conformance/adapters/torch_ragged.py); kept here as an
honest alternative the kit must pass. torch is imported on first call.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import conformance

from .numpy_sdpa import ALL_DTYPES


def _attend(q, k, v, *, is_causal: bool, causal_alignment: str, scale, enable_gqa: bool,
            return_lse: bool):
    """One sequence, (L, H, D) tensors in and out: SDPA in (H, L, D); lse (Hq, Lq) or None."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention.bias import causal_lower_right

    lq, lk = q.shape[0], k.shape[0]
    hq, ev = q.shape[1], v.shape[2]
    if lk == 0:  # no key: the empty sum, 0 (lse −inf)
        lse = torch.full((hq, lq), -math.inf, dtype=_lse_dtype(q)) if return_lse else None
        return q.new_zeros((lq, hq, ev)), lse
    qh, kh, vh = (x.transpose(0, 1) for x in (q, k, v))
    mask, causal = None, is_causal
    if is_causal and causal_alignment == "bottom_right" and lq != lk:
        mask, causal = causal_lower_right(lq, lk), False
    elif causal_alignment not in ("top_left", "bottom_right"):
        raise ValueError(f"causal_alignment must be top_left or bottom_right, got "
                         f"{causal_alignment!r}")
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, is_causal=causal,
                                         scale=scale, enable_gqa=enable_gqa)
    lse = _lse(qh, kh, is_causal, causal_alignment, scale) if return_lse else None
    return out.transpose(0, 1), lse


def _lse_dtype(q):
    import torch

    return torch.float64 if q.dtype == torch.float64 else torch.float32


def _lse(qh, kh, is_causal: bool, alignment: str, scale):
    """logsumexp of one sequence's scores (Hq, Lq), computed in the lse dtype."""
    import torch

    dtype = _lse_dtype(qh)
    q, k = qh.to(dtype), kh.to(dtype)
    k = k.repeat_interleave(q.shape[0] // k.shape[0], dim=0)
    scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        lq, lk = q.shape[1], k.shape[1]
        offset = lk - lq if alignment == "bottom_right" else 0
        visible = torch.ones(lq, lk, dtype=torch.bool).tril(offset)
        scores = scores.masked_fill(~visible, -math.inf)
    return torch.logsumexp(scores, dim=-1)


def sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, *, is_causal=False,
                causal_alignment="top_left", scale=None, enable_gqa=False, return_lse=False):
    """Packed (total, H, D) sequences, each attended alone (docs/ops.md)."""
    import torch

    out = query.new_zeros((query.shape[0], query.shape[1], value.shape[2]))
    lse = torch.full((query.shape[1], query.shape[0]), -math.inf, dtype=_lse_dtype(query))
    cu_q, cu_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    for b in range(len(cu_q) - 1):
        if cu_q[b + 1] == cu_q[b]:
            continue
        rows, keys = slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1])
        out[rows], lse_b = _attend(query[rows], key[keys], value[keys], is_causal=is_causal,
                                   causal_alignment=causal_alignment, scale=scale,
                                   enable_gqa=enable_gqa, return_lse=return_lse)
        if return_lse:
            lse[:, rows] = lse_b
    return (out, lse) if return_lse else out


def paged_attention(query, key_pages, value_pages, block_table, seq_lens, *, is_causal=False,
                    causal_alignment="bottom_right", scale=None, enable_gqa=False,
                    page_layout="NHD", return_lse=False):
    """query (B, Lq, Hq, E) over each sequence's pages, gathered (docs/ops.md)."""
    import torch

    if page_layout == "HND":
        key_pages, value_pages = key_pages.transpose(1, 2), value_pages.transpose(1, 2)
    elif page_layout != "NHD":
        raise NotImplementedError(f"page_layout {page_layout!r}")
    page = key_pages.shape[1]
    batch, lq, hq, _ = query.shape
    out = query.new_zeros((batch, lq, hq, value_pages.shape[-1]))
    lse = torch.full((batch, hq, lq), -math.inf, dtype=_lse_dtype(query))
    for b, n in enumerate(seq_lens.tolist()):
        used = block_table[b, :-(-n // page)].long()
        keys = key_pages[used].reshape(-1, *key_pages.shape[2:])[:n]
        values = value_pages[used].reshape(-1, *value_pages.shape[2:])[:n]
        out[b], lse_b = _attend(query[b], keys, values, is_causal=is_causal,
                                causal_alignment=causal_alignment, scale=scale,
                                enable_gqa=enable_gqa, return_lse=return_lse)
        if return_lse:
            lse[b] = lse_b
    return (out, lse) if return_lse else out


TORCH_RAGGED_SDPA = conformance.adapter(
    SimpleNamespace(sdpa_varlen=sdpa_varlen, paged_attention=paged_attention),
    name="correct-torch-ragged-sdpa", framework="torch", dtypes=ALL_DTYPES,
)
