"""Calling an adapter: conversion in and out, exceptions classified, mutation noticed.

``Invoker.call(op, args, kwargs)`` takes NumPy arguments and gives NumPy
outputs (a tuple stays a tuple). It raises:

* ``Unsupported`` when the adapter raised NotImplementedError (→ skipped);
* ``AdapterError`` for any other exception inside the adapter (→ failed,
  naming the exception type, so a crash is never read as wrong numbers);
* ``OutputTypeError`` when the output is not an array of its framework.

The in-process invoker lives here; ``conformance.isolation`` runs the same
calls in a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.adapters import ResolvedAdapter
from conformance.frameworks import OutputTypeError
from conformance.ops import Unsupported


class AdapterError(Exception):
    """The adapter raised; ``str()`` names the exception type and its text."""


@dataclass(frozen=True)
class Outcome:
    value: Any
    mutated: tuple[str, ...] = ()


def _native(framework, value: Any) -> Any:
    return framework.to_native(value) if isinstance(value, np.ndarray) else value


def convert_outputs(raw: Any, framework) -> Any:
    """Tuple → tuple of converted items; None stays None; anything else must be an array."""
    if isinstance(raw, tuple):
        return tuple(None if r is None else framework.to_numpy(r) for r in raw)
    return framework.to_numpy(raw)


def _mutated(framework, originals: dict[str, np.ndarray], natives: dict[str, Any]) -> tuple:
    changed = []
    for name, original in originals.items():
        try:
            after = np.asarray(framework.to_numpy(natives[name]))
        except Exception:  # the adapter replaced or broke its input object
            changed.append(name)
            continue
        same_shape = after.shape == original.shape
        if not same_shape or not np.array_equal(after, original, equal_nan=True):
            changed.append(name)
    return tuple(changed)


def call_adapter(adapter: ResolvedAdapter, op: str, args: list, kwargs: dict) -> Outcome:
    """One call of ``op`` with NumPy arguments, in this process."""
    fw = adapter.framework
    named = {f"arg{i}": a for i, a in enumerate(args)} | kwargs
    natives = {name: _native(fw, value) for name, value in named.items()}
    positional = [natives[f"arg{i}"] for i in range(len(args))]
    keywords = {k: natives[k] for k in kwargs}
    try:
        raw = adapter.ops[op].fn(*positional, **keywords)
    except NotImplementedError as exc:
        raise Unsupported(f"adapter raised NotImplementedError: {exc}") from None
    except Exception as exc:  # anything else from inside the adapter is a failure
        raise AdapterError(f"adapter raised {type(exc).__name__}: {exc}") from None
    value = convert_outputs(raw, fw)
    originals = {n: v for n, v in named.items() if isinstance(v, np.ndarray)}
    return Outcome(value, _mutated(fw, originals, natives))


def call_gradients(adapter: ResolvedAdapter, args: list, kwargs: dict) -> Outcome:
    """(dq, dk, dv) of sum(out · grad_out) by the adapter's own autograd (torch adapters)."""
    fw = adapter.framework
    query, key, value, grad_out = (fw.to_native(a) for a in args)
    leaves = [t.requires_grad_(True) for t in (query, key, value)]
    keywords = {k: _native(fw, v) for k, v in kwargs.items()}
    try:
        out = adapter.ops["sdpa"].fn(*leaves, **keywords)
        out.backward(grad_out)
    except NotImplementedError as exc:
        raise Unsupported(f"adapter raised NotImplementedError: {exc}") from None
    except Exception as exc:  # anything else from inside the adapter is a failure
        raise AdapterError(f"adapter raised {type(exc).__name__}: {exc}") from None
    return Outcome(tuple(fw.to_numpy(t.grad) if t.grad is not None else None for t in leaves))


def dispatch(adapter: ResolvedAdapter, op: str, args: list, kwargs: dict) -> Outcome:
    """``sdpa:grad`` runs autograd; any other name is an op of the adapter."""
    if op == "sdpa:grad":
        return call_gradients(adapter, args, kwargs)
    return call_adapter(adapter, op, args, kwargs)


class InProcessInvoker:
    """Calls the adapter directly; used by the quick and full profiles."""

    mode = "inprocess"

    def __init__(self, adapter: ResolvedAdapter) -> None:
        self.adapter = adapter

    def call(self, op: str, args: list, kwargs: dict, timeout: float | None = None) -> Outcome:
        return dispatch(self.adapter, op, args, kwargs)

    def close(self) -> None:
        pass


__all__ = ["AdapterError", "InProcessInvoker", "Outcome", "OutputTypeError", "dispatch"]
