"""Per-check times in the progress log are charged to the check that spent them.

A check's time runs from the previous check's last result (or the start) to its own last
result (conformance/frontends/progress.py). The clock is a fake one advanced by hand, so the
times are exact and nothing sleeps."""

from __future__ import annotations

import io
import re

from conformance.frontends.progress import Progress
from conformance.results import FAILED, PASSED, SKIPPED, Result


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _log_progress(clock: FakeClock) -> tuple[Progress, io.StringIO]:
    log = io.StringIO()  # not a terminal: one line per finished check
    return Progress(log, tick=3600.0, clock=clock), log  # the ticker never wakes


def _times(log: str) -> dict[str, float]:
    """``op/check`` → seconds, from the per-check lines of the log."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^  (\S+): .* \((\d+\.\d) s\)$", log, re.M)}


def test_each_check_is_charged_from_the_previous_checks_last_result_to_its_own():
    clock = FakeClock()
    progress, log = _log_progress(clock)
    clock.now += 1.0  # numeric's first case
    progress(Result("sdpa", "numeric", "a", PASSED))
    clock.now += 2.0
    progress(Result("sdpa", "numeric", "b", FAILED))
    clock.now += 7.0  # golden's first (and only) case: golden's time, not numeric's
    progress(Result("sdpa", "golden", "g", PASSED))
    clock.now += 0.5
    progress(Result("sdpa", "conventions", "probe:x", SKIPPED))
    clock.now += 40.0  # after the last result: closing the worker, not a check's time
    progress.close()
    assert _times(log.getvalue()) == {"sdpa/numeric": 3.0, "sdpa/golden": 7.0,
                                      "sdpa/conventions": 0.5}
    assert "  sdpa/numeric: 1 passed, 1 failed, 0 skipped (3.0 s)\n" in log.getvalue()


def test_a_check_with_one_slow_case_is_not_charged_to_the_check_before_it():
    clock = FakeClock()
    progress, log = _log_progress(clock)
    clock.now += 0.5
    progress(Result("sdpa", "numeric", "a", PASSED))
    clock.now += 30.0  # the next check's one slow case
    progress(Result("sdpa", "causality", "hypothesis[float32]", PASSED))
    progress.close()
    assert _times(log.getvalue()) == {"sdpa/numeric": 0.5, "sdpa/causality": 30.0}


def test_the_same_check_of_another_op_is_a_new_check():
    clock = FakeClock()
    progress, log = _log_progress(clock)
    clock.now += 4.0
    progress(Result("sdpa", "numeric", "a", PASSED))
    clock.now += 6.0
    progress(Result("alibi_slopes", "numeric", "b", PASSED))
    progress.close()
    assert _times(log.getvalue()) == {"sdpa/numeric": 4.0, "alibi_slopes/numeric": 6.0}


def test_the_estimate_uses_the_fake_clock_too():
    clock = FakeClock()
    log = io.StringIO()
    progress = Progress(log, {("sdpa", "numeric"): ["a", "b", "c", "d", "e"]}, tick=3600.0,
                        clock=clock)
    clock.now += 2.0
    progress(Result("sdpa", "numeric", "a", PASSED))
    clock.now += 4.0
    progress(Result("sdpa", "numeric", "b", PASSED))
    eta = progress.eta()
    progress.close()
    assert eta == " · 2/5 numeric · ~9 s left"  # 3 cases left × (6 s / 2 cases)
