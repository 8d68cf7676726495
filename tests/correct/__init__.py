"""The correct-implementation zoo: adapters the kit must pass, in different styles and precisions.

``CORRECT`` is the one registry (name -> adapter). Each adapter declares the
dtypes and features it really supports (``conformance.adapter``); torch is
imported only when a torch adapter is first called.
"""

from .numpy_ops import NUMPY_OPS
from .numpy_sdpa import (
    blocked_online_sdpa,
    einsum_sdpa,
    logsumexp_sdpa,
    loop_sdpa,
    uniform_rows_sdpa,
)
from .torch_impls import TORCH_MHA, flex_sdpa, torch_default_sdpa, torch_math_sdpa

CORRECT = {
    "einsum_float64": einsum_sdpa,
    "logsumexp_float64": logsumexp_sdpa,
    "blocked_online_float32": blocked_online_sdpa,
    "loop_float32": loop_sdpa,
    "uniform_rows_float64": uniform_rows_sdpa,
    "numpy_ops": NUMPY_OPS,
    "torch_math": torch_math_sdpa,
    "torch_default": torch_default_sdpa,
    "torch_flex": flex_sdpa,
    "torch_mha": TORCH_MHA,
}

__all__ = ["CORRECT"]
