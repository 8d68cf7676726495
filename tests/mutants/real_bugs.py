"""Mutants grown from real bug reports: masks, causality, windows, GQA and ALiBi slopes.

Each is ``_base.attend`` (or ``_base_ops``) with one change, modelled on a bug
reported in a real attention implementation's tracker (docs/real-bugs.md lists
them); the docstring's ``Source:`` names the thread as ``owner/repo#number``.
Where the thread shows the symptom but not the mechanism, the docstring says
so and the change is the simplest one that gives the reported symptom.
"""

from __future__ import annotations

import math

import numpy as np

from ._base import SDPA_FEATURES, is_float_mask, sdpa_variant
from .op_bugs import op_variant

_MASK_WITH_CAUSAL = (*SDPA_FEATURES, "mask_with_causal")
_WINDOW = (*SDPA_FEATURES, "window")
_DECODE_WINDOW = (*_WINDOW, "bottom_right")  # a KV-cache decode kernel aligns bottom-right


def _mask_of(call):
    return None if call["attn_mask"] is None else np.asarray(call["attn_mask"])


def _lengths(call) -> tuple[int, int]:
    return np.shape(call["query"])[-2], np.shape(call["key"])[-2]


# --- causality ----------------------------------------------------------------


def _causal_only_with_mask(call):
    """is_causal is applied only inside the mask branch: with attn_mask=None no causal masking.

    Source: facebookresearch/xformers#103 ([bug] Causal mask is skipped if no att_mask is
    passed); same symptom: huggingface/transformers#48770 (Doge attends to future tokens).
    """
    if call["attn_mask"] is None:
        call["is_causal"] = False
    return call


def _keys_cut_to_query_length(call):
    """Key/value length taken from the query's: only the first Lq keys are read when Lk > Lq.

    Source: NVIDIA/TransformerEngine#399 (Fix flash_attn when seqlen_q is not equal to
    seqlen_k; the KV-cache step with Lq = 1). Mechanism not in the thread: the key
    offsets are built from the query lengths.
    """
    lq, lk = _lengths(call)
    if lk > lq:
        call["key"] = np.asarray(call["key"])[..., :lq, :]
        call["value"] = np.asarray(call["value"])[..., :lq, :]
    return call


def _causal_rows_from_mask_shape(call):
    """With is_causal and attn_mask, the triangle's query length is read from the mask's shape.

    A mask broadcasting over the query axis ((..., 1, Lk)) gives a 1 × Lk triangle: every
    query sees key 0 only. Source: onnx/onnx@v1.23.2, onnx/reference/ops/op_attention.py
    ``_apply_causal`` (``q_sequence_length, kv_sequence_length = base.shape[-2:]``); found
    by issue 16 of this project, no upstream report.
    """
    mask = _mask_of(call)
    if call["is_causal"] and mask is not None and mask.ndim >= 2:
        rows, lk = mask.shape[-2], np.shape(call["key"])[-2]
        tri = np.tri(rows, lk, 0, dtype=bool)
        if mask.dtype == np.bool_:
            call["attn_mask"] = mask & tri
        else:
            call["attn_mask"] = np.where(tri, np.asarray(mask, np.float64), -np.inf)
        call["is_causal"] = False
    return call


# --- mask semantics -----------------------------------------------------------


def _float_nonzero_masked(call):
    """Float attn_mask made bool with nonzero = masked: a finite bias hides its key.

    Source: pytorch/pytorch#107084 ([regression] nn.MultiheadAttention does not respect
    adding of floating point mask to attention for the fast path). 0/-inf masks still work.
    """
    mask = _mask_of(call)
    if mask is not None and is_float_mask(mask):
        call["attn_mask"] = np.asarray(mask, np.float64) == 0.0
    return call


def _bool_added_as_bias(call):
    """Bool attn_mask converted to a 0/1 float and added to the scores instead of selecting -inf.

    Source: openvinotoolkit/openvino#31704 (Fix bool type of attention mask decomposition
    issue in ScaledDotProductAttentionDecomposition; report openvinotoolkit/openvino#31630).
    """
    mask = _mask_of(call)
    if mask is not None and mask.dtype == np.bool_:
        call["attn_mask"] = mask.astype(np.float64)
    return call


def _float_read_as_keep_flags(call):
    """Additive float mask read as 1 = keep / 0 = drop flags: the bias becomes (1 - mask) · -1e9.

    Source: harvard-edge/cs249r_book#1785 (fix GPT causal mask convention: an additive mask
    passed to a routine that expects keep flags). 0/-inf masks shift every visible logit
    by the same -1e9 and hide the same keys, so only finite biases show it.
    """
    mask = _mask_of(call)
    if mask is not None and is_float_mask(mask):
        with np.errstate(invalid="ignore"):
            call["attn_mask"] = (1.0 - np.asarray(mask, np.float64)) * -1e9
    return call


