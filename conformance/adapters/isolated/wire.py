"""The worker protocol: length-prefixed JSON plus raw array bytes, never pickle.

A message is an 8-byte little-endian length, that many bytes of JSON (whose
``"arrays"`` list gives each array's dtype, shape and byte count), then the
raw C-order bytes of each array; a view (transposed, negative or zero strides, an
offset into its buffer) travels as the bytes it spans with its strides and offset,
and arrives as the same view (``conformance.adapters.layout``). Values travel as a
JSON tree in which
arrays, NumPy scalars, tuples and dicts are tagged (``{"$a": i}``, ``{"$s":
i}``, ``{"$t": [...]}``, ``{"$d": {...}}``), so tuples of arrays and None
round-trip. Dtypes are whitelisted (bool, integer, float, complex and
ml_dtypes' bfloat16 and float8) and sizes are checked before anything is
read: a reader trusts nothing the other side sends.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import struct
import time
from typing import Any

import ml_dtypes
import numpy as np

from conformance.adapters.frameworks import OutputTypeError
from conformance.adapters.layout import rebuild, span, span_bytes
from conformance.errors import ProtocolError as ProtocolError

MAX_JSON = 16 << 20
MAX_ARRAY_BYTES = 1 << 30
_LENGTH = struct.Struct("<Q")
_NATIVE_DTYPE = re.compile(r"[<>|=][biufc][0-9]{1,2}")
_ML_DTYPES = {name: np.dtype(getattr(ml_dtypes, name))
              for name in ("bfloat16", "float8_e4m3fn", "float8_e5m2") if hasattr(ml_dtypes, name)}


def dtype_token(dtype: np.dtype) -> str:
    """How a dtype travels; OutputTypeError for anything but a whitelisted numeric dtype."""
    if dtype.name in _ML_DTYPES and dtype == _ML_DTYPES[dtype.name]:
        return dtype.name
    if dtype.kind not in "biufc" or not _NATIVE_DTYPE.fullmatch(dtype.str):
        raise OutputTypeError(f"output has dtype {dtype}: only numeric arrays can be returned")
    return dtype.str


def _dtype_of(token: Any) -> np.dtype:
    if isinstance(token, str) and token in _ML_DTYPES:
        return _ML_DTYPES[token]
    if not isinstance(token, str) or not _NATIVE_DTYPE.fullmatch(token):
        raise ProtocolError(f"refused dtype {token!r:.40}")
    return np.dtype(token)


def _layout(meta: dict) -> tuple[np.dtype, tuple[int, ...], int, tuple[int, ...] | None, int]:
    """(dtype, shape, byte count, strides, offset) of one announced array, checked against
    each other. Strides and offset come only with a view (``conformance.adapters.layout``);
    the view is rebuilt over the bytes, and numpy refuses one reaching outside them."""
    dtype = _dtype_of(meta["dtype"])
    shape = tuple(meta["shape"])
    if not all(type(n) is int and 0 <= n <= MAX_ARRAY_BYTES for n in shape):
        raise ValueError("bad shape")
    nbytes, strides, offset = meta["nbytes"], meta.get("strides"), meta.get("offset", 0)
    if strides is None:
        if nbytes != math.prod(shape) * dtype.itemsize:
            raise ValueError("byte count does not match shape and dtype")
    elif (len(strides) != len(shape) or type(offset) is not int
          or not all(type(s) is int and abs(s) <= MAX_ARRAY_BYTES for s in strides)):
        raise ValueError("bad strides or offset")
    if type(nbytes) is not int or not 0 <= nbytes <= MAX_ARRAY_BYTES:
        raise ValueError("bad byte count")
    return dtype, shape, nbytes, None if strides is None else tuple(strides), offset


def _blob(array: np.ndarray) -> tuple[bytes | memoryview, dict]:
    """The bytes that carry ``array`` and what the reader needs to rebuild its layout."""
    where = span(array)
    if where is None:
        return array.tobytes(order="C"), {}
    return span_bytes(array, where).data, {"strides": list(where.strides), "offset": where.offset}


def _array(data: bytearray, dtype: np.dtype, shape, strides, offset) -> np.ndarray:
    if strides is None:
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    try:
        return rebuild(data, dtype, shape, strides, offset)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"array view outside its bytes ({exc})") from None


def encode(value: Any, arrays: list[np.ndarray]) -> Any:
    """JSON-able tree; arrays (and NumPy scalars) are appended to ``arrays`` and referenced."""
    if isinstance(value, (np.ndarray, np.generic)):
        arrays.append(np.asarray(value))
        return {"$a" if isinstance(value, np.ndarray) else "$s": len(arrays) - 1}
    if isinstance(value, tuple):
        return {"$t": [encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [encode(v, arrays) for v in value]
    if isinstance(value, dict):
        return {"$d": {str(k): encode(v, arrays) for k, v in value.items()}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot send a {type(value).__name__} to or from a worker")


def decode(tree: Any, arrays: list[np.ndarray]) -> Any:
    """The value ``encode`` gave ``tree`` for; ProtocolError for anything malformed."""
    try:
        return _decode(tree, arrays)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise ProtocolError(f"malformed value ({type(exc).__name__})") from None


def _decode(tree: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if not isinstance(tree, dict):
        return tree
    (key, inner), = tree.items()
    if key in ("$a", "$s"):
        if type(inner) is not int or not 0 <= inner < len(arrays):
            raise IndexError(inner)
        return arrays[inner] if key == "$a" else arrays[inner][()]
    if key == "$t":
        return tuple(_decode(v, arrays) for v in inner)
    if key == "$d":
        return {str(k): _decode(v, arrays) for k, v in inner.items()}
    raise ProtocolError(f"unknown tag {key!r:.20}")


class Channel:
    """Messages over a pair of pipe file descriptors; reads and writes honour a deadline."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd

    def send(self, message: dict, arrays: list[np.ndarray], deadline: float | None = None):
        arrays = [np.asarray(a) for a in arrays]
        carried = [_blob(a) for a in arrays]
        blobs = [blob for blob, _ in carried]
        meta = [{"dtype": dtype_token(a.dtype), "shape": list(a.shape), "nbytes": len(blob),
                 **view} for a, (blob, view) in zip(arrays, carried, strict=True)]
        header = json.dumps({**message, "arrays": meta}).encode()
        for chunk in (_LENGTH.pack(len(header)), header, *blobs):
            self._write(memoryview(chunk).cast("B"), deadline)

    def receive(self, deadline: float | None = None) -> tuple[dict, list[np.ndarray]]:
        (size,) = _LENGTH.unpack(self._read(_LENGTH.size, deadline))
        if size > MAX_JSON:
            raise ProtocolError(f"message header of {size} bytes")
        try:
            message = json.loads(bytes(self._read(size, deadline)))
            layout = [_layout(meta) for meta in message.pop("arrays")]
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise ProtocolError(f"unreadable message ({type(exc).__name__})") from None
        if sum(nbytes for _, _, nbytes, _, _ in layout) > MAX_ARRAY_BYTES:
            raise ProtocolError("arrays larger than MAX_ARRAY_BYTES")
        arrays = [_array(self._read(nbytes, deadline), dtype, shape, strides, offset)
                  for dtype, shape, nbytes, strides, offset in layout]
        return message, arrays

    def _wait(self, fd: int, writing: bool, deadline: float | None) -> None:
        if deadline is None:
            return
        remaining = deadline - time.monotonic()
        ready = remaining > 0 and select.select([] if writing else [fd],
                                                [fd] if writing else [], [], remaining)
        if not ready or not any(ready):
            raise TimeoutError

    def _write(self, data: memoryview, deadline: float | None) -> None:
        while data:
            self._wait(self.write_fd, True, deadline)
            try:
                data = data[os.write(self.write_fd, data[: 1 << 16]):]
            except BlockingIOError:
                continue

    def _read(self, size: int, deadline: float | None) -> bytearray:
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size:
            self._wait(self.read_fd, False, deadline)
            n = os.readv(self.read_fd, [view[got:]])
            if n == 0:
                raise EOFError
            got += n
        return buffer


__all__ = ["Channel", "ProtocolError", "decode", "dtype_token", "encode"]
