"""Mutants grown from real bug reports in kernels: tiles, memory layout, head dims, 16-bit, dropout.

Each is ``_base.attend`` with one change, modelled on a bug reported in a real
attention kernel's tracker (docs/real-bugs.md); the docstring's ``Source:``
names the thread as ``owner/repo#number``. A tiled kernel is modelled by its
tile size only: the one change is what it does at the tile's edge.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import conformance

from ._base import (
    SDPA_FEATURES,
    STEPS,
    _signature,
    attend,
    bug_of,
    masked_softmax,
    normalize,
    row_max,
    sdpa_variant,
)

_RNG = np.random.default_rng()  # unseeded on purpose: dropout draws a fresh keep-mask per call


def _empty(visible):
    return ~visible.any(axis=-1, keepdims=True)


# --- tile edges ---------------------------------------------------------------


def _padded_tile_counted(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Non-causal path skips the key-boundary mask: the last 256-key tile's padding slots count.

    Each padding slot has zero key and value, so logit 0: the denominator gains
    (-Lk mod 256) · exp(-max). Source: flashinfer-ai/flashinfer#3716 ([Bug] CuteDSL paged
    decode with is_causal=False uses padding KV lanes); also pytorch/pytorch#160861.
    """
    hidden = np.where(visible, logits, -np.inf)
    top = row_max(hidden, sink)
    exps = np.exp(hidden - top)
    padding = (-logits.shape[-1]) % 256
    denom = exps.sum(axis=-1, keepdims=True) + padding * np.exp(-top)
    if sink is not None:
        denom = denom + np.exp(sink[..., None] - top)
    empty = _empty(visible) & (sink is None)
    return normalize(exps, denom, empty, fully_masked)


def _first_tile_hidden_nan(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Online softmax over 64-key tiles, running max initialised to -inf with no guard.

    A row whose first tile has no visible key computes exp(-inf - -inf) = NaN, which
    poisons the rest of the row; rows with no visible key at all are zeroed
    separately. Source: ggml-org/llama.cpp#6438 (FlashAttention CUDA fixes); the same
    symptom with a finfo.min tile: pytorch/pytorch#109517.
    """
    weights = masked_softmax(logits, visible, sink, fully_masked=fully_masked)
    first_tile_hidden = ~visible[..., :64].any(axis=-1, keepdims=True)
    return np.where(first_tile_hidden & ~_empty(visible), np.nan, weights)


def _tail_key_stale_at_32n_plus_1(call):
    """At Lk = 32n + 1 (n >= 1) the last 32-key tile's lone key reads the previous key's value.

    Source: pytorch/pytorch#191937 (SDPA EFFICIENT_ATTENTION returns wrong output for
    broadcasted (stride-0) k/v when kv length % 32 == 1). Mechanism not in the thread:
    this is the simplest change with its trigger, a one-key last tile.
    """
    value = np.asarray(call["value"])
    if value.shape[-2] > 32 and value.shape[-2] % 32 == 1:
        value = value.copy()
        value[..., -1, :] = value[..., -2, :]
        call["value"] = value
    return call


# --- memory layout --------------------------------------------------------------


def _as_contiguous_memory(x):
    """The elements of ``x`` in memory order, reshaped to ``x``'s shape: its strides ignored."""
    x = np.asarray(x)
    return np.ravel(x, order="K").reshape(x.shape)


def _qkv_strides_ignored(call):
    """query, key and value read as contiguous (B, H, L, D) whatever their strides.

    A (B, L, H, D) tensor viewed as (B, H, L, D) is read in its memory order. Source:
    pytorch/pytorch#181133 ([MPS] scaled_dot_product_attention returns wrong values for
    non-contiguous (permute-produced) q/k/v); also pytorch/pytorch#163597.
    """
    for name in ("query", "key", "value"):
        call[name] = _as_contiguous_memory(call[name])
    return call


def _value_strides_ignored(call):
    """value alone read as contiguous whatever its strides (query and key are right).

    Source: flagos-ai/FlagGems#5896 (flash attention returns wrong output for
    non-contiguous value tensors).
    """
    call["value"] = _as_contiguous_memory(call["value"])
    return call


# --- head dims -----------------------------------------------------------------


def _scores_first_64_dims(q, k, scale):
    """Scores from the first 64 head dims only (BLOCK_DMODEL = 64 hard-coded): wrong for E > 64.

    Source: triton-lang/triton#621 (FlashAttention implementation gives wrong output when
    head dim != 64); also AMD-Ecosystem/flashinfer#83 (head_dim > 64).
    """
    return (q[..., :64] @ np.swapaxes(k[..., :64], -1, -2)) * scale


