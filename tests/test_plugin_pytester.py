"""``pytest --attn-adapter SPEC``: the plugin (active through the pytest11 entry point).

Run in a fresh directory by pytester: the header names the adapter, its
framework and version; a conformant adapter's items pass; a failing adapter
gives failing items carrying the harness's own message and repro line; two
adapters share one session; a spec that does not load is a usage error; a
session where nothing passed fails, as ``attnconf run`` would; and ``-n 2``
gives the same verdict as ``-n 0``.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from harness_adapters import spec

from conformance.adapters.load import resolve
from conformance.frontends.plugin import groups
from conformance.profiles import PROFILES
from conformance.runner import RunConfig

# slow (left out by `tox -e fast`): pytester sessions, several in subprocesses
pytestmark = pytest.mark.slow

QUICK = ("--attn-profile", "quick", "-p", "no:cacheprovider")


@pytest.mark.torch
def test_header_names_adapter_framework_and_versions(pytester):
    items = len(list(groups(resolve("torch"), RunConfig(profile=PROFILES["quick"]))))
    result = pytester.runpytest("--attn-adapter", "torch", *QUICK, "--collect-only")
    result.stdout.fnmatch_lines([
        "attnconf adapter: torch (torch), framework torch; profile quick, seed 20260101; "
        "attention-conformance 0.1.0, numpy *, python *, torch 2.*, framework:torch 2.*",
        f"collected {items} items",
        "<AdapterCollector attnconf[[]torch[]]>",
        "  <ConformanceItem sdpa-conventions>",
    ])
    assert result.ret == pytest.ExitCode.OK


def test_conformant_adapter_items_pass(pytester):
    result = pytester.runpytest("--attn-adapter", spec("honest_lowp"), *QUICK, "-rs")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] >= 10
    # what the adapter does not take is skipped with the reason, never passed
    result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] attnconf[[]{spec('honest_lowp')}[]]:1: "
                                 "sdpa-causality: unsupported: needs feature(s) [[]'causal'[]]"])


def test_failing_adapter_gives_failing_items_with_the_harness_message(pytester):
    adapter = spec("no_sqrt_d")
    result = pytester.runpytest("--attn-adapter", adapter, *QUICK, "-k",
                                "scale_law or numeric-plain or causality")
    result.assert_outcomes(failed=2, skipped=1)
    # items run in the check table's order: properties before numeric
    result.stdout.fnmatch_lines([
        "*_ sdpa-scale_law _*",
        "sdpa / scale_law: Default scale is 1/√E: *",
        "minimal failing example: *",
        f"repro: attnconf run --adapter {adapter} --profile quick --seed 20260101 "
        "--only scale_law --case 'hypothesis[[]float64[]]'",
        "*_ sdpa-numeric-plain _*",
        "sdpa / numeric: sdpa-plain[[]b2-h2-q7-k7-e16-float64[]] (seed *; mask='none') — output",
        "tolerance: max|cand − ref64| ≤ max(k·max|ref_lowp − ref64| + atol, conditioning) = *",
        "Mismatched elements: * / 448 (*%)",
        f"repro: attnconf run --adapter {adapter} --profile quick --seed 20260101 --only numeric "
        "--case 'sdpa-plain[[]b2-h2-q7-k7-e16-float64[]]'",
        f"FAILED attnconf[[]{adapter}[]]::sdpa-scale_law",
        f"FAILED attnconf[[]{adapter}[]]::sdpa-numeric-plain",
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_two_adapters_in_one_session(pytester):
    result = pytester.runpytest("--attn-adapter", "numpy", "--attn-adapter", spec("no_sqrt_d"),
                                *QUICK, "-k", "scale_law", "-v")
    result.stdout.fnmatch_lines([
        "attnconf adapter: numpy (numpy), framework numpy; *",
        f"attnconf adapter: {spec('no_sqrt_d')} (*), framework numpy; *",
        "*collected * items / * deselected / 2 selected",
        "attnconf[[]numpy[]]::sdpa-scale_law PASSED*",
        f"attnconf[[]{spec('no_sqrt_d')}[]]::sdpa-scale_law FAILED*",
    ])


def test_adapter_that_does_not_load_is_a_usage_error(pytester):
    result = pytester.runpytest("--attn-adapter", "no_such_module_xyz:attention")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: attnconf: adapter 'no_such_module_xyz:attention': no module "
        f"'no_such_module_xyz' ({pytester.path}/no_such_module_xyz.py does not exist, nor does "
        "a package of that name on sys.path); not a built-in or entry-point adapter either"])


def test_a_session_where_nothing_passed_fails(pytester):
    result = pytester.runpytest("--attn-adapter", spec("honest_lowp"), *QUICK, "-k",
                                "causality or gradients")
    result.assert_outcomes(skipped=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["attnconf[[]*honest_lowp[]]: the adapter was never exercised "
                                 "(no numeric case and no property passed); *"])


def _outcomes(pytester, *args) -> tuple[int, dict[str, str]]:
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(*args, f"--junitxml={xml}")
    outcomes = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "pass"
    return result.ret, outcomes


def test_xdist_gives_the_same_verdict(pytester):
    args = ("--attn-adapter", spec("no_sqrt_d"), *QUICK, "-k",
            "scale_law or numeric-plain or numeric-causal or permutation or conventions")
    serial = _outcomes(pytester, *args, "-n", "0")
    parallel = _outcomes(pytester, *args, "-n", "2")
    assert parallel == serial
    assert set(serial[1].values()) == {"pass", "failure", "skipped"}


ADVERTISED = "hostile.raises_on_advertised:sdpa"  # refuses masks, causal, all but float64


def test_require_fails_a_session_where_the_feature_was_never_exercised(pytester):
    args = ("--attn-adapter", ADVERTISED, *QUICK, "-k", "numeric-plain or numeric-causal")
    plain = pytester.runpytest(*args)
    assert plain.ret == pytest.ExitCode.OK
    plain.stdout.fnmatch_lines(["attnconf[[]*raises_on_advertised*[]]: * passed, 0 failed, "
                                "* skipped (cases, *; unsupported: causal, float32, float16, "
                                "bfloat16"])
    required = pytester.runpytest(*args, "--attn-require", "causal,float64")
    assert required.ret == pytest.ExitCode.TESTS_FAILED
    required.stdout.fnmatch_lines([
        "attnconf[[]*[]]: NOT CONFORMANT (required feature causal was never exercised: every "
        "causal case was unsupported (NotImplementedError)); the session fails, *"])
    assert pytester.runpytest(*args, "--attn-require", "float64").ret == pytest.ExitCode.OK


def test_require_with_a_shard_or_an_unknown_name_is_a_usage_error(pytester):
    shard = pytester.runpytest("--attn-adapter", "numpy", "--attn-require", "causal",
                               "--attn-shard", "1/2")
    assert shard.ret == pytest.ExitCode.USAGE_ERROR
    shard.stderr.fnmatch_lines(["*--attn-require is judged over every case*attnconf merge"])
    unknown = pytester.runpytest("--attn-adapter", "numpy", "--attn-require", "casual")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["*unknown feature or dtype 'casual'*did you mean 'causal'?"])
