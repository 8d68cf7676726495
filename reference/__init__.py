"""NumPy reference of every attention variant: the single source of truth.

One variant per module, float64 by default, no torch import. ``VARIANTS`` is
the one explicit registry of public entry points.
"""

from collections.abc import Callable
from typing import Any

from reference.additive import additive_attention
from reference.alibi import alibi_slopes
from reference.blocked import blocked_sdpa
from reference.decode import decode_step
from reference.encoder import encoder_layer
from reference.multi_head import multi_head_attention
from reference.paged import paged_attention
from reference.position_wise import feed_forward
from reference.positional import sinusoidal_positional_encoding
from reference.projected_self_attention import self_attention
from reference.relative_music import relative_attention, relative_attention_naive
from reference.relative_shaw import shaw_relative_attention
from reference.relative_t5 import t5_relative_bias, t5_relative_position_bucket
from reference.rotary import rotary_embedding
from reference.scaled_dot_product import sdpa
from reference.scaled_dot_product_backward import sdpa_backward
from reference.varlen import sdpa_varlen

VARIANTS: dict[str, Callable[..., Any]] = {
    "sdpa": sdpa,
    "sdpa_backward": sdpa_backward,
    "multi_head_attention": multi_head_attention,
    "feed_forward": feed_forward,
    "encoder_layer": encoder_layer,
    "decode_step": decode_step,
    "blocked_sdpa": blocked_sdpa,
    "self_attention": self_attention,
    "additive_attention": additive_attention,
    "sinusoidal_positional_encoding": sinusoidal_positional_encoding,
    "rotary_embedding": rotary_embedding,
    "alibi_slopes": alibi_slopes,
    "shaw_relative_attention": shaw_relative_attention,
    "relative_attention": relative_attention,
    "relative_attention_naive": relative_attention_naive,
    "t5_relative_position_bucket": t5_relative_position_bucket,
    "t5_relative_bias": t5_relative_bias,
    "sdpa_varlen": sdpa_varlen,
    "paged_attention": paged_attention,
}

__all__ = [
    "VARIANTS",
    "additive_attention",
    "alibi_slopes",
    "blocked_sdpa",
    "decode_step",
    "encoder_layer",
    "feed_forward",
    "multi_head_attention",
    "paged_attention",
    "relative_attention",
    "relative_attention_naive",
    "rotary_embedding",
    "sdpa",
    "sdpa_backward",
    "sdpa_varlen",
    "self_attention",
    "shaw_relative_attention",
    "sinusoidal_positional_encoding",
    "t5_relative_bias",
    "t5_relative_position_bucket",
]
