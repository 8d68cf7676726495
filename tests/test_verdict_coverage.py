"""A verdict states its coverage (issue 17): ``CONFORMANT on P of T cases; unsupported: …``
names each declared feature and dtype the adapter refused on every case, and ``--require``
fails a run where a named feature or dtype was never exercised by a passed case.

The adapter under test (``tests/hostile/raises_on_advertised.py``) takes torch's signature,
so it advertises masks, causality, dropout and every dtype, and raises NotImplementedError
for all but small, unmasked, non-causal float64 calls.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from harness_adapters import attnconf

from conformance.results import (
    FAILED,
    PASSED,
    SKIPPED,
    Result,
    axis_counts,
    coverage,
    expand_require,
    require_problem,
    unsupported_axes,
    verdict,
)
from conformance.runner import check_require

ADVERTISED = "hostile.raises_on_advertised:sdpa"
NEVER_SUPPORTED = ["bool_mask", "float_mask", "causal", "dropout", "float32", "float16",
                   "bfloat16"]
RUN = ("run", "--adapter", ADVERTISED, "--isolate", "inprocess", "--profile", "quick",
       "--only", "numeric", "dropout")
RAISED = "unsupported: adapter raised NotImplementedError: kernel_lib: no"
UNDECLARED = "unsupported: adapter does not support feature(s) ['alibi'] needed by sdpa-x[a]"
DECLARED = {"ops": {"sdpa": ["bool_mask", "causal"]}, "dtypes": ["float64", "float32"]}


def _case(status: str, features: tuple[str, ...], dtype: str = "float64",
          message: str = "") -> Result:
    return Result("sdpa", "numeric", f"sdpa-x[{'-'.join(features)}-{dtype}]", status, message,
                  features=features, dtype=dtype)


# -- the counting, on results made by hand ----------------------------------------------


def test_a_feature_is_unsupported_only_when_the_adapter_refused_every_case_of_it():
    results = [_case(PASSED, ()),
               _case(SKIPPED, ("causal",), message=RAISED),
               _case(SKIPPED, ("causal", "bool_mask"), message=RAISED),
               _case(SKIPPED, ("bool_mask", "alibi"), message=UNDECLARED),
               _case(PASSED, ("bool_mask",)),
               _case(SKIPPED, (), "float32", RAISED)]
    covered = coverage(axis_counts(results), DECLARED)
    assert list(covered) == ["bool_mask", "causal", "float64", "float32"]  # vocabulary order
    assert unsupported_axes(covered) == ["causal", "float32"]
    causal = covered["causal"].as_dict()
    assert causal == {"exercised": 0, "passed": 0, "failed": 0, "unsupported": 2,
                      "raised": {"NotImplementedError": 2}, "not_called": {}}
    assert covered["bool_mask"].as_dict()["not_called"] == {"undeclared feature": 1}


def test_a_failed_case_exercised_its_features_but_does_not_meet_require():
    results = [_case(PASSED, ()), _case(FAILED, ("causal",))]
    assert unsupported_axes(coverage(axis_counts(results), DECLARED)) == []
    assert require_problem(axis_counts(results), ("causal",), DECLARED) == (
        "required feature causal was never exercised: no causal case passed (1 failed)")


def test_require_reasons_word_for_word():
    results = [_case(PASSED, ()), _case(SKIPPED, ("causal",), message=RAISED),
               _case(SKIPPED, ("causal",), message="unsupported: adapter raised "
                                                   "TypeError: odd"),
               _case(SKIPPED, ("bool_mask", "alibi"), "float32", UNDECLARED)]
    counts = axis_counts(results)
    assert require_problem(counts, ("float64",), DECLARED) is None
    assert require_problem(counts, ("causal", "float32", "bool_mask", "window"), DECLARED) == (
        "required feature causal was never exercised: every causal case was unsupported "
        "(NotImplementedError: 1, TypeError: 1); also never exercised: float32, bool_mask, "
        "window")
    assert require_problem(counts, ("float32",), DECLARED) == (
        "required dtype float32 was never exercised: no float32 case called the adapter "
        "(1 skipped: undeclared feature)")
    assert require_problem(counts, ("window",), DECLARED) == (
        "required feature window was never exercised: no case of this run needs it")


def test_require_declared_is_every_declared_name_some_case_needs():
    counts = axis_counts([_case(PASSED, ("causal",)), _case(SKIPPED, (), "float32", RAISED)])
    # bool_mask is declared but no case of this run needs it: required only when named
    assert expand_require(("declared", "causal"), DECLARED, counts) == (
        "causal", "float64", "float32")
    assert require_problem(counts, ("declared",), DECLARED) == (
        "required dtype float32 was never exercised: every float32 case was unsupported "
        "(NotImplementedError)")
    assert "no case of this run needs a declared feature" in require_problem(
        {}, ("declared",), DECLARED)


def test_the_verdict_judges_require_after_failures_and_exercise():
    results = [_case(PASSED, ()), _case(SKIPPED, ("causal",), message=RAISED)]
    assert verdict(results) == (0, "conformant")
    assert verdict(results, ("causal",), DECLARED)[0] == 1
    assert verdict([*results, _case(FAILED, ())], ("causal",), DECLARED) == (1, "1 failed")


def test_an_unknown_name_is_a_usage_error_with_the_valid_names_and_a_suggestion():
    assert check_require(["causal", "float16", "declared"]) == ("causal", "float16", "declared")
    with pytest.raises(ValueError, match=r"unknown feature or dtype 'caussal'; known: "
                                         r"bool_mask, .*bfloat16, declared; did you mean "
                                         r"'causal'\?"):
        check_require(["float32", "caussal"])
    run = attnconf("run", "--adapter", "numpy", "--require", "bfloat61")
    assert run.code == 2 and run.out == "" and run.err.count("\n") == 1
    assert "did you mean 'bfloat16'?" in run.err


# -- through attnconf run ------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """One run without --require, with every report format."""
    where = tmp_path_factory.mktemp("coverage")
    run = attnconf(*RUN, *(f"--report={fmt}:{where / f'r.{fmt}'}" for fmt in ("json", "junit",
                                                                                "md")))
    return run, where


def test_without_require_the_verdict_says_what_was_exercised(plain_run):
    run, where = plain_run
    report = json.loads((where / "r.json").read_text())
    passed, total = report["summary"]["passed"], len(report["results"])
    assert run.code == 0 and 0 < passed < total
    line = (f"CONFORMANT on {passed} of {total} cases; unsupported: "
            f"{', '.join(NEVER_SUPPORTED)}")
    assert run.out.splitlines()[-1] == f"verdict: {line}"
    assert report["verdict"] == "conformant" and report["verdict_line"] == line
    assert report["unsupported"] == NEVER_SUPPORTED
    causal, float64 = report["coverage"]["causal"], report["coverage"]["float64"]
    assert causal["exercised"] == 0 and causal["raised"]["NotImplementedError"] > 0
    assert float64["passed"] == passed  # every passed case is float64
    assert report["require"] == {"names": [], "expanded": [], "judged": False, "problem": None}
    suite = ET.parse(where / "r.junit").getroot().find("testsuite")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["verdict"] == line
    assert f"— {line}\n" in (where / "r.md").read_text()
    # docs/ci.md quotes this very run's line (its counts move with the case matrix)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "ci.md").read_text()
    assert re.search(rf"\nverdict: CONFORMANT on \d+ of \d+ cases; unsupported: "
                     rf"{', '.join(NEVER_SUPPORTED)}\n", docs), "update the line in docs/ci.md"


def test_require_of_a_never_supported_feature_fails_the_run_with_one_reason():
    run = attnconf(*RUN, "--require", "causal")
    assert run.code == 1
    assert run.out.splitlines()[-1] == (
        "verdict: NOT CONFORMANT (required feature causal was never exercised: every causal "
        "case was unsupported (NotImplementedError))")


def test_require_of_exercised_names_passes_and_is_said():
    run = attnconf(*RUN, "--require", "float64", "scale")
    assert run.code == 0
    assert run.out.splitlines()[-1].endswith(
        f"unsupported: {', '.join(NEVER_SUPPORTED)}; required: float64, scale")
    declared = attnconf(*RUN, "--require", "declared")
    assert declared.code == 1
    assert ("required feature bool_mask was never exercised: every bool_mask case was "
            "unsupported (NotImplementedError); also never exercised: float_mask, causal, "
            "dropout, float32, float16, bfloat16)") in declared.out
