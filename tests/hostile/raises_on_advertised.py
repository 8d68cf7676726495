"""Advertises masks, causality and every float dtype (torch's signature), but a dependency
raises NotImplementedError for all but tiny, unmasked, non-causal float64 calls: a verdict
must say what was never exercised, and ``--require`` must fail the run on it."""

from __future__ import annotations

import numpy as np

from hostile._honest import honest_sdpa

TINY = 16  # the longest query or key length the "dependency" supports


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False):
    """Honest where supported; NotImplementedError (as from a dependency) everywhere else."""
    if attn_mask is not None or is_causal:
        raise NotImplementedError("kernel_lib: masks and causal attention are not implemented")
    if query.dtype != np.float64:
        raise NotImplementedError(f"kernel_lib: dtype {query.dtype} is not implemented")
    if max(query.shape[-2], key.shape[-2]) > TINY:
        raise NotImplementedError(f"kernel_lib: lengths above {TINY} are not implemented")
    return honest_sdpa(query, key, value, None, dropout_p, False, scale, enable_gqa)
