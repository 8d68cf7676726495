"""The correct-implementation zoo: adapters the kit must pass, in different styles and precisions.

``CORRECT`` is the one registry (name -> adapter). Each adapter declares the
dtypes and features it really supports (``conformance.adapter``); torch is
imported only when a torch adapter is first called.
"""

import numpy as np

from .dropout_sdpa import dropout_sdpa
from .numpy_ops import NUMPY_OPS
from .numpy_sdpa import (
    blocked_online_sdpa,
    einsum_sdpa,
    logsumexp_sdpa,
    loop_sdpa,
    uniform_rows_sdpa,
)
from .reordered_sdpa import (
    bias_last_sdpa,
    exp2_sdpa,
    flash_lowp_sdpa,
    kahan_sdpa,
    online_sdpa,
)
from .torch_impls import TORCH_MHA, flex_sdpa, torch_default_sdpa, torch_math_sdpa
from .torch_njt import TORCH_NJT
from .torch_ragged_sdpa import TORCH_RAGGED_SDPA

CORRECT = {
    "einsum_float64": einsum_sdpa,
    "logsumexp_float64": logsumexp_sdpa,
    "blocked_online_float32": blocked_online_sdpa,
    "loop_float32": loop_sdpa,
    "uniform_rows_float64": uniform_rows_sdpa,
    "numpy_ops": NUMPY_OPS,
    "exp2_float64": exp2_sdpa,
    "online_16_reverse_float64": online_sdpa(16, reverse=True, dtype=np.float64),
    "online_7_forward_float32": online_sdpa(7, reverse=False, dtype=np.float32),
    "online_128_reverse_float32": online_sdpa(128, reverse=True, dtype=np.float32),
    "kahan_float32": kahan_sdpa,
    "bias_last_float64": bias_last_sdpa,
    "flash_lowp": flash_lowp_sdpa,
    "torch_math": torch_math_sdpa,
    "torch_default": torch_default_sdpa,
    "torch_flex": flex_sdpa,
    "torch_mha": TORCH_MHA,
    "dropout_float64": dropout_sdpa,
    "torch_njt": TORCH_NJT,
    "torch_ragged_sdpa": TORCH_RAGGED_SDPA,
}

__all__ = ["CORRECT"]
