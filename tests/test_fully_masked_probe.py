"""The fully_masked probe fails, with the real diagnosis, when its call crashes, hangs or raises.

Only NotImplementedError makes it "unsupported" (conformance/checks/conventions.py,
``probe_fully_masked``); a RuntimeError, a dead worker or a timeout is a failed result that
names what happened, as for every other check. The adapters are
tests/hostile/crashes_on_fully_masked.py: honest except on a mask that empties a row."""

from __future__ import annotations

import re

import pytest

from conformance.adapters.load import resolve
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED, SKIPPED, Result
from conformance.runner import RunConfig, run

HOSTILE = "hostile.crashes_on_fully_masked"
PROBE = "probe:fully_masked"
HEADLINE = "sdpa / conventions: convention probe fully_masked (rows emptied by a bool attn_mask)"


def probe_result(spec: str, isolate: str = "inprocess", timeout: float | None = None) -> Result:
    """The one result of the fully_masked probe for the adapter ``spec``."""
    config = RunConfig(profile=PROFILES["quick"], only=("conventions",), case=PROBE,
                       isolate=isolate, timeout=timeout)
    results, _ = run(resolve(spec), config)
    found = [r for r in results if r.case == PROBE]
    assert len(found) == 1, [(r.case, r.status, r.message) for r in results]
    return found[0]


def test_the_honest_part_passes_the_probe():
    assert probe_result("hostile._honest:honest_sdpa").status == PASSED


def test_a_runtime_error_fails_the_probe_with_the_adapters_message():
    r = probe_result(f"{HOSTILE}:sdpa_raises")
    assert r.status == FAILED
    assert r.message.startswith(HEADLINE + "\nadapter raised RuntimeError: empty rows are "
                                "not handled (hostile zoo)\nrepro: attnconf run ")
    assert "--case probe:fully_masked" in r.message


def test_not_implemented_skips_the_probe_with_the_adapters_message():
    r = probe_result(f"{HOSTILE}:sdpa_unsupported")
    assert r.status == SKIPPED
    assert r.message == ("unsupported: adapter raised NotImplementedError: empty rows are not "
                         "supported by this build")


def test_a_worker_killed_by_sigsegv_fails_the_probe_and_says_so():
    r = probe_result(f"{HOSTILE}:sdpa", isolate="subprocess")
    assert r.status == FAILED
    assert r.message.startswith(HEADLINE + "\nadapter crashed its worker process during the "
                                "call: killed by signal 11 (SIGSEGV)")
    assert "unsupported" not in r.message


def test_a_timeout_fails_the_probe_and_says_so():
    r = probe_result(f"{HOSTILE}:sdpa_hangs", isolate="subprocess", timeout=1.0)
    assert r.status == FAILED
    assert re.match(re.escape(HEADLINE) + r"\nadapter timed out after 1 s: its worker was "
                    r"killed", r.message), r.message
    assert "unsupported" not in r.message


@pytest.mark.parametrize("attr", ["sdpa_raises", "sdpa_unsupported"])
def test_the_other_probes_are_unaffected(attr):
    config = RunConfig(profile=PROFILES["quick"], only=("conventions",), isolate="inprocess")
    results, _ = run(resolve(f"{HOSTILE}:{attr}"), config)
    others = {r.case: r.status for r in results if r.case != PROBE}
    assert others == {"probe:causal_alignment": PASSED, "probe:masked_nonfinite": PASSED}
