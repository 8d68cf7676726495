"""SDPA mutants whose one bug is outside the softmax: a stage, the arguments, or the result.

An argument hook ``before(call) -> call`` gets the bound arguments as a dict
(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa and the
declared extras) and returns what ``_base.attend`` is called with.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from ._base import SDPA_FEATURES, is_float_mask, sdpa_variant

_RNG = np.random.default_rng()  # unseeded on purpose: these bugs are nondeterministic


def _effective_scale(call) -> float:
    if call["scale"] is not None:
        return float(call["scale"])
    return 1.0 / math.sqrt(np.shape(call["query"])[-1])


# --- stages -------------------------------------------------------------------


def _tile_heads(x, heads_q):
    """GQA by tiling the key/value heads (0,1,0,1) instead of repeat_interleave (0,0,1,1).

    Source: onnx/onnx#7274 (ONNX Attention used Tile; torch repeats
    interleaved); apple/axlearn#842.
    """
    return np.concatenate([x] * (heads_q // x.shape[-3]), axis=-3)


def _window_left_off_by_one(lq, lk, offset, left, right):
    """Sliding window drops its leftmost key: j > i' - left instead of j >= i' - left.

    Source: common class of bug (inclusive vs exclusive window bounds; the
    convention is flash-attn's ``window_size``, both ends inclusive).
    """
    visible = np.ones((lq, lk), dtype=bool)
    if right is not None:
        visible &= np.tri(lq, lk, offset + right, dtype=bool)
    if left is not None:
        visible &= ~np.tri(lq, lk, offset - left, dtype=bool)
    return visible


def _alibi_signed(slopes, lq, lk, offset):
    """ALiBi bias slope · (j - i') instead of -slope · abs(i' - j): right only under a causal mask.

    Source: the ALiBi paper's code (ofirpress/attention_with_linear_biases)
    adds slope · j and relies on causal masking plus shift invariance; reused
    for bidirectional attention it rewards distant future keys.
    """
    relative = np.arange(lk)[None, :] - (np.arange(lq)[:, None] + offset)
    return np.asarray(slopes, dtype=np.float64)[:, None, None] * relative


def _cap_after_mask(scores, bias, visible, softcap):
    """Softcap applied after the mask: c · tanh(-inf / c) = -c, so hidden keys get weight.

    Source: Dao-AILab/flash-attention#1025 (review: "softcapping should be done
    before the masking"); emmtrix/emx-onnx-cgen#731.
    """
    logits = np.where(visible, scores + bias, -np.inf)
    if softcap is not None:
        logits = softcap * np.tanh(logits / softcap)
    return logits, np.ones((), dtype=bool)


def _dropout_default_p(weights, dropout_p):
    """Dropout with the module's default p = 0.1 even when dropout_p is 0 (an eval-mode call).

    Source: pytorch/pytorch#124464, huggingface/pytorch-image-models#1978
    (SDPA called with ``dropout_p=self.dropout`` regardless of training).
    """
    p = dropout_p or 0.1
    return weights * (_RNG.random(weights.shape) >= p) / (1.0 - p)


def _dropout_scale_in_eval(weights, dropout_p):
    """Inverted-dropout rescale 1/(1 - 0.1) applied in eval mode, where nothing is dropped.

    Source: common class of bug (hand-written ``attn * keep / (1 - p)`` with an
    all-ones keep-mask at inference); every output grows by 11 %.
    """
    return weights / (1.0 - (dropout_p or 0.1))


def _no_downcast(out, dtype):
    """Output always float64, whatever the input dtype.

    Source: common class of bug (a float64 NumPy buffer or accumulator
    returned as is).
    """
    return out


# --- argument hooks -----------------------------------------------------------


def _no_sqrt(call):
    """No 1/√E scaling by default: scores are Q Kᵀ.

    Source: seed notebook 001 (``alphas = softmax(Q @ K.T)``).
    """
    if call["scale"] is None:
        call["scale"] = 1.0
    return call


def _scale_ignored(call):
    """An explicit ``scale`` is ignored; 1/√E is always used.

    Source: common class of bug (scale added to the signature, never read).
    """
    call["scale"] = None
    return call


def _scale_from_value_dim(call):
    """Default scale 1/√Ev from the value's head dim instead of the query's E.

    Source: common class of bug (E == Ev in most models, so it hides).
    """
    if call["scale"] is None:
        call["scale"] = 1.0 / math.sqrt(np.shape(call["value"])[-1])
    return call


def _scale_from_model_width(call):
    """Default scale 1/√(Hq·E), the model width d_model, instead of the head dim E.

    Source: common class of bug (√d_model where the paper's d_k = d_model / h is
    meant); right for one head, so only heads computed together show it.
    """
    if call["scale"] is None:
        call["scale"] = 1.0 / math.sqrt(np.shape(call["query"])[-3] * np.shape(call["query"])[-1])
    return call


def _scale_from_key_length(call):
    """Default scale 1/√Lk from key.shape[-2] (sequence length) instead of key.shape[-1].

    Source: common class of bug (axis slip in ``1 / sqrt(k.size(-1))``); padding
    the keys changes the scale.
    """
    if call["scale"] is None:
        call["scale"] = 1.0 / math.sqrt(max(np.shape(call["key"])[-2], 1))
    return call


def _decode_path_unscaled(call):
    """Single-query (Lq == 1) fast path forgets the 1/√E scale; the general path is right.

    Source: common class of bug (separate decode kernels / ``q_len == 1``
    special cases, as in split-KV flash-decoding paths).
    """
    if call["scale"] is None and np.shape(call["query"])[-2] == 1:
        call["scale"] = 1.0
    return call


def _bool_inverted(call):
    """Bool attn_mask read as True = masked (nn.MultiheadAttention's rule), not True = may attend.

    Source: pytorch/pytorch#120668 (doc note: the MHA/Transformer masks are the
    opposite of SDPA's), rasbt/LLMs-from-scratch#1061.
    """
    mask = call["attn_mask"]
    if mask is not None and np.asarray(mask).dtype == np.bool_:
        call["attn_mask"] = ~np.asarray(mask)
    return call


def _float_as_bool(call):
    """Float attn_mask cast to bool (nonzero = may attend): 0 hides a key and -inf shows it.

    Source: common class of bug (additive vs multiplicative mask confusion,
    see pytorch/pytorch#21518).
    """
    mask = call["attn_mask"]
    if mask is not None and is_float_mask(np.asarray(mask)):
        call["attn_mask"] = np.asarray(mask).astype(bool)
    return call


def _float_mask_scaled(call):
    """Additive mask added before scaling, (Q Kᵀ + M) · scale, so the bias is scaled too.

    Source: common class of bug (the mask is a bias on the scaled scores).
    """
    mask = call["attn_mask"]
    if mask is not None and is_float_mask(np.asarray(mask)):
        call["attn_mask"] = np.asarray(mask, dtype=np.float64) * _effective_scale(call)
    return call


def _finfo_min_summed(call):
    """Bool and causal masks made finfo(dtype).min biases and summed: fully masked rows not zero.

    Source: NVIDIA-NeMo/Automodel#2658 (two finfo.min planes summed overflow to
    -inf); huggingface/transformers#17306 discussion.
    """
    if not call["is_causal"]:
        return call
    dtype = np.asarray(call["query"]).dtype
    lq, lk = np.shape(call["query"])[-2], np.shape(call["key"])[-2]
    fill = ml_dtypes.finfo(dtype).min
    causal = np.where(np.tril(np.ones((lq, lk), dtype=bool)), 0.0, fill).astype(dtype)
    mask = call["attn_mask"]
    if mask is None:
        mask = np.zeros((), dtype=dtype)
    elif np.asarray(mask).dtype == np.bool_:
        mask = np.where(mask, 0.0, fill).astype(dtype)
    with np.errstate(over="ignore"):
        call["attn_mask"] = np.asarray(mask, dtype=dtype) + causal
    call["is_causal"] = False
    return call


def _bottom_right(call):
    """Causal mask aligned bottom-right (flash-attn >= 2.1) where torch's top-left is the default.

    Source: flash-attention README "2.1: change behavior of causal flag",
    Dao-AILab/flash-attention#517; pytorch/pytorch#108108.
    """
    call["causal_alignment"] = "bottom_right"
    return call


def _alignment_ignored(call):
    """causal_alignment accepted but ignored: always top-left, wrong for bottom_right when Lq != Lk.

    Source: openvinotoolkit/openvino#36680 and pytorch/pytorch#108108 (the two
    alignments confused in KV-cache code).
    """
    call["causal_alignment"] = "top_left"
    return call


def _mask_dropped(call):
    """attn_mask silently dropped when is_causal is also given.

    Source: common class of bug (``mask = causal_mask if is_causal else
    attn_mask``); torch refuses the combination, other libraries accept it.
    """
    if call["is_causal"]:
        call["attn_mask"] = None
    return call


def _padding_right(call):
    """Bool mask reduced to a per-row length (True count) and rebuilt as right padding.

    Source: common class of bug in varlen/unpadding code paths that assume
    right padding (left-padded batches for generation break them).
    """
    mask = call["attn_mask"]
    if mask is not None and np.asarray(mask).dtype == np.bool_:
        lengths = np.asarray(mask).sum(axis=-1, keepdims=True)
        call["attn_mask"] = np.arange(np.shape(mask)[-1]) < lengths
    return call


def _query_scaled_in_place(call):
    """Query scaled in place (``q *= scale``): the output is right, the caller's query is changed.

    Source: common class of bug (in-place ``mul_`` on an input to save memory).
    """
    query = call["query"]
    scale = _effective_scale(call)
    if isinstance(query, np.ndarray) and query.flags.writeable:
        query *= scale
        call["scale"] = 1.0
    return call


def _last_bit_noise(out, call):
    """Nondeterministic: the last bit of about half the nonzero outputs flips from call to call.

    Source: common class of bug (atomic-add reductions in split-K kernels;
    torch lists nondeterministic attention backward in its reproducibility notes).
    """
    bits = out.view(np.dtype(f"u{out.dtype.itemsize}"))
    nonzero = (np.asarray(out, np.float64) != 0) & np.isfinite(np.asarray(out, np.float64))
    flip = (_RNG.integers(0, 2, size=out.shape) * nonzero).astype(bits.dtype)
    return (bits ^ flip).view(out.dtype)


_MASK_WITH_CAUSAL = (*SDPA_FEATURES, "mask_with_causal")

gqa_tile = sdpa_variant(name="gqa_tile", expand_kv=_tile_heads)
window_left_off_by_one = sdpa_variant(
    name="window_left_off_by_one", features=(*SDPA_FEATURES, "window"),
    band=_window_left_off_by_one,
)
alibi_signed_distance = sdpa_variant(
    name="alibi_signed_distance", features=(*SDPA_FEATURES, "alibi"), alibi=_alibi_signed
)
softcap_after_mask = sdpa_variant(
    name="softcap_after_mask", features=(*SDPA_FEATURES, "softcap"), logits=_cap_after_mask
)
dropout_when_p_zero = sdpa_variant(name="dropout_when_p_zero", dropout=_dropout_default_p)
dropout_scale_in_eval = sdpa_variant(name="dropout_scale_in_eval", dropout=_dropout_scale_in_eval)
output_always_float64 = sdpa_variant(name="output_always_float64", cast=_no_downcast)
no_sqrt_scaling = sdpa_variant(name="no_sqrt_scaling", before=_no_sqrt)
explicit_scale_ignored = sdpa_variant(name="explicit_scale_ignored", before=_scale_ignored)
scale_from_value_dim = sdpa_variant(name="scale_from_value_dim", before=_scale_from_value_dim)
scale_from_model_width = sdpa_variant(name="scale_from_model_width",
                                      before=_scale_from_model_width)
scale_from_key_length = sdpa_variant(name="scale_from_key_length", before=_scale_from_key_length)
decode_path_unscaled = sdpa_variant(name="decode_path_unscaled", before=_decode_path_unscaled)
bool_mask_inverted = sdpa_variant(name="bool_mask_inverted", before=_bool_inverted)
float_mask_as_bool = sdpa_variant(name="float_mask_as_bool", before=_float_as_bool)
float_mask_scaled = sdpa_variant(name="float_mask_scaled", before=_float_mask_scaled)
finfo_min_masks_summed = sdpa_variant(
    name="finfo_min_masks_summed", features=_MASK_WITH_CAUSAL, before=_finfo_min_summed
)
causal_bottom_right = sdpa_variant(name="causal_bottom_right", before=_bottom_right)
causal_alignment_ignored = sdpa_variant(
    name="causal_alignment_ignored", features=(*SDPA_FEATURES, "bottom_right"),
    before=_alignment_ignored,
)
mask_dropped_with_causal = sdpa_variant(
    name="mask_dropped_with_causal", features=_MASK_WITH_CAUSAL, before=_mask_dropped
)
padding_assumed_right = sdpa_variant(name="padding_assumed_right", before=_padding_right)
query_scaled_in_place = sdpa_variant(name="query_scaled_in_place", before=_query_scaled_in_place)
nondeterministic_last_bit = sdpa_variant(name="nondeterministic_last_bit", after=_last_bit_noise)
