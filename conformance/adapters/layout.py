"""Memory layouts that survive a copy: the same shape, strides and offset in a new buffer.

A view (transposed, negative or zero strides, starting inside its buffer) is described by
the bytes it spans, ``Span``: the buffer from ``lead`` bytes before its lowest-address
element to its highest, the byte offset of element [0, …, 0] in it, and its strides.
``copy_view`` rebuilds the same view over a private copy of those bytes, which is what an
adapter gets, in-process (``NumpyFramework``) and through a worker
(``conformance.adapters.isolated.wire``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Span(NamedTuple):
    start: int  # address of the first byte to copy
    nbytes: int  # bytes to copy
    offset: int  # byte offset of element [0, …, 0] from ``start``
    strides: tuple[int, ...]


def _root(array: np.ndarray) -> np.ndarray:
    """The array that owns the memory (a bytes-like owner seen as uint8)."""
    while array.base is not None:
        if not isinstance(array.base, np.ndarray):
            try:
                return np.frombuffer(array.base, np.uint8)
            except (TypeError, ValueError):
                return array
        array = array.base
    return array


def span(array: np.ndarray) -> Span | None:
    """The bytes ``array`` spans, keeping the distance from its buffer's start (so a view
    that starts one element in still does), or None for a C-contiguous array at its
    buffer's start (sent as plain bytes) and for strides that are not whole elements."""
    item = array.itemsize
    if array.size == 0 or any(s % item for s in array.strides):
        return None
    address = array.__array_interface__["data"][0]
    low = sum((n - 1) * s for n, s in zip(array.shape, array.strides, strict=True) if s < 0)
    high = sum((n - 1) * s for n, s in zip(array.shape, array.strides, strict=True) if s > 0)
    root = _root(array)
    root_address = root.__array_interface__["data"][0]
    lead = address + low - root_address
    if not 0 <= lead <= root.nbytes or lead % item:
        lead = 0
    if array.flags.c_contiguous and lead == 0:
        return None
    return Span(address + low - lead, lead + high - low + item, lead - low, array.strides)


def span_bytes(array: np.ndarray, where: Span) -> np.ndarray:
    """The spanned bytes as a contiguous uint8 array (a copy)."""
    return _memory(array, where).copy()


def _memory(array: np.ndarray, where: Span):
    """A buffer object over the span's bytes (read-only use: copied at once)."""
    interface = {"data": (where.start, True), "shape": (where.nbytes,), "typestr": "|u1",
                 "version": 3}

    class Raw:
        __array_interface__ = interface
        keep = array  # keeps the memory alive while the copy is made

    return np.asarray(Raw())


def rebuild(buffer, dtype: np.dtype, shape: tuple[int, ...], strides: tuple[int, ...],
            offset: int) -> np.ndarray:
    """The view over ``buffer``; numpy checks that it stays inside the buffer (ValueError)."""
    return np.ndarray(shape, dtype, buffer=buffer, offset=offset, strides=strides)


def copy_view(array: np.ndarray) -> np.ndarray:
    """A private copy with the same shape, strides and offset (a plain copy when C-contiguous
    at its buffer's start)."""
    array = np.asarray(array)
    where = span(array)
    if where is None:
        return np.array(array, copy=True, order="C") if array.flags.c_contiguous else \
            np.array(array, copy=True)
    data = bytearray(span_bytes(array, where).tobytes())
    return rebuild(data, array.dtype, array.shape, where.strides, where.offset)
