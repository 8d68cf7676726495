"""The live progress of ``attnconf run``: what is running now, and about how long is left.

On a terminal one line is redrawn every second by a ticker thread, so a case that takes
30 s is visible while it runs: ``running sdpa/numeric CASE (12 s) · 140/215 numeric ·
~40 s left · 130 passed 2 failed 8 skipped``. The running case is the one after the last
finished case in the check's case list (numeric and output_contract know their list; other
checks name the check). The estimate is the numeric matrix's remaining cases times the mean
time of its cases so far (the matrix is most of a run's time); none is shown before a
numeric case has finished. In a log (no terminal) there is one line per finished check, and
a ``still running …`` line every 30 s of one call.

A check's time (``(N.N s)`` on its line) is told by its results, the only events the run
reports: it runs from the previous check's last result (or the start) to its own last
result. So a check's first case (the time until its first result) is its own, and never
the previous check's (a check's clock once ran from its own first result to the next check's
first result, off by one case at each end).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from conformance.results import ERROR, FAILED, PASSED, SKIPPED, Result

STILL_RUNNING_EVERY = 30.0  # seconds between "still running" lines in a log


def _counts() -> dict[str, int]:
    return {PASSED: 0, FAILED: 0, SKIPPED: 0, ERROR: 0}


class Progress:
    """Callable with each finished Result; ``close()`` stops the ticker and clears the line.

    ``case_lists`` maps (op, check) to the ids of the cases that check will run, in order
    (see ``planned_cases``): what names the running case and sizes the estimate."""

    def __init__(self, stream=None, case_lists: dict[tuple[str, str], list[str]] | None = None,
                 tick: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = sys.stderr if stream is None else stream  # at call time: capturable
        self.tty = self.stream.isatty()
        self.case_lists = case_lists or {}
        self.clock = clock  # seconds, monotonic; a test passes a fake one
        self.counts, self.check_counts = _counts(), _counts()
        self.current: tuple[str, str] | None = None
        self.done_in_check = 0
        self.check_started = self.last_result = clock()
        self.numeric_done, self.numeric_seconds = 0, 0.0
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.last_note = 0.0
        self.ticker = threading.Thread(target=self._tick, args=(tick,), daemon=True)
        self.ticker.start()

    def __call__(self, r: Result) -> None:
        now = self.clock()
        with self.lock:
            key = (r.op, r.check)
            if key != self.current:
                # the previous check ended with its last result, and this one began there:
                # the time until r (this check's first case) is this check's
                self._flush_check()
                self.current, self.check_counts, self.done_in_check = key, _counts(), 0
                self.check_started = self.last_result
            if r.check == "numeric":
                self.numeric_done += 1
                self.numeric_seconds += now - self.last_result
            self.counts[r.status] += 1
            self.check_counts[r.status] += 1
            self.done_in_check += 1
            self.last_result, self.last_note = now, 0.0
            self._draw()

    def running(self) -> str:
        """``op/check CASE`` for the call in flight (the next case of the current check)."""
        if self.current is None:
            return "starting"
        cases = self.case_lists.get(self.current, [])
        label = "/".join(self.current)
        if self.done_in_check < len(cases):
            return f"{label} {cases[self.done_in_check]}"
        return label

    def eta(self) -> str:
        """`` · ~N s left`` from the numeric matrix's mean case time, "" before there is one."""
        total = sum(len(v) for (_, check), v in self.case_lists.items() if check == "numeric")
        if not self.numeric_done or total <= self.numeric_done:
            return ""
        left = (total - self.numeric_done) * self.numeric_seconds / self.numeric_done
        return f" · {self.numeric_done}/{total} numeric · ~{left:.0f} s left"

    def _draw(self) -> None:
        if not self.tty:
            return
        c, waited = self.counts, self.clock() - self.last_result
        line = (f"running {self.running()[:60]} ({waited:.0f} s){self.eta()} · "
                f"{c[PASSED]} passed {c[FAILED]} failed {c[SKIPPED]} skipped"
                + (f" {c[ERROR]} errors" if c[ERROR] else ""))
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()

    def _tick(self, every: float) -> None:
        while not self.stop.wait(every):
            with self.lock:
                if self.tty:
                    self._draw()
                    continue
                waited = self.clock() - self.last_result
                if waited - self.last_note >= STILL_RUNNING_EVERY:
                    self.last_note = waited
                    self.stream.write(f"  still running {self.running()} ({waited:.0f} s)\n")
                    self.stream.flush()

    def _flush_check(self) -> None:
        """The finished check's line (in a log): its counts and the time from its start to
        its last result (what comes after, the next check's first case or the run's end,
        is not its own)."""
        if self.current and not self.tty:
            c = self.check_counts
            errors = f", {c[ERROR]} internal errors of the kit" if c[ERROR] else ""
            self.stream.write(f"  {self.current[0]}/{self.current[1]}: {c[PASSED]} passed, "
                              f"{c[FAILED]} failed, {c[SKIPPED]} skipped{errors} "
                              f"({self.last_result - self.check_started:.1f} s)\n")
            self.stream.flush()

    def close(self) -> None:
        self.stop.set()
        self.ticker.join(timeout=2)
        with self.lock:
            self._flush_check()
            if self.tty:
                self.stream.write("\r\x1b[K")
                self.stream.flush()


def planned_cases(adapter, config, wants: Callable[[str, str, str], bool]
                  ) -> dict[tuple[str, str], list[str]]:
    """(op, check) → the ids of the numeric and output_contract cases the run will call, in
    order, kept by ``wants(op, check, case id)`` (the shard and --case)."""
    from conformance.checks.numeric import CONTRACT_SCENARIOS, op_cases
    from conformance.runner import selected_checks

    found: dict[tuple[str, str], list[str]] = {}
    for check in selected_checks(config):
        if check.name not in ("numeric", "output_contract"):
            continue
        for op in adapter.ops:
            if op not in check.ops:
                continue
            cases = op_cases(op, config.profile, config.seed)
            if check.name == "output_contract":
                cases = tuple(c for c in cases if c.scenario in CONTRACT_SCENARIOS
                              and c.shapes is not None and c.shapes.len_q <= 64)
            found[(op, check.name)] = [c.id for c in cases if wants(op, check.name, c.id)]
    return found
