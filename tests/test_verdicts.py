"""Verdicts that can be trusted (issue 14): no vacuous pass, numbers that are not numbers
refused, a kit error is not a verdict.

* a property passes only when some example called the adapter, and the JSON says how many
  did; an adapter that supports nothing exits 1 with zero passed;
* ``--k``/``--atol`` (finite, ≥ 0) and ``--timeout`` (finite, > 0) are checked before the
  run: exit 2 and one line; an override is shown in the header, the summary line, every
  report and the repro lines;
* a check that stops on the kit's own exception is an ``error`` result with its traceback
  (exit 3), while the adapter's exceptions stay its failures.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from xml.etree import ElementTree as ET

import pytest
from harness_adapters import attnconf, spec
from hypothesis.errors import FlakyFailure

from conformance import runner
from conformance.adapters.invoke import AdapterError, InProcessInvoker
from conformance.adapters.load import resolve
from conformance.checks import CHECKS, Check, RunContext, properties
from conformance.checks.property_bodies import PROPERTIES
from conformance.errors import Unsupported
from conformance.profiles import PROFILES
from conformance.results import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    Result,
    exercised,
    summary,
    verdict,
)
from conformance.strategies import materialize

if sys.version_info < (3, 11):  # hypothesis's own dependency there
    from exceptiongroup import ExceptionGroup

NOTHING = "hostile.raises_not_implemented:sdpa"  # NotImplementedError on every call
INPROCESS = ("--isolate", "inprocess")


def _context(adapter_spec: str = "numpy", profile: str = "quick") -> RunContext:
    adapter = resolve(adapter_spec)
    return RunContext(adapter, InProcessInvoker(adapter), PROFILES[profile], 1)


def _property(body):
    """The permutation property's strategy with another body."""
    prop = next(p for p in PROPERTIES if p.name == "permutation")
    return dataclasses.replace(prop, body=body)


# -- no vacuous pass -------------------------------------------------------------------


def test_a_property_whose_examples_never_call_the_adapter_is_skipped():
    drawn: list[int] = []
    prop = _property(lambda ctx, p: drawn.append(p.seed))
    [r] = properties.check_property(prop)(_context(), "sdpa")
    assert drawn, "the strategy drew examples"
    assert (r.status, r.examples) == (SKIPPED, 0)
    assert r.message.startswith("not exercised: none of its")


def test_a_property_counts_the_examples_that_called_the_adapter():
    called: list[int] = []

    def every_other(ctx, p):
        if p.seed % 2:  # the others have nothing to check
            x = materialize(p)
            properties.sdpa(ctx, x["query"], x["key"], x["value"])
            called.append(p.seed)

    [r] = properties.check_property(_property(every_other))(_context(), "sdpa")
    assert called, "some example called the adapter"
    assert (r.status, r.examples) == (PASSED, len(called))


def test_a_property_of_an_adapter_that_supports_nothing_is_skipped_with_its_message():
    def body(ctx, p):
        x = materialize(p)
        properties.sdpa(ctx, x["query"], x["key"], x["value"])

    [r] = properties.check_property(_property(body))(_context(NOTHING), "sdpa")
    assert (r.status, r.examples) == (SKIPPED, 0)
    assert r.message.startswith("unsupported: adapter raised NotImplementedError: this build")


@pytest.mark.slow  # a whole run through a worker
def test_an_adapter_that_supports_nothing_is_not_conformant(tmp_path):
    report = tmp_path / "r.json"
    run = attnconf("run", "--adapter", NOTHING, "--profile", "quick", *INPROCESS,
                   "--report", f"json:{report}")
    assert run.code == 1, run.out
    assert run.summary[:2] == (0, 0)
    assert "verdict: NOT CONFORMANT (no case passed (everything was skipped)" in run.out
    data = json.loads(report.read_text())
    assert data["exit_code"] == 1 and data["summary"]["passed"] == 0
    counted = {r["check"]: r["examples"] for r in data["results"] if "examples" in r}
    assert set(counted) == {p.name for p in PROPERTIES if p.op == "sdpa"}
    assert set(counted.values()) == {0}


def test_the_json_report_counts_each_propertys_examples(tmp_path):
    report = tmp_path / "r.json"
    run = attnconf("run", "--adapter", "numpy", "--profile", "quick", *INPROCESS,
                   "--only", "masked_keys", "determinism", "--report", f"json:{report}")
    assert run.code == 0, run.out
    results = json.loads(report.read_text())["results"]
    assert {r["check"] for r in results} == {"masked_keys", "determinism"}
    for r in results:
        assert r["status"] == PASSED and 0 < r["examples"] <= PROFILES["quick"].max_examples
    assert all("examples" not in r for r in json.loads(_numeric_report(tmp_path))["results"])


