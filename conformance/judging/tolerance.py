"""The tolerance model: one table, keyed by dtype, overrides keyed by (op, dtype).

A candidate output passes when, for every element of every query row i,

    |cand − ref64| ≤ max(k · max|ref_lowp − ref64| + atol, conditioning_i)

where ref64 is the float64 reference, ref_lowp the reference re-run the way a
straightforward kernel in the candidate's dtype runs it (inputs, scores and
probabilities rounded to the dtype, sums in float32), k = 2 by default (the
flash-attention rule: at most twice a same-precision reference's error) and

    atol = units(dtype) · eps(dtype) · max(1, max|ref64|)

a few units of the dtype's resolution at the output's magnitude, never 0.
The same-dtype term's max is taken over the whole output: an elementwise form
fails 2–5 % of honest float32 cases. float64 has ref_lowp = ref64, so it is
held to float64 accuracy alone: a float64 kernel computing in float32 fails.

``conditioning_i`` is the forward-error bound of a backward-stable kernel on
row i (docs/tolerance.md derives it): with u_a the unit roundoff of the
kernel's sums, u_p that of its stored P, ulp_l the spacing of its logits' dtype,

    conditioning_i = (ulp_l(M_i) + ulp64(M_i))·σ_i + 2(√E + 2)(u_a + u64)·Q_i·σ_i
                     + [(√Lk + 4)(u_a + u64) + u_p]·V_i

M_i = |lse_i| + ln Lk (bounds |row max logit|, biases included),
Q_i = scale · ‖q_i‖ · max‖k_j‖, σ_i = the row's largest softmax-weighted
standard deviation of a value column, V_i = max|v| over its head. Its first
part is what softmax makes of logits rounded at their magnitude: it grows
with M_i, which the same-dtype rule does not see in float64 (ref_lowp = ref64
there), so a float64 kernel whose logits near −1e5 round differently (±7e-12)
passes. Per row, a row of logits near −1e9 (a finite fill on a hidden row)
loosens its own bound, not its neighbours'. Ops that give one set of
magnitudes for the whole output (``Conditioning`` of floats) get one bound.

A NaN or negative k or atol makes the bound NaN, and ``compare`` fails every
element against a NaN bound: such a bound never passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import ml_dtypes
import numpy as np

from conformance.adapters.frameworks import DTYPE_BY_NAME, eps

DEFAULT_K = 2.0

# --- the one table -------------------------------------------------------------------

# units of eps(dtype) at the output's magnitude
ATOL_UNITS = {
    "float64": 512.0,  # long float64 reductions: ~√L·eps; 1e-13 relative is far from float32's 1e-7
    "float32": 8.0,
    "float16": 4.0,
    "bfloat16": 4.0,
}

# (op, dtype) → (units, reason)
OVERRIDES: dict[tuple[str, str], tuple[float, str]] = {
    ("sdpa_backward", "float64"): (
        4096.0,
        "gradients chain three matmuls and a row reduction; error grows with L·E",
    ),
    ("multi_head_attention", "float64"): (
        2048.0,
        "two extra (E, E) projections around attention",
    ),
}

# dtype → (dtype of the logits and softmax, of the stored P, of the sums) of the kernel the
# conditioning term models: flash kernels keep 16-bit inputs' logits in float32, round P to
# the input dtype and accumulate in float32. A kernel that stores 16-bit scores is ref_lowp
# itself: the same-dtype rule measures it (k · its error), so it is not modelled twice.
COMPUTE_DTYPES = {
    "float64": ("float64", "float64", "float64"),
    "float32": ("float32", "float32", "float32"),
    "float16": ("float32", "float16", "float32"),
    "bfloat16": ("float32", "bfloat16", "float32"),
}

# a logit within this factor of its dtype's largest finite number may overflow to −inf in
# an honest kernel (log2(e) ≈ 1.44 in an exp2 softmax, a score added to a finfo.min fill)
OVERFLOW_MARGIN = 4.0

# units of eps(dtype), at the output's magnitude, for adapter-vs-adapter equalities in the
# properties: two calls of one kernel on inputs that differ by a permutation, a shift or a
# padding reorder its sums (as a sequence packed or alone, or pages moved, changes its tiles);
# 4096 eps(float64) ≈ 9e-13 covers L ≤ 512 rows of ~√L·eps each
PROPERTY_UNITS = {"float64": 4096.0, "float32": 256.0, "float16": 64.0, "bfloat16": 64.0}

# units of eps(dtype) · max(1, max|v|) by which an output may leave the visible values' box:
# a convex combination computed with rounded weights that sum to 1 ± L·eps
CONVEX_HULL_UNITS = 1e3

# relative closeness that tells one convention from another in the conventions probe: the
# probe's outputs of different conventions differ by O(1), rounding in any dtype by < 1e-2
PROBE_RTOL = 2e-2


@dataclass(frozen=True)
class Tolerance:
    """Per-run settings: k and an optional atol override (None = table)."""

    k: float = DEFAULT_K
    atol: float | None = None


@dataclass(frozen=True, eq=False)
class Conditioning:
    """What the forward-error bound needs to know about one case's inputs (docs/tolerance.md).

    Each magnitude is a float (one for the whole output) or an array per query row, of shape
    (..., Hq, Lq, 1), broadcastable against the output (``row_conditioning_of`` in
    conformance/ops/sdpa.py), so an ill-conditioned row loosens its own bound only.
    logit_magnitude M: |row max logit| + ln Lk, biases included (|lse| + ln Lk);
    dot_magnitude Q: scale · ‖q_i‖ · max_j‖k_j‖ (Cauchy–Schwarz bound of |scale · q_i·k_j|);
    value_spread σ: max over value columns of the softmax-weighted standard deviation of the
    values, sqrt(Σ_j p_j v_j² − o²) (0 for a one-hot row); value_magnitude V: max|v| over
    the row's head; dim E and keys Lk: the lengths of the two sums.
    """

    logit_magnitude: float | np.ndarray
    dot_magnitude: float | np.ndarray
    value_spread: float | np.ndarray
    value_magnitude: float | np.ndarray
    dim: int
    keys: int

    def per_row(self) -> bool:
        """True when some magnitude is given per row (an array of more than one value)."""
        return any(np.size(getattr(self, name)) > 1 for name in MAGNITUDES)

    def largest(self) -> Conditioning:
        """One number per magnitude, the largest over the rows: a bound for every row."""
        return self._mapped(_largest)

    def at(self, row: tuple[int, ...], shape: tuple[int, ...]) -> Conditioning:
        """The magnitudes of one element's row (``row``: an index into an output of ``shape``,
        the last axis included)."""
        return self._mapped(lambda x: float(np.broadcast_to(x, shape)[row]))

    def _mapped(self, f: Callable[[float | np.ndarray], float]) -> Conditioning:
        return Conditioning(f(self.logit_magnitude), f(self.dot_magnitude),
                            f(self.value_spread), f(self.value_magnitude), self.dim, self.keys)


MAGNITUDES = ("logit_magnitude", "dot_magnitude", "value_spread", "value_magnitude")


def _largest(x: float | np.ndarray) -> float:
    return float(np.max(x)) if np.size(x) else 0.0


@dataclass(frozen=True, eq=False)
class Bound:
    """The bound a candidate output must meet: ``value`` is the largest bound any element is
    held to; with a per-row conditioning term (``row_conditioning``, broadcastable against
    the output) each element is held to its own row's bound, ``limit``. ``at`` gives the
    scalar bound of one element's row, the one a failure message explains."""

    value: float
    k: float
    lowp_err: float
    atol: float
    source: str
    conditioning: float = 0.0
    conditioning_source: str = "not computed for this output"
    row_conditioning: np.ndarray | None = None  # per row; None: ``conditioning`` for all
    inputs: Conditioning | None = None  # the per-row magnitudes behind row_conditioning
    dtype: str = ""
    row: tuple[int, ...] | None = None  # set by ``at``: the row this bound is for
    row_range: tuple[float, float] | None = None  # set by ``at``: the rows' smallest, largest

    @property
    def same_dtype(self) -> float:
        """k · max|ref_lowp − ref64| + atol."""
        return self.k * self.lowp_err + self.atol

    @property
    def limit(self) -> float | np.ndarray:
        """Each element's bound, broadcastable against the output: ``value`` for every element,
        or max(same_dtype, its row's conditioning) (NaN when k or atol is NaN or negative)."""
        if self.row_conditioning is None:
            return self.value
        return combined(self.same_dtype, self.row_conditioning, self.k, self.atol)

    def at(self, index: tuple[int, ...], shape: tuple[int, ...]) -> Bound:
        """The bound of the row holding element ``index`` of an output of ``shape`` (this bound
        itself when it is one number for the whole output)."""
        if self.row_conditioning is None or self.inputs is None:
            return self
        cond, source = conditioning_bound(self.dtype, self.inputs.at(index, shape))
        rows = np.broadcast_to(self.limit, shape)
        return replace(self, value=float(combined(self.same_dtype, cond, self.k, self.atol)),
                       conditioning=cond, conditioning_source=source, row_conditioning=None,
                       inputs=None, row=tuple(index[:-1]),
                       row_range=(float(np.min(rows)), float(np.max(rows))))

    def dominant(self) -> str:
        if not self.conditioning > self.same_dtype:
            return "the same-dtype term dominates"
        return "the conditioning term dominates"

    def explain(self) -> str:
        # the row is named where rows' bounds differ (where they are equal, it is any row's)
        where = "" if self.row is None or self.row_range is None or not (
            self.row_range[0] < self.row_range[1]) else (
            f"; for row {self.row}, the row most over its own bound (bounds per row: "
            f"{self.row_range[0]:.3g} to {self.row_range[1]:.3g})")
        return (
            f"max|cand − ref64| ≤ max(k·max|ref_lowp − ref64| + atol, conditioning) = "
            f"max({self.k:g}·{self.lowp_err:.3g} + {self.atol:.3g}, {self.conditioning:.3g}) = "
            f"{self.value:.3g}, {self.dominant()} ({self.source}; "
            f"conditioning {self.conditioning_source}){where}"
        )


