"""Which keys each query may see, and the additive bias, for the NumPy correct implementations.

A key is hidden by a bool mask entry False, a float mask entry -inf, the
causal rule (key j visible to query i iff j <= i + offset, offset 0 for
top-left and Lk - Lq for bottom-right alignment) or a window (left, right)
around the aligned position. Finite float mask entries are a bias.
Written independently of ``reference`` and of the mutants' base.
"""

from __future__ import annotations

import numpy as np


def to_float(x, dtype=np.float64) -> np.ndarray:
    """``x`` (NumPy, incl. ml_dtypes bfloat16) as a new array of ``dtype``."""
    return np.array(x, dtype=dtype)


def check_mask_dtype(attn_mask) -> np.ndarray | None:
    if attn_mask is None:
        return None
    mask = np.asarray(attn_mask)
    if mask.dtype != np.bool_ and mask.dtype.kind != "f" and mask.dtype.name != "bfloat16":
        raise TypeError(f"attn_mask must be bool or floating, got dtype {mask.dtype}")
    return mask


def visibility(attn_mask, lq: int, lk: int, *, is_causal=False, alignment="top_left",
               window=None, dtype=np.float64):
    """(visible, bias), both broadcastable to (..., Hq, Lq, Lk)."""
    mask = check_mask_dtype(attn_mask)
    visible = np.ones((lq, lk), dtype=bool)
    bias = np.zeros((), dtype=dtype)
    if mask is not None and mask.dtype == np.bool_:
        visible = visible & mask
    elif mask is not None:
        values = to_float(mask, dtype)
        visible = visible & ~np.isneginf(values)
        bias = np.where(np.isneginf(values), 0, values).astype(dtype)
    shift = lk - lq if alignment == "bottom_right" else 0
    i = np.arange(lq)[:, None] + shift
    j = np.arange(lk)[None, :]
    if is_causal:
        visible = visible & (j <= i)
    if window is not None:
        left, right = window
        if left is not None:
            visible = visible & (j >= i - left)
        if right is not None:
            visible = visible & (j <= i + right)
    return visible, bias


def no_dropout(dropout_p: float) -> None:
    if dropout_p:
        raise NotImplementedError(
            "dropout_p > 0 draws a random keep-mask here; the kit compares only dropout_p = 0"
        )
