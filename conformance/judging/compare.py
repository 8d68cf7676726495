"""Compare a candidate output to the expected one; one failure-message format.

The message (tested word for word in tests/test_harness_messages.py) reads,
after the check's own headline (``<op> / <check>: <case id> (seed …; flags)``):

    tolerance: <bound: max(k·lowp + atol, conditioning), which term dominates, and where
               k, atol and the conditioning term came from; with a per-row conditioning
               term, that of the row most over its own bound, which it names>
    Mismatched elements: k / n (p%)
    first mismatches (index: actual, expected, abs err, rel err):
      (i, j, …): a, e, abs, rel      (a and e in 6 digits, or as many as tell them apart)
    actual NaN at [(i, j, …), …] (+m more)        (one line per kind present)
    expected inf at [(i, j, …)]
    Max absolute difference: x
      (with m > 0: "Non-finite mismatches: m (NaN or inf where the other side is not the
      same); over the finite elements: Max absolute difference: x", the mismatches first)
    Max relative difference: y

and the check adds the repro line. The maxima are over the elements both
finite; a NaN or inf where the other side differs is a mismatch of its own
(listed above; ``Comparison.max_abs_err`` is then inf). Relative errors
follow numpy.testing: an element whose expected value is 0 has relative
error inf, and the maximum is taken over the elements whose expected value
is not 0.

Shape and dtype are checked strictly before values (``check_contract``). Byte order is
not part of the dtype there: a big-endian float64 output (``>f8``) is a float64 output, as
a strided view is an output of its shape; its values are read as numbers (``compare``
converts both sides to native float64), so either byte order is judged alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.judging.tolerance import Bound

SHOWN_MISMATCHES = 5


@dataclass(frozen=True)
class Comparison:
    """``bound``: the bound the verdict is about, one number: on a failure that of the row
    most over its own bound (the row the ``tolerance:`` line explains), else ``Bound.value``."""

    ok: bool
    max_abs_err: float | None
    lines: tuple[str, ...]
    bound: float | None = None


def _index(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


def _nonfinite_lines(actual: np.ndarray, expected: np.ndarray) -> list[str]:
    lines = []
    for label, array in (("actual", actual), ("expected", expected)):
        for kind, where in (("NaN", np.isnan(array)), ("inf", np.isinf(array))):
            if where.any():
                positions = [_index(i, array.shape) for i in np.flatnonzero(where)[:3]]
                more = "" if where.sum() <= 3 else f" (+{int(where.sum()) - 3} more)"
                lines.append(f"{label} {kind} at {positions}{more}")
    return lines


def _distinct(a: float, e: float) -> tuple[str, str]:
    """a and e with 6 significant digits, or as many more as it takes to tell them apart."""
    for digits in (6, 9, 12, 17):
        shown = f"{a:.{digits}g}", f"{e:.{digits}g}"
        if shown[0] != shown[1]:
            break
    return shown


def _max_rel(abs_err: np.ndarray, expected: np.ndarray) -> float:
    """numpy.testing's rule: over elements whose expected value is nonzero (inf if none)."""
    nonzero = (expected != 0) & (abs_err > 0)
    if not nonzero.any():
        return float("inf") if (abs_err > 0).any() else 0.0
    scale = np.where(np.isfinite(expected[nonzero]), np.abs(expected[nonzero]), 1.0)
    return float((abs_err[nonzero] / scale).max())


def _native_order(dtype: np.dtype) -> np.dtype:
    """``dtype`` in this machine's byte order (``>f8`` → ``float64`` on a little-endian one)."""
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _dtype_text(dtype: np.dtype) -> str:
    """``float32``, or ``float32 (big-endian)`` for a byte order other than this machine's."""
    if dtype.isnative:
        return dtype.name
    return f"{dtype.name} ({'big' if dtype.byteorder == '>' else 'little'}-endian)"