def unit_roundoff(dtype: str) -> float:
    """u = eps / 2: the largest relative error of rounding to ``dtype``."""
    return eps(dtype) / 2


def ulp(dtype: str, magnitude: float | np.ndarray) -> float | np.ndarray:
    """The spacing of ``dtype``'s numbers at ``magnitude``: eps · 2^⌊log2 x⌋ ≤ 2u·x
    (x clamped to [smallest normal, largest finite]: a stored logit lies there); elementwise
    for an array."""
    info = ml_dtypes.finfo(DTYPE_BY_NAME[dtype])
    x = np.clip(np.abs(np.asarray(magnitude, np.float64)), float(info.smallest_normal),
                float(info.max))
    spacing = float(info.eps) * np.ldexp(1.0, np.frexp(x)[1] - 1)
    return float(spacing) if spacing.ndim == 0 else spacing


def conditioning_terms(dtype: str, c: Conditioning) -> dict[str, float | np.ndarray]:
    """The conditioning bound's three parts (their sum is the bound), docs/tolerance.md,
    per row when ``c`` is:

    logits:      (ulp_l(M) + ulp64(M)) · σ         logits of magnitude M rounded, twice
    dot product: 2(√E + 2)(u_a + u64) · Q · σ      the length-E dot product and the scaling
    weights:     [(√Lk + 4)(u_a + u64) + u_p] · V   exp, normalisation, P rounded, P·V sum
    """
    logits, store, accumulate = COMPUTE_DTYPES[dtype]
    u_a = unit_roundoff(accumulate) + unit_roundoff("float64")
    return {
        "logits": (ulp(logits, c.logit_magnitude) + ulp("float64", c.logit_magnitude))
        * overflow_spread(logits, c),
        "dot product": 2 * (math.sqrt(c.dim) + 2) * u_a * c.dot_magnitude * c.value_spread,
        "weights": ((math.sqrt(c.keys) + 4) * u_a + unit_roundoff(store)) * c.value_magnitude,
    }


