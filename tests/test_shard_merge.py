"""``--shard I/N`` and ``attnconf merge``: a run split across CI jobs is the same run.

The split is a partition (every case in exactly one shard, the same on every call); three
shards of a ``ci`` run are disjoint, their union is the unsharded run's results, and the
merge of their JSON reports gives the unsharded verdict and counts; merge refuses reports
that are not the shards of one run; the pytest plugin takes the same split.
"""

from __future__ import annotations

import json
import random
import re
from xml.etree import ElementTree as ET

import pytest
from harness_adapters import attnconf, spec

from conformance.shard import CASE_CHECKS, Shard, parse_shard


def _keys(count: int, seed: int = 7) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    checks = [*sorted(CASE_CHECKS), "masked_keys", "conventions"]
    return [("sdpa", rng.choice(checks), f"case-{rng.randrange(10**6)}[{i}]")
            for i in range(count)]


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_every_unit_is_in_exactly_one_shard(n):
    for key in _keys(400):
        owners = [i for i in range(1, n + 1) if Shard(i, n).has(*key)]
        assert len(owners) == 1, (key, owners)
        assert Shard(owners[0], n).has(*key)  # the same answer on every call


def test_a_property_is_one_unit_whatever_its_case():
    shard = Shard(1, 3)
    assert len({shard.has("sdpa", "masked_keys", case) for case in ("a", "b", "c", "d")}) == 1


@pytest.mark.parametrize("text", ["0/3", "4/3", "x", "1-3", "1/0", "/"])
def test_a_bad_shard_is_a_usage_error_of_one_line(text):
    with pytest.raises(ValueError, match=r"--shard must be I/N with 1 ≤ I ≤ N"):
        parse_shard(text)
    run = attnconf("run", "--adapter", "numpy", "--shard", text)
    assert run.code == 2 and run.out == ""
    assert run.err.count("\n") == 1 and "--shard must be I/N" in run.err


def _results(path) -> list[tuple[str, str, str, str]]:
    return [(r["op"], r["check"], r["case"], r["status"])
            for r in json.loads(path.read_text())["results"]]


