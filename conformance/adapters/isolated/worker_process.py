"""One worker process, from the parent's side: started, watched, ended without a trace.

A worker runs in a scratch directory the kit creates and removes (its cwd:
an adapter that cleans "its" directory cleans that one), with its stdout and
stderr drained into the worker log (``conformance.adapters.isolated.worker_log``), a token in
its environment that marks every process it starts (``conformance.adapters.isolated.procs``),
and the kernel's promise that it dies with the parent. While a request is
waited for, the parent polls the worker's resident memory and whether it has
exited, so reaching the memory limit, or exiting while a forked child still
holds the reply pipe, is said at once and as what it is.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

from conformance.adapters.isolated.limits import log_path_from_env, output_limit_from_env, size_text
from conformance.adapters.isolated.procs import TOKEN_ENV, end_tree, resident_bytes
from conformance.adapters.isolated.wire import Channel
from conformance.adapters.isolated.worker_log import OutputDrain
from conformance.errors import MemoryLimitReached as MemoryLimitReached
from conformance.errors import WorkerExited as WorkerExited

POLL_S = 0.02  # how often a waiting parent looks at the worker's memory and exit status

_BOOTSTRAP = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
              "from conformance.adapters.isolated.procs import guard_worker; "
              "guard_worker(int(sys.argv[5])); "
              "from conformance.adapters.isolated.worker import worker_main; "
              "worker_main(sys.argv[2:5])")


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def search_path() -> list[str]:
    """The parent's sys.path with every entry absolute: the worker starts elsewhere."""
    return [os.path.abspath(p) if p else os.getcwd() for p in sys.path]


class Worker:
    """One worker process: its pipes, its scratch directory, its output, how it ended."""

    def __init__(self, spec: str, framework: str | None, memory: int | None,
                 filesize: int | None = None) -> None:
        self.key = (spec, framework, memory)
        self.memory = memory
        self.scratch = tempfile.mkdtemp(prefix="attnconf-scratch-")
        self.token = secrets.token_hex(16)
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        output_r, output_w = os.pipe()
        os.set_blocking(request_w, False)
        config = json.dumps({"spec": spec, "framework": framework, "filesize": filesize,
                             "cwd": os.getcwd(), "scratch": self.scratch})
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, json.dumps(search_path()), str(request_r),
                 str(reply_w), config, str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=output_w, stderr=output_w, cwd=self.scratch,
                env={**os.environ, TOKEN_ENV: self.token},
                pass_fds=(request_r, reply_w), start_new_session=True)
        except BaseException:
            os.close(output_r)
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        finally:
            for fd in (request_r, reply_w, output_w):
                os.close(fd)
        self.output = OutputDrain(output_r, log_path_from_env(), output_limit_from_env(),
                                  f"=== attnconf worker {self.proc.pid} for {spec} ===\n")
        self.channel = Channel(reply_r, request_w)
        self.left_behind: list[int] = []

    def wait_reply(self, deadline: float, when_slow: Callable[[], None] | None = None) -> None:
        """Return once the reply pipe is readable; TimeoutError at ``deadline``,
        MemoryLimitReached, or WorkerExited (the worker is gone, the pipe may be held open
        by a child). ``when_slow()`` runs once half the time has passed."""
        start, fd = time.monotonic(), self.channel.read_fd
        half = start + (deadline - start) / 2
        while True:
            now = time.monotonic()
            if select.select([fd], [], [], max(0.0, min(POLL_S, deadline - now)))[0]:
                return
            self.check_memory()
            if self.exit_status() is not None and not select.select([fd], [], [], 0)[0]:
                raise WorkerExited
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError
            if when_slow is not None and now >= half:
                when_slow()
                when_slow = None

    def check_memory(self) -> None:
        if self.memory is None:
            return
        rss = resident_bytes(self.proc.pid)
        if rss is not None and rss >= self.memory:
            raise MemoryLimitReached(f"resident {size_text(rss)}")

    def receive(self, timeout: float) -> tuple[dict, list[np.ndarray]]:
        """The next message (loading); TimeoutError, EOFError, ProtocolError, WorkerExited or
        MemoryLimitReached when there is none."""
        deadline = time.monotonic() + timeout
        self.wait_reply(deadline)
        return self.channel.receive(deadline)

    def request(self, message: dict, arrays: list, timeout: float,
                when_slow: Callable[[], None] | None = None):
        """The reply to ``message``, with the exceptions of ``receive``."""
        deadline = time.monotonic() + timeout
        self.channel.send(message, arrays, deadline)
        self.wait_reply(deadline, when_slow)
        return self.channel.receive(deadline)

    def exit_status(self, wait: float = 0.0) -> int | None:
        """The worker's exit status (negative: its signal) once it has exited, else None.
        Not reaped here, so its pid cannot be reused before ``kill`` has ended its tree."""
        deadline = time.monotonic() + wait
        while True:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
                return -info.si_status if killed else info.si_status
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def kill(self) -> list[int]:
        """End the worker and every process it started (its tree and its token's carriers),
        reap it, close its pipes, remove its scratch directory; the pids that survived."""
        if self.proc.returncode is None:
            self.left_behind = end_tree(self.proc.pid, self.token)
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        for fd in (self.channel.read_fd, self.channel.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.scratch, ignore_errors=True)
        return self.left_behind

    def death(self) -> str:
        """How the worker ended (it exited, or closed its pipe), then its last output."""
        code = self.exit_status(wait=5.0)
        tail = self.output.last_lines(wait=1.0 if code is not None else 0.2)
        how = ("closed its pipe without exiting" if code is None else
               f"killed by signal {-code} ({_signal_name(-code)})" if code < 0 else
               f"exited with status {code}")
        text = "\n".join("  " + line for line in tail)
        return how + (f"\nlast output of the worker:\n{text}" if tail else "")


__all__ = ["MemoryLimitReached", "Worker", "WorkerExited", "search_path"]
