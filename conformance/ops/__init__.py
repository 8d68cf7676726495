"""The ops the harness knows: one module per op, listed once in ``OP_SPECS``.

Each op module defines ``SPEC = OpSpec(...)``: how to build its cases, draw
their inputs, call an adapter's op, compute the expected outputs from the
reference (float64 and in the case's dtype) and read the adapter's outputs.
Adding an op is one module and one line here.
"""

from __future__ import annotations

from conformance.errors import Unsupported
from conformance.ops import other_ops, paged, sdpa, varlen
from conformance.ops.spec import Expected, OpSpec, require

# built when the package is imported: tests/test_layers.py checks it lists vocabulary.OPS
OP_SPECS: dict[str, OpSpec] = {"sdpa": sdpa.SPEC, **other_ops.SPECS,
                               "sdpa_varlen": varlen.SPEC, "paged_attention": paged.SPEC}


def op_specs() -> dict[str, OpSpec]:
    """The op table: op name -> its OpSpec, in vocabulary.OPS order."""
    return OP_SPECS


__all__ = ["OP_SPECS", "Expected", "OpSpec", "Unsupported", "op_specs", "require"]
