"""Rotary position embedding (RoPE).

    θ_i = base^(−2i / D),  i = 0 … D/2 − 1;   angle[l, i] = positions[l] · θ_i
    (a, b) ↦ (a cos − b sin,  a sin + b cos)   for every rotated pair (a, b)

Pairs: ``interleaved`` (RoFormer's own layout, GPT-J, Mesh-TF) rotates
(x[2i], x[2i+1]); ``half`` (GPT-NeoX, LLaMA in HF transformers) rotates
(x[i], x[i + D/2]). Both use the same θ_i for pair i, so with
perm = [0, 2, 4, …, D−2, 1, 3, …, D−1] (the interleaved index of each half
slot): half(x[..., perm]) == interleaved(x)[..., perm].
Source: Su et al. 2021, "RoFormer: enhanced transformer with rotary position
embedding", §3.2 (R_{Θ,m}, θ_i = 10000^(−2(i−1)/d), i = 1 … d/2) and §3.4.2
(the element-wise form).
"""

from __future__ import annotations

import numpy as np

from reference._common import broadcasts_to, check_float_array

CONVENTIONS = ("half", "interleaved")


def rotary_embedding(
    x: np.ndarray,
    positions: np.ndarray | None = None,
    *,
    base: float = 10000.0,
    convention: str = "half",
) -> np.ndarray:
    """Rotate x (..., L, D), D even; positions (int or float) broadcastable to
    (..., L), default arange(L). Computed in float64; output shape and dtype = x's.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    x = check_float_array("x", x, 2)
    seq, dim = x.shape[-2:]
    if dim % 2:
        raise ValueError(f"x must have an even last dim D, got x shape {x.shape}")
    pos = np.arange(seq) if positions is None else np.asarray(positions)
    if pos.dtype == np.bool_ or not np.issubdtype(pos.dtype, np.number):
        raise TypeError(f"positions must be an int or float array, got dtype {pos.dtype}")
    if not broadcasts_to(pos.shape, x.shape[:-1]):
        raise ValueError(
            f"positions of shape {pos.shape} do not broadcast to x.shape[:-1] = "
            f"{x.shape[:-1]} (x shape {x.shape})"
        )
    theta = float(base) ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)  # (D/2,)
    angle = pos.astype(np.float64)[..., None] * theta  # (..., L, D/2)
    cos, sin = np.cos(angle), np.sin(angle)
    x64 = x.astype(np.float64)
    if convention == "interleaved":
        a, b = x64[..., 0::2], x64[..., 1::2]
    else:
        a, b = x64[..., : dim // 2], x64[..., dim // 2 :]
    ra, rb = a * cos - b * sin, a * sin + b * cos
    if convention == "interleaved":
        out = np.stack([ra, rb], axis=-1).reshape(*ra.shape[:-1], dim)
    else:
        out = np.concatenate([ra, rb], axis=-1)
    return out.astype(x.dtype)