def _hidden_scores_zeroed(scores, bias, visible, softcap):
    """Hidden keys' scores multiplied by 0 (logit 0, still in the softmax) instead of set to -inf.

    Source: openxla/xla#11444 ([XLA:GPU] disable mask in cuDNN attention: the mask was
    applied by multiplying the scores).
    """
    if softcap is not None:
        scores = softcap * np.tanh(scores / softcap)
    return np.where(visible, scores, 0.0) + bias, np.ones((), dtype=bool)


def _padding_broadcast_over_queries(call):
    """A key-padding mask (..., 1, Lk) is applied as (..., Lk, 1): it pads queries, not keys.

    Source: lsdefine/attention-is-all-you-need-keras#16 (Issue with attention mask: the
    padding mask broadcast along the query axis). Self-attention only (Lq = Lk), as there.
    """
    mask = _mask_of(call)
    lq, lk = _lengths(call)
    if mask is not None and mask.ndim >= 2 and mask.shape[-2] == 1 and lq == lk > 1:
        call["attn_mask"] = np.swapaxes(mask, -1, -2)
    return call


def _padding_from_first_sample(call):
    """A per-sample key-padding mask (B, 1, 1, Lk) is read from sample 0 for the whole batch.

    Source: Tencent-Hunyuan/HunyuanVideo#310 (Fix vanilla and torch attention cu_seqlens
    handling: the sequence split at cu_seqlens[1] is right for batch 1 only); the same
    symptom, per-sample key lengths ignored: jax-ml/jax#23349.
    """
    mask = _mask_of(call)
    if (mask is not None and mask.ndim == np.ndim(call["query"]) and mask.shape[0] > 1
            and mask.shape[-2] == 1 and mask.shape[-3] == 1):
        call["attn_mask"] = mask[:1]
    return call


def _mask_3d_heads_as_batch(call):
    """A 3-D mask (H, Lq, Lk) with a 4-D query is taken as (B, Lq, Lk): mask[:, None].

    Source: openvinotoolkit/openvino#21217 ([CPU] Fix ScaledDotProductAttension accuracy
    problem: the mask assumed (B, 1, Lq, Lk), other broadcast forms indexed wrongly).
    """
    mask = _mask_of(call)
    if mask is not None and mask.ndim == 3 and np.ndim(call["query"]) == 4:
        call["attn_mask"] = mask[:, None]
    return call


def _mask_read_to_512(call):
    """Mask entries at key index >= 512 are ignored (treated as visible, bias 0).

    Source: vllm-project/vllm-ascend#15503 (npu_fused_infer_attention_score silently
    ignores atten_mask past KV position 512).
    """
    mask = _mask_of(call)
    if mask is not None and mask.shape[-1] > 512:
        mask = mask.copy()
        mask[..., 512:] = True if mask.dtype == np.bool_ else 0
        call["attn_mask"] = mask
    return call


# --- sliding window -----------------------------------------------------------


def _window_only_with_mask(call):
    """The sliding window is applied only inside the mask branch: with attn_mask=None it is dropped.

    Source: jax-ml/jax#32300 (jax.nn.dot_product_attention ignores local_window_size when
    mask is not present).
    """
    if call["attn_mask"] is None:
        call["window"] = None
    return call


def _window_left_one_wide(lq, lk, offset, left, right):
    """Sliding window keeps one key too many on the left: j >= i' - left - 1 (W + 1 keys).

    Source: huggingface/transformers#39408 (Off-by-one error when using flash_attention with
    a sliding window); also zml/zml#763, NVIDIA-NeMo/Megatron-Bridge#2656.
    """
    visible = np.ones((lq, lk), dtype=bool)
    if right is not None:
        visible &= np.tri(lq, lk, offset + right, dtype=bool)
    if left is not None:
        visible &= ~np.tri(lq, lk, offset - left - 2, dtype=bool)
    return visible


def _window_right_exclusive(lq, lk, offset, left, right):
    """Sliding window's right bound exclusive for right > 0: j - i' < right instead of <= right.

    Source: huggingface/transformers#47010 (Fix off-by-one in sliding_window_mask_function
    right window boundary).
    """
    visible = np.ones((lq, lk), dtype=bool)
    if right is not None:
        visible &= np.tri(lq, lk, offset + right - (right > 0), dtype=bool)
    if left is not None:
        visible &= ~np.tri(lq, lk, offset - left - 1, dtype=bool)
    return visible


def _window_dropped_in_decode(call):
    """The single-query decode path (Lq = 1) ignores the sliding window: the whole cache is seen.

    Source: EricLBuehler/mistral.rs#2094 (Gemma 4: PagedAttention paged decode kernel ignores
    sliding window constraint).
    """
    if np.shape(call["query"])[-2] == 1:
        call["window"] = None
    return call


