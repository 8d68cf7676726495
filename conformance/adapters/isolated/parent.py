"""Run an adapter in a worker process: a broken implementation fails one case, never the run.

The parent never imports the adapter. ``resolve_isolated(spec)`` starts a
worker, which loads and resolves the adapter itself and answers with a
plain-data description (``conformance.adapters.load.describe``);
``SubprocessInvoker.call`` sends each call to that worker, which runs the
in-process ``dispatch`` (conversion, exception classification, mutation
check) and sends the outputs back. Expected values are computed in the
parent, out of reach of anything the adapter patches at import time.

Parent and worker talk over two dedicated pipes, never the worker's stdout,
in the format of ``conformance.adapters.isolated.wire`` (JSON and raw array bytes: nothing from
the worker is ever unpickled).

What a broken adapter costs:

* an exception (SystemExit and MemoryError included) fails that case, naming
  the type; after a MemoryError the worker is replaced;
* a hang is killed (the whole process group) after the call's timeout: that
  case fails with "timed out after X s" and the next case gets a fresh worker;
* a dead worker (os.abort, a segfault, os._exit) fails that case with the
  signal or exit status and the last lines the worker wrote (faulthandler
  prints the Python stack there); the next case gets a fresh worker;
* output written to stdout/stderr goes to a temporary file, emptied before
  every call, so printing cannot block or corrupt anything;
* after ``HANG_BUDGET`` timeouts or dead workers on one op in one run, that
  op's remaining calls fail at once as "not run" (``invoke.HangBudget``):
  a kernel that hangs on every odd length costs a few timeouts, not hundreds.

The worker runs under ``RLIMIT_AS`` (4 GiB unless ``ATTNCONF_WORKER_MEMORY``
says otherwise: ``2G``, ``512M``, a byte count, or ``none``, which CUDA
adapters need because the driver maps a large address space), no core
files, and at most ``worker.OUTPUT_LIMIT`` bytes of output per call.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
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
)
from conformance.adapters.isolated.wire import (
    Channel,
    ProtocolError,
    decode,
    encode,
)
from conformance.adapters.isolated.worker import memory_limit_from_env
from conformance.adapters.load import (
    AdapterLoadError,
    ResolvedAdapter,
    from_description,
)
from conformance.errors import RemoteTraceback as RemoteTraceback
from conformance.errors import Unsupported
from conformance.errors import WorkerCrashed as WorkerCrashed
from conformance.errors import WorkerTimeout as WorkerTimeout

LOAD_TIMEOUT = 120.0  # seconds to start a worker and load the adapter (torch takes a few)
DEFAULT_CALL_TIMEOUT = 60.0  # when neither the caller nor --timeout gives one


_BOOTSTRAP = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
              "from conformance.adapters.isolated.worker import worker_main; "
              "worker_main(sys.argv[2:])")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Worker:
    """One worker process: its pipes, its output file, and how it ended."""

    def __init__(self, spec: str, framework: str | None, memory: int | None) -> None:
        self.key = (spec, framework, memory)
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        self.log = tempfile.TemporaryFile(prefix="attnconf-worker-")
        flags = fcntl.fcntl(self.log.fileno(), fcntl.F_GETFL)
        # append mode: see worker._empty_output
        fcntl.fcntl(self.log.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        os.set_blocking(request_w, False)
        config = json.dumps({"spec": spec, "framework": framework, "memory": memory})
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path), str(request_r),
                 str(reply_w), config],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                pass_fds=(request_r, reply_w), start_new_session=True)
        finally:
            os.close(request_r)
            os.close(reply_w)
        self.channel = Channel(reply_r, request_w)

    def receive(self, timeout: float) -> tuple[dict, list[np.ndarray]]:
        """The next message; TimeoutError, EOFError or ProtocolError when there is none."""
        return self.channel.receive(time.monotonic() + timeout)

    def request(self, message: dict, arrays: list, timeout: float, when_slow=None):
        """The reply; ``when_slow()`` is called once half the timeout has passed without one."""
        deadline = time.monotonic() + timeout
        self.channel.send(message, arrays, deadline)
        if when_slow and not select.select([self.channel.read_fd], [], [], timeout / 2)[0]:
            when_slow()
        return self.channel.receive(deadline)

    def exit_status(self, wait: float = 0.0) -> int | None:
        """The worker's exit status (negative: its signal) once it has exited, else None.

        The process is not reaped here, so its pid (the process group of anything
        the adapter started) cannot be reused before ``kill`` has killed the group.
        """
        deadline = time.monotonic() + wait
        while True:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
                return -info.si_status if killed else info.si_status
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def kill(self) -> None:
        """Kill the worker's whole process group, reap it, close its pipes and output file."""
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        for fd in (self.channel.read_fd, self.channel.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()

    def death(self) -> str:
        """How the worker ended (after EOF on its pipe), then the tail of its output."""
        code = self.exit_status(wait=5.0)
        size = os.fstat(self.log.fileno()).st_size
        data = os.pread(self.log.fileno(), 4000, max(0, size - 4000))  # a whole stack
        tail = data.decode("utf-8", "replace").strip().splitlines()[-24:]
        how = ("closed its pipe without exiting" if code is None else
               f"killed by signal {-code} ({_signal_name(-code)})" if code < 0 else
               f"exited with status {code}")
        text = "\n".join("  " + line for line in tail)
        return how + (f"\nlast output of the worker:\n{text}" if tail else "")


_IDLE: dict[tuple, Worker] = {}  # at most one started-and-ready worker, kept for the next run


def _park(worker: Worker) -> None:
    for other in list(_IDLE.values()):
        other.kill()
    _IDLE.clear()
    _IDLE[worker.key] = worker


@atexit.register
def _kill_idle() -> None:
    for worker in _IDLE.values():
        worker.kill()
    _IDLE.clear()


def _start(spec: str, framework: str | None, memory: int | None,
           worker: Worker | None = None) -> tuple[Worker, Any]:
    """A ready worker (``worker`` once it is, or a new one) and its description;
    AdapterLoadError (one line) otherwise."""
    worker = worker or Worker(spec, framework, memory)
    try:
        reply, _ = worker.receive(LOAD_TIMEOUT)
    except TimeoutError:
        worker.kill()
        raise AdapterLoadError(f"adapter {spec!r} did not load within {LOAD_TIMEOUT:g} s "
                               f"(in its worker process)") from None
    except (EOFError, ProtocolError):
        how = worker.death()
        worker.kill()
        raise AdapterLoadError(f"adapter {spec!r}: its worker process died while loading "
                               f"it, {how.splitlines()[0]}") from RemoteTraceback(how)
    if reply.get("status") != "ready":
        worker.kill()
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
        worker.kill()
        raise
    _park(worker)
    return adapter


class SubprocessInvoker:
    """Calls the adapter in a worker process (``--isolate subprocess``, every profile's default).

    ``timeout`` (``--timeout``) overrides the per-call timeout the checks ask for;
    ``budget`` counts the calls lost per op and refuses an op's calls once it is spent.
    """

    mode = "subprocess"

    def __init__(self, adapter: ResolvedAdapter, timeout: float | None = None,
                 memory: int | Literal["env"] | None = "env",
                 budget: HangBudget | None = None) -> None:
        self.adapter, self.timeout = adapter, timeout
        self.budget = budget or HangBudget()
        self.memory = memory_limit_from_env() if isinstance(memory, str) else memory
        self.key = (adapter.spec, adapter.framework_arg, self.memory)
        self.worker: Worker | None = _IDLE.pop(self.key, None)
        self.restarts, self.sequence, self.busy = 0, 0, False
        self.stop_examples = False  # set by the runner around hypothesis-driven checks
        self.spare: Worker | None = None  # started while a slow call runs

    def settings(self) -> dict[str, Any]:
        return {"worker_memory": self.memory, "worker_restarts": self.restarts}

    def _worker(self) -> Worker:
        if self.worker is None:
            spare, self.spare = self.spare, None
            try:
                self.worker, _ = _start(*self.key, worker=spare)
            except AdapterLoadError as exc:
                raise WorkerCrashed(f"could not start a worker for the adapter: {exc}") from None
        return self.worker

    def _start_spare(self) -> None:
        """A call is slow: start its possible successor now, so that a timeout costs the
        timeout and not a worker start-up on top (loading runs while we wait)."""
        if self.spare is None:
            self.spare = Worker(*self.key)

    def _discard(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker, self.restarts, self.busy = None, self.restarts + 1, False

    def call(self, op: str, args: list, kwargs: dict, timeout: float | None = None) -> Outcome:
        """The call's outcome; a lost call (timeout, dead worker) is counted against ``op``'s
        hang budget, and once that is spent the call is not made (NotRun)."""
        try:
            self.budget.check(op)
            return self._call(op, args, kwargs, timeout)
        except WorkerLost as exc:
            self.budget.lost(op, hung=isinstance(exc, WorkerTimeout))
            raise self._lost(exc) from None
        except NotRun as exc:
            raise self._lost(exc) from None

    def _call(self, op: str, args: list, kwargs: dict, timeout: float | None) -> Outcome:
        limit = self.timeout if self.timeout is not None else (timeout or DEFAULT_CALL_TIMEOUT)
        worker = self._worker()
        arrays: list[np.ndarray] = []
        self.sequence += 1
        message = {"op": op, "args": encode(list(args), arrays), "kwargs": encode(kwargs, arrays),
                   "seq": self.sequence}
        try:
            self.busy = True  # until its reply is in: a busy worker is never handed on
            reply, out = worker.request(message, arrays, limit, self._start_spare)
            if reply.get("seq") != self.sequence:
                raise ProtocolError("a reply to another request")
            self.busy = False
        except TimeoutError:
            self._discard()
            raise WorkerTimeout(
                f"adapter timed out after {limit:g} s: its worker was killed "
                f"(the next call starts a fresh one)") from None
        except ProtocolError as exc:
            self._discard()
            raise WorkerCrashed(
                f"adapter corrupted its worker's replies during the call ({exc}): the worker "
                f"was killed (the next call starts a fresh one)") from None
        except (EOFError, BrokenPipeError):
            how = worker.death()
            self._discard()
            raise WorkerCrashed(
                f"adapter crashed its worker process during the call: {how}") from None
        return self._outcome(reply, out)

    def _lost(self, error: AdapterError) -> BaseException:
        return StopExamples(error) if self.stop_examples else error

    def _outcome(self, reply: dict, out: list) -> Outcome:
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
        if status == "adapter_error" and "MemoryError" in message and self.memory:
            message += f" (worker memory limit {self.memory / 2**30:.3g} GiB)"
        raise AdapterError(message)

    def close(self) -> None:
        if self.worker is not None and not self.busy and self.worker.exit_status() is None:
            _park(self.worker)
        elif self.worker is not None:
            self.worker.kill()
        if self.spare is not None:
            self.spare.kill()
        self.worker = self.spare = None


__all__ = [
    "SubprocessInvoker",
    "WorkerCrashed",
    "WorkerTimeout",
    "memory_limit_from_env",
    "resolve_isolated",
]