@pytest.mark.slow
def test_three_shards_of_a_ci_run_partition_it_and_merge_to_its_verdict(tmp_path):
    # float32_inside fails its float64 cases: the merge must carry failures, not only passes
    adapter = ("--adapter", spec("float32_inside"), "--profile", "ci")
    whole = attnconf("run", *adapter, "--report", f"json:{tmp_path / 'whole.json'}")
    assert whole.code == 1 and whole.summary[1] > 0
    shards = []
    for i in (1, 2, 3):
        path = tmp_path / f"shard-{i}.json"
        run = attnconf("run", *adapter, "--shard", f"{i}/3", "--report", f"json:{path}")
        assert f"(shard {i}/3)" in run.out.splitlines()[-2]
        shards.append(set(_results(path)))
    everything = _results(tmp_path / "whole.json")
    assert all(shards), "a shard that runs nothing says nothing about the split"
    assert not (shards[0] & shards[1] or shards[0] & shards[2] or shards[1] & shards[2])
    assert set().union(*shards) == set(everything) and sum(map(len, shards)) == len(everything)

    merged = attnconf("merge", *(str(tmp_path / f"shard-{i}.json") for i in (3, 1, 2)),
                      "--report", f"json:{tmp_path / 'merged.json'}",
                      "--report", f"junit:{tmp_path / 'merged.xml'}",
                      "--report", f"md:{tmp_path / 'merged.md'}")
    assert merged.code == whole.code
    assert merged.summary == whole.summary
    assert merged.out.splitlines()[-1] == whole.out.splitlines()[-1]  # the verdict line
    report = json.loads((tmp_path / "merged.json").read_text())
    original = json.loads((tmp_path / "whole.json").read_text())
    assert report["summary"] == original["summary"]
    assert (report["exit_code"], report["verdict"]) == (original["exit_code"],
                                                       original["verdict"])
    assert sorted(_results(tmp_path / "merged.json")) == sorted(everything)
    suite = ET.parse(tmp_path / "merged.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) == original["summary"]["failed"]
    assert f"**{whole.summary[0]} passed, {whole.summary[1]} failed" in (
        tmp_path / "merged.md").read_text()


def _shard_report(tmp_path, name: str, shard: str | None, **changes) -> str:
    settings = {"shard": shard, "interrupted": False}
    document = {"adapter": "a", "profile": "ci", "seed": 1, "settings": settings,
                "results": [], **changes}
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_merge_refuses_what_is_not_the_shards_of_one_run(tmp_path):
    one = _shard_report(tmp_path, "1.json", "1/3")
    two = _shard_report(tmp_path, "2.json", "2/3")
    run = attnconf("merge", one, two)
    assert run.code == 2 and run.err == "attnconf: error: need each of the 3 shards once: " \
                                        "missing 3/3\n"
    other = _shard_report(tmp_path, "3.json", "3/3", seed=2)
    assert "has seed 2" in attnconf("merge", one, two, other).err
    plain = _shard_report(tmp_path, "p.json", None)
    assert "is not a shard (run it with --shard I/N)" in attnconf("merge", plain).err
    missing = attnconf("merge", str(tmp_path / "nope.json"))
    assert missing.code == 2 and str((tmp_path / "nope.json").resolve()) in missing.err


CASE_COUNTS = re.compile(r"(\d+) passed, (\d+) failed, (\d+) skipped \(cases")


@pytest.mark.slow
def test_the_plugin_takes_the_same_split(pytester):
    adapter = ("--attn-adapter", spec("honest_lowp"), "--attn-profile", "quick",
               "-p", "no:cacheprovider")
    counts = []
    for shard in (None, "1/2", "2/2"):
        extra = ("--attn-shard", shard) if shard else ()
        result = pytester.runpytest(*adapter, *extra)
        assert result.ret == pytest.ExitCode.OK
        found = CASE_COUNTS.search(result.stdout.str())
        assert found, result.stdout.str()
        counts.append(tuple(int(n) for n in found.groups()))
    whole, first, second = counts
    assert first and second and tuple(a + b for a, b in zip(first, second, strict=True)) == whole


ADVERTISED = ("--adapter", "hostile.raises_on_advertised:sdpa", "--isolate", "inprocess",
              "--profile", "quick", "--only", "numeric")
CAUSAL_NEVER = ("verdict: NOT CONFORMANT (required feature causal was never exercised: every "
                "causal case was unsupported (NotImplementedError))")


@pytest.mark.slow
def test_require_is_judged_by_the_merge_as_by_the_unsharded_run(tmp_path):
    """A shard sees part of the cases: it records --require and leaves it to merge, whose
    coverage (from the results' features and dtypes) is the unsharded run's."""
    whole = attnconf("run", *ADVERTISED, "--require", "causal",
                     "--report", f"json:{tmp_path / 'whole.json'}")
    assert whole.code == 1 and whole.out.splitlines()[-1] == CAUSAL_NEVER
    for i in (1, 2):
        run = attnconf("run", *ADVERTISED, "--require", "causal", "--shard", f"{i}/2",
                       "--report", f"json:{tmp_path / f'{i}.json'}")
        assert run.code == 0
        assert run.out.splitlines()[-1].endswith("; --require causal is judged by `attnconf "
                                                 "merge`")
    shards = [str(tmp_path / f"{i}.json") for i in (1, 2)]
    merged = attnconf("merge", *shards, "--report", f"json:{tmp_path / 'merged.json'}")
    assert merged.code == 1 and merged.out.splitlines()[-1] == CAUSAL_NEVER
    report, original = (json.loads((tmp_path / f"{name}.json").read_text())
                        for name in ("merged", "whole"))
    for key in ("coverage", "unsupported", "require", "verdict_line"):
        assert report[key] == original[key], key
    # a requirement given to merge itself is judged too
    for i in (1, 2):
        attnconf("run", *ADVERTISED, "--shard", f"{i}/2",
                 "--report", f"json:{tmp_path / f'{i}.json'}")
    assert attnconf("merge", *shards).code == 0
    assert attnconf("merge", *shards, "--require", "causal").out.splitlines()[-1] == (
        CAUSAL_NEVER)


def test_merge_refuses_shards_that_require_differently(tmp_path):
    paths = []
    for i, require in ((1, ["causal"]), (2, [])):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps({"adapter": "a", "profile": "ci", "seed": 1, "results": [],
                                    "settings": {"shard": f"{i}/2", "require": require}}))
        paths.append(str(path))
    run = attnconf("merge", *paths)
    assert run.code == 2 and "has --require none" in run.err and "not shards of one run" in run.err
