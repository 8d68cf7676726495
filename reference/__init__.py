"""NumPy reference of every attention variant: the single source of truth.

One variant per module, float64 by default, no torch import. ``VARIANTS`` is
the one explicit registry of public entry points.
"""

from reference.sdpa import sdpa

VARIANTS = {
    "sdpa": sdpa,
}

__all__ = ["VARIANTS", "sdpa"]