def _value_rows_at_key_dim(call):
    """Value rows read at the key's head-dim stride E instead of Ev (zeros past the end).

    Source: flashinfer-ai/flashinfer#4976 ([Bug] fa2 prefill with an fp8 KV cache is wrong
    for head_dim_qk=192 / head_dim_vo=128). Mechanism not in the thread: wrong for every
    row exactly when E != Ev, as reported.
    """
    value = np.asarray(call["value"])
    lk, ev = value.shape[-2:]
    e = np.shape(call["query"])[-1]
    if e != ev:
        flat = value.reshape(*value.shape[:-2], lk * ev)
        flat = np.concatenate([flat, np.zeros((*flat.shape[:-1], lk * e), value.dtype)], -1)
        starts = np.arange(lk)[:, None] * e + np.arange(ev)[None, :]
        call["value"] = flat[..., starts]
    return call


# --- 16-bit overflow ------------------------------------------------------------


def _product_then_scale(dtype):
    def scores(q, k, scale):
        """Q·Kᵀ formed in the 16-bit input dtype, then scaled: q·k beyond ±65504 overflows to ±inf.

        Source: PaddlePaddle/Paddle#41933 (fix inf in fused_attention: scale after the
        fp16 GEMM); ultralytics/ultralytics#24990 (pre-scale the query to prevent fp16
        overflow). The fix scales Q first.
        """
        raw = q @ np.swapaxes(k, -1, -2)
        if np.dtype(dtype) == np.float16:
            limit = float(np.finfo(np.float16).max)
            raw = np.where(np.abs(raw) > limit, np.sign(raw) * np.inf, raw)
        return raw * scale
    return scores


def dtype_bound_variant(*, name: str, stage: str, make_stage, features=SDPA_FEATURES):
    """An SDPA adapter that is ``attend`` with one stage replaced by ``make_stage(query dtype)``.

    For a bug that depends on the storage dtype, which ``_base``'s float64 stages do not
    see; the stage's docstring becomes the adapter's.
    """
    signature = _signature([])
    doc = make_stage(np.float64).__doc__

    def sdpa(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        steps = replace(STEPS, **{stage: make_stage(np.asarray(call["query"]).dtype)})
        return attend(**call, steps=steps)

    sdpa.__signature__ = signature
    sdpa.__name__ = sdpa.__qualname__ = name
    sdpa.__doc__ = doc
    sdpa.bug = bug_of(sdpa)
    return conformance.adapter(sdpa, name=f"mutant-{name}", features=features)


# --- dropout ----------------------------------------------------------------------


def _dropout_rescaled_by_p(weights, dropout_p):
    """Dropout keeps each weight with probability 1 - p but rescales kept ones by 1/p, not 1/(1-p).

    Source: NVIDIA/apex#816 (fix dropout scaling from p to 1/(1-p) in multihead attention,
    backward pass); the 1/p reading: rasbt/LLMs-from-scratch#431. Right only at p = 0.5.
    """
    if dropout_p == 0.0:
        return weights
    return weights * (_RNG.random(weights.shape) >= dropout_p) / dropout_p


padded_tile_keys_counted = sdpa_variant(
    name="padded_tile_keys_counted", softmax=_padded_tile_counted)
first_tile_hidden_nan = sdpa_variant(name="first_tile_hidden_nan", softmax=_first_tile_hidden_nan)
tail_key_stale_at_32n_plus_1 = sdpa_variant(
    name="tail_key_stale_at_32n_plus_1", before=_tail_key_stale_at_32n_plus_1)
qkv_strides_ignored = sdpa_variant(name="qkv_strides_ignored", before=_qkv_strides_ignored)
value_strides_ignored = sdpa_variant(name="value_strides_ignored", before=_value_strides_ignored)
scores_first_64_dims = sdpa_variant(name="scores_first_64_dims", scores=_scores_first_64_dims)
value_rows_at_key_dim = sdpa_variant(name="value_rows_at_key_dim", before=_value_rows_at_key_dim)
qk_product_overflows_fp16 = dtype_bound_variant(
    name="qk_product_overflows_fp16", stage="scores", make_stage=_product_then_scale)
dropout_rescaled_by_p = sdpa_variant(
    name="dropout_rescaled_by_p", features=(*SDPA_FEATURES, "dropout"),
    dropout=_dropout_rescaled_by_p)
