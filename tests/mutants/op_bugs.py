"""Mutants of the non-SDPA ops: op-objects exposing one op of docs/ops.md, wrong in one way."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np

import conformance

from . import _base_ops as ops
from ._base import attend, bug_of


def op_variant(name: str, op: str, fn):
    """An op-object exposing ``op`` = ``fn``; ``fn``'s docstring names the bug."""
    obj = SimpleNamespace(**{op: fn}, bug=bug_of(fn), __doc__=fn.__doc__)
    return conformance.adapter(obj, name=f"mutant-{name}")


# --- sdpa_backward ------------------------------------------------------------


def _backward_no_rowsum(query, key, value, grad_out, attn_mask=None, is_causal=False,
                        scale=None, enable_gqa=False, *, causal_alignment="top_left"):
    """Softmax backward without the rowsum term: dS = P ⊙ dP instead of P ⊙ (dP - rowsum(dP ⊙ P)).

    Source: common class of bug (the softmax Jacobian's diagonal only); dV stays right.
    """
    return ops.sdpa_backward(query, key, value, grad_out, attn_mask, is_causal, scale,
                             enable_gqa, causal_alignment=causal_alignment,
                             delta=lambda grad_p, p: 0.0)


def _backward_gqa_first_head(query, key, value, grad_out, attn_mask=None, is_causal=False,
                             scale=None, enable_gqa=False, *, causal_alignment="top_left"):
    """GQA backward keeps the first query head's dK/dV of each group instead of summing the group.

    Source: common class of bug (the repeat in the forward pass has a sum as its gradient).
    """

    def first_of_group(grad, heads_kv):
        return grad[..., :: grad.shape[-3] // heads_kv, :, :]

    return ops.sdpa_backward(query, key, value, grad_out, attn_mask, is_causal, scale,
                             enable_gqa, causal_alignment=causal_alignment,
                             reduce_groups=first_of_group)


# --- multi_head_attention -------------------------------------------------------

# The op's documented signature (without the base's ``split`` hook): adapters are
# bound by their parameter names, and these mutants pass the keywords on as **options.
MHA_SIGNATURE = inspect.signature(ops.multi_head_attention).replace(parameters=[
    p for p in inspect.signature(ops.multi_head_attention).parameters.values() if p.name != "split"
])


def _mha_signature(fn):
    fn.__signature__ = MHA_SIGNATURE
    return fn



@_mha_signature
def _mha_no_in_bias(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                    out_proj_weight, out_proj_bias, **options):
    """in_proj_bias ignored: Q, K and V are projected without their biases.

    Source: common class of bug (only the out_proj bias wired up).
    """
    return ops.multi_head_attention(query, key, value, num_heads, in_proj_weight, None,
                                    out_proj_weight, out_proj_bias, **options)


def _inverted(mask):
    if mask is None or np.asarray(mask).dtype != np.bool_:
        return mask
    return ~np.asarray(mask)


@_mha_signature
def _mha_sdpa_mask_rule(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                        out_proj_weight, out_proj_bias, *, key_padding_mask=None,
                        attn_mask=None, **options):
    """Bool masks read with SDPA's rule (True = may attend) where MHA's is True = not allowed.

    Source: pytorch/pytorch#120668; rasbt/LLMs-from-scratch#1061.
    """
    return ops.multi_head_attention(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                                    out_proj_weight, out_proj_bias,
                                    key_padding_mask=_inverted(key_padding_mask),
                                    attn_mask=_inverted(attn_mask), **options)


@_mha_signature
def _mha_weights_summed(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                        out_proj_weight, out_proj_bias, *, need_weights=True,
                        average_attn_weights=True, **options):
    """Averaged attention weights summed over heads instead of averaged (H times too large).

    Source: common class of bug (``sum(dim=1)`` for ``mean(dim=1)``).
    """
    out, weights = ops.multi_head_attention(
        query, key, value, num_heads, in_proj_weight, in_proj_bias, out_proj_weight,
        out_proj_bias, need_weights=need_weights, average_attn_weights=False, **options)
    if weights is not None and average_attn_weights:
        weights = weights.sum(axis=-3)
    return out, weights


def _split_no_transpose(x, heads):
    """Heads split by reshape(N, H, L, E/H) without the transpose from (N, L, H, E/H).

    Source: common class of bug (a reshape that has the right shape and mixes positions).
    """
    n, length, embed = x.shape
    return x.reshape(n, heads, length, embed // heads)


@_mha_signature
def _mha_split_no_transpose(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                            out_proj_weight, out_proj_bias, **options):
    return ops.multi_head_attention(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                                    out_proj_weight, out_proj_bias, split=_split_no_transpose,
                                    **options)


_mha_split_no_transpose.__doc__ = _split_no_transpose.__doc__


# --- rotary_embedding -------------------------------------------------------------


def _rope_convention_swapped(x, positions=None, *, base=10000.0, convention="half"):
    """RoPE conventions swapped: 'half' rotates (x[2i], x[2i+1]) and 'interleaved' (x[i], x[i+D/2]).

    Source: common class of bug (GPT-J vs GPT-NeoX/LLaMA-HF checkpoints converted
    without permuting the weights).
    """
    other = {"half": "interleaved", "interleaved": "half"}[convention]
    return ops.rotary_embedding(x, positions, base=base, convention=other)


def _rope_base_ignored(x, positions=None, *, base=10000.0, convention="half"):
    """RoPE base fixed at 10000: a model with another base (e.g. 500000) rotates at the wrong rate.

    Source: common class of bug (hard-coded ``10000 ** (-2i/d)``).
    """
    return ops.rotary_embedding(x, positions, base=10000.0, convention=convention)


def _rope_positions_ignored(x, positions=None, *, base=10000.0, convention="half"):
    """RoPE positions ignored: arange(L) is used, so a decoded token is rotated as position 0.

    Source: NVIDIA/Megatron-LM#453 ("RoPE ignores position IDs"); pytorch/executorch#2010.
    """
    return ops.rotary_embedding(x, None, base=base, convention=convention)


# --- alibi_slopes, relative_attention, additive_attention, decode_step -------------


def _alibi_geometric_for_all(num_heads):
    """ALiBi slopes 2^(-8(i+1)/n) for every n: wrong for non-power-of-2 head counts.

    Source: the paper's code special-cases n != 2^k, see
    ofirpress/attention_with_linear_biases#17; implementations that skip it differ.
    """
    return np.array(ops.geometric_slopes(num_heads))


def _skew_padded_right(rel_logits):
    """Music Transformer skew with the zero column padded on the right: distances off by one.

    Source: common class of bug (pad side of the skew trick, Huang et al. 2018, 3.4.1).
    """
    length = rel_logits.shape[-1]
    padded = np.concatenate([rel_logits, np.zeros((*rel_logits.shape[:-1], 1))], axis=-1)
    return padded.reshape(*rel_logits.shape[:-2], length + 1, length)[..., 1:, :]


def _relative_skew_off_by_one(query, key, value, rel_embeddings):
    return ops.relative_attention(query, key, value, rel_embeddings, skew=_skew_padded_right)


_relative_skew_off_by_one.__doc__ = _skew_padded_right.__doc__


def _additive_mask_ignored(query, keys, values, w_query, w_key, w_score, mask=None):
    """Bahdanau attention that accepts a mask and never applies it.

    Source: common class of bug (``mask`` threaded through the signature only).
    """
    return ops.additive_attention(query, keys, values, w_query, w_key, w_score)


def _decode_top_left(query, key_cache, value_cache, new_key, new_value, scale=None):
    """Decoding with a top-left causal mask: new queries see the cache's first keys, not its end.

    Source: pytorch/pytorch#144858 via karpathy/nanochat#456 (is_causal=True with a
    KV cache); Dao-AILab/flash-attention#282.
    """
    return ops.decode_step(query, key_cache, value_cache, new_key, new_value, scale,
                           alignment="top_left")


def _decode_offset_minus_one(query, key_cache, value_cache, new_key, new_value, scale=None):
    """KV-cache position offset one short: a new query does not see its own key.

    Source: common class of bug (cache length counted after instead of before the append).
    """
    keys = np.concatenate([np.asarray(key_cache), np.asarray(new_key)], axis=-2)
    values = np.concatenate([np.asarray(value_cache), np.asarray(new_value)], axis=-2)
    out = attend(query, keys, values, scale=scale, enable_gqa=np.shape(query)[-3] != keys.shape[-3],
                 causal_alignment="bottom_right", window=(None, -1))
    return out, keys, values


backward_no_rowsum = op_variant("backward_no_rowsum", "sdpa_backward", _backward_no_rowsum)
backward_gqa_first_head = op_variant(
    "backward_gqa_first_head", "sdpa_backward", _backward_gqa_first_head
)
mha_in_proj_bias_ignored = op_variant(
    "mha_in_proj_bias_ignored", "multi_head_attention", _mha_no_in_bias
)
mha_sdpa_mask_rule = op_variant("mha_sdpa_mask_rule", "multi_head_attention", _mha_sdpa_mask_rule)
mha_weights_summed = op_variant("mha_weights_summed", "multi_head_attention", _mha_weights_summed)
mha_split_no_transpose = op_variant(
    "mha_split_no_transpose", "multi_head_attention", _mha_split_no_transpose
)
rope_convention_swapped = op_variant(
    "rope_convention_swapped", "rotary_embedding", _rope_convention_swapped
)
rope_base_ignored = op_variant("rope_base_ignored", "rotary_embedding", _rope_base_ignored)
rope_positions_ignored = op_variant(
    "rope_positions_ignored", "rotary_embedding", _rope_positions_ignored
)
alibi_slopes_non_pow2 = op_variant(
    "alibi_slopes_non_pow2", "alibi_slopes", _alibi_geometric_for_all
)
relative_skew_off_by_one = op_variant(
    "relative_skew_off_by_one", "relative_attention", _relative_skew_off_by_one
)
additive_mask_ignored = op_variant(
    "additive_mask_ignored", "additive_attention", _additive_mask_ignored
)
decode_top_left = op_variant("decode_top_left", "decode_step", _decode_top_left)
decode_offset_minus_one = op_variant(
    "decode_offset_minus_one", "decode_step", _decode_offset_minus_one
)
