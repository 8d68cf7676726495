"""Calling an adapter: conversion in and out, exceptions classified, mutation noticed.

``Invoker.call(op, args, kwargs)`` takes NumPy arguments and gives NumPy
outputs (a tuple stays a tuple). It raises:

* ``Unsupported`` when the adapter raised NotImplementedError (→ skipped);
* ``AdapterError`` for any other exception inside the adapter, SystemExit
  included (→ failed, naming the exception type, so a crash is never read as
  wrong numbers); only KeyboardInterrupt goes through, to stop the run;
* ``OutputTypeError`` when the output is not an array of its framework.

The in-process invoker lives here; ``conformance.adapters.isolated.parent`` runs the same
calls in a worker process, where a call can also be *lost* (``WorkerLost``: a
timeout, a dead worker). ``HangBudget`` bounds what lost calls cost a run: after
``HANG_BUDGET`` of them on one op, that op's remaining calls are refused
(``NotRun``) without being made.
"""

from __future__ import annotations

import faulthandler
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from conformance.adapters.frameworks import OutputTypeError
from conformance.adapters.load import ResolvedAdapter
from conformance.errors import MESSAGE_LIMIT as MESSAGE_LIMIT
from conformance.errors import (
    AdapterError,
    NotRun,
    StopExamples,
    Unsupported,
    WorkerLost,
    describe_exception,
)

# names of the positional arguments in mutation reports (others are arg0, arg1, …)
POSITIONAL_NAMES = {"sdpa": ("query", "key", "value")}


def _unsupported(exc: NotImplementedError) -> Unsupported:
    return Unsupported(f"adapter raised {describe_exception(exc)}")


def _adapter_error(exc: BaseException) -> AdapterError:
    return AdapterError(f"adapter raised {describe_exception(exc)}")


class Outcome:
    """One call's output (NumPy) and the names of the inputs the call modified in place.

    ``mutated`` is given as a tuple or as a function computing it. In-process it is a
    function, run when ``mutated`` is first read: comparing every input with its original
    was ~40 % of the harness's own cost of a tiny torch call, and only the no_mutation
    property reads it.
    """

    __slots__ = ("_mutated", "value")

    def __init__(self, value: Any,
                 mutated: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()) -> None:
        self.value = value
        self._mutated = mutated

    @property
    def mutated(self) -> tuple[str, ...]:
        if callable(self._mutated):
            self._mutated = self._mutated()
        return self._mutated


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
        if not _unchanged(after, original):
            changed.append(name)
    return tuple(changed)


def _unchanged(after: np.ndarray, original: np.ndarray) -> bool:
    """Same shape and equal values (NaN equal to NaN). Bit-identical arrays, the usual case,
    are recognised without the slower NaN-aware comparison."""
    if after.shape != original.shape:
        return False
    if after.dtype == original.dtype and after.tobytes() == original.tobytes():
        return True
    return bool(np.array_equal(after, original, equal_nan=True))


def _positional_names(op: str, count: int) -> list[str]:
    known = POSITIONAL_NAMES.get(op, ())
    return [known[i] if i < len(known) else f"arg{i}" for i in range(count)]


def _guarded(thunk):
    """Run adapter code: NotImplementedError → Unsupported, anything else → AdapterError."""
    try:
        return thunk()
    except NotImplementedError as exc:
        raise _unsupported(exc) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit, MemoryError, …: a failure of this case
        raise _adapter_error(exc) from None


