"""Run an adapter in a worker process: a broken implementation fails one case, never the run.

The parent never imports the adapter. ``resolve_isolated(spec)`` starts a
worker, which loads and resolves the adapter itself and answers with a
plain-data description (``conformance.adapters.load.describe``);
``SubprocessInvoker.call`` sends each call to that worker, which runs the
in-process ``dispatch`` (conversion, exception classification, mutation
check) and sends the outputs back. Expected values are computed in the
parent, out of reach of anything the adapter patches at import time.

Parent and worker talk over two dedicated pipes, never the worker's stdout,
in the format of ``conformance.adapters.isolated.wire`` (JSON and raw array bytes: nothing
from the worker is ever unpickled). The worker's side is ``worker.py``.

What a broken adapter costs:

* an exception (SystemExit and MemoryError included) fails that case, naming
  the type; after a MemoryError the worker is replaced;
* a hang is killed (the whole process group) after the call's timeout: that
  case fails with "timed out after X s" and the next case gets a fresh worker;
* a dead worker (os.abort, a segfault, os._exit) fails that case with the
  signal or exit status and the last lines the worker wrote (faulthandler
  prints the Python stack there); the next case gets a fresh worker;
* output written to stdout/stderr is drained into the worker log (``worker_log.py``),
  so printing cannot block or corrupt anything;
* reaching the memory limit (resident memory, polled) ends the worker and fails
  that call naming the limit; a MemoryError does the same;
* after ``HANG_BUDGET`` timeouts or dead workers on one op in one run, that
  op's remaining calls fail at once as "not run" (``invoke.HangBudget``):
  a kernel that hangs on every odd length costs a few timeouts, not hundreds.

The worker runs in a scratch directory, dies with its parent, and takes every
process it started with it (``worker_process.py``, ``procs.py`` beside this module);
its limits (memory, file size, output) are read from the environment
(``limits.py``, docs/isolation.md). A run-level ``deadline`` (``--max-time``) caps
every call and refuses calls once it has passed.
"""

from __future__ import annotations

import atexit
import time
from typing import Any, Literal

import numpy as np

from conformance.adapters.frameworks import OutputTypeError
from conformance.adapters.invoke import (
    AdapterError,
    HangBudget,
    NotRun,
    Outcome,
    StopExamples,
    WorkerLost,
    describe_call,
)
from conformance.adapters.isolated.limits import (
    MEMORY_ENV,
    filesize_limit_from_env,
    log_path_from_env,
    memory_limit_from_env,
    size_text,
)
from conformance.adapters.isolated.wire import ProtocolError, decode, encode
from conformance.adapters.isolated.worker_process import (
    MemoryLimitReached,
    Worker,
    WorkerExited,
)
from conformance.adapters.load import (
    AdapterLoadError,
    ResolvedAdapter,
    from_description,
)
from conformance.errors import RemoteTraceback as RemoteTraceback
from conformance.errors import RunOutOfTime as RunOutOfTime
from conformance.errors import Unsupported
from conformance.errors import WorkerCrashed as WorkerCrashed
from conformance.errors import WorkerOutOfMemory as WorkerOutOfMemory
from conformance.errors import WorkerTimeout as WorkerTimeout

LOAD_TIMEOUT = 120.0  # seconds to start a worker and load the adapter (torch takes a few)
DEFAULT_CALL_TIMEOUT = 60.0  # when neither the caller nor --timeout gives one


LEFT_BEHIND: list[int] = []  # pids that survived the end of their worker (reported by the run)


def _end(worker: Worker) -> None:
    LEFT_BEHIND.extend(worker.kill())


_IDLE: dict[tuple, Worker] = {}  # at most one started-and-ready worker, kept for the next run


def _park(worker: Worker) -> None:
    for other in list(_IDLE.values()):
        _end(other)
    _IDLE.clear()
    _IDLE[worker.key] = worker


@atexit.register
def _kill_idle() -> None:
    for worker in _IDLE.values():
        _end(worker)
    _IDLE.clear()


def _new_worker(spec: str, framework: str | None, memory: int | None) -> Worker:
    return Worker(spec, framework, memory, filesize_limit_from_env())


