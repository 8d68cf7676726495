"""The progress of an ``attnconf run`` on stderr: a live line on a terminal, one line per
finished check otherwise (CI logs)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from conformance.results import ERROR, FAILED, PASSED, SKIPPED, Result


class Progress:
    """A live line on a terminal; one line per finished check otherwise (CI logs)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = sys.stderr if stream is None else stream  # at call time: capture-friendly
        self.stream, self.tty = stream, stream.isatty()
        self.counts = {PASSED: 0, FAILED: 0, SKIPPED: 0, ERROR: 0}
        self.started = time.monotonic()
        self.current: tuple[str, str] | None = None  # (op, check) being run
        self.check_counts: dict[str, int] = {}  # its results by status
        self.check_started = self.started

    def __call__(self, r: Result) -> None:
        key = (r.op, r.check)
        if key != self.current:
            self.flush_check()
            self.current, self.check_counts = key, {PASSED: 0, FAILED: 0, SKIPPED: 0, ERROR: 0}
            self.check_started = time.monotonic()
        self.counts[r.status] += 1
        self.check_counts[r.status] += 1
        if self.tty:
            c = self.counts
            self.stream.write(f"\r\x1b[K{r.op}/{r.check} {r.case[:50]}  "
                              f"{c[PASSED]} passed {c[FAILED]} failed {c[SKIPPED]} skipped"
                              + (f" {c[ERROR]} errors" if c[ERROR] else ""))
            self.stream.flush()

    def flush_check(self) -> None:
        if self.current and not self.tty:
            c = self.check_counts
            errors = f", {c[ERROR]} internal errors of the kit" if c[ERROR] else ""
            self.stream.write(f"  {self.current[0]}/{self.current[1]}: {c[PASSED]} passed, "
                              f"{c[FAILED]} failed, {c[SKIPPED]} skipped{errors} "
                              f"({time.monotonic() - self.check_started:.1f} s)\n")
            self.stream.flush()

    def close(self) -> None:
        self.flush_check()
        if self.tty:
            self.stream.write("\r\x1b[K")
