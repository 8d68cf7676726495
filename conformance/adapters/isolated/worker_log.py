"""The adapter's stdout and stderr: drained from a pipe into a log the user can read.

A worker's fd 1 and 2 are the write end of a pipe; a thread of the parent reads
it continuously (so printing never blocks the adapter), appends what it reads
to the worker log (``conformance.adapters.isolated.limits.log_path_from_env``) up to the output
limit, counts and drops the rest, and keeps the last few KiB in memory for the
diagnosis of a worker that died (faulthandler's stack lands there). The log file
is created at the first byte: a quiet adapter leaves none. Nothing is ever
truncated: a file the adapter opened on fd 1 itself is its own.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO

TAIL_BYTES = 4000  # a whole faulthandler stack


class _Budget:
    """Bytes the log may still take, shared by every worker of this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.used: dict[Path, int] = {}

    def take(self, path: Path, limit: int | None, wanted: int) -> int:
        with self.lock:
            used = self.used.get(path, 0)
            granted = wanted if limit is None else max(0, min(wanted, limit - used))
            self.used[path] = used + granted
            return granted


_BUDGET = _Budget()


class OutputDrain:
    """Reads ``read_fd`` until EOF on a daemon thread; see the module docstring."""

    def __init__(self, read_fd: int, path: Path, limit: int | None, header: str) -> None:
        self.read_fd, self.path, self.limit, self.header = read_fd, path, limit, header
        self.tail = bytearray()
        self.dropped = 0
        self.done = threading.Event()
        self._file: BinaryIO | None = None
        self.thread = threading.Thread(target=self._drain, name="attnconf-worker-output",
                                       daemon=True)
        self.thread.start()

    def _write(self, data: bytes) -> None:
        granted = _BUDGET.take(self.path, self.limit, len(data))
        self.dropped += len(data) - granted
        if not granted:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab")
                self._file.write(self.header.encode())
            self._file.write(data[:granted])
            self._file.flush()
        except OSError:  # a full disk or an unwritable log costs the log, not the run
            self.dropped += granted

    def _drain(self) -> None:
        try:
            while True:
                try:
                    data = os.read(self.read_fd, 1 << 16)
                except OSError:
                    break
                if not data:
                    break
                self.tail += data
                del self.tail[:-TAIL_BYTES]
                self._write(data)
        finally:
            if self._file is not None:
                if self.dropped:
                    self._file.write(f"\n[attnconf: {self.dropped} more bytes of output "
                                     f"dropped (ATTNCONF_WORKER_OUTPUT)]\n".encode())
                self._file.close()
            os.close(self.read_fd)
            self.done.set()

    def last_lines(self, wait: float = 1.0, count: int = 24) -> list[str]:
        """The last ``count`` lines written, after waiting up to ``wait`` s for EOF (a child
        of the adapter may hold the pipe open: then what has arrived so far)."""
        self.done.wait(wait)
        return bytes(self.tail).decode("utf-8", "replace").strip().splitlines()[-count:]


__all__ = ["OutputDrain"]