def overflow_spread(logits: str, c: Conditioning) -> float | np.ndarray:
    """σ, or max(σ, V) on a row whose logits lie within a factor OVERFLOW_MARGIN of the
    largest finite number of the kernel's logits dtype (a finfo.min fill): one rounding,
    or the log2(e) of an exp2 softmax, takes such a logit to −inf, which hides the key,
    so even a one-hot row (σ = 0) may become empty and follow the fully_masked policy.
    There ulp(M) ≥ 1, so the term then covers every value in [−V, V], zeros included."""
    near = np.asarray(c.logit_magnitude) >= float(
        ml_dtypes.finfo(DTYPE_BY_NAME[logits]).max) / OVERFLOW_MARGIN
    if not np.any(near):
        return c.value_spread
    spread = np.where(near, np.maximum(c.value_spread, c.value_magnitude), c.value_spread)
    return float(spread) if spread.ndim == 0 else spread


def conditioning_rows(dtype: str, c: Conditioning) -> float | np.ndarray:
    """The conditioning bound, per row when ``c`` is (the sum of ``conditioning_terms``)."""
    logits, dot, weights = conditioning_terms(dtype, c).values()
    return logits + dot + weights


def conditioning_bound(dtype: str, c: Conditioning | None) -> tuple[float, str]:
    """(bound, where it came from): the forward error of a backward-stable kernel, for
    one-number magnitudes (``Conditioning.largest`` or ``.at`` a row)."""
    if c is None:
        return 0.0, "not computed for this output"
    terms = {name: float(x) for name, x in conditioning_terms(dtype, c).items()}
    largest = max(terms, key=lambda name: terms[name])
    parts = " + ".join(f"{terms[n]:.3g} ({n})" for n in terms)
    return sum(terms.values()), (
        f"= {parts}, mostly {largest}, for M = {float(c.logit_magnitude):.3g}, "
        f"Q = {float(c.dot_magnitude):.3g}, σ = {float(c.value_spread):.3g}, "
        f"V = {float(c.value_magnitude):.3g}, E = {c.dim}, Lk = {c.keys} in {dtype}")


