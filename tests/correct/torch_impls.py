"""Correct implementations on torch (CPU); torch is imported on first call, never at import.

* ``torch_math_sdpa`` / ``torch_default_sdpa``: F.scaled_dot_product_attention
  with the math backend forced / the backend torch picks; framework "torch",
  float64, float32, float16 and bfloat16.
* ``flex_sdpa``: torch.nn.attention.flex_attention, run eagerly (its unfused
  path; ``torch.compile`` works on CPU too but costs ~25 s per shape), with
  softcap, biases and masks in a score_mod.
* ``TORCH_MHA``: op ``multi_head_attention`` through nn.MultiheadAttention,
  converting NumPy arrays itself.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np

import conformance

from ._visibility import no_dropout, visibility
from .numpy_sdpa import ALL_DTYPES, BASIC


@conformance.adapter(name="correct-torch-math", framework="torch", dtypes=ALL_DTYPES,
                     features=BASIC)
def torch_math_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                    scale=None, enable_gqa=False):
    """torch SDPA, math backend (the composite reference kernel)."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    no_dropout(dropout_p)
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                              is_causal=is_causal, scale=scale,
                                              enable_gqa=enable_gqa)


@conformance.adapter(name="correct-torch-default", framework="torch", dtypes=ALL_DTYPES,
                     features=BASIC)
def torch_default_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                       scale=None, enable_gqa=False):
    """torch SDPA with whatever backend torch dispatches to on CPU (flash or math)."""
    import torch.nn.functional as F

    no_dropout(dropout_p)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                          is_causal=is_causal, scale=scale,
                                          enable_gqa=enable_gqa)


def _flex_visibility(torch, attn_mask, shape, is_causal, alignment, window):
    """(visible bool, bias float64) torch tensors expanded to ``shape`` = (..., Hq, Lq, Lk)."""
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        attn_mask = attn_mask.double()
    if attn_mask is not None:
        attn_mask = attn_mask.numpy()
    visible, bias = visibility(attn_mask, *shape[-2:], is_causal=is_causal, alignment=alignment,
                               window=window)
    return (torch.from_numpy(np.broadcast_to(x, shape).copy()) for x in (visible, bias))


@conformance.adapter(
    name="correct-torch-flex", framework="torch", dtypes=ALL_DTYPES,
    features=(*BASIC, "bottom_right", "window", "softcap", "mask_with_causal"),
)
def flex_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False, *, causal_alignment="top_left", window=None, softcap=None):
    """flex_attention (eager): softcap, float bias and visibility (-inf) in one score_mod.

    Masking in the score_mod rather than a block mask: create_block_mask costs
    seconds per call eagerly and only buys sparsity, which this check does not need.
    """
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    no_dropout(dropout_p)
    lead = torch.broadcast_shapes(query.shape[:-3], key.shape[:-3])
    q, k, v = (x.expand(*lead, *x.shape[-3:]).reshape(math.prod(lead), *x.shape[-3:])
               for x in (query, key, value))
    batch, hq, lq, lk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    if lk == 0:  # nothing to attend to: every row is fully masked, zeros by convention
        return query.new_zeros((*lead, hq, lq, v.shape[-1]))
    visible, bias = _flex_visibility(torch, attn_mask, (*lead, hq, lq, lk), is_causal,
                                     causal_alignment, window)
    visible, bias = visible.reshape(batch, hq, lq, lk), bias.reshape(batch, hq, lq, lk)

    def score_mod(score, b, h, qi, kj):
        if softcap is not None:
            score = softcap * torch.tanh(score / softcap)
        score = score + bias[b, h, qi, kj].to(score.dtype)
        return torch.where(visible[b, h, qi, kj], score, -torch.inf)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
        out = flex_attention(q, k, v, score_mod=score_mod, scale=scale, enable_gqa=enable_gqa)
    return out.reshape(*lead, hq, lq, v.shape[-1])


def _mask_tensor(torch, mask, dtype, as_float: bool):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype == np.bool_ and as_float:
        mask = np.where(mask, -np.inf, 0.0)
    return torch.from_numpy(mask) if mask.dtype == np.bool_ else torch.tensor(mask, dtype=dtype)


def torch_multi_head_attention(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                               out_proj_weight, out_proj_bias, *, key_padding_mask=None,
                               attn_mask=None, need_weights=True, average_attn_weights=True,
                               batch_first=False):
    """nn.MultiheadAttention with the given packed weights (train mode, dropout 0: no fast path)."""
    import torch

    dtype = {np.float64: torch.float64, np.float32: torch.float32}[np.asarray(query).dtype.type]
    embed = np.shape(in_proj_weight)[1]
    mha = torch.nn.MultiheadAttention(embed, num_heads, batch_first=batch_first, dtype=dtype)
    weights = {"in_proj_weight": in_proj_weight, "in_proj_bias": in_proj_bias,
               "out_proj.weight": out_proj_weight, "out_proj.bias": out_proj_bias}
    with torch.no_grad():
        for name, param in mha.named_parameters():
            given = weights[name]
            param.copy_(torch.zeros_like(param) if given is None else torch.tensor(given))
    mixed = (key_padding_mask is not None and attn_mask is not None
             and (np.asarray(key_padding_mask).dtype == np.bool_)
             != (np.asarray(attn_mask).dtype == np.bool_))
    mha.train()
    with torch.no_grad():
        out, attn = mha(*(torch.tensor(np.asarray(x), dtype=dtype) for x in (query, key, value)),
                        key_padding_mask=_mask_tensor(torch, key_padding_mask, dtype, mixed),
                        need_weights=need_weights,
                        attn_mask=_mask_tensor(torch, attn_mask, dtype, mixed),
                        average_attn_weights=average_attn_weights)
    return out.numpy(), None if attn is None else attn.numpy()


TORCH_MHA = conformance.adapter(
    SimpleNamespace(multi_head_attention=torch_multi_head_attention),
    name="correct-torch-mha", dtypes=("float64", "float32"),
)