def call_adapter(adapter: ResolvedAdapter, op: str, args: list, kwargs: dict) -> Outcome:
    """One call of ``op`` with NumPy arguments, in this process."""
    fw = adapter.framework
    names = _positional_names(op, len(args))
    named = dict(zip(names, args, strict=True)) | kwargs
    natives = {name: _native(fw, value) for name, value in named.items()}
    positional = [natives[n] for n in names]
    keywords = {k: natives[k] for k in kwargs}
    raw = _guarded(lambda: adapter.ops[op].fn(*positional, **keywords))
    try:
        value = convert_outputs(raw, fw)
    except OutputTypeError:
        raise
    except Exception as exc:  # e.g. a tensor the framework cannot bring back
        raise OutputTypeError(
            f"the adapter's output could not be used: {describe_exception(exc)}") from None
    originals = {n: v for n, v in named.items() if isinstance(v, np.ndarray)}
    return Outcome(value, lambda: _mutated(fw, originals, natives))


def call_gradients(adapter: ResolvedAdapter, args: list, kwargs: dict) -> Outcome:
    """(dq, dk, dv) of sum(out · grad_out) by the adapter's own autograd (torch adapters)."""
    fw = adapter.framework
    query, key, value, grad_out = (fw.to_native(a) for a in args)
    leaves = [t.requires_grad_(True) for t in (query, key, value)]
    keywords = {k: _native(fw, v) for k, v in kwargs.items()}
    _guarded(lambda: adapter.ops["sdpa"].fn(*leaves, **keywords).backward(grad_out))
    return Outcome(tuple(fw.to_numpy(t.grad) if t.grad is not None else None for t in leaves))


def seed_framework(framework, seed: int) -> None:
    """Seed the framework's global generator, where it has one (``torch.manual_seed``)."""
    seeder = getattr(framework, "seed", None)
    if callable(seeder):
        seeder(seed)


def dispatch(adapter: ResolvedAdapter, op: str, args: list, kwargs: dict) -> Outcome:
    """``sdpa:grad`` runs autograd; ``sdpa:seeded`` is sdpa after seeding the framework's
    generator with ``kwargs["seed"]`` (dropout); any other name is an op of the adapter."""
    if op == "sdpa:grad":
        return call_gradients(adapter, args, kwargs)
    if op == "sdpa:seeded":
        kwargs = dict(kwargs)
        seed_framework(adapter.framework, kwargs.pop("seed"))
        return call_adapter(adapter, "sdpa", args, kwargs)
    return call_adapter(adapter, op, args, kwargs)


# A kernel that hangs on one shape does so once per dtype (4 in every profile) and should
# still have the rest of its cases run; a fifth lost call on the same op says the op hangs
# (or crashes) systematically. Worst case per op: HANG_BUDGET x the per-call timeout.
HANG_BUDGET = 5


def _times(n: int) -> str:
    return f"{n} time{'' if n == 1 else 's'}"


class HangBudget:
    """Lost calls (timeouts and dead workers) per op; once an op has lost ``limit`` of them,
    ``check(op)`` raises NotRun: "not run: the adapter hung N times on OP (last: CASE)".

    The invoker does not know case ids: the runner passes the first failed result after a
    loss to ``attribute``, which names it as the last lost case."""

    def __init__(self, limit: int = HANG_BUDGET) -> None:
        self.limit = limit
        self.hangs: dict[str, int] = {}
        self.crashes: dict[str, int] = {}
        self.last: dict[str, str] = {}
        self.pending: str | None = None  # op of a loss whose case is not yet named

    def lost(self, op: str, hung: bool) -> None:
        """One more lost call of ``op``: a timeout (``hung``) or a dead worker."""
        counts = self.hangs if hung else self.crashes
        counts[op] = counts.get(op, 0) + 1
        self.pending = op

    def attribute(self, where: str) -> None:
        if self.pending is not None:
            self.last[self.pending], self.pending = where, None

    def check(self, op: str) -> None:
        hangs, crashes = self.hangs.get(op, 0), self.crashes.get(op, 0)
        if hangs + crashes < self.limit:
            return
        what = " and ".join([f"hung {_times(hangs)}"] * bool(hangs) +
                            [f"crashed its worker {_times(crashes)}"] * bool(crashes))
        last = f" (last: {self.last[op]})" if op in self.last else ""
        raise NotRun(f"not run: the adapter {what} on {op}{last}; the kit stops calling an "
                     f"op after {self.limit} timeouts or dead workers (its hang budget)")