def _numeric_report(tmp_path) -> str:
    report = tmp_path / "numeric.json"
    attnconf("run", "--adapter", "numpy", "--profile", "quick", *INPROCESS, "--only", "numeric",
             "--case", "sdpa-plain[b2-h2-q7-k7-e16-float64]", "--report", f"json:{report}")
    return report.read_text()


def _r(check: str, status: str, examples: int | None = None) -> Result:
    return Result("sdpa", check, "c", status, examples=examples)


@pytest.mark.parametrize(("results", "code", "reason"), [
    ([_r("numeric", PASSED)], 0, "conformant"),
    ([_r("masked_keys", PASSED, examples=3)], 0, "conformant"),
    # only the conventions probe passed: nothing says the adapter computes attention
    ([_r("conventions", PASSED), _r("numeric", SKIPPED), _r("masked_keys", SKIPPED, 0)], 1,
     "no numeric case and no property exercised the adapter (only conventions passed)"),
    ([_r("numeric", SKIPPED)], 1, "no case passed (everything was skipped)"),
    ([], 1, "no case passed"),
    # a selection without numeric cases or properties (--only golden) needs any pass
    ([_r("golden", PASSED), _r("golden", SKIPPED)], 0, "conformant"),
    ([_r("numeric", PASSED), _r("numeric", FAILED)], 1, "1 failed"),
    # a kit error outranks everything: there is no verdict on the adapter
    ([_r("numeric", FAILED), _r("golden", ERROR)], 3, "1 internal error(s) of the kit"),
])
def test_verdict(results, code, reason):
    got = verdict(results)
    assert got[0] == code and got[1].startswith(reason), got


def test_summary_counts_errors_only_when_there_are_some():
    assert summary([_r("numeric", PASSED)]) == {"passed": 1, "failed": 0, "skipped": 0}
    assert summary([_r("golden", ERROR)])["errors"] == 1
    assert exercised([_r("masked_keys", PASSED, examples=0)])[0] is False


# -- numbers that are not numbers ------------------------------------------------------


@pytest.mark.parametrize(("flag", "value", "rule"), [
    ("--k", "nan", "≥ 0"), ("--k", "-1", "≥ 0"), ("--k", "inf", "≥ 0"), ("--k", "two", "≥ 0"),
    ("--atol", "nan", "≥ 0"), ("--atol=-1e-3", None, "≥ 0"), ("--atol=-inf", None, "≥ 0"),
    ("--timeout", "0", "> 0"), ("--timeout", "-5", "> 0"), ("--timeout", "nan", "> 0"),
    ("--timeout", "inf", "> 0"),
])
def test_a_bound_that_is_not_a_finite_number_is_refused_before_the_run(flag, value, rule):
    # argparse takes "-1e-3" for an option, so a negative exponent is given as --atol=-1e-3
    run = attnconf("run", "--adapter", "numpy", flag, *([value] if value else []))
    if value is None:
        flag, value = flag.split("=")
    assert run.code == 2
    assert run.err == f"attnconf: error: {flag} must be a finite number {rule}, got {value}\n"
    assert run.out == ""


def test_overrides_are_shown_everywhere_and_kept_by_repro_lines(tmp_path):
    paths = {fmt: tmp_path / f"r.{fmt}" for fmt in ("json", "junit", "md")}
    run = attnconf("run", "--adapter", spec("no_sqrt_d"), "--profile", "quick", *INPROCESS,
                   "--only", "numeric", "--k", "3", "--atol", "1e-9", "--timeout", "7",
                   *(a for fmt, path in paths.items() for a in ("--report", f"{fmt}:{path}")))
    assert run.code == 1
    shown = "k=3, atol=1e-09, timeout=7 s"
    assert "overridden: k=3 (default 2); atol=1e-09 for every case" in run.err
    assert "timeout=7 s NOT ENFORCED: an in-process call cannot be interrupted" in run.err
    assert f"(overridden: {shown})" in run.out.splitlines()[-2]  # the summary line
    data = json.loads(paths["json"].read_text())
    assert data["overrides"] == {"k": 3.0, "atol": 1e-9, "timeout": 7.0}
    props = {p.get("name"): p.get("value")
             for p in ET.parse(paths["junit"]).getroot().iter("property")}
    assert props["overridden"] == shown and float(props["k"]) == 3.0
    assert f"overridden: {shown}" in paths["md"].read_text()
    repro = next(r["repro"] for r in data["results"] if r["status"] == FAILED)
    words = shlex.split(repro)
    for flag, value in (("--k", 3.0), ("--atol", 1e-9), ("--timeout", 7.0)):
        assert float(words[words.index(flag) + 1]) == value, repro
    assert words[words.index("--isolate") + 1] == "inprocess"


