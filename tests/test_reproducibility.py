"""Reproducible verdicts: the same seed and profile give the same results across runs, hash
seeds, isolation modes and pytest-xdist; a report records what reproduces its run; a verdict
is refused on tampered fixtures; reports are written atomically."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import conformance
from conformance.fixtures import store as fixturestore
from conformance.frontends import cli, report
from conformance.results import FAILED, PASSED, SKIPPED, Result, RunInfo, verdict

# slow (left out by `tox -e fast`): whole runs repeated to compare their reports
pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FAILING = "hostile.nan_inf:sdpa"  # fails three numeric cases, passes the rest


def attnconf(tmp_path: Path, name: str, *argv: str, hash_seed: str = "0") -> subprocess.Popen:
    """`attnconf run … --report json:<tmp>/<name>.json` in a fresh interpreter (not waited)."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed,
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "conformance", "run", "--profile", "quick", *argv,
         "--report", f"json:{tmp_path / name}.json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(tmp_path: Path, runs: dict[str, subprocess.Popen]) -> dict[str, dict]:
    reports = {}
    for name, proc in runs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, 1), f"{name}: exit {proc.returncode}\n{err[-3000:]}"
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    return reports


def without_isolate_flag(results: list[dict]) -> list[dict]:
    def strip(text: str) -> str:
        return text.replace(" --isolate subprocess", "").replace(" --isolate inprocess", "")

    return [{k: strip(v) if isinstance(v, str) else v for k, v in r.items()} for r in results]


@pytest.mark.torch
def test_same_seed_same_verdict_across_runs_hash_seeds_and_isolation(tmp_path):
    runs = {}
    for spec, tag in (("numpy", "numpy"), (FAILING, "failing")):
        runs[f"{tag}-hash0"] = attnconf(tmp_path, f"{tag}-hash0", "--adapter", spec,
                                        "--isolate", "inprocess", hash_seed="0")
        runs[f"{tag}-hash123"] = attnconf(tmp_path, f"{tag}-hash123", "--adapter", spec,
                                          "--isolate", "subprocess", hash_seed="123")
    reports = finish(tmp_path, runs)
    for tag in ("numpy", "failing"):
        first, second = reports[f"{tag}-hash0"], reports[f"{tag}-hash123"]
        # ids, statuses, errors, messages; the repro lines repeat each run's explicit
        # --isolate flag, which is the one intended difference
        assert without_isolate_flag(first["results"]) == without_isolate_flag(
            second["results"]), tag
        assert first["summary"] == second["summary"]
        assert (first["settings"]["isolate"], second["settings"]["isolate"]) == (
            "inprocess", "subprocess")
    assert reports["numpy-hash0"]["summary"]["failed"] == 0
    failed = [r for r in reports["failing-hash0"]["results"] if r["status"] == FAILED]
    assert len([r for r in failed if r["check"] == "numeric"]) == 3
    assert reports["failing-hash0"]["verdict"] == f"{len(failed)} failed"


@pytest.mark.torch
def test_a_report_is_enough_to_reproduce_its_run(tmp_path):
    data = finish(tmp_path, {"r": attnconf(tmp_path, "r", "--adapter", FAILING, "--seed", "7",
                                           "--only", "numeric", "conventions")})["r"]
    assert (data["adapter"], data["profile"], data["seed"]) == (FAILING, "quick", 7)
    assert data["kit_version"] == conformance.__version__
    assert data["versions"]["numpy"] == np.__version__
    assert data["versions"]["torch"]  # installed with the kit's test extras
    assert data["conventions"]["observed"] == {
        "causal_alignment": "top_left", "fully_masked": {"bool": "zeros", "float": "zeros"},
        "masked_nonfinite": "propagates"}
    assert data["conventions"]["declared"]["conventions"]["fully_masked"] == "zeros"
    assert data["settings"]["only"] == ["numeric", "conventions"]
    failed = [r for r in data["results"] if r["status"] == FAILED]
    assert failed and all("--seed 7" in r["repro"] and r["case"] in r["repro"] for r in failed)


def test_plugin_same_outcomes_with_xdist_and_another_hash_seed(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(REPO)]))
    args = ("-p", "no:cacheprovider", "--attn-adapter", FAILING, "--attn-profile", "quick")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    serial = pytester.runpytest_subprocess(*args, "-n", "0")
    monkeypatch.setenv("PYTHONHASHSEED", "123")
    parallel = pytester.runpytest_subprocess(*args, "-n", "2")
    outcomes = serial.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1 and outcomes.get("passed", 0) >= 10
    assert {k: v for k, v in parallel.parseoutcomes().items() if k != "seconds"} == {
        k: v for k, v in outcomes.items() if k != "seconds"}


