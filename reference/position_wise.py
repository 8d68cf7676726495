"""Position-wise feed-forward network (Vaswani et al. 2017, eq. 2).

    FFN(x) = act(x W₁ + b₁) W₂ + b₂          act = ReLU (the paper) or GELU

Weight layout is the paper's and the seed notebook's (``FF(Z) = ReLU(Z W_1 + b1)
W_2 + b_2``): *input-major*, w1 (D, F), w2 (F, D), so the product is ``x @ w1``.
This is the transpose of ``torch.nn.Linear.weight`` (out, in): pass
``linear1.weight.T`` / ``linear2.weight.T`` to compare with torch. Biases may
be None. ``gelu`` is the exact one, x·Φ(x) = x/2 · (1 + erf(x/√2)) (Hendrycks &
Gimpel 2016; torch's ``"gelu"`` with approximate="none").

Shapes: x (..., D), w1 (D, F), b1 (F,), w2 (F, Dout), b2 (Dout,) → (..., Dout).
"""

from __future__ import annotations

import math

import numpy as np

from reference._common import check_float_array

_erf = np.frompyfunc(math.erf, 1, 1)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0)."""
    return np.maximum(x, 0.0)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: x/2 · (1 + erf(x/√2))."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.asarray(_erf(x / math.sqrt(2.0)), dtype=np.float64))


ACTIVATIONS = {"relu": relu, "gelu": gelu}


def feed_forward(
    x: np.ndarray,
    w1: np.ndarray,
    b1: np.ndarray | None,
    w2: np.ndarray,
    b2: np.ndarray | None,
    activation: str = "relu",
) -> np.ndarray:
    """FFN(x) = act(x w1 + b1) w2 + b2, in float64, returned in x's dtype."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    x = check_float_array("x", x, 1)
    w1 = check_float_array("w1", w1, 2).astype(np.float64)
    w2 = check_float_array("w2", w2, 2).astype(np.float64)
    if w1.ndim != 2 or w2.ndim != 2 or x.shape[-1] != w1.shape[0] or w1.shape[1] != w2.shape[0]:
        raise ValueError(
            f"need x (..., D), w1 (D, F), w2 (F, Dout) (input-major layout, "
            f"the transpose of nn.Linear.weight); got x {x.shape}, w1 {w1.shape}, w2 {w2.shape}"
        )
    for name, bias, size in (("b1", b1, w1.shape[1]), ("b2", b2, w2.shape[1])):
        if bias is not None and np.shape(bias) != (size,):
            raise ValueError(f"{name} must have shape {(size,)}, got {np.shape(bias)}")
    hidden = x.astype(np.float64) @ w1
    hidden = ACTIVATIONS[activation](hidden if b1 is None else hidden + b1)
    out = hidden @ w2
    return (out if b2 is None else out + b2).astype(x.dtype)
