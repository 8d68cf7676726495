"""Mutants that only autograd can show: torch kernels whose forward is right."""

from __future__ import annotations

import math

import conformance


def _torch():
    import torch

    return torch


@conformance.adapter(name="mutant-softmax_detached", framework="torch",
                     dtypes=("float64", "float32"))
def softmax_detached(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                     scale=None):
    """Attention weights detached from the graph: dq and dk are silently zero.

    Common class of bug in hand-written attention modules that cache or log the
    weights with ``.detach()`` (or compute them under ``torch.no_grad()``) and
    then reuse the detached tensor in the forward pass; the forward output is
    exact, only training breaks.

    Source: common class of bug (weights kept for visualisation and reused after
    ``.detach()``); no specific public report is claimed.
    """
    torch = _torch()
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-1, -2)) * scale
    lq, lk = scores.shape[-2:]
    if is_causal:
        visible = torch.ones(lq, lk, dtype=torch.bool).tril()
        scores = scores.masked_fill(~visible, float("-inf"))
    if attn_mask is not None:
        scores = (scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool
                  else scores + attn_mask)
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0).detach()
    return weights @ value