def atol_for(op: str, dtype: str, magnitude: float) -> tuple[float, str]:
    """(atol, where it came from) for an output of the given magnitude."""
    units, origin = ATOL_UNITS[dtype], "from the tolerance table"
    if (op, dtype) in OVERRIDES:
        units, reason = OVERRIDES[(op, dtype)]
        origin = f"the ({op}, {dtype}) override: {reason}"
    scale = max(1.0, magnitude)
    return units * eps(dtype) * scale, (
        f"atol = {units:g} eps({dtype}) × max(1, max|ref64|) = {units:g}·{eps(dtype):.3g}·"
        f"{scale:.3g}, {origin}")


def finite_max_abs(x: np.ndarray) -> float:
    x = np.abs(np.asarray(x, dtype=np.float64))
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else 0.0


def combined(same_dtype: float, conditioning: float | np.ndarray, k: float, atol: float
             ) -> float | np.ndarray:
    """max(same_dtype, conditioning), elementwise for per-row conditioning (a NaN conditioning
    leaves same_dtype); NaN when k or atol is NaN or negative (never passes)."""
    if not (k >= 0 and atol >= 0):
        return float("nan") if np.ndim(conditioning) == 0 else np.full(
            np.shape(conditioning), np.nan)
    if np.ndim(conditioning) == 0:
        return conditioning if conditioning > same_dtype else same_dtype
    return np.where(conditioning > same_dtype, conditioning, same_dtype)


def bound_for(
    op: str, dtype: str, ref64: np.ndarray, ref_lowp: np.ndarray, tolerance: Tolerance,
    conditioning: Conditioning | None = None,
) -> Bound:
    """The bound a candidate of ``dtype`` must meet for this output: one number, or one per
    row (``Bound.limit``) when ``conditioning`` is given per row."""
    with np.errstate(invalid="ignore"):  # inf − inf where both have the same inf: not an error
        lowp_err = finite_max_abs(np.asarray(ref_lowp, np.float64) - np.asarray(ref64, np.float64))
    if tolerance.atol is not None:
        atol, atol_source = tolerance.atol, f"atol = {tolerance.atol:g}, set for this run (--atol)"
    else:
        atol, atol_source = atol_for(op, dtype, finite_max_abs(ref64))
    k_source = (f"k = {tolerance.k:g}, the default" if tolerance.k == DEFAULT_K
                else f"k = {tolerance.k:g}, set for this run (--k)")
    rows = None
    if conditioning is not None and conditioning.per_row():
        rows = np.asarray(conditioning_rows(dtype, conditioning), np.float64)
        # the whole output's summary: the loosest row (combined is monotone in conditioning)
        loosest = (tuple(int(i) for i in np.unravel_index(int(np.argmax(rows)), rows.shape))
                   if rows.size else None)
        cond, cond_source = (conditioning_bound(dtype, conditioning.at(loosest, rows.shape))
                             if loosest is not None else (0.0, "not computed for this output"))
    else:
        cond, cond_source = conditioning_bound(
            dtype, None if conditioning is None else conditioning.largest())
    return Bound(
        value=float(combined(tolerance.k * lowp_err + atol, cond, tolerance.k, atol)),
        k=tolerance.k,
        lowp_err=lowp_err,
        atol=atol,
        source=f"{k_source}; {atol_source}",
        conditioning=cond,
        conditioning_source=cond_source,
        row_conditioning=rows,
        inputs=conditioning if rows is not None else None,
        dtype=dtype,
    )