def _start(spec: str, framework: str | None, memory: int | None,
           worker: Worker | None = None, timeout: float = LOAD_TIMEOUT) -> tuple[Worker, Any]:
    """A ready worker (``worker`` once it is, or a new one) and its description;
    AdapterLoadError (one line) otherwise."""
    worker = worker or _new_worker(spec, framework, memory)
    try:
        reply, _ = worker.receive(timeout)
    except TimeoutError:
        _end(worker)
        raise AdapterLoadError(f"adapter {spec!r} did not load within {timeout:g} s "
                               f"(in its worker process)") from None
    except MemoryLimitReached as exc:
        _end(worker)
        raise AdapterLoadError(f"adapter {spec!r}: its worker reached its memory limit of "
                               f"{size_text(memory)} while loading it ({exc}); set "
                               f"{MEMORY_ENV}") from None
    except (EOFError, ProtocolError, WorkerExited):
        how = worker.death()
        _end(worker)
        raise AdapterLoadError(f"adapter {spec!r}: its worker process died while loading "
                               f"it, {how.splitlines()[0]}") from RemoteTraceback(how)
    if reply.get("status") != "ready":
        _end(worker)
        raise AdapterLoadError(str(reply.get("message"))[:2000]) from RemoteTraceback(
            str(reply.get("traceback", "")))
    return worker, reply.get("description")


def resolve_isolated(spec: str, framework: str | None = None,
                     memory: int | Literal["env"] | None = "env") -> ResolvedAdapter:
    """Resolve ``spec`` in a fresh worker process; the parent never imports the adapter."""
    limit = memory_limit_from_env() if isinstance(memory, str) else memory
    worker, description = _start(spec, framework, limit)
    try:
        adapter = from_description(spec, framework, description)
    except AdapterLoadError:
        _end(worker)
        raise
    _park(worker)
    return adapter


def out_of_time(max_time: float) -> str:
    """The message of a call refused (or cut short) because --max-time ran out."""
    return f"not run: the run's time budget (--max-time {max_time:g}) ran out"


