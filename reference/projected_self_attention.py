"""Single-head self-attention as written in the seed notebooks.

    Q = X W_q,  K = X W_k,  V = X W_v
    out = softmax(scale · Q Kᵀ) V            row softmax, max-subtracted
    scale = 1/√d_k by default

Sources: Vaswani et al. 2017, "Attention is all you need", eq. 1; seed
notebooks ``001`` (word-by-word and matrix form, cells 160–180) and ``000``
(``self_attention(Q, K, V)``). The notebooks' own softmax has two slips that
this reference does *not* copy: ``001`` omits the 1/√d_k scaling (pass
``scale=1.0`` to reproduce its printed numbers) and ``000`` normalises the
exponentials over the whole matrix instead of each row.
"""

from __future__ import annotations

import numpy as np

from reference._common import check_float_array
from reference.scaled_dot_product import sdpa


def self_attention(
    x: np.ndarray,
    w_query: np.ndarray,
    w_key: np.ndarray,
    w_value: np.ndarray,
    *,
    scale: float | None = None,
) -> np.ndarray:
    """softmax(scale · (X W_q)(X W_k)ᵀ) (X W_v), one head, no mask.

    Shapes: x (..., L, d_model), w_query (d_model, d_k), w_key (d_model, d_k),
    w_value (d_model, d_v) → out (..., L, d_v). Computed in float64; output
    dtype = x dtype. ``scale`` defaults to 1/√d_k.
    """
    x = check_float_array("x", x, 2)
    weights = {
        name: check_float_array(name, w, 2)
        for name, w in (("w_query", w_query), ("w_key", w_key), ("w_value", w_value))
    }
    for name, w in weights.items():
        if w.ndim != 2 or w.shape[0] != x.shape[-1]:
            raise ValueError(
                f"{name} must have shape (d_model, d) with d_model = x.shape[-1] = "
                f"{x.shape[-1]}; got {name} shape {w.shape}, x shape {x.shape}"
            )
    if weights["w_query"].shape[1] != weights["w_key"].shape[1]:
        raise ValueError(
            f"w_query and w_key must share d_k: w_query shape {weights['w_query'].shape}, "
            f"w_key shape {weights['w_key'].shape}"
        )
    x64 = x.astype(np.float64)[..., None, :, :]  # one head: (..., 1, L, d_model)
    q, k, v = (x64 @ w.astype(np.float64) for w in weights.values())
    out = sdpa(q, k, v, scale=scale)
    return out[..., 0, :, :].astype(x.dtype)
