"""A correct NumPy SDPA with dropout: inverted dropout on the softmax weights, as torch does.

Each weight is kept with probability 1 − p and kept weights are scaled by
1/(1 − p), so the expected output equals the undropped one; the keep-mask is
drawn afresh on every call from an unseeded generator (a training kernel's
behaviour; the kit cannot seed it and says so).
"""

from __future__ import annotations

import math

import numpy as np

import conformance

from ._visibility import to_float, visibility
from .numpy_sdpa import BASIC

_RNG = np.random.default_rng()  # unseeded on purpose: a fresh keep-mask per call


def keep_and_rescale(weights: np.ndarray, dropout_p: float) -> np.ndarray:
    """weights ⊙ keep / (1 − p), keep ~ Bernoulli(1 − p) per entry; p = 1 drops everything."""
    if dropout_p == 0.0:
        return weights
    if dropout_p >= 1.0:
        return np.zeros_like(weights)
    return weights * (_RNG.random(weights.shape) >= dropout_p) / (1.0 - dropout_p)


@conformance.adapter(name="correct-dropout-float64", dtypes=("float64", "float32"),
                     features=(*BASIC, "dropout"))
def dropout_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                 enable_gqa=False):
    """float64 softmax(scale · Q Kᵀ + bias) with inverted dropout on the weights, then · V."""
    q, k, v = (to_float(x) for x in (query, key, value))
    hq, lq, e = q.shape[-3:]
    hk, lk = k.shape[-3], k.shape[-2]
    if hq != hk:
        if not enable_gqa:
            raise ValueError(f"{hq} query heads vs {hk} key heads without enable_gqa")
        k, v = np.repeat(k, hq // hk, axis=-3), np.repeat(v, hq // hk, axis=-3)
    s = (q @ np.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(e) if scale is None else float(scale))
    visible, bias = visibility(attn_mask, lq, lk, is_causal=is_causal)
    logits = np.where(visible, s + bias, -np.inf)
    top = logits.max(axis=-1, keepdims=True, initial=-np.inf)
    p = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
    denom = p.sum(axis=-1, keepdims=True)
    weights = keep_and_rescale(p / np.where(denom > 0, denom, 1.0), dropout_p)
    return (weights @ v).astype(np.asarray(query).dtype)
