"""Transformer encoder layer, post-norm and pre-norm, as ``nn.TransformerEncoderLayer`` (eval).

    post-norm (Vaswani et al. 2017, §3.1):  x ← LN₁(x + MHA(x));  x ← LN₂(x + FFN(x))
    pre-norm  (``norm_first``, Xiong et al. 2020):
                                            x ← x + MHA(LN₁(x));  x ← x + FFN(LN₂(x))
    LN(x) = (x − mean) / √(var + eps) · γ + β    (biased variance over the last dim)

MHA is ``reference.multi_head.multi_head_attention`` (torch mask conventions:
bool True = NOT allowed), FFN is ``reference.feed_forward.feed_forward``.
Eval mode: no dropout.

Weights come as an ``EncoderLayerWeights`` whose fields are the layer's
``state_dict()`` names with ``self_attn.`` dropped and dots made underscores,
in *torch's* (out, in) layout: ``EncoderLayerWeights.from_state_dict(sd)``
takes the NumPy arrays of ``layer.state_dict()``. Any bias, and a norm weight
(no affine), may be None.

Shapes: src (L, N, E), (N, L, E) when ``batch_first``, or unbatched (L, E);
src_mask (L, L) or (N·H, L, L); src_key_padding_mask (N, L) or (L,) → same as src.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from reference._common import check_float_array
from reference.multi_head import multi_head_attention
from reference.position_wise import feed_forward


class EncoderLayerWeights(NamedTuple):
    in_proj_weight: np.ndarray  # (3E, E)
    in_proj_bias: np.ndarray | None  # (3E,)
    out_proj_weight: np.ndarray  # (E, E)
    out_proj_bias: np.ndarray | None  # (E,)
    linear1_weight: np.ndarray  # (F, E)
    linear1_bias: np.ndarray | None  # (F,)
    linear2_weight: np.ndarray  # (E, F)
    linear2_bias: np.ndarray | None  # (E,)
    norm1_weight: np.ndarray | None  # (E,)
    norm1_bias: np.ndarray | None  # (E,)
    norm2_weight: np.ndarray | None  # (E,)
    norm2_bias: np.ndarray | None  # (E,)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> EncoderLayerWeights:
        """From ``{name: array}`` keyed like ``TransformerEncoderLayer.state_dict()``."""
        fields = {k.removeprefix("self_attn.").replace(".", "_"): v for k, v in state.items()}
        return cls._make(fields.get(name) for name in cls._fields)


def layer_norm(
    x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float
) -> np.ndarray:
    """(x − mean) / √(var + eps) · γ + β over the last axis, biased variance."""
    centered = x - x.mean(axis=-1, keepdims=True)
    normed = centered / np.sqrt((centered**2).mean(axis=-1, keepdims=True) + eps)
    normed = normed if gamma is None else normed * gamma
    return normed if beta is None else normed + beta


def encoder_layer(
    src: np.ndarray,
    weights: EncoderLayerWeights,
    num_heads: int,
    *,
    src_mask: np.ndarray | None = None,
    src_key_padding_mask: np.ndarray | None = None,
    norm_first: bool = False,
    activation: str = "relu",
    layer_norm_eps: float = 1e-5,
    batch_first: bool = False,
) -> np.ndarray:
    """One encoder layer in float64, returned in src's dtype."""
    w = EncoderLayerWeights._make(None if a is None else np.asarray(a, np.float64)
                                  for a in weights)
    src = check_float_array("src", src, 2)
    x = src.astype(np.float64)

    def self_attention(y):
        out, _ = multi_head_attention(
            y, y, y, num_heads, w.in_proj_weight, w.in_proj_bias, w.out_proj_weight,
            w.out_proj_bias, key_padding_mask=src_key_padding_mask, attn_mask=src_mask,
            need_weights=False, batch_first=batch_first,
        )
        return out

    def ffn(y):
        return feed_forward(y, w.linear1_weight.T, w.linear1_bias, w.linear2_weight.T,
                            w.linear2_bias, activation)

    def norm1(y):
        return layer_norm(y, w.norm1_weight, w.norm1_bias, layer_norm_eps)

    def norm2(y):
        return layer_norm(y, w.norm2_weight, w.norm2_bias, layer_norm_eps)

    if norm_first:
        x = x + self_attention(norm1(x))
        x = x + ffn(norm2(x))
    else:
        x = norm1(x + self_attention(x))
        x = norm2(x + ffn(x))
    return x.astype(src.dtype)
