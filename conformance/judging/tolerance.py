"""The tolerance model: one table, keyed by dtype, overrides keyed by (op, dtype).

A candidate output passes when

    max|cand − ref64| ≤ max(k · max|ref_lowp − ref64| + atol, conditioning)

where ref64 is the float64 reference, ref_lowp the reference re-run the way a
straightforward kernel in the candidate's dtype runs it (inputs, scores and
probabilities rounded to the dtype, sums in float32), k = 2 by default (the
flash-attention rule: at most twice a same-precision reference's error) and

    atol = units(dtype) · eps(dtype) · max(1, max|ref64|)

a few units of the dtype's resolution at the output's magnitude, never 0.
The max is taken over the whole output: an elementwise form fails 2–5 % of
honest float32 cases. float64 has ref_lowp = ref64, so it is held to
float64 accuracy alone: a float64 kernel computing in float32 fails.

``conditioning`` is the forward-error bound of a backward-stable kernel
(docs/tolerance.md derives it): with u_a the unit roundoff of the kernel's
sums, u_p that of its stored P, ulp_l the spacing of its logits' dtype,

    conditioning = (ulp_l(M) + ulp64(M))·σ + 2(√E + 2)(u_a + u64)·Q·σ
                   + [(√Lk + 4)(u_a + u64) + u_p]·V

M = max over rows of |lse| + ln Lk (bounds |row max logit|, biases included),
Q = scale · max‖q_i‖ · max‖k_j‖, σ = the largest softmax-weighted standard
deviation of a value column, V = max|v|. Its first part is what softmax
makes of logits rounded at their magnitude: it grows with M, which the
same-dtype rule does not see in float64 (ref_lowp = ref64 there), so a
float64 kernel whose logits near −1e5 round differently (±7e-12) passes.

A NaN or negative k or atol makes the bound NaN, and ``compare`` fails every
element against a NaN bound: such a bound never passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

# units of eps(dtype), at the output's magnitude, for adapter-vs-adapter equalities in the
# properties: two calls of one kernel on inputs that differ by a permutation, a shift or a
# padding reorder its sums; 4096 eps(float64) ≈ 9e-13 covers L ≤ 512 rows of ~√L·eps each
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


@dataclass(frozen=True)
class Conditioning:
    """What the forward-error bound needs to know about one case's inputs (docs/tolerance.md).

    logit_magnitude M: max over rows of |row max logit| + ln Lk, biases included;
    dot_magnitude Q: scale · max‖q_i‖ · max‖k_j‖ (Cauchy–Schwarz bound of |scale · q·k|);
    value_spread σ: max over rows and value columns of the softmax-weighted standard deviation
    of the values, sqrt(Σ_j p_j v_j² − o²) (0 for a one-hot row); value_magnitude V: max|v|;
    dim E and keys Lk: the lengths of the two sums.
    """

    logit_magnitude: float
    dot_magnitude: float
    value_spread: float
    value_magnitude: float
    dim: int
    keys: int


@dataclass(frozen=True)
class Bound:
    value: float
    k: float
    lowp_err: float
    atol: float
    source: str
    conditioning: float = 0.0
    conditioning_source: str = "not computed for this output"

    @property
    def same_dtype(self) -> float:
        """k · max|ref_lowp − ref64| + atol."""
        return self.k * self.lowp_err + self.atol

    def dominant(self) -> str:
        if not self.conditioning > self.same_dtype:
            return "the same-dtype term dominates"
        return "the conditioning term dominates"

    def explain(self) -> str:
        return (
            f"max|cand − ref64| ≤ max(k·max|ref_lowp − ref64| + atol, conditioning) = "
            f"max({self.k:g}·{self.lowp_err:.3g} + {self.atol:.3g}, {self.conditioning:.3g}) = "
            f"{self.value:.3g}, {self.dominant()} ({self.source}; "
            f"conditioning {self.conditioning_source})"
        )


def unit_roundoff(dtype: str) -> float:
    """u = eps / 2: the largest relative error of rounding to ``dtype``."""
    return eps(dtype) / 2


def ulp(dtype: str, magnitude: float) -> float:
    """The spacing of ``dtype``'s numbers at ``magnitude``: eps · 2^⌊log2 x⌋ ≤ 2u·x
    (x clamped to [smallest normal, largest finite]: a stored logit lies there)."""
    info = ml_dtypes.finfo(DTYPE_BY_NAME[dtype])
    x = min(max(abs(magnitude), float(info.smallest_normal)), float(info.max))
    return float(info.eps) * 2.0 ** (math.frexp(x)[1] - 1)


def conditioning_terms(dtype: str, c: Conditioning) -> dict[str, float]:
    """The conditioning bound's three parts (their sum is the bound), docs/tolerance.md:

    logits:      (ulp_l(M) + ulp64(M)) · σ         logits of magnitude M rounded, twice
    dot product: 2(√E + 2)(u_a + u64) · Q · σ      the length-E dot product and the scaling
    weights:     [(√Lk + 4)(u_a + u64) + u_p] · V   exp, normalisation, P rounded, P·V sum
    """
    logits, store, accumulate = COMPUTE_DTYPES[dtype]
    u_a = unit_roundoff(accumulate) + unit_roundoff("float64")
    return {
        "logits": (ulp(logits, c.logit_magnitude) + ulp("float64", c.logit_magnitude))
        * c.value_spread,
        "dot product": 2 * (math.sqrt(c.dim) + 2) * u_a * c.dot_magnitude * c.value_spread,
        "weights": ((math.sqrt(c.keys) + 4) * u_a + unit_roundoff(store)) * c.value_magnitude,
    }


def conditioning_bound(dtype: str, c: Conditioning | None) -> tuple[float, str]:
    """(bound, where it came from): the forward error of a backward-stable kernel."""
    if c is None:
        return 0.0, "not computed for this output"
    terms = conditioning_terms(dtype, c)
    largest = max(terms, key=lambda name: terms[name])
    parts = " + ".join(f"{terms[n]:.3g} ({n})" for n in terms)
    return sum(terms.values()), (
        f"= {parts}, mostly {largest}, for M = {c.logit_magnitude:.3g}, "
        f"Q = {c.dot_magnitude:.3g}, σ = {c.value_spread:.3g}, V = {c.value_magnitude:.3g}, "
        f"E = {c.dim}, Lk = {c.keys} in {dtype}")


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


def combined(same_dtype: float, conditioning: float, k: float, atol: float) -> float:
    """max(same_dtype, conditioning); NaN when k or atol is NaN or negative (never passes)."""
    if not (k >= 0 and atol >= 0):
        return float("nan")
    return conditioning if conditioning > same_dtype else same_dtype


def bound_for(
    op: str, dtype: str, ref64: np.ndarray, ref_lowp: np.ndarray, tolerance: Tolerance,
    conditioning: Conditioning | None = None,
) -> Bound:
    """The scalar bound a candidate of ``dtype`` must meet for this output."""
    with np.errstate(invalid="ignore"):  # inf − inf where both have the same inf: not an error
        lowp_err = finite_max_abs(np.asarray(ref_lowp, np.float64) - np.asarray(ref64, np.float64))
    if tolerance.atol is not None:
        atol, atol_source = tolerance.atol, f"atol = {tolerance.atol:g}, set for this run (--atol)"
    else:
        atol, atol_source = atol_for(op, dtype, finite_max_abs(ref64))
    k_source = (f"k = {tolerance.k:g}, the default" if tolerance.k == DEFAULT_K
                else f"k = {tolerance.k:g}, set for this run (--k)")
    cond, cond_source = conditioning_bound(dtype, conditioning)
    return Bound(
        value=combined(tolerance.k * lowp_err + atol, cond, tolerance.k, atol),
        k=tolerance.k,
        lowp_err=lowp_err,
        atol=atol,
        source=f"{k_source}; {atol_source}",
        conditioning=cond,
        conditioning_source=cond_source,
    )
