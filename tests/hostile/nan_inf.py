"""Puts a NaN and an inf into the output on the trigger cases."""

import numpy as np

from hostile._honest import sdpa_with


def _poison(honest, query, key, value):
    out = honest()
    out[..., 0, 0] = np.nan
    out[..., 1, 1] = np.inf
    return out


sdpa = sdpa_with(_poison)
