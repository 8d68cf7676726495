"""The one table of checks, in the order they run (a mutant is credited to the first that fails).

Adding a check: write its function ``(ctx, op) -> Iterator[Result]`` and add
one row here.
"""

from __future__ import annotations

from conformance.checks.base import Check, RunContext
from conformance.checks.conventions import conventions
from conformance.checks.dropout import dropout
from conformance.checks.golden import golden
from conformance.checks.gradients import gradients
from conformance.checks.numeric import numeric, output_contract
from conformance.checks.properties import check_property
from conformance.checks.property_bodies import PROPERTIES
from conformance.vocabulary import OPS

CHECKS: tuple[Check, ...] = (
    Check("conventions", ("sdpa",), conventions,
          "probe causal_alignment, fully_masked, masked_nonfinite against the declaration"),
    Check("output_contract", ("sdpa",), output_contract,
          "output type, shape, dtype and finiteness"),
    # properties before the reference comparisons: they are cheap, never call the
    # reference, and say *which* law is broken, so a mutant is credited to the most
    # specific diagnosis; golden and numeric are the backstop for everything else.
    *(Check(p.name, (p.op,), check_property(p), p.description.splitlines()[0])
      for p in PROPERTIES),
    Check("gradients", ("sdpa",), gradients, "autograd gradients against sdpa_backward"),
    # dropout compares the adapter with itself at p = 0, like the properties; after
    # gradients, which must stay the first to see an autograd bug (a kernel whose
    # backward is wrong can draw its dropout wrongly too, and be credited here)
    Check("dropout", ("sdpa",), dropout,
          "with dropout_p > 0: entries 0 or W/(1-p), a fraction p dropped, mean W (Hoeffding)"),
    Check("golden", ("sdpa",), golden, "the pinned golden sdpa cases (sha256-verified)"),
    Check("numeric", OPS, numeric, "agreement with the reference under the tolerance model"),
)

CHECK_NAMES = tuple(c.name for c in CHECKS)

__all__ = ["CHECKS", "CHECK_NAMES", "Check", "RunContext"]
