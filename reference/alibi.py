"""ALiBi head slopes (the bias each head adds is −slope · |i − j|).

    n a power of 2:  slope_h = 2^(−8 (h + 1) / n),  h = 0 … n − 1
                     (the geometric sequence starting at and with ratio 2^(−8/n))
    otherwise:       with p = 2^⌊log2 n⌋, the p slopes of the p-head rule,
                     then the slopes at indices 0, 2, 4, … of the 2p-head rule,
                     the first n − p of them

Source: Press, Smith & Lewis 2022, "Train short, test long: attention with
linear biases enables input length extrapolation", §3 (slopes 1/2^1 … 1/2^8
for 8 heads), non-power-of-2 rule from the paper's code (``get_slopes`` in
github.com/ofirpress/attention_with_linear_biases, fairseq
``multihead_attention.py``). E.g. 12 heads: 2^−1 … 2^−8, then
2^−0.5, 2^−1.5, 2^−2.5, 2^−3.5. The closed form 2^(−8(h+1)/n) is used
instead of the code's running product start · ratio^h, which can differ from
it by an ulp.
"""

from __future__ import annotations

import numbers

import numpy as np


def _power_of_2_slopes(n: int) -> np.ndarray:
    return np.exp2(-8.0 * np.arange(1, n + 1, dtype=np.float64) / n)


def alibi_slopes(num_heads: int) -> np.ndarray:
    """The (num_heads,) float64 slopes above, num_heads >= 1."""
    if isinstance(num_heads, bool) or not isinstance(num_heads, numbers.Integral):
        raise TypeError(
            f"num_heads must be an int, got {type(num_heads).__name__} {num_heads!r}"
        )
    if num_heads < 1:
        raise ValueError(f"num_heads must be >= 1, got {num_heads}")
    n = int(num_heads)
    p = 1 << (n.bit_length() - 1)  # largest power of 2 <= n
    if p == n:
        return _power_of_2_slopes(n)
    extra = _power_of_2_slopes(2 * p)[0::2][: n - p]
    return np.concatenate([_power_of_2_slopes(p), extra])