# -- fixtures: verified before any verdict ----------------------------------------------


@pytest.fixture
def fixtures_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped fixtures that `attnconf run` verifies instead of the real ones."""
    root = tmp_path / "fixtures"
    shutil.copytree(fixturestore.default_root(), root,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fixturestore, "default_root", lambda: root)
    assert fixturestore.verify(root) == [], "the shipped fixtures must verify"
    return root


def run_on_fixtures(capsys) -> tuple[int, str]:
    code = cli.main(["run", "--adapter", "numpy", "--profile", "quick", "--only", "conventions"])
    return code, capsys.readouterr().err


def a_fixture(root: Path) -> Path:
    return sorted((root / "golden").glob("*.npz"))[0]


def test_verified_fixtures_give_a_verdict(fixtures_copy, capsys):
    assert run_on_fixtures(capsys)[0] == 0


def test_a_corrupted_fixture_refuses_a_verdict_naming_it(fixtures_copy, capsys):
    target = a_fixture(fixtures_copy)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the middle of an array
    target.write_bytes(bytes(data))
    code, err = run_on_fixtures(capsys)
    assert code == 2
    assert err.startswith("attnconf: error: refusing to give a verdict")
    assert f"golden/{target.name}: sha256 mismatch" in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_fixture_refuses_a_verdict_naming_it(fixtures_copy, capsys):
    target = a_fixture(fixtures_copy)
    target.unlink()
    code, err = run_on_fixtures(capsys)
    assert code == 2 and f"golden/{target.name}: missing" in err


def test_a_pickle_is_never_loaded_even_with_matching_hashes(fixtures_copy, capsys):
    """sha256 and manifest made consistent with a pickled member: still refused, unparsed."""
    directory = fixtures_copy / "golden"
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"payload": "would run on unpickling"}], dtype=object),
            allow_pickle=True)
    member = buffer.getvalue()
    with zipfile.ZipFile(archive := io.BytesIO(), "w") as zf:
        zf.writestr("evil.npy", member)
    (directory / "evil.npz").write_bytes(archive.getvalue())
    files = fixturestore.read_manifest(directory)["files"]
    files["evil.npz"] = {
        "sha256": fixturestore.sha256_bytes(archive.getvalue()), "bytes": len(archive.getvalue()),
        "arrays": {"evil": {"shape": [1], "dtype": "object",
                            "sha256": fixturestore.sha256_bytes(member)}}}
    fixturestore.write_manifest(directory, files)
    with pytest.raises(fixturestore.FixtureError, match=r"evil\.npz: refused to load"):
        fixturestore.load_arrays(directory / "evil.npz")
    code, err = run_on_fixtures(capsys)
    assert code == 2 and "golden/evil.npz: refused to load" in err


# -- verdicts and reports ---------------------------------------------------------------


def test_nothing_passed_is_not_conformant():
    skipped = [Result("sdpa", "numeric", f"c{i}", SKIPPED, "unsupported: …") for i in range(3)]
    assert verdict(skipped)[0] == 1 and "no case passed" in verdict(skipped)[1]
    assert verdict([])[0] == 1
    assert verdict([*skipped, Result("sdpa", "numeric", "c", PASSED)]) == (0, "conformant")


def _results_and_info():
    results = [Result("sdpa", "numeric", "c", FAILED, "wrong")]
    return results, RunInfo(adapter="x", profile="quick", seed=1, kit_version="0")


def test_a_report_whose_rename_fails_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "reports" / "report.json"
    target.parent.mkdir()
    target.write_text("previous report\n")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        report.write_report(f"json:{target}", *_results_and_info())
    assert target.read_text() == "previous report\n"  # untouched, not truncated
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]  # no temp file


def test_a_report_that_cannot_be_written_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_verify_fixtures", lambda: None)
    monkeypatch.setattr(report.os, "replace", lambda src, dst: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")))
    code = cli.main(["run", "--adapter", "numpy", "--profile", "quick", "--only", "conventions",
                     "--report", f"json:{tmp_path / 'r.json'}"])
    err = capsys.readouterr().err
    assert code == 2 and "could not write the reports" in err and "Permission denied" in err
    assert "none was left in place" in err
    assert list(tmp_path.iterdir()) == []


def test_a_written_report_is_complete_json(tmp_path):
    path = report.write_report(f"json:{tmp_path / 'r.json'}", *_results_and_info())
    assert json.loads(path.read_text())["summary"] == {"passed": 0, "failed": 1, "skipped": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
