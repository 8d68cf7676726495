"""Isolation that holds (issue 17): reports all or none and never stale, the user's directory
and the kit's files out of the adapter's reach, no process outliving the run, limits that are
documented and measure the right thing, a run-level time budget.

Entries that write to the kit's files run in a sandbox copy of the kit (``sandbox_kit``)
through ``python -m conformance`` in a child process, never against this checkout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.adapters.isolated import procs
from conformance.fixtures.store import load_arrays, pin, read_manifest, save_arrays, unpin, verify
from conformance.frontends.report_files import safe_text

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")

# attnconf runs in subprocesses against hostile adapters, as tests/test_hostile.py
pytestmark = pytest.mark.slow


def sandbox_kit(tmp_path: Path) -> Path:
    """A copy of the kit (conformance, reference, fixtures as conformance/_fixtures)."""
    kit = tmp_path / "kit"
    for package in ("conformance", "reference"):
        shutil.copytree(ROOT / package, kit / package, ignore=IGNORED)
    shutil.copytree(ROOT / "fixtures", kit / "conformance" / "_fixtures", ignore=IGNORED)
    return kit


def attnconf(kit: Path | None, cwd: Path, *argv: str, env: dict | None = None,
             timeout: float = 600, **popen) -> subprocess.CompletedProcess:
    """``python -m conformance run --profile quick ARGV`` in ``cwd``, on the sandbox ``kit``
    (or on this checkout when None), the hostile zoo importable."""
    path = [str(kit)] if kit else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(TESTS)]),
           "OMP_NUM_THREADS": "1", **({"ATTNCONF_HOSTILE_SANDBOX": str(kit)} if kit else {}),
           **(env or {})}
    popen.setdefault("text", True)
    return subprocess.run([sys.executable, "-m", "conformance", "run", "--profile", "quick",
                           *argv], cwd=cwd, env=env, capture_output=True, timeout=timeout,
                          check=False, **popen)


def user_dir(tmp_path: Path) -> Path:
    """A directory of the user's with files in it, where attnconf is started."""
    home = tmp_path / "work"
    (home / "data").mkdir(parents=True)
    (home / "notes.txt").write_text("mine\n")
    (home / "data" / "weights.bin").write_bytes(b"\x00" * 64)
    return home


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def marked(mark: str) -> list[int]:
    """Live processes whose command line holds ``mark`` (the process table)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark.encode() in (entry / "cmdline").read_bytes() \
                    and procs.alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# -- 1. reports: all or none, never stale, any text safe ---------------------------------------


def test_a_surrogate_in_a_message_writes_every_report_on_a_strict_ascii_stdout(tmp_path):
    home = user_dir(tmp_path)
    reports = {fmt: home / f"out.{ext}" for fmt, ext in (("json", "json"), ("junit", "xml"),
                                                         ("md", "md"))}
    for path in reports.values():
        path.write_text("verdict: CONFORMANT (an earlier run)\n")
    done = attnconf(None, home, "--adapter", "hostile.surrogate_message:sdpa", "--only",
                    "numeric", *(a for f, p in reports.items() for a in ("--report", f"{f}:{p}")),
                    env={"PYTHONIOENCODING": "ascii:strict"}, text=False)
    out, err = done.stdout.decode("ascii"), done.stderr.decode("ascii", "replace")
    assert done.returncode == 1, err[-2000:]
    assert "verdict: NOT CONFORMANT (3 failed)" in out
    assert "\\udce9" in out and "\x1b" not in out
    data = json.loads(reports["json"].read_text(encoding="utf-8"))
    failed = [r for r in data["results"] if r["status"] == "failed"]
    assert len(failed) == 3 and all("caf\\udce9.bin" in r["message"] for r in failed)
    from xml.etree import ElementTree as ET

    assert len(ET.parse(reports["junit"]).getroot().iter("failure").__next__().text) > 0
    assert "caf\\udce9.bin" in reports["md"].read_text(encoding="utf-8")
    mask = os.umask(0)
    os.umask(mask)
    for path in reports.values():
        assert (path.stat().st_mode & 0o777) == 0o666 & ~mask, path


def test_safe_text_escapes_surrogates_and_control_characters():
    assert safe_text("a\udce9b\x1b[2J\x00\tc\n") == "a\\udce9b\\x1b[2J\\x00\tc\n"
    assert safe_text("plain · ≥") == "plain · ≥"


@pytest.mark.parametrize("problem", ["unwritable", "same-path"])
def test_report_paths_are_checked_before_the_run(problem, tmp_path):
    home = user_dir(tmp_path)
    not_a_dir = home / "notes.txt"  # a file where a directory should be: unwritable, even as root
    reports = (["--report", f"json:{not_a_dir / 'r.json'}"] if problem == "unwritable" else
               ["--report", f"json:{home / 'r.txt'}", "--report", f"md:{home / 'r.txt'}"])
    start = time.monotonic()
    done = attnconf(None, home, "--adapter", "numpy", *reports)
    assert done.returncode == 2 and time.monotonic() - start < 30
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnconf: error: --report"), done.stderr
    assert ("cannot write in" if problem == "unwritable" else "name the same file") in lines[0]


def test_an_earlier_runs_report_never_outlives_a_run_that_gives_no_verdict(tmp_path):
    """The run refuses a verdict (here: a malformed limit): the stale report is gone."""
    home = user_dir(tmp_path)
    stale = home / "report.json"
    stale.write_text('{"verdict": "conformant"}')
    done = attnconf(None, home, "--adapter", "numpy", "--report", f"json:{stale}",
                    env={"ATTNCONF_WORKER_MEMORY": "lots"})
    assert done.returncode == 2 and "ATTNCONF_WORKER_MEMORY" in done.stderr
    assert not stale.exists()


# -- 2. the user's directory, the kit's fixtures and modules ---------------------------------


def test_an_adapter_cleaning_its_cwd_leaves_the_users_directory_untouched(tmp_path):
    home = user_dir(tmp_path)
    before = tree(home)
    done = attnconf(None, home, "--adapter", "hostile.cleans_cwd:sdpa", "--only", "numeric")
    assert done.returncode == 0, done.stderr[-2000:]
    assert tree(home) == before


def test_a_fixture_re_signer_gets_no_verdict_and_this_run_used_the_verified_bytes(tmp_path):
    kit = sandbox_kit(tmp_path)
    home = user_dir(tmp_path)
    golden = kit / "conformance" / "_fixtures" / "golden"
    done = attnconf(kit, home, "--adapter", "hostile.resigns_fixtures:sdpa", "--only",
                    "golden", "--report", f"json:{home / 'r.json'}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"refusing to give a verdict: fixture {golden}/" in done.stderr
    assert "changed during the run" in done.stderr
    assert not (home / "r.json").exists()


def test_pinned_fixtures_are_the_verified_bytes_whatever_happens_on_disk(tmp_path):
    root = tmp_path / "fixtures"
    shutil.copytree(ROOT / "fixtures", root, ignore=IGNORED)
    name = "sdpa-plain-b2-h3-q13-k7-e4.npz"
    original = load_arrays(root / "golden" / name)["expected_output"].copy()
    try:
        pin(root)
        arrays = dict(load_arrays(root / "golden" / name))
        arrays["expected_output"] = arrays["expected_output"] * 0
        save_arrays(root / "golden" / name, arrays)  # re-signed: verify() on disk would pass
        assert (load_arrays(root / "golden" / name)["expected_output"] == original).all()
        assert read_manifest(root / "golden")["files"][name]["sha256"] != ""
    finally:
        unpin()
    assert not load_arrays(root / "golden" / name)["expected_output"].any()  # disk changed


def test_a_late_import_patcher_never_runs_in_the_parent(tmp_path):
    kit = sandbox_kit(tmp_path)
    home = user_dir(tmp_path)
    victim = kit / "conformance" / "checks" / "gradients.py"
    done = attnconf(kit, home, "--adapter", "hostile.patches_kit_source:sdpa", "--only",
                    "numeric", "--report", f"json:{home / 'r.json'}")
    assert "_os._exit(0)" in victim.read_text()  # the adapter did append its payload
    assert done.returncode == 0 and "verdict: CONFORMANT" in done.stdout, done.stderr[-2000:]
    assert f"warning: kit file {victim} changed during the run" in done.stderr
    assert json.loads((home / "r.json").read_text())["exit_code"] == 0


# -- 3. nothing outlives the run --------------------------------------------------------------


def test_children_in_their_own_session_do_not_outlive_a_clean_run(tmp_path):
    mark = f"attnconf-orphan-{os.getpid()}-{time.monotonic_ns()}"
    home = user_dir(tmp_path)
    done = attnconf(None, home, "--adapter", "hostile.orphans_child:sdpa", "--only", "numeric",
                    env={"ATTNCONF_HOSTILE_MARK": mark})
    assert done.returncode == 0, done.stderr[-2000:]
    deadline = time.monotonic() + 5
    while marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked(mark) == []


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_attnconf_mid_call_leaves_no_process(how, tmp_path):
    home = user_dir(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(
        [sys.executable, "-m", "conformance", "run", "--adapter", "hostile.spins_forever:sdpa",
         "--only", "numeric", "--timeout", "300"], cwd=home, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not procs.descendants(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(8)  # the worker is spinning in a call by now
        spinning = procs.descendants(parent.pid)
        assert spinning, "no worker started"
        parent.send_signal(how)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(procs.alive(p) for p in spinning) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in spinning if procs.alive(p)] == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


# -- 4. limits: documented, configurable, measuring what is used ------------------------------


def test_a_128_mib_scratch_memmap_passes_under_the_default_limits(tmp_path):
    home = user_dir(tmp_path)
    done = attnconf(None, home, "--adapter", "hostile.scratch_memmap:sdpa", "--only", "numeric")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "file size unlimited" in done.stderr
    assert tree(home) == tree(user_dir(tmp_path / "again"))  # no scratch.npy in the user's dir


def test_an_adapters_own_log_on_fd_1_is_left_alone(tmp_path):
    home = user_dir(tmp_path)
    log = tmp_path / "own.log"
    done = attnconf(None, home, "--adapter", "hostile.own_log_on_fd1:sdpa", "--only", "numeric",
                    env={"ATTNCONF_HOSTILE_LOG": str(log)})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = log.read_text().splitlines()
    assert len(lines) >= 50  # every call's line, none truncated away
    assert lines == [f"own log: call {i}" for i in range(1, len(lines) + 1)]


def test_the_adapters_output_goes_to_the_worker_log_named_in_the_header(tmp_path):
    home = user_dir(tmp_path)
    log = tmp_path / "worker.log"
    done = attnconf(None, home, "--adapter", "hostile.prints_megabytes:sdpa", "--only",
                    "numeric", "--case", "sdpa-plain[b1-h2-q7-k5-e16-float64]",
                    env={"ATTNCONF_WORKER_LOG": str(log), "ATTNCONF_WORKER_OUTPUT": "1M"})
    assert done.returncode == 1
    assert f"adapter output logged to {log}" in done.stderr
    text = log.read_text()
    assert "verdict: CONFORMANT" in text and "bytes of output dropped" in text
    assert log.stat().st_size < (1 << 20) + 4096


# -- 5. a run-level budget ------------------------------------------------------------------


def test_an_always_hanging_adapter_finishes_within_max_time(tmp_path):
    home = user_dir(tmp_path)
    report = home / "r.json"
    start = time.monotonic()
    done = attnconf(None, home, "--adapter", "hostile.hangs_every_call:sdpa", "--profile", "ci",
                    "--max-time", "20", "--report", f"json:{report}")
    seconds = time.monotonic() - start
    assert done.returncode == 1, done.stderr[-2000:]
    assert seconds < 35 + 15, seconds  # + interpreter start and fixture verification
    data = json.loads(report.read_text())
    assert "the run's time budget (--max-time 20) ran out" in data["settings"]["stopped_early"]
    assert "time budget (--max-time 20) ran out" in done.stdout
    assert data["summary"]["passed"] == 0


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_max_time_must_be_finite_and_positive(value, tmp_path):
    done = attnconf(None, tmp_path, "--adapter", "numpy", "--max-time", value)
    assert done.returncode == 2
    assert "--max-time must be a finite number > 0" in done.stderr


# -- 6. fixtures verify: malformed manifests and archives --------------------------------------


def _signed(directory: Path, files: dict) -> None:
    from conformance.fixtures.store import write_manifest

    write_manifest(directory, files)


@pytest.mark.parametrize("case", ["absolute", "dotdot", "nested", "not-object", "zip-bomb",
                                  "no-golden"])
def test_fixtures_verify_is_one_line_and_exit_1(case, tmp_path):
    root = tmp_path / "fixtures"
    shutil.copytree(ROOT / "fixtures", root, ignore=IGNORED)
    golden = root / "golden"
    files = read_manifest(golden)["files"]
    if case in ("absolute", "dotdot"):
        name = "/etc/passwd.npz" if case == "absolute" else "../documents/notebook_000.npz"
        _signed(golden, {**files, name: next(iter(files.values()))})
    elif case == "nested":
        (golden / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    elif case == "not-object":
        _signed(golden, {**files, "x.npz": 7})
    elif case == "zip-bomb":
        import zipfile

        name = "sdpa-plain-b0-h1-q1-k1-e1.npz"
        entry = files[name]
        with zipfile.ZipFile(golden / name, "w", zipfile.ZIP_DEFLATED) as zf:
            for i, array in enumerate(entry["arrays"]):
                with zf.open(f"{array}.npy", "w", force_zip64=True) as member:
                    for _ in range(1024 if i == 0 else 1):
                        member.write(bytes(1 << 20))  # 1 GiB of zeros, ~1 MiB compressed
        from conformance.fixtures.store import sha256_bytes

        data = (golden / name).read_bytes()
        _signed(golden, {**files, name: {**entry, "sha256": sha256_bytes(data),
                                         "bytes": len(data)}})
    else:
        shutil.rmtree(golden)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the pytest worker that
    # started the child (one that loaded torch is past 200 MiB already); VmHWM is this mm's
    code = ("import re, sys; from conformance.frontends.fixtures_cli import main; "
            "rc = main(sys.argv[1:]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()); "
            "print('peak', hwm.group(1)); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "verify", "--root", str(root)],
                          capture_output=True, text=True, timeout=300, check=False)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == "" and len(lines) == 3, done.stdout  # the problem, the count, peak
    peak_kib = int(lines[-1].split()[1])
    assert peak_kib < 200 * 1024, peak_kib
    assert verify(root)  # and the library says so too
