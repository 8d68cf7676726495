"""Harness throughput: how fast the kit gets through cases, examples and whole runs.

One table (metric, value, unit, target, met), every number measured in this run:

* start-up: wall time of a fresh ``attnconf --help``, ``attnconf list`` and
  ``python -c "import conformance.frontends.cli"`` (best of 3);
* ``attnconf run`` (CLI, subprocess): ``--profile quick --only numeric``: every
  numeric result of every op the adapter has, per second, counted from the
  header line (adapter resolved, torch imported) to exit, and over the whole
  process;
* runner API: the tiny sdpa numeric cases (every scenario whose shapes all have
  Lq, Lk <= 8 and E <= 16), run in this process scenario by scenario as the
  pytest plugin's items run them, the reference cache cold (best of 3);
* pytest plugin (subprocess, ``pytest --attn-adapter SPEC --attn-profile quick``):
  the same tiny scenario items, cases per second inside pytest's run loop and
  items per second (best of 3 processes);
* hypothesis: test cases hypothesis executed (its own statistics) in the 13
  property checks of a whole quick-profile run (runner API), per second spent in
  those checks: the first run in a fresh process (it pays hypothesis's one-time
  scan of local modules for constants), a second run in the same process, and a
  ci-profile run in-process (20 examples per property, not 8) (best of 3 processes);
* the runner-API tiny torch row again, in a fresh process, with one busy process
  alongside (2 cores: a loaded CI box), OpenMP waits as the kit sets them (passive)
  and spinning (torch's default before);
* wall time of the whole quick profile per CPU built-in adapter (CLI);
* the isolation overhead (quick profile, torch, subprocess / in-process, CLI);
* the detection matrix (``attnconf matrix``: mutant zoo + correct zoo, ci profile,
  2 workers); slow, so ``--no-matrix`` (or ``main(matrix=False)``) skips it.

The environment is inherited as it is (``tox -e bench`` sets OMP_NUM_THREADS=1);
the OpenMP settings in effect are printed under the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TINY_LEN, TINY_DIM = 8, 16
CPU_ADAPTERS = ("numpy", "torch", "torch-math", "torch-mha")
THROUGHPUT_ADAPTERS = ("numpy", "torch")
# every child process gets the environment this one started with (loading an adapter here
# sets OMP_WAIT_POLICY, which the children must decide for themselves)
START_ENV = dict(os.environ)
PLUGIN_TARGET, HYPOTHESIS_TARGET = 500.0, 400.0  # per second, at least
STARTUP_TARGET, QUICK_TARGET, MATRIX_TARGET = 3.0, 30.0, 600.0  # seconds, at most


def row(metric: str, value: float, unit: str, target: float | None = None,
        at_least: bool = True, note: str = "") -> dict:
    """One table row (benchmarks/run.py's format); ``met`` is None where there is no target."""
    if target is None:
        shown, met = "", None
    else:
        shown = f"{'>=' if at_least else '<='} {target:g}"
        met = bool(value >= target if at_least else value <= target)
    return {"section": "harness", "metric": metric, "value": value, "unit": unit,
            "target": shown, "met": met, "note": note}


def _command(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def _wall(cmd: Sequence[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=kwargs.pop("cwd", ROOT),
                          env=START_ENV, **kwargs)
    return time.perf_counter() - start, done


def _checked(done: subprocess.CompletedProcess, what: str, ok: tuple[int, ...] = (0,)) -> None:
    if done.returncode not in ok:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"{what} exited {done.returncode}: " + " | ".join(tail))


def startup_rows(rounds: int = 3) -> list[dict]:
    """Best-of-``rounds`` wall time of three fresh processes that start the kit."""
    commands = {
        "start-up: attnconf --help": [_command("attnconf"), "--help"],
        "start-up: attnconf list": [_command("attnconf"), "list"],
        "start-up: python -c 'import conformance.frontends.cli'": [sys.executable, "-c",
                                                         "import conformance.frontends.cli"],
    }
    rows = []
    for metric, cmd in commands.items():
        best = float("inf")
        for _ in range(rounds):
            seconds, done = _wall(cmd)
            _checked(done, metric)
            best = min(best, seconds)
        rows.append(row(metric, best, "s", STARTUP_TARGET, at_least=False))
    return rows


SUMMARY = re.compile(r"(\d+) passed, (\d+) failed, (\d+) skipped")


def cli_numeric_rows(spec: str) -> list[dict]:
    """``attnconf run --adapter SPEC --profile quick --only numeric``: results per second,
    from the header line (printed once the adapter is resolved) to exit, and whole process."""
    cmd = [_command("attnconf"), "run", "--adapter", spec, "--profile", "quick",
           "--only", "numeric"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=START_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    header_at = None
    for line in proc.stderr:
        if header_at is None and line.startswith("attnconf run:"):
            header_at = time.perf_counter()
    out = proc.stdout.read()
    proc.wait()
    end = time.perf_counter()
    if proc.returncode != 0 or header_at is None:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {out[-300:]}")
    passed, failed, skipped = map(int, SUMMARY.findall(out)[-1])
    n = passed + failed + skipped
    note = (f"{n} results ({passed} passed, {skipped} skipped): every numeric case of every "
            f"op of {spec}, incl. the non-tiny sdpa shapes (L 113, 203, 512)")
    return [row(f"attnconf run --only numeric [{spec}], after start-up", n / (end - header_at),
                "cases/s", note=note),
            row(f"attnconf run --only numeric [{spec}], whole process", n / (end - start),
                "cases/s", note=f"{end - start:.2f} s wall")]


def tiny_groups(profile_name: str = "quick") -> dict[str, int]:
    """sdpa numeric scenario → number of cases, for scenarios whose every case is tiny."""
    from conformance.ops import op_specs
    from conformance.profiles import PROFILES
    from conformance.runner import DEFAULT_SEED

    by_group: dict[str, list] = {}
    for case in op_specs()["sdpa"].cases(PROFILES[profile_name], DEFAULT_SEED):
        by_group.setdefault(f"sdpa-{case.scenario}", []).append(case)
    return {group: len(cases) for group, cases in by_group.items()
            if all(c.shapes.len_q <= TINY_LEN and c.shapes.len_k <= TINY_LEN
                   and c.shapes.dim <= TINY_DIM for c in cases)}


def runner_tiny_row(spec: str, groups: dict[str, int], rounds: int = 3) -> dict:
    """The tiny numeric scenarios through the numeric check, in this process, the reference
    cache cleared before each of ``rounds`` passes; the best pass counts."""
    import importlib

    from conformance.adapters.load import resolve
    from conformance.checks import CHECKS, RunContext
    from conformance.profiles import PROFILES
    from conformance.runner import DEFAULT_SEED, RunConfig, make_invoker

    numeric = next(c for c in CHECKS if c.name == "numeric")
    profile = PROFILES["quick"]
    adapter = resolve(spec)
    invoker = make_invoker(adapter, RunConfig(profile=profile, isolate="inprocess"))
    # the module (conformance.checks exports a function of the same name)
    cache = importlib.import_module("conformance.checks.numeric")._EXPECTED_CACHE
    seconds = float("inf")
    for _ in range(rounds):
        cache.clear()
        start, n = time.perf_counter(), 0
        for group in groups:
            ctx = RunContext(adapter, invoker, profile, DEFAULT_SEED, group=group)
            n += sum(1 for _ in numeric.run(ctx, "sdpa"))
        seconds = min(seconds, time.perf_counter() - start)
    return row(f"runner API, tiny sdpa numeric [{spec}]", n / seconds, "cases/s",
               note=f"{n} cases (Lq, Lk <= {TINY_LEN}, E <= {TINY_DIM}) in "
                    f"{len(groups)} scenarios, {seconds:.3f} s, best of {rounds}")


_PLUGIN_CONFTEST = """
import json, time
import pytest

GROUPS = json.loads({groups!r})

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    keep = [i for i in items if getattr(i, "check", None) is not None
            and i.check.name == "numeric" and i.group in GROUPS]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep

@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        seconds = time.perf_counter() - start
        cases = sum(GROUPS[i.group] for i in session.items)
        with open({out!r}, "w") as f:
            json.dump({{"seconds": seconds, "items": len(session.items), "cases": cases}}, f)
"""


def plugin_rows(spec: str, groups: dict[str, int], rounds: int = 3) -> list[dict]:
    """``pytest --attn-adapter SPEC --attn-profile quick`` in a fresh process, only the items of
    the tiny numeric scenarios (a conftest deselects the rest and times the run loop); the
    best of ``rounds`` processes."""
    timing, wall = {"seconds": float("inf")}, float("inf")
    with tempfile.TemporaryDirectory(prefix="attnconf-bench-") as tmp:
        out = str(Path(tmp) / "timing.json")
        conftest = _PLUGIN_CONFTEST.format(groups=json.dumps(groups), out=out)
        (Path(tmp) / "conftest.py").write_text(textwrap.dedent(conftest))
        for _ in range(rounds):
            seconds, done = _wall([sys.executable, "-m", "pytest", "-q", "-p",
                                   "no:cacheprovider", "--attn-adapter", spec,
                                   "--attn-profile", "quick"], cwd=tmp)
            _checked(done, f"pytest --attn-adapter {spec}")
            wall = min(wall, seconds)
            timing = min(timing, json.loads(Path(out).read_text()), key=lambda t: t["seconds"])
    rate = timing["cases"] / timing["seconds"]
    note = (f"{timing['cases']} cases in {timing['items']} items (the tiny numeric scenarios), "
            f"{timing['seconds']:.3f} s in the run loop, {wall:.2f} s whole process; best of "
            f"{rounds} processes")
    return [row(f"pytest plugin, tiny numeric [{spec}]", rate, "cases/s", PLUGIN_TARGET,
                note=note),
            row(f"pytest plugin, tiny numeric [{spec}]", timing["items"] / timing["seconds"],
                "items/s")]


def hypothesis_child(spec: str) -> dict:
    """(In a fresh process.) Two whole quick-profile runs of ``spec`` through the runner API,
    then one ci-profile run in-process (20 examples per property instead of 8, so hypothesis's
    per-property set-up weighs less); for each, the test cases hypothesis executed (its own
    statistics, every phase) and the time spent in the property checks: from the last result
    before them to their last."""
    from hypothesis.statistics import collector

    from conformance.adapters.load import resolve
    from conformance.checks.property_bodies import PROPERTIES
    from conformance.profiles import PROFILES
    from conformance.results import FAILED
    from conformance.runner import RunConfig, run

    names = {p.name for p in PROPERTIES}
    adapter = resolve(spec)
    runs = []
    quick = RunConfig(profile=PROFILES["quick"], isolate="inprocess")  # in this process
    for config in (quick, quick, RunConfig(profile=PROFILES["ci"], isolate="inprocess")):
        stats: list[dict] = []
        stamps: list[tuple[str, float]] = []

        def stamp(r, stamps=stamps) -> None:
            stamps.append((r.check, time.perf_counter()))

        with collector.with_value(stats.append):
            results, _ = run(adapter, config, stamp)
        first = next(i for i, (check, _) in enumerate(stamps) if check in names)
        last = max(i for i, (check, _) in enumerate(stamps) if check in names)
        cases = sum(len(phase["test-cases"]) for s in stats for key, phase in s.items()
                    if key.endswith("-phase"))
        runs.append({"seconds": stamps[last][1] - stamps[first - 1][1], "examples": cases,
                     "checks": sum(r.check in names for r in results),
                     "failed": sum(r.status == FAILED for r in results if r.check in names)})
    return {"runs": runs}


def hypothesis_rows(spec: str, rounds: int = 3) -> list[dict]:
    """Hypothesis examples per second in the property checks (see hypothesis_child): the
    first run of a fresh process and the second run in it, best of ``rounds`` processes."""
    best: list[dict] | None = None
    for _ in range(rounds):
        done = subprocess.run([sys.executable, __file__, "--child-hypothesis", spec], cwd=ROOT,
                              env=START_ENV, capture_output=True, text=True)
        _checked(done, f"hypothesis child [{spec}]")
        runs = json.loads(done.stdout.strip().splitlines()[-1])["runs"]
        best = runs if best is None else [min(pair, key=lambda r: r["seconds"])
                                          for pair in zip(best, runs, strict=True)]
    rows = []
    labels = ("quick, 1st run in a fresh process", "quick, 2nd run, same process",
              "ci in-process, 3rd run")
    for label, r in zip(labels, best, strict=True):
        rows.append(row(f"hypothesis examples [{spec}], {label}", r["examples"] / r["seconds"],
                        "examples/s", HYPOTHESIS_TARGET,
                        note=f"{r['examples']} examples in the {r['checks']} property checks of "
                             f"a whole run, {r['seconds']:.3f} s in them, {r['failed']} "
                             f"failed; best of {rounds} processes"))
    return rows


def contention_rows(spec: str = "torch") -> list[dict]:
    """The runner-API tiny row of ``spec`` in a fresh process while one busy process (this
    benchmark's own ``while True: pass``) holds a core: as the kit runs it (OMP_WAIT_POLICY
    unset, so loading the adapter makes it PASSIVE) and with spinning OpenMP workers
    (OMP_WAIT_POLICY=ACTIVE, what torch did before)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    rows = []
    try:
        time.sleep(0.5)
        for label, policy in (("OMP_WAIT_POLICY unset", None),
                              ("OMP_WAIT_POLICY=ACTIVE", "ACTIVE")):
            env = {k: v for k, v in START_ENV.items() if k != "OMP_WAIT_POLICY"}
            env.update({"OMP_WAIT_POLICY": policy} if policy else {})
            done = subprocess.run([sys.executable, __file__, "--child-tiny", spec], cwd=ROOT,
                                  env=env, capture_output=True, text=True)
            _checked(done, f"tiny child [{spec}]")
            found = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row(f"runner API, tiny sdpa numeric [{spec}], 1 busy process, "
                            f"{label}", found["value"], "cases/s", note=found["note"]))
    finally:
        hog.kill()
        hog.wait()
    return rows


def quick_rows() -> list[dict]:
    """Wall time of ``attnconf run --adapter SPEC --profile quick`` for each CPU built-in."""
    rows = []
    for spec in CPU_ADAPTERS:
        seconds, done = _wall([_command("attnconf"), "run", "--adapter", spec, "--profile",
                               "quick"])
        _checked(done, f"attnconf run --adapter {spec}")
        counts = SUMMARY.findall(done.stdout)[-1]
        rows.append(row(f"quick profile wall [{spec}]", seconds, "s", QUICK_TARGET,
                        at_least=False, note=f"{'/'.join(counts)} passed/failed/skipped"))
    return rows


def isolation_row(spec: str = "torch") -> dict:
    """Quick profile of ``spec`` with --isolate subprocess over in-process (one run each)."""
    seconds = {}
    for mode in ("inprocess", "subprocess"):
        seconds[mode], done = _wall([_command("attnconf"), "run", "--adapter", spec,
                                     "--profile", "quick", "--isolate", mode])
        _checked(done, f"attnconf run --isolate {mode}")
    ratio = seconds["subprocess"] / seconds["inprocess"]
    return row(f"isolation overhead, quick [{spec}]", ratio, "x",
               note=f"subprocess {seconds['subprocess']:.1f} s / in-process "
                    f"{seconds['inprocess']:.1f} s (whole processes)")


def matrix_row() -> dict:
    """``attnconf matrix`` (both zoos, ci profile, 2 workers): wall time; it must pass."""
    seconds, done = _wall([_command("attnconf"), "matrix"])
    _checked(done, "attnconf matrix")
    summary = next((line for line in done.stdout.splitlines() if "mutants caught" in line), "")
    return row("detection matrix wall", seconds, "s", MATRIX_TARGET, at_least=False,
               note=summary)


def main(argv: Sequence[str] | None = None, *, matrix: bool | None = None) -> list[dict]:
    """Measure every row and return them (benchmarks/run.py prints the table).

    ``argv`` may hold ``--no-matrix`` (other arguments are ignored: benchmarks/run.py passes
    its own through); ``matrix=`` overrides it.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--no-matrix", action="store_true")
    args, _ = parser.parse_known_args(list(argv or ()))
    with_matrix = (not args.no_matrix) if matrix is None else matrix
    rows = startup_rows()
    groups = tiny_groups()
    for spec in THROUGHPUT_ADAPTERS:
        rows += cli_numeric_rows(spec)
        rows.append(runner_tiny_row(spec, groups))
        rows += plugin_rows(spec, groups)
        rows += hypothesis_rows(spec)
    rows += contention_rows()
    rows += quick_rows()
    rows.append(isolation_row())
    if with_matrix:
        rows.append(matrix_row())
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child-hypothesis":
        print(json.dumps(hypothesis_child(sys.argv[2])))
    elif len(sys.argv) == 3 and sys.argv[1] == "--child-tiny":
        print(json.dumps(runner_tiny_row(sys.argv[2], tiny_groups())))
    else:
        from run import print_table

        print_table(main(sys.argv[1:]))
