"""What one op is to the harness: ``OpSpec`` (cases, inputs, call, expected, outputs),
``Expected`` (one expected output) and ``require`` (a case's features vs a binding's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from conformance.adapters.load import OpBinding
from conformance.cases import Case
from conformance.errors import Unsupported
from conformance.profiles import Profile


class Expected(NamedTuple):
    """One expected output: float64 reference, reference in the case dtype, ignored elements,
    and (sdpa) its rows with no visible key (``conformance.judging.empty_rows.EmptyRows``)
    and what the tolerance's conditioning term needs to know
    (``conformance.judging.tolerance.Conditioning``)."""

    name: str
    ref64: np.ndarray
    ref_lowp: np.ndarray
    dtype: Any
    ignore: np.ndarray | None = None
    empty_rows: Any = None
    # conformance.judging.tolerance.Conditioning: the forward-error bound's inputs
    conditioning: Any = None


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
