"""Cases are values: ids unique and readable, seeds derived from the id, duplicates loud."""

from __future__ import annotations

import re
import shlex

import pytest

from conformance.cases import AttentionShapes, derive_seed, make_case, unique_cases
from conformance.ops import op_specs
from conformance.profiles import PROFILES
from conformance.runner import DEFAULT_SEED

DTYPES = "float64|float32|float16|bfloat16"
SDPA_ID = re.compile(
    rf"sdpa-[a-z]+(-[a-z]+)*\[b(0|\d(x\d)*)-h\d+(/\d+)?-q\d+-k\d+-e\d+(v\d+)?-({DTYPES})\]")
ANY_ID = re.compile(rf"[a-z_]+-[a-z0-9-]+\[[a-z0-9/x-]+-({DTYPES})\]")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_case_ids_are_unique_across_every_op(profile):
    ids = [c.id for spec in op_specs().values() for c in spec.cases(PROFILES[profile], 1)]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates
    assert len(ids) > 100


def test_case_ids_are_readable():
    for op, spec in op_specs().items():
        for case in spec.cases(PROFILES["ci"], DEFAULT_SEED):
            assert case.op == op and case.id.startswith(f"{op}-{case.scenario}[")
            assert (SDPA_ID if op == "sdpa" else ANY_ID).fullmatch(case.id), case.id
            assert case.id.endswith(f"-{case.dtype}]")
            # a repro line quotes it once and the shell gives it back unchanged
            assert shlex.split(shlex.join(["--case", case.id])) == ["--case", case.id]


def test_the_documented_example_id():
    shapes = AttentionShapes((2,), 8, 2, 5, 7, 16, 16)
    case = make_case("sdpa", "causal-gqa", shapes.label, "float32", DEFAULT_SEED,
                     {"is_causal": True, "enable_gqa": True}, ("causal", "gqa"), shapes)
    assert case.id == "sdpa-causal-gqa[b2-h8/2-q5-k7-e16-float32]"
    assert case.describe() == (f"sdpa-causal-gqa[b2-h8/2-q5-k7-e16-float32] (seed {case.seed}; "
                               f"enable_gqa=True, is_causal=True)")
    assert AttentionShapes((2, 3), 2, 2, 5, 7, 8, 4).label == "b2x3-h2-q5-k7-e8v4"
    assert AttentionShapes((), 1, 1, 1, 1, 8, 8).label == "b0-h1-q1-k1-e8"


def test_seeds_come_from_the_run_seed_and_the_id_only():
    first = op_specs()["sdpa"].cases(PROFILES["quick"], 5)
    again = op_specs()["sdpa"].cases(PROFILES["quick"], 5)
    other = op_specs()["sdpa"].cases(PROFILES["quick"], 6)
    assert [c.seed for c in first] == [c.seed for c in again]
    assert all(c.seed == derive_seed(5, c.id) for c in first)
    assert [c.seed for c in first] != [c.seed for c in other]
    # the same case in a larger profile has the same seed: a repro from ci reruns under quick
    ci = {c.id: c.seed for c in op_specs()["sdpa"].cases(PROFILES["ci"], 5)}
    assert all(ci[c.id] == c.seed for c in first if c.id in ci)
    assert derive_seed(DEFAULT_SEED, "x") == derive_seed(DEFAULT_SEED, "x") < 2**31


def test_a_duplicate_id_fails_loudly():
    case = make_case("sdpa", "plain", "b0-h1-q1-k1-e8", "float64", 1)
    with pytest.raises(ValueError, match=re.escape(
            "duplicate case id 'sdpa-plain[b0-h1-q1-k1-e8-float64]' in the case matrix")):
        unique_cases([case, case])


def _longest(profile: str) -> dict[str, int]:
    """Longest sequence per sdpa dtype in the profile."""
    cases = op_specs()["sdpa"].cases(PROFILES[profile], DEFAULT_SEED)
    longest: dict[str, int] = {}
    for case in cases:
        length = max(case.shapes.len_q, case.shapes.len_k)
        longest[case.dtype] = max(longest.get(case.dtype, 0), length)
    return longest


def test_long_sequences_belong_to_the_full_profile():
    """full: L = 4096 in every dtype and one single-head L = 32768 case; quick and ci
    stay short enough for their budgets."""
    full = _longest("full")
    assert all(length >= 4096 for length in full.values()) and full["float32"] == 32768
    longest = [c for c in op_specs()["sdpa"].cases(PROFILES["full"], DEFAULT_SEED)
               if c.shapes.len_q == 32768]
    assert [(c.shapes.heads_q, c.option("is_causal")) for c in longest] == [
        (1, True)]
    assert max(_longest("quick").values()) <= 512 and max(_longest("ci").values()) <= 1024