def _window_decode_one_short(call):
    """The decode path (Lq = 1) clamps to window_left keys before the query: one key too few.

    Source: lightseekorg/tokenspeed#578 (fix(attention): treat window_left as exclusive;
    prefill was right).
    """
    window = call["window"]
    if np.shape(call["query"])[-2] == 1 and window is not None and window[0]:
        call["window"] = (window[0] - 1, window[1])
    return call


# --- grouped-query attention ----------------------------------------------------


def _repeat_on_sequence_axis(x, heads_q):
    """GQA repeat applied to the sequence axis, then reshaped to heads: (Hk, g·Lk) read as (Hq, Lk).

    Source: ByteDance-Seed/VeOmni#162 (fix: repeat kv bug in flash attention forward with
    ulysses: repeat_kv for (B, H, L, D) applied to a (B, L, H, D) tensor). Wrong for MQA too.
    """
    repeated = np.repeat(x, heads_q // x.shape[-3], axis=-2)
    return repeated.reshape(*x.shape[:-3], heads_q, x.shape[-2], x.shape[-1])


def _group_rounded_to_pow2(x, heads_q):
    """GQA group size rounded up to a power of 2: head h reads kv head h // 2^ceil(log2 g).

    Source: flashinfer-ai/flashinfer#1148 (fix precision errors when applying causal mask on
    Qwen-2.5 series models: group size 7). Mechanism simplified: the thread's head remap
    depends on the tile partition; right for every power-of-2 ratio.
    """
    group = heads_q // x.shape[-3]
    index = np.arange(heads_q) // 2 ** math.ceil(math.log2(group))
    return np.take(x, index, axis=-3)


# --- ALiBi slopes (op) ----------------------------------------------------------


def _alibi_exponent_from_zero(num_heads):
    """ALiBi slopes 2^(-8h/n) instead of 2^(-8(h+1)/n): head 0 gets slope 1 (``_base_ops``).

    Source: paiml/aprender#2143 (fix(serve): ALiBi head slopes off-by-one in exponent).
    """
    def geometric(n):
        return [2.0 ** (-8.0 * i / n) for i in range(n)]
    if math.log2(num_heads).is_integer():
        return np.array(geometric(num_heads))
    closest = 2 ** math.floor(math.log2(num_heads))
    extra = geometric(2 * closest)[0::2][: num_heads - closest]
    return np.array(geometric(closest) + extra)


causal_dropped_without_mask = sdpa_variant(
    name="causal_dropped_without_mask", before=_causal_only_with_mask)
keys_cut_to_query_length = sdpa_variant(
    name="keys_cut_to_query_length", before=_keys_cut_to_query_length)
causal_rows_from_mask_shape = sdpa_variant(
    name="causal_rows_from_mask_shape", features=_MASK_WITH_CAUSAL,
    before=_causal_rows_from_mask_shape)
float_bias_nonzero_masked = sdpa_variant(
    name="float_bias_nonzero_masked", before=_float_nonzero_masked)
bool_mask_added_as_bias = sdpa_variant(name="bool_mask_added_as_bias", before=_bool_added_as_bias)
float_mask_read_as_keep_flags = sdpa_variant(
    name="float_mask_read_as_keep_flags", before=_float_read_as_keep_flags)
hidden_scores_zeroed = sdpa_variant(name="hidden_scores_zeroed", logits=_hidden_scores_zeroed)
padding_broadcast_over_queries = sdpa_variant(
    name="padding_broadcast_over_queries", before=_padding_broadcast_over_queries)
padding_from_first_sample = sdpa_variant(
    name="padding_from_first_sample", before=_padding_from_first_sample)
mask_3d_heads_as_batch = sdpa_variant(name="mask_3d_heads_as_batch", before=_mask_3d_heads_as_batch)
mask_read_to_512 = sdpa_variant(name="mask_read_to_512", before=_mask_read_to_512)
window_dropped_without_mask = sdpa_variant(
    name="window_dropped_without_mask", features=_WINDOW, before=_window_only_with_mask)
window_left_one_wide = sdpa_variant(
    name="window_left_one_wide", features=_WINDOW, band=_window_left_one_wide)
window_right_exclusive = sdpa_variant(
    name="window_right_exclusive", features=_WINDOW, band=_window_right_exclusive)
window_dropped_in_decode = sdpa_variant(
    name="window_dropped_in_decode", features=_DECODE_WINDOW, before=_window_dropped_in_decode)
window_decode_one_short = sdpa_variant(
    name="window_decode_one_short", features=_DECODE_WINDOW, before=_window_decode_one_short)
gqa_repeat_on_sequence_axis = sdpa_variant(
    name="gqa_repeat_on_sequence_axis", expand_kv=_repeat_on_sequence_axis)
gqa_group_rounded_to_pow2 = sdpa_variant(
    name="gqa_group_rounded_to_pow2", expand_kv=_group_rounded_to_pow2)
alibi_exponent_from_zero = op_variant(
    "alibi_exponent_from_zero", "alibi_slopes", _alibi_exponent_from_zero)
