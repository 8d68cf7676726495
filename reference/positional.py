"""Sinusoidal positional encoding.

    PE[pos, 2i]     = sin(pos / base^(2i / d_model))
    PE[pos, 2i + 1] = cos(pos / base^(2i / d_model))

Source: Vaswani et al. 2017, "Attention is all you need", §3.5 (base = 10000).
Odd ``d_model``: the formula is applied to the columns that exist, with the
true (odd) ``d_model`` in the exponent; the last column 2i = d_model − 1 is a
sine with no cosine partner. This is *not* the first d_model columns of the
(d_model + 1)-wide table, whose exponents divide by d_model + 1.
"""

from __future__ import annotations

import numbers

import numpy as np


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def sinusoidal_positional_encoding(
    length: int, d_model: int, *, base: float = 10000.0
) -> np.ndarray:
    """The (length, d_model) float64 table above; row = position 0 … length − 1."""
    length = _check_int("length", length, 0)
    d_model = _check_int("d_model", d_model, 1)
    if not (isinstance(base, numbers.Real) and np.isfinite(base) and base > 0):
        raise ValueError(f"base must be a finite positive number, got {base!r}")
    pos = np.arange(length, dtype=np.float64)[:, None]
    two_i = np.arange(0, d_model, 2, dtype=np.float64)  # 2i for every pair (incl. a lone sine)
    angle = pos / np.power(float(base), two_i / d_model)  # (length, ceil(d_model / 2))
    pe = np.empty((length, d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return pe