def check_contract(actual: np.ndarray, expected_shape: tuple, expected_dtype) -> str | None:
    """A one-line reason when shape or dtype differ, else None.

    The dtypes are compared as types, in native byte order: the contract's "output dtype =
    query dtype" is about what the numbers are (float64, float32, …), and NumPy's own
    ``np.dtype(">f8") != np.float64`` is about how they are stored. So a big-endian float64
    output passes where float64 is expected (and the reverse); a mismatch names a non-native
    byte order (``got float32 (big-endian), expected float64``), so the message never reads
    ``got float64, expected float64``."""
    if tuple(actual.shape) != tuple(expected_shape):
        return f"shape mismatch: got {tuple(actual.shape)}, expected {tuple(expected_shape)}"
    got, want = np.dtype(actual.dtype), np.dtype(expected_dtype)
    if _native_order(got) != _native_order(want):
        shown = _dtype_text(got), _dtype_text(want)
        if shown[0] == shown[1]:  # two dtypes of one name (void, structured): in full
            shown = str(got), str(want)
        return f"dtype mismatch: got {shown[0]}, expected {shown[1]}"
    return None


def _worst(abs_err: np.ndarray, limit: float | np.ndarray, bad: np.ndarray) -> tuple[int, ...]:
    """The index of the mismatch most over its own bound (largest err / bound; a NaN or zero
    bound counts as infinitely exceeded; the first such one on ties)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = abs_err / np.broadcast_to(limit, abs_err.shape)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    return _index(int(np.argmax(np.where(bad, ratio, -np.inf))), abs_err.shape)


def compare(
    actual: np.ndarray,
    expected: np.ndarray,
    bound: Bound,
    ignore: np.ndarray | None = None,
) -> Comparison:
    """Pass when non-finite positions agree and |actual − expected| ≤ bound elementwise, each
    element against its own row's bound when the bound is per row (``Bound.limit``; written
    ``not err <= bound``, so a NaN error or a NaN bound fails). The ``tolerance:`` line of a
    failure explains the bound of the row most over its own bound, and names that row.

    ``ignore`` (broadcastable bool) marks elements whose value is not specified
    (e.g. fully-masked rows under ``fully_masked="any"``).
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    considered = np.ones(a.shape, bool) if ignore is None else ~np.broadcast_to(ignore, a.shape)
    both_finite = np.isfinite(a) & np.isfinite(e)
    same_nonfinite = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & (a == e))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        abs_err = np.where(both_finite, np.abs(a - e), np.inf)
        abs_err = np.where(same_nonfinite | ~considered, 0.0, abs_err)
        rel_err = np.where(abs_err == 0, 0.0, abs_err / np.where(np.isfinite(e), np.abs(e), 1.0))
    limit = bound.limit
    bad = ~(abs_err <= limit)  # a NaN or negative bound fails every element
    max_abs = float(abs_err.max()) if abs_err.size else 0.0
    if not bad.any():
        return Comparison(True, max_abs, (), bound.value)
    worst = bound.at(_worst(abs_err, limit, bad), a.shape)
    lines = [
        f"tolerance: {worst.explain()}",
        f"Mismatched elements: {int(bad.sum())} / {bad.size} ({100.0 * bad.mean():.3g}%)",
        "first mismatches (index: actual, expected, abs err, rel err):",
    ]
    for flat in np.flatnonzero(bad)[:SHOWN_MISMATCHES]:
        idx = _index(flat, a.shape)
        shown_a, shown_e = _distinct(a[idx], e[idx])
        lines.append(f"  {idx}: {shown_a}, {shown_e}, {abs_err[idx]:.3g}, {rel_err[idx]:.3g}")
    lines += _nonfinite_lines(a, e)
    finite = both_finite & considered
    nonfinite_bad = int((bad & ~finite).sum())
    largest = float(abs_err[finite].max()) if finite.any() else 0.0
    lines.append((f"Non-finite mismatches: {nonfinite_bad} (NaN or inf where the other side is "
                  f"not the same); over the finite elements: " if nonfinite_bad else "")
                 + f"Max absolute difference: {largest:.6g}")
    lines.append(f"Max relative difference: {_max_rel(abs_err[finite], e[finite]):.6g}")
    return Comparison(False, max_abs, tuple(lines), worst.value)
