"""Honest, but returns every output in big-endian byte order (``>f8`` for float64, ``>f4``
for float32, ``>f2`` for float16; bfloat16 has no big-endian form), as a kernel that writes
network byte order would. The values are right and the dtype is the query's, so every case
must pass (conformance/judging/compare.py, ``check_contract``). ``sdpa_wrong_dtype`` returns
big-endian float32 for every query: wrong for float64, and its message must say so without
reading "got float64, expected float64"."""

import numpy as np

from hostile._honest import sdpa_with


def _big_endian(array: np.ndarray) -> np.ndarray:
    """``array`` in big-endian order; bfloat16 (kind "V": ml_dtypes has no byte-swapped
    form) stays as it is."""
    return array.astype(array.dtype.newbyteorder(">")) if array.dtype.kind == "f" else array


sdpa = sdpa_with(lambda honest, query, key, value: _big_endian(honest()), always=True)
sdpa_wrong_dtype = sdpa_with(
    lambda honest, query, key, value: _big_endian(honest().astype(np.float32)), always=True)