class SubprocessInvoker:
    """Calls the adapter in a worker process (``--isolate subprocess``, every profile's default).

    ``timeout`` (``--timeout``) overrides the per-call timeout the checks ask for;
    ``budget`` counts the calls lost per op and refuses an op's calls once it is spent;
    ``deadline`` (time.monotonic(), from ``--max-time`` ``max_time``) caps every call.
    """

    mode = "subprocess"

    def __init__(self, adapter: ResolvedAdapter, timeout: float | None = None,
                 memory: int | Literal["env"] | None = "env",
                 budget: HangBudget | None = None,
                 deadline: float | None = None, max_time: float | None = None) -> None:
        self.adapter, self.timeout = adapter, timeout
        self.budget = budget or HangBudget()
        self.memory = memory_limit_from_env() if isinstance(memory, str) else memory
        self.deadline, self.max_time = deadline, max_time
        self.key = (adapter.spec, adapter.framework_arg, self.memory)
        self.worker: Worker | None = _IDLE.pop(self.key, None)
        self.restarts, self.sequence, self.busy = 0, 0, False
        self.stop_examples = False  # set by the runner around hypothesis-driven checks
        self.spare: Worker | None = None  # started while a slow call runs

    def _remaining(self) -> float:
        """Seconds left of the run's budget (inf without one); RunOutOfTime once spent."""
        if self.deadline is None:
            return float("inf")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RunOutOfTime(out_of_time(self.max_time or 0.0))
        return left

    def _worker(self) -> Worker:
        if self.worker is None:
            spare, self.spare = self.spare, None
            try:
                self.worker, _ = _start(*self.key, worker=spare,
                                        timeout=min(LOAD_TIMEOUT, self._remaining()))
            except AdapterLoadError as exc:
                self._remaining()  # the budget, not the adapter, ended the start
                raise WorkerCrashed(f"could not start a worker for the adapter: {exc}") from None
        return self.worker

    def _start_spare(self) -> None:
        """A call is slow: start its possible successor now, so that a timeout costs the
        timeout and not a worker start-up on top (loading runs while we wait)."""
        if self.spare is None:
            self.spare = _new_worker(*self.key)

    def _discard(self) -> None:
        if self.worker is not None:
            _end(self.worker)
            self.worker, self.restarts, self.busy = None, self.restarts + 1, False

    def call(self, op: str, args: list, kwargs: dict, timeout: float | None = None) -> Outcome:
        """The call's outcome; a lost call (timeout, dead worker, memory limit) is counted
        against ``op``'s hang budget, and once that is spent the call is not made (NotRun);
        once the run's budget is spent no call is made (RunOutOfTime)."""
        try:
            self._remaining()
            self.budget.check(op)
            return self._call(op, args, kwargs, timeout)
        except RunOutOfTime as exc:
            raise self._lost(exc) from None
        except WorkerLost as exc:
            self.budget.lost(op, hung=isinstance(exc, WorkerTimeout))
            raise self._lost(exc) from None
        except NotRun as exc:
            raise self._lost(exc) from None

    def _call(self, op: str, args: list, kwargs: dict, timeout: float | None) -> Outcome:
        limit = self.timeout if self.timeout is not None else (timeout or DEFAULT_CALL_TIMEOUT)
        worker = self._worker()
        capped = self._remaining() < limit
        wait = min(limit, self._remaining())
        arrays: list[np.ndarray] = []
        self.sequence += 1
        message = {"op": op, "args": encode(list(args), arrays), "kwargs": encode(kwargs, arrays),
                   "seq": self.sequence}
        try:
            self.busy = True  # until its reply is in: a busy worker is never handed on
            reply, out = worker.request(message, arrays, wait, self._start_spare)
            if reply.get("seq") != self.sequence:
                raise ProtocolError("a reply to another request")
            self.busy = False
        except TimeoutError:
            self._discard()
            if capped:
                raise RunOutOfTime(out_of_time(self.max_time or 0.0) + " during this call "
                                   "(its worker was killed)") from None
            raise WorkerTimeout(
                f"adapter timed out after {limit:g} s: its worker was killed "
                f"(the next call starts a fresh one)") from None
        except MemoryLimitReached as exc:
            self._discard()
            raise WorkerOutOfMemory(self._memory_text(op, args, kwargs, str(exc))) from None
        except ProtocolError as exc:
            self._discard()
            raise WorkerCrashed(
                f"adapter corrupted its worker's replies during the call ({exc}): the worker "
                f"was killed (the next call starts a fresh one)") from None
        except (EOFError, BrokenPipeError, WorkerExited):
            how = worker.death()
            self._discard()
            raise WorkerCrashed(
                f"adapter crashed its worker process during the call: {how}") from None
        return self._outcome(reply, out, op, args, kwargs)

    def _memory_text(self, op: str, args: list, kwargs: dict, how: str) -> str:
        call = describe_call(op, args, kwargs).removeprefix("attnconf call ")
        return (f"the worker reached its memory limit of {size_text(self.memory)} on {call} "
                f"({how}); set {MEMORY_ENV} to raise it (the next call starts a fresh worker)")

    def _lost(self, error: AdapterError) -> BaseException:
        return StopExamples(error) if self.stop_examples else error

    def _outcome(self, reply: dict, out: list, op: str, args: list, kwargs: dict) -> Outcome:
        status, message = reply.get("status"), str(reply.get("message", ""))[:4000]
        if reply.get("replace"):
            self._discard()
        if status == "ok":
            try:
                value = decode(reply["value"], out)
                mutated = tuple(str(m) for m in reply.get("mutated", ()))
            except (ProtocolError, KeyError, TypeError) as exc:
                self._discard()
                raise WorkerCrashed(f"the worker's reply is malformed ({exc})") from None
            return Outcome(value, mutated)
        if status == "unsupported":
            raise Unsupported(message)
        if status == "output_type":
            raise OutputTypeError(message)
        if status == "adapter_error" and message.startswith("adapter raised MemoryError"):
            raise WorkerOutOfMemory(self._memory_text(op, args, kwargs, message))
        raise AdapterError(message)

    def settings(self) -> dict[str, Any]:
        """What a report records of the isolation: limits, restarts, where output went, and
        the pids of processes that survived their worker (none, normally)."""
        return {"worker_memory": self.memory, "worker_restarts": self.restarts,
                "worker_filesize": filesize_limit_from_env(),
                "worker_log": str(log_path_from_env()), "left_behind": list(LEFT_BEHIND)}

    def close(self) -> None:
        if self.worker is not None and not self.busy and self.worker.exit_status() is None:
            _park(self.worker)
        elif self.worker is not None:
            _end(self.worker)
        if self.spare is not None:
            _end(self.spare)
        self.worker = self.spare = None


__all__ = [
    "LEFT_BEHIND",
    "RunOutOfTime",
    "SubprocessInvoker",
    "WorkerCrashed",
    "WorkerOutOfMemory",
    "WorkerTimeout",
    "memory_limit_from_env",
    "resolve_isolated",
]