def describe_call(op: str, args: list, kwargs: dict) -> str:
    """``attnconf call sdpa(float64(1, 2, 7, 16), …, is_causal=True)``: a call, by its
    arguments' dtypes and shapes and its other arguments' values."""
    def brief(v: Any) -> str:
        return f"{v.dtype.name}{v.shape}" if isinstance(v, np.ndarray) else repr(v)[:40]

    words = [*map(brief, args), *(f"{k}={brief(v)}" for k, v in kwargs.items())]
    return f"attnconf call {op}({', '.join(words)})"


def _named_frame(thunk: Callable[[], Any]) -> Any:
    return thunk()


def call_named(name: str, thunk: Callable[[], Any]) -> Any:
    """``thunk()`` inside a frame called ``name``: faulthandler's stack of a fatal error
    (a segfault in the kernel) then names the running call. Costs ~1 µs."""
    code = _named_frame.__code__.replace(co_name=name)
    if sys.version_info >= (3, 11):  # co_qualname is new in 3.11 (3.10 has co_name only)
        code = code.replace(co_qualname=name)
    return types.FunctionType(code, {})(thunk)


@contextmanager
def crash_reports() -> Iterator[None]:
    """faulthandler on for the duration (Python stacks of a segfault or abort on stderr), unless
    it already is (pytest turns it on) or stderr has no file descriptor to write to."""
    stream = sys.__stderr__
    if faulthandler.is_enabled() or stream is None:
        yield
        return
    try:
        faulthandler.enable(file=stream, all_threads=True)
    except (AttributeError, ValueError, OSError):  # a stderr without a file descriptor
        yield
        return
    try:
        yield
    finally:
        faulthandler.disable()


class Invoker(Protocol):
    """How a check calls the adapter: in this process, or in a worker
    (``conformance.adapters.isolated.parent.SubprocessInvoker``)."""

    mode: str  # "inprocess" | "subprocess": reported in the run's settings
    # True while a hypothesis-driven check runs: a timeout or dead worker then raises
    # StopExamples instead of AdapterError (in process there is nothing to stop)
    stop_examples: bool

    def call(self, op: str, args: list, kwargs: dict,
             timeout: float | None = None) -> Outcome: ...

    def settings(self) -> dict[str, Any]:
        """What the report's settings add for this invoker (worker memory, restarts)."""
        ...

    def close(self) -> None: ...

    # an isolating invoker's HangBudget (None in process: a call there cannot be lost)
    @property
    def budget(self) -> HangBudget | None: ...


class InProcessInvoker:
    """Calls the adapter directly (``--isolate inprocess``, and the pytest plugin's default).

    When faulthandler is on, each call runs in a frame named after it (``describe_call``),
    so a crash of the process says which call was running."""

    mode = "inprocess"
    budget: HangBudget | None = None  # a call in this process is never lost

    def __init__(self, adapter: ResolvedAdapter) -> None:
        self.adapter = adapter
        self.stop_examples = False

    def settings(self) -> dict[str, Any]:
        return {}

    def call(self, op: str, args: list, kwargs: dict, timeout: float | None = None) -> Outcome:
        if faulthandler.is_enabled():
            return call_named(describe_call(op, args, kwargs),
                              lambda: dispatch(self.adapter, op, args, kwargs))
        return dispatch(self.adapter, op, args, kwargs)

    def close(self) -> None:
        pass


__all__ = [
    "HANG_BUDGET",
    "AdapterError",
    "HangBudget",
    "InProcessInvoker",
    "Invoker",
    "NotRun",
    "Outcome",
    "OutputTypeError",
    "StopExamples",
    "WorkerLost",
    "call_named",
    "crash_reports",
    "describe_call",
    "describe_exception",
    "dispatch",
]
