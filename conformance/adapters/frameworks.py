"""Array conversion between the harness (NumPy) and an adapter's framework.

The harness always holds NumPy arrays; a framework object converts them to
what the adapter expects (``to_native``) and back (``to_numpy``). Users may
pass their own object with these two methods as ``framework=``.
"""

from __future__ import annotations

from typing import Any, Protocol

import ml_dtypes
import numpy as np

from conformance.adapters.layout import copy_view, span, span_bytes
from conformance.errors import OutputTypeError as OutputTypeError

DTYPE_BY_NAME = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
}


def eps(name: str) -> float:
    """Machine epsilon of a dtype named in DTYPE_BY_NAME (bfloat16 through ml_dtypes)."""
    return float(ml_dtypes.finfo(DTYPE_BY_NAME[name]).eps)


def dtype_name(dtype: Any) -> str:
    """'float32', 'bfloat16', … for a NumPy (or ml_dtypes) dtype."""
    return np.dtype(dtype).name


class Framework(Protocol):
    name: str

    def to_native(self, array: np.ndarray) -> Any: ...

    def to_numpy(self, value: Any) -> np.ndarray: ...

    def version(self) -> str: ...


class NumpyFramework:
    name = "numpy"

    def to_native(self, array: np.ndarray) -> np.ndarray:
        # a private copy: the adapter may keep or mutate it without touching ours; views
        # keep their strides and offset (conformance.adapters.layout): a layout is part of
        # the case
        return copy_view(array)

    def to_numpy(self, value: Any) -> np.ndarray:
        if not isinstance(value, np.ndarray):
            raise OutputTypeError(
                f"expected a numpy.ndarray, got {type(value).__name__}"
                + (f" {value!r}"[:80] if np.isscalar(value) or value is None else "")
            )
        return value

    def version(self) -> str:
        return np.__version__


class TorchFramework:
    """NumPy ↔ torch on ``device``; bfloat16 travels through its int16 bits."""

    name = "torch"

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def _torch(self):
        import torch

        return torch

    def to_native(self, array: np.ndarray) -> Any:
        torch = self._torch()
        where = span(array) if min(array.strides, default=0) >= 0 else None
        if where is not None:  # the same view (torch has no negative strides: those copy)
            bits = span_bytes(array, where).view(
                np.int16 if array.dtype == DTYPE_BY_NAME["bfloat16"] else array.dtype)
            base = torch.from_numpy(bits)
            base = base.view(torch.bfloat16) if bits.dtype == np.int16 else base
            item = array.itemsize
            return torch.as_strided(base, array.shape, [s // item for s in array.strides],
                                    where.offset // item).to(self.device)
        array = np.ascontiguousarray(array)
        if array.dtype == DTYPE_BY_NAME["bfloat16"]:
            tensor = torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
        else:
            tensor = torch.from_numpy(array.copy())
        return tensor.to(self.device)

    def to_numpy(self, value: Any) -> np.ndarray:
        torch = self._torch()
        if not isinstance(value, torch.Tensor):
            raise OutputTypeError(f"expected a torch.Tensor, got {type(value).__name__}")
        if value.device.type != torch.device(self.device).type:
            raise OutputTypeError(
                f"output tensor is on device {value.device}, inputs were on {self.device}"
            )
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            return value.contiguous().view(torch.int16).numpy().view(DTYPE_BY_NAME["bfloat16"])
        return value.numpy()

    def seed(self, seed: int) -> None:
        """Seed torch's generators (CPU and CUDA): what a dropout call draws is then known."""
        self._torch().manual_seed(seed)

    def version(self) -> str:
        return self._torch().__version__


def framework_for(spec: Any, device: str = "cpu") -> Framework:
    """``"numpy"``, ``"torch"`` or a user object with to_native/to_numpy."""
    if spec in (None, "numpy"):
        return NumpyFramework()
    if spec == "torch":
        return TorchFramework(device)
    if hasattr(spec, "to_native") and hasattr(spec, "to_numpy"):
        return spec
    raise ValueError(
        f"framework must be 'numpy', 'torch' or an object with to_native/to_numpy, got {spec!r}"
    )
