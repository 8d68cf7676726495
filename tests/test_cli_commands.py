"""``attnconf list``, usage errors (exit 2, one line), ``--case``, and repro lines that
reproduce the failure they are printed under."""

from __future__ import annotations

import json
import shlex

import pytest
from harness_adapters import attnconf, attnconf_subprocess, spec

from conformance.adapters.builtin import BUILTINS
from conformance.checks import CHECK_NAMES
from conformance.ops import op_specs
from conformance.profiles import PROFILES
from conformance.runner import DEFAULT_SEED


def test_list_names_adapters_ops_checks_and_every_case():
    run = attnconf("list")
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0] == "adapters (built-in): " + ", ".join(BUILTINS)
    assert lines[1].startswith("adapters (entry points, group attention_conformance.adapters):")
    ops = next(i for i, line in enumerate(lines) if line.startswith("ops: "))
    assert lines[ops] == "ops: " + ", ".join(op_specs())
    assert [line.split()[0] for line in lines[ops + 2:ops + 2 + len(CHECK_NAMES)]] == list(
        CHECK_NAMES)
    cases = [c.id for s in op_specs().values() for c in s.cases(PROFILES["ci"], DEFAULT_SEED)]
    assert [line.strip() for line in lines if line.strip() in cases] == cases


def test_list_cases_follows_the_profile():
    run = attnconf("list", "cases", "--profile", "quick")
    assert run.code == 0 and "checks:" not in run.out
    assert run.out.splitlines()[0] == f"cases (profile quick, seed {DEFAULT_SEED}):"
    assert "  sdpa-long-causal[b0-h2-q512-k512-e64-float64]" in run.out.splitlines()


def test_unknown_check_in_only_exits_2_with_one_line():
    run = attnconf_subprocess("run", "--adapter", "numpy", "--only", "numeric", "no_such_check")
    assert run.code == 2 and run.out == ""
    assert run.err == (f"attnconf: error: unknown check(s) ['no_such_check']; known: "
                       f"{', '.join(CHECK_NAMES)}\n")


@pytest.mark.parametrize("argv, message", [
    (("--report", "xml:out.xml"),
     "--report must be FORMAT:PATH with FORMAT in ('json', 'junit', 'md'), got 'xml:out.xml'"),
    (("--case", "sdpa-plain[no-such-shape]"),
     "--case 'sdpa-plain[no-such-shape]' matches no case of the selected checks (ids: "
     "`attnconf list cases --profile …`, or a failure's repro line)"),
])
def test_other_usage_errors_exit_2_with_one_line(argv, message):
    run = attnconf("run", "--adapter", spec("honest_lowp"), "--only", "numeric", *argv)
    assert run.code == 2
    assert run.err.splitlines()[-1] == f"attnconf: error: {message}"
    assert "Traceback" not in run.err


CASE = "sdpa-plain[b2-h2-q7-k7-e16-float64]"


def test_case_reruns_exactly_that_case(tmp_path):
    report = tmp_path / "r.json"
    run = attnconf("run", "--adapter", spec("float32_inside"), "--only", "numeric",
                   "--case", CASE, "--report", f"json:{report}")
    assert run.code == 1 and run.summary == (0, 1, 0)
    [result] = json.loads(report.read_text())["results"]
    assert (result["check"], result["case"], result["status"]) == ("numeric", CASE, "failed")
    # without --only: that case in every check that has it, and nothing else
    everywhere = attnconf("run", "--adapter", "numpy", "--case", CASE, "--report",
                          f"json:{report}")
    results = json.loads(report.read_text())["results"]
    assert everywhere.code == 0
    assert {(r["check"], r["case"]) for r in results} == {("output_contract", CASE),
                                                           ("numeric", CASE)}


def _first_failure(tmp_path, *argv) -> dict:
    report = tmp_path / "first.json"
    attnconf("run", *argv, "--report", f"json:{report}")
    return next(r for r in json.loads(report.read_text())["results"] if r["status"] == "failed")


@pytest.mark.slow  # runs attnconf in a subprocess
@pytest.mark.torch
def test_the_repro_command_reproduces_the_same_failure(tmp_path):
    failure = _first_failure(tmp_path, "--adapter", spec("float32_inside"), "--only", "numeric")
    words = shlex.split(failure["repro"])
    assert words[:2] == ["attnconf", "run"]  # run as printed, by the installed console script
    rerun_report = tmp_path / "rerun.json"
    rerun = attnconf_subprocess(*words[1:], "--report", f"json:{rerun_report}", cwd=tmp_path)
    assert rerun.code == 1
    [again] = json.loads(rerun_report.read_text())["results"]
    assert again == failure  # the same case, numbers, message and repro line


@pytest.mark.slow  # runs attnconf twice
def test_a_property_repro_reproduces_the_minimal_example(tmp_path):
    failure = _first_failure(tmp_path, "--adapter", spec("no_sqrt_d"), "--only", "scale_law")
    assert failure["check"] == "scale_law" and failure["case"] == "hypothesis[float64]"
    words = shlex.split(failure["repro"])
    rerun_report = tmp_path / "rerun.json"
    rerun = attnconf(*words[1:], "--report", f"json:{rerun_report}")
    assert rerun.code == 1
    [again] = json.loads(rerun_report.read_text())["results"]
    assert again == failure
    assert "minimal failing example: [b0-h1-" in again["message"]
