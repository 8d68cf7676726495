"""SDPA mutants whose one bug is in the softmax stage (``Steps.softmax``).

Each buggy stage has the signature of ``_base.masked_softmax``:
``(logits, visible, sink, *, fully_masked, dtype) -> weights``.
"""

from __future__ import annotations

import numpy as np

from ._base import SDPA_FEATURES, normalize, row_max, sdpa_variant

ONLINE_BLOCK = 4  # keys per block: small, so that rows of a few keys already span blocks


def _empty(visible):
    return ~visible.any(axis=-1, keepdims=True)


def _whole_matrix(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Softmax normalized over the whole (Lq, Lk) score matrix instead of each row.

    Source: seed notebooks 000 (cell 9, ``exp_z / np.sum(exp_z)``) and 004
    (``exp_x / exp_x.sum()``).
    """
    hidden = np.where(visible, logits, -np.inf)
    top = hidden.max(axis=(-2, -1), keepdims=True, initial=-np.inf)
    exps = np.exp(hidden - np.where(np.isfinite(top), top, 0.0))
    return normalize(exps, exps.sum(axis=(-2, -1), keepdims=True), _empty(visible), fully_masked)


def _no_max_subtraction(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Softmax without max subtraction: exp overflows on logits above ~709, rows become NaN.

    Source: seed notebook 002 (``np.exp(x) / np.sum(np.exp(x), axis=-1)``).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        exps = np.exp(np.where(visible, logits, -np.inf))
        return normalize(exps, exps.sum(axis=-1, keepdims=True), _empty(visible), fully_masked)


def _plain_softmax(logits):
    exps = np.exp(logits - logits.max(axis=-1, keepdims=True, initial=-np.inf))
    return exps / exps.sum(axis=-1, keepdims=True)


def _fill_tiny_negative(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Hidden scores replaced by -1e-9 (typo for -1e9): hidden keys keep about average weight.

    Source: seed notebook 003 (``masked_fill(no_peak == 0, -1e-9)``).
    """
    return _plain_softmax(np.where(visible, logits, -1e-9))


def _fill_minus_1e4(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Hidden keys get a finite -1e4 bias: they leak when their score beats visible ones by ~1e4.

    Source: BERT-era ``(1.0 - mask) * -10000.0`` in HF transformers, see
    huggingface/transformers#17306 ("Fix -1e4 as attn mask"). Rows with no
    visible key are zeroed separately (as torch's safe softmax does), so only
    huge scores behind the mask show the leak.
    """
    weights = _plain_softmax(logits + np.where(visible, 0.0, -1e4))
    return np.where(_empty(visible), 0.0, weights)


def _additive_minus_1e9(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Additive -1e9 mask bias: a fully masked row attends to every key as if it were unmasked.

    Source: the TF-era additive padding bias ``logits += (1 - mask) * -1e9``;
    no leak elsewhere (1e9 beats any real score), so only fully masked rows
    show it, and they look like neither zeros, NaN nor uniform.
    """
    return _plain_softmax(logits + np.where(visible, 0.0, -1e9))


def _nan_rows(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Fully masked rows come out NaN (-inf - -inf) where zeros are declared (torch's default).

    Source: pytorch/pytorch#41508 and #40932 (MultiheadAttention NaN with an
    all-padding key_padding_mask).
    """
    hidden = np.where(visible, logits, -np.inf)
    with np.errstate(invalid="ignore"):
        exps = np.exp(hidden - hidden.max(axis=-1, keepdims=True, initial=-np.inf))
        return exps / exps.sum(axis=-1, keepdims=True)


def _uniform_rows(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Hidden keys filled with finfo.min: fully masked rows uniform, where zeros are declared.

    Source: common class of bug: a finite fill value is a convention
    (jax.nn.dot_product_attention), but this adapter declares nothing, so it
    is held to torch's zeros.
    """
    return _plain_softmax(np.where(visible, logits, np.finfo(np.float64).min))


def _mask_after_softmax(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Mask applied after the softmax (weights zeroed, not renormalized): rows sum to less than 1.

    Source: common class of bug (multiplying probabilities by a 0/1 mask).
    """
    return _plain_softmax(logits) * visible


def _lowp_running_sum(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Denominator summed key by key in the 16-bit input dtype (float16, bfloat16): long rows drift.

    Source: common class of bug (accumulating in the storage dtype instead of
    float32; flash-attn and the reference accumulate in float32). A bfloat16
    running sum stops growing near 256 when adding terms below 0.5.
    """
    hidden = np.where(visible, logits, -np.inf)
    exps = np.exp(hidden - row_max(hidden, None))
    low = np.dtype(dtype) if np.dtype(dtype).itemsize <= 2 else np.dtype(np.float64)
    denom = np.cumsum(exps.astype(low), axis=-1, dtype=low)[..., -1:].astype(np.float64)
    return normalize(exps, denom, _empty(visible), fully_masked)


def _global_max(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Max subtracted over the whole batch, not per row: rows far below it underflow to 0.

    Source: common class of bug (``x - x.max()`` without ``axis``).
    """
    hidden = np.where(visible, logits, -np.inf)
    finite = hidden[np.isfinite(hidden)]
    exps = np.exp(hidden - (finite.max() if finite.size else 0.0))
    return normalize(exps, exps.sum(axis=-1, keepdims=True), _empty(visible), fully_masked)


def _block_running_max(hidden):
    """Running max after each key's block, per key: (..., Lk)."""
    lk = hidden.shape[-1]
    pad = (-lk) % ONLINE_BLOCK
    blocks = np.pad(hidden, [(0, 0)] * (hidden.ndim - 1) + [(0, pad)], constant_values=-np.inf)
    block_max = blocks.reshape(*hidden.shape[:-1], -1, ONLINE_BLOCK).max(axis=-1)
    running = np.maximum.accumulate(block_max, axis=-1)
    return np.repeat(running, ONLINE_BLOCK, axis=-1)[..., :lk]


def _online_no_rescale(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Online softmax rescales the denominator but not the output accumulator when the max grows.

    Source: common class of bug in flash-attention re-implementations
    (the ``acc *= exp(m_old - m_new)`` line forgotten); exact whenever the
    first block holds the row max.
    """
    hidden = np.where(visible, logits, -np.inf)
    running = _block_running_max(hidden)
    numer = np.exp(hidden - np.where(np.isfinite(running), running, 0.0))
    denom = np.exp(hidden - row_max(hidden, None)).sum(axis=-1, keepdims=True)
    return normalize(numer, denom, _empty(visible), fully_masked)


def _finite_initial_max(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Online softmax running max starts at a finite -5e4: rows of logits far below it are zeroed.

    Source: flashinfer-ai/flashinfer#4267 (``-math::inf`` is the finite 5e4).
    """
    hidden = np.where(visible, logits, -np.inf)
    top = np.maximum(hidden.max(axis=-1, keepdims=True, initial=-np.inf), -5e4)
    exps = np.exp(hidden - top)
    return normalize(exps, exps.sum(axis=-1, keepdims=True), _empty(visible), fully_masked)


def _sink_not_shifted(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Sink enters the denominator as exp(sink), not exp(sink - max): right only when the max is 0.

    Source: common class of bug (gpt-oss / StreamingLLM sinks bolted onto a
    max-subtracted softmax).
    """
    hidden = np.where(visible, logits, -np.inf)
    top = row_max(hidden, sink)
    exps = np.exp(hidden - top)
    denom = exps.sum(axis=-1, keepdims=True)
    if sink is not None:
        denom = denom + np.exp(sink[..., None])
    return normalize(exps, denom, _empty(visible) & (sink is None), fully_masked)


softmax_whole_matrix = sdpa_variant(name="softmax_whole_matrix", softmax=_whole_matrix)
softmax_no_max_subtraction = sdpa_variant(
    name="softmax_no_max_subtraction", softmax=_no_max_subtraction
)
masked_fill_tiny_negative = sdpa_variant(
    name="masked_fill_tiny_negative", softmax=_fill_tiny_negative
)
mask_fill_minus_1e4 = sdpa_variant(name="mask_fill_minus_1e4", softmax=_fill_minus_1e4)
additive_minus_1e9 = sdpa_variant(name="additive_minus_1e9", softmax=_additive_minus_1e9)
fully_masked_nan = sdpa_variant(name="fully_masked_nan", softmax=_nan_rows)
fully_masked_uniform = sdpa_variant(name="fully_masked_uniform", softmax=_uniform_rows)
mask_after_softmax = sdpa_variant(name="mask_after_softmax", softmax=_mask_after_softmax)
lowp_running_sum = sdpa_variant(name="lowp_running_sum", softmax=_lowp_running_sum)
global_max_subtraction = sdpa_variant(name="global_max_subtraction", softmax=_global_max)
online_no_rescale = sdpa_variant(name="online_no_rescale", softmax=_online_no_rescale)
online_finite_initial_max = sdpa_variant(
    name="online_finite_initial_max", softmax=_finite_initial_max
)
sink_not_shifted = sdpa_variant(
    name="sink_not_shifted", features=(*SDPA_FEATURES, "sinks"), softmax=_sink_not_shifted
)
