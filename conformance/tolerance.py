"""The tolerance model: one table, keyed by dtype, overrides keyed by (op, dtype).

A candidate output passes when

    max|cand − ref64| ≤ k · max|ref_lowp − ref64| + atol

where ref64 is the float64 reference, ref_lowp the reference re-run the way a
straightforward kernel in the candidate's dtype runs it (inputs, scores and
probabilities rounded to the dtype, sums in float32), k = 2 by default (the
flash-attention rule: at most twice a same-precision reference's error) and

    atol = units(dtype) · eps(dtype) · max(1, max|ref64|)

a few units of the dtype's resolution at the output's magnitude, never 0.
The max is taken over the whole output: an elementwise form fails 2–5 % of
honest float32 cases. float64 has ref_lowp = ref64, so it is held to
float64 accuracy alone: a float64 kernel computing in float32 fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.frameworks import eps

DEFAULT_K = 2.0

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


@dataclass(frozen=True)
class Tolerance:
    """Per-run settings: k and an optional atol override (None = table)."""

    k: float = DEFAULT_K
    atol: float | None = None


@dataclass(frozen=True)
class Bound:
    value: float
    k: float
    lowp_err: float
    atol: float
    source: str

    def explain(self) -> str:
        return (
            f"max|cand − ref64| ≤ k·max|ref_lowp − ref64| + atol = "
            f"{self.k:g}·{self.lowp_err:.3g} + {self.atol:.3g} = {self.value:.3g} ({self.source})"
        )


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


def bound_for(
    op: str, dtype: str, ref64: np.ndarray, ref_lowp: np.ndarray, tolerance: Tolerance
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
    return Bound(
        value=tolerance.k * lowp_err + atol,
        k=tolerance.k,
        lowp_err=lowp_err,
        atol=atol,
        source=f"{k_source}; {atol_source}",
    )
