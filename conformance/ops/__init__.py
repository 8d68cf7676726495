"""The ops the harness knows: one module per op, listed once in ``OP_SPECS``.

Each op module defines ``SPEC = OpSpec(...)``: how to build its cases, draw
their inputs, call an adapter's op, compute the expected outputs from the
reference (float64 and in the case's dtype) and read the adapter's outputs.
Adding an op is one module and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from conformance.adapters import OpBinding
from conformance.cases import Case
from conformance.profiles import Profile


class Expected(NamedTuple):
    """One expected output: float64 reference, reference in the case dtype, ignored elements,
    and (sdpa) its rows with no visible key (``conformance.empty_rows.EmptyRows``) and what
    the tolerance's conditioning term needs to know (``conformance.tolerance.Conditioning``)."""

    name: str
    ref64: np.ndarray
    ref_lowp: np.ndarray
    dtype: Any
    ignore: np.ndarray | None = None
    empty_rows: Any = None
    conditioning: Any = None  # conformance.tolerance.Conditioning: the forward-error bound's inputs


class Unsupported(Exception):
    """The case needs something the adapter does not accept or declare: skipped, with why."""


@dataclass(frozen=True)
class OpSpec:
    name: str
    cases: Callable[[Profile, int], list[Case]]
    inputs: Callable[[Case], dict[str, Any]]
    arguments: Callable[[OpBinding, dict[str, Any], Case], tuple[list, dict[str, Any]]]
    expected: Callable[[dict[str, Any], Case, dict[str, Any]], list[Expected]]
    outputs: Callable[[Any, list[Expected]], list[np.ndarray]]


def require(binding: OpBinding, case: Case) -> None:
    """Raise Unsupported when the case needs a feature the binding lacks."""
    missing = sorted(case.features - binding.features)
    if missing:
        raise Unsupported(f"adapter does not support feature(s) {missing} needed by {case.id}")


def _registry() -> dict[str, OpSpec]:
    from conformance.ops import other_ops, paged, sdpa, varlen

    specs = {"sdpa": sdpa.SPEC}
    specs.update(other_ops.SPECS)
    specs.update({"sdpa_varlen": varlen.SPEC, "paged_attention": paged.SPEC})
    return specs


OP_SPECS: dict[str, OpSpec] = {}


def op_specs() -> dict[str, OpSpec]:
    if not OP_SPECS:
        OP_SPECS.update(_registry())
    return OP_SPECS