def test_without_overrides_the_summary_line_is_unchanged():
    run = attnconf("run", "--adapter", "numpy", "--profile", "quick", *INPROCESS,
                   "--only", "numeric", "--case", "sdpa-plain[b2-h2-q7-k7-e16-float64]")
    assert run.code == 0
    assert run.out.splitlines()[-2] == "1 passed, 0 failed, 0 skipped"
    assert "overridden" not in run.err


# -- a kit error is not a verdict ------------------------------------------------------


def _kit_bug(ctx: RunContext, op: str):
    """A check that stops on its own mistake (as golden did on a declared convention)."""
    yield from ()
    raise KeyError("causal_alignment")


BROKEN = Check("golden", ("sdpa",), _kit_bug, "a check with a bug of the kit")


@pytest.mark.parametrize(("raised", "status"), [
    (KeyError("causal_alignment"), ERROR),
    (ValueError("the kit's own shape arithmetic"), ERROR),
    (AdapterError("adapter raised RuntimeError: boom"), FAILED),
    (ExceptionGroup("hypothesis", [AdapterError("adapter raised RuntimeError: boom")]), FAILED),
    (FlakyFailure("flaky", [properties.PropertyFailure("differs")]), FAILED),
    (Unsupported("adapter raised NotImplementedError: no"), SKIPPED),
])
def test_a_stopped_check_is_the_kits_error_only_when_the_exception_is_the_kits(raised, status):
    def stops(ctx, op):
        yield from ()
        raise raised

    [r] = runner.guarded(Check("golden", ("sdpa",), stops, "stops"), _context(), "sdpa")
    assert r.status == status
    assert bool(r.traceback) == (status == ERROR)
    if status == ERROR:
        assert "internal error of the kit, not the adapter's failure" in r.message
        assert f"raise raised\n{type(raised).__name__}" in r.traceback.replace("    ", "")


def test_a_kit_error_exits_3_and_is_reported_as_such(tmp_path, monkeypatch):
    numeric = next(c for c in CHECKS if c.name == "numeric")
    monkeypatch.setattr(runner, "CHECKS", (BROKEN, numeric))
    paths = {fmt: tmp_path / f"r.{fmt}" for fmt in ("json", "junit", "md")}
    run = attnconf("run", "--adapter", spec("no_sqrt_d"), "--profile", "quick", *INPROCESS,
                   *(a for fmt, path in paths.items() for a in ("--report", f"{fmt}:{path}")))
    assert run.code == 3, run.out
    assert "verdict: NO VERDICT (1 internal error(s) of the kit" in run.out
    assert ", 1 errors" in run.out.splitlines()[-2]
    data = json.loads(paths["json"].read_text())
    assert data["exit_code"] == 3 and data["summary"]["errors"] == 1
    assert data["summary"]["failed"] > 0  # the adapter's own failures are still reported
    [error] = [r for r in data["results"] if r["status"] == ERROR]
    assert error["check"] == "golden" and "KeyError: 'causal_alignment'" in error["traceback"]
    assert "_kit_bug" in error["traceback"]
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")  # in <testsuites>
    assert suite.get("errors") == "1"
    assert [e.get("type") for e in suite.iter("error")] == ["attnconf-internal-error"]
    assert "## Internal errors of the kit" in paths["md"].read_text()


# -- the pytest plugin -------------------------------------------------------------------

QUICK = ("--attn-profile", "quick", "-p", "no:cacheprovider")


def test_plugin_kit_error_is_an_error_of_its_item(pytester, monkeypatch):
    from conformance.frontends import plugin

    numeric = next(c for c in CHECKS if c.name == "numeric")
    monkeypatch.setattr(plugin, "CHECKS", (BROKEN, numeric))
    result = pytester.runpytest("--attn-adapter", "numpy", *QUICK, "-k", "golden or plain")
    outcomes = result.parseoutcomes()
    assert outcomes["errors"] == 1 and outcomes["passed"] >= 1 and "failed" not in outcomes
    result.stdout.fnmatch_lines(["*sdpa / golden: the check stopped on an internal error of "
                                 "the kit, not the adapter's failure: KeyError: *",
                                 "ERROR attnconf[[]numpy[]]::sdpa-golden*"])


def test_plugin_refuses_a_bound_that_is_not_a_number(pytester):
    result = pytester.runpytest("--attn-adapter", "numpy", "--attn-atol", "nan")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: attnconf: --attn-atol must be a finite number ≥ 0, got nan"])


def test_plugin_shows_an_override(pytester):
    result = pytester.runpytest("--attn-adapter", "numpy", *QUICK, "--attn-k", "3",
                                "-k", "plain")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["attnconf adapter: numpy (numpy), * seed 20260101, "
                                 "overridden: k=3; *", "attnconf, overridden: k=3"])


def test_plugin_session_of_an_adapter_that_supports_nothing_fails(pytester):
    result = pytester.runpytest("--attn-adapter", NOTHING, *QUICK, "-k",
                                "conventions or masked_keys or plain")
    result.assert_outcomes(skipped=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
