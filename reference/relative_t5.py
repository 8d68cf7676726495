"""T5 bucketed relative position bias.

    d = j − i (key position minus query position)
    bidirectional: n = num_buckets/2, offset = n if d > 0 else 0, a = |d|
    causal:        n = num_buckets,   offset = 0,                a = max(−d, 0)
    bucket = offset + a                                          if a < n/2 (exact)
           = offset + min(n/2 + ⌊log(a / (n/2)) / log(max_distance / (n/2)) · (n − n/2)⌋, n − 1)
    bias[h, i, j] = bias_table[bucket(j − i), h]

Source: Raffel et al. 2020, "Exploring the limits of transfer learning with a
unified text-to-text transformer" (JMLR), §2.1, as implemented by
``_relative_position_bucket`` in mesh-tensorflow's ``transformer_layers.py``
(and HF transformers' T5Attention). Buckets grow logarithmically up to
``max_distance``; every larger distance shares the last bucket. The log
term is evaluated in float32 as in that code: float64 moves a few exact
boundary distances into a neighbouring bucket for some settings (e.g.
num_buckets=18, max_distance=128 at |d| = 16).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from reference._common import check_float_array


def _check_buckets(num_buckets, max_distance, bidirectional) -> int:
    """Validate the options; returns max_exact (the size of the exact region)."""
    for name, value in (("num_buckets", num_buckets), ("max_distance", max_distance)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
    if max_exact < 1 or max_distance <= max_exact:
        raise ValueError(
            f"need num_buckets >= {4 if bidirectional else 2} and max_distance > the exact "
            f"region ({max_exact}); got num_buckets={num_buckets}, max_distance={max_distance}"
        )
    return max_exact


def t5_relative_position_bucket(
    relative_position: np.ndarray,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> np.ndarray:
    """Bucket index (int64, same shape) of each relative position j − i (int array)."""
    rel = np.asarray(relative_position)
    if not np.issubdtype(rel.dtype, np.integer):
        raise TypeError(f"relative_position must be an int array, got dtype {rel.dtype}")
    max_exact = _check_buckets(num_buckets, max_distance, bidirectional)
    rel = rel.astype(np.int64)
    n = num_buckets // 2 if bidirectional else num_buckets
    offset = np.where(rel > 0, n, 0) if bidirectional else np.zeros_like(rel)
    dist = np.abs(rel) if bidirectional else np.maximum(-rel, 0)
    safe = np.maximum(dist, max_exact).astype(np.float32)  # log only read where dist >= max_exact
    log_range = np.float32(math.log(max_distance / max_exact))
    log_ratio = np.log(safe / np.float32(max_exact)) / log_range
    large = max_exact + (log_ratio * np.float32(n - max_exact)).astype(np.int64)
    return offset + np.where(dist < max_exact, dist, np.minimum(large, n - 1))


def t5_relative_bias(
    lq: int,
    lk: int,
    bias_table: np.ndarray,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> np.ndarray:
    """(H, Lq, Lk) bias for queries 0 … lq − 1 and keys 0 … lk − 1; bias_table
    (num_buckets, H) as T5's ``relative_attention_bias`` embedding. Dtype = table's.
    """
    table = check_float_array("bias_table", bias_table, 0)
    for name, value in (("lq", lq), ("lk", lk)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if table.ndim != 2 or table.shape[0] != num_buckets:
        raise ValueError(
            f"bias_table must have shape (num_buckets, H) = ({num_buckets}, H), "
            f"got shape {table.shape}"
        )
    rel = np.arange(lk)[None, :] - np.arange(lq)[:, None]  # (Lq, Lk): j − i
    buckets = t5_relative_position_bucket(
        rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    return np.moveaxis(table[buckets], -1, 0)
