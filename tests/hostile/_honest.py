"""The part of every hostile adapter that works: a plain, correct NumPy SDPA.

``sdpa_with(hook)`` gives an adapter with torch's signature that is honest
everywhere except on the *trigger* cases (Lq = 7, Lk = 5, float64: three
cases of the quick profile's numeric matrix), where ``hook(honest, query,
key, value)`` decides what happens; ``honest()`` computes the right answer.
Written independently of ``reference`` so that no entry borrows the
expectation it is checked against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TRIGGER_ID = "-q7-k5-e16-float64]"  # the case ids the trigger selects


def triggered(query, key) -> bool:
    return query.shape[-2] == 7 and key.shape[-2] == 5 and query.dtype == np.float64


def honest_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                enable_gqa=False):
    """softmax(scale · Q Kᵀ + mask) V in float64, torch's conventions, query's dtype out."""
    if dropout_p:
        raise NotImplementedError("dropout_p > 0 is not implemented")
    q, k, v = (np.asarray(x, np.float64) for x in (query, key, value))
    if enable_gqa:
        k, v = (np.repeat(x, q.shape[-3] // x.shape[-3], axis=-3) for x in (k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ np.swapaxes(k, -1, -2)) * scale
    visible = np.ones(scores.shape[-2:], bool)
    if is_causal:
        visible = np.tril(visible)
    if attn_mask is not None and attn_mask.dtype == bool:
        visible = visible & attn_mask
    elif attn_mask is not None:
        scores = scores + np.asarray(attn_mask, np.float64)
    scores = np.where(visible, scores, -np.inf)
    peak = scores.max(axis=-1, keepdims=True, initial=-np.inf)  # Lk = 0 too
    weights = np.exp(scores - np.where(np.isfinite(peak), peak, 0.0))
    total = weights.sum(axis=-1, keepdims=True)
    out = np.where(total > 0, (weights @ v) / np.where(total > 0, total, 1.0), 0.0)
    return out.astype(query.dtype)


Hook = Callable[..., object]


def sdpa_with(hook: Hook, *, always: bool = False):
    """An adapter honest except on the trigger cases (or on every call: ``always``)."""

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False):
        def honest():
            return honest_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale,
                               enable_gqa)

        if always or triggered(query, key):
            return hook(honest, query, key, value)
        return honest()

    return sdpa
