"""A new user's first hour (issue 18's Show section), one test per claim.

Specs resolve as users expect (``module:attr`` from the current directory, entry-point
adapters listed with their distribution, misspelt names get the closest one, missing files
are named by absolute path); the adapter's contract is checked at load (exit 2, one line);
failures explain themselves (one grouped line for one cause, skip reasons counted, JUnit
messages are diagnoses, ``--dump`` files reload and reproduce the failure); runs behave like
known tools (ctrl-C: exit 2 within a second, one line, reports marked interrupted, no worker
left; no ``.hypothesis/`` in the user's directory; the progress line names the running case).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import ml_dtypes
import numpy as np
import pytest
from harness_adapters import attnconf, attnconf_subprocess, console_script

from conformance.frontends.progress import Progress
from conformance.results import PASSED, Result

# every test here runs attnconf or pytest as a user would, in subprocesses: tox -e py
pytestmark = pytest.mark.slow

HONEST = '''\
import numpy as np


def sdpa(query, key, value, attn_mask=None, is_causal=False, scale=None):
    work = np.float64 if query.dtype == np.float64 else np.float32
    q, k, v = (x.astype(work) for x in (query, key, value))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = scale * q @ np.swapaxes(k, -1, -2)
    if is_causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    if attn_mask is not None:
        s = np.where(attn_mask, s, -np.inf) if attn_mask.dtype == bool else s + attn_mask
    m = s.max(-1, keepdims=True)
    w = np.exp(s - np.where(np.isfinite(m), m, 0))
    w /= np.maximum(w.sum(-1, keepdims=True), np.finfo(work).tiny)
    return (w @ v).astype(query.dtype)
'''

# a causal off-by-one (each query also sees the next key), and a list instead of an array
OFF_BY_ONE = HONEST.replace("np.tril(np.ones(s.shape[-2:], bool))",
                            "np.tril(np.ones(s.shape[-2:], bool), k=1)")
RETURNS_LIST = HONEST.replace("return (w @ v).astype(query.dtype)",
                              "return (w @ v).astype(query.dtype).tolist()")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_line(run) -> str:
    assert run.code == 2 and run.out == "", run
    assert run.err.count("\n") == 1, run.err
    return run.err


# -- specs resolve as users expect ------------------------------------------------------

def test_module_attr_is_found_in_the_current_directory(tmp_path):
    _write(tmp_path, "my_module.py", HONEST)
    run = attnconf_subprocess("run", "--adapter", "my_module:sdpa", "--only", "golden",
                              cwd=tmp_path)
    assert run.code == 0, run.err
    assert "verdict: CONFORMANT" in run.out


def test_a_local_module_does_not_shadow_an_installed_one(tmp_path):
    _write(tmp_path, "reference.py", "raise SystemExit('the local file was imported')\n")
    run = attnconf_subprocess("run", "--adapter", "numpy", "--only", "golden", cwd=tmp_path)
    assert run.code == 0, run.err


@pytest.mark.parametrize("argv, expected", [
    (("--adapter", "tourch"), "did you mean 'torch'?"),
    (("--adapter", "numpy", "--only", "numerc"), "did you mean 'numeric'?"),
])
def test_a_misspelt_name_gets_the_closest_known_one(argv, expected, tmp_path):
    run = attnconf_subprocess("run", *argv, cwd=tmp_path)
    assert expected in _one_line(run)


def test_a_misspelt_profile_gets_the_closest_known_one():
    run = attnconf("run", "--adapter", "numpy", "--profile", "quik")
    assert run.code == 2 and "unknown profile 'quik'" in run.err
    assert "did you mean 'quick'?" in run.err


def test_a_misspelt_attribute_gets_the_closest_name(tmp_path):
    _write(tmp_path, "my_module.py", HONEST)
    run = attnconf_subprocess("run", "--adapter", "my_module:sdpaa", cwd=tmp_path)
    assert "my_module has no attribute 'sdpaa'; did you mean 'sdpa'?" in _one_line(run)


def test_does_not_exist_names_the_absolute_path(tmp_path):
    run = attnconf_subprocess("run", "--adapter", "nowhere/attn.py:fn", cwd=tmp_path)
    assert f"adapter file {tmp_path.resolve() / 'nowhere' / 'attn.py'} does not exist" in (
        _one_line(run))
    run = attnconf_subprocess("run", "--adapter", "no_such_module:fn", cwd=tmp_path)
    assert str(tmp_path.resolve() / "no_such_module.py") in _one_line(run)


def test_list_adapters_shows_entry_point_adapters_with_their_distribution(tmp_path):
    # an installed distribution as pip leaves it: a .dist-info with entry_points.txt
    info = tmp_path / "my_kernels-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-kernels\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(
        "[attention_conformance.adapters]\nfused = my_kernels.attn:fused_sdpa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([*console_script(), "list", "adapters"], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "adapters (built-in): numpy, torch" in done.stdout
    assert re.search(r"^  fused +my_kernels\.attn:fused_sdpa  \(from my-kernels 1\.2\)$",
                     done.stdout, re.M), done.stdout


# -- the contract is checked at load ----------------------------------------------------

def test_a_function_of_query_and_key_exits_2_with_one_line(tmp_path):
    _write(tmp_path, "qk.py", "def attention(query, key):\n    return query\n")
    run = attnconf_subprocess("run", "--adapter", "qk.py:attention", cwd=tmp_path)
    line = _one_line(run)
    assert "its sdpa must accept (query, key, value) positionally" in line


def test_an_op_with_an_impossible_signature_exits_2_with_one_line(tmp_path):
    _write(tmp_path, "ops.py", HONEST + "\n\ndef decode_step(query, key_cache, *, new_key):\n"
                                        "    return query\n")
    run = attnconf_subprocess("run", "--adapter", "ops.py", cwd=tmp_path)
    assert "its decode_step must accept (query, key_cache, value_cache, new_key, new_value)" in (
        _one_line(run))


def test_framework_torch_without_torch_exits_2_naming_the_extra(monkeypatch, tmp_path):
    import importlib.util

    from conformance.adapters import load as adapters

    real = importlib.util.find_spec
    monkeypatch.setattr(adapters.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    path = _write(tmp_path, "mine.py", HONEST)
    for argv in (("--adapter", f"{path}:sdpa", "--framework", "torch"), ("--adapter", "torch")):
        run = attnconf("run", *argv)
        assert run.code == 2 and run.err.count("\n") == 1, run.err
        assert "needs torch, which is not installed here: python3 -m pip install -c " \
               "constraints.txt 'attention-conformance[torch]'" in run.err


# -- failures explain themselves --------------------------------------------------------

def test_one_cause_is_one_grouped_line_and_junit_messages_are_diagnoses(tmp_path):
    path = _write(tmp_path, "listy.py", RETURNS_LIST)
    junit = tmp_path / "r.xml"
    run = attnconf("run", "--adapter", f"{path}:sdpa", "--only", "output_contract", "numeric",
                   "--report", f"junit:{junit}", "--report", f"md:{tmp_path / 'r.md'}")
    assert run.code == 1
    failed = run.summary[1]
    assert failed > 10
    assert (f"{failed} failures share one cause: expected a numpy.ndarray, got list (first: "
            f"sdpa/output_contract ") in run.out
    assert run.out.count("\nFAILED ") == 1  # the cause once, in full; not `failed` times
    messages = {f.get("message") for f in ET.parse(junit).getroot().iter("failure")}
    assert messages == {"expected a numpy.ndarray, got list"}
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.find("testsuite").get("timestamp")
    assert float(root.find("testsuite").get("time")) > 0
    assert f"- {failed} failures share one cause" in (tmp_path / "r.md").read_text()


@pytest.mark.torch
def test_a_tensor_returned_to_a_numpy_adapter_suggests_framework_torch(tmp_path):
    path = _write(tmp_path, "tensor.py", "import torch\n\ndef sdpa(query, key, value):\n"
                                         "    return torch.from_numpy(query)\n")
    run = attnconf("run", "--adapter", f"{path}:sdpa", "--only", "output_contract")
    assert "got Tensor — the adapter returns torch tensors: run it with --framework torch" in (
        run.out)


def test_skip_reasons_are_counted_in_the_terminal_and_every_report(tmp_path):
    path = _write(tmp_path, "mine.py", HONEST)
    paths = {fmt: tmp_path / f"r.{fmt}" for fmt in ("json", "junit", "md")}
    run = attnconf("run", "--adapter", f"{path}:sdpa", "--only", "numeric",
                   *(a for fmt, p in paths.items() for a in ("--report", f"{fmt}:{p}")))
    assert run.code == 0
    gqa = "numeric: unsupported: adapter does not support feature(s) ['gqa']"
    found = re.search(rf"^SKIPPED \[(\d+)\] {re.escape(gqa)}$", run.out, re.M)
    assert found and int(found.group(1)) > 1  # one line for all the GQA cases
    reasons = json.loads(paths["json"].read_text())["skip_reasons"]
    assert {"check": "numeric", "reason": gqa.removeprefix("numeric: "),
            "count": int(found.group(1))} in reasons
    assert sum(r["count"] for r in reasons) == run.summary[2]
    assert f"- SKIPPED [{found.group(1)}] {gqa}" in paths["md"].read_text()
    props = {p.get("name"): p.get("value")
             for p in ET.parse(paths["junit"]).getroot().iter("property")}
    assert props[f"skipped: {gqa}"] == found.group(1)


def test_dumped_cases_reload_with_numpy_and_reproduce_the_failure(tmp_path):
    path = _write(tmp_path, "offby1.py", OFF_BY_ONE)
    dump = tmp_path / "dump"
    run = attnconf("run", "--adapter", f"{path}:sdpa", "--only", "numeric", "--dump", str(dump))
    assert run.code == 1
    files = sorted(dump.glob("*.npz"))
    assert len(files) == run.summary[1]
    sys.path.insert(0, str(tmp_path))
    try:
        import offby1
    finally:
        sys.path.remove(str(tmp_path))
    for file in files:
        data = np.load(file, allow_pickle=False)  # plain NumPy: no pickle, no kit
        meta = json.loads(str(data["meta"]))
        assert (dump / f"{file.stem}.repro.txt").read_text() == meta["repro"] + "\n"
        arrays = {k.removeprefix("input/"): data[k].astype(
            getattr(ml_dtypes, meta["dtypes"].get(k.removeprefix("input/"), ""), data[k].dtype))
            for k in data.files if k.startswith("input/")}
        args = [arrays.pop(name) for name in meta["positional"]]
        out = np.asarray(offby1.sdpa(*args, **arrays, **meta["options"]), np.float64)
        expected, bound = data["expected/output"], data["bound/output"]
        assert bound.shape == expected.shape  # each element's own bound (its row's)
        assert np.any(np.abs(out - expected) > bound)  # the failure, again
        # the stored actual is what the adapter returns (bfloat16 stored exactly in float32)
        np.testing.assert_allclose(data["actual/output"], out, rtol=0, atol=0)


# -- runs behave like known tools -------------------------------------------------------

def test_no_hypothesis_directory_in_the_users_directory(tmp_path):
    run = attnconf_subprocess("run", "--adapter", "numpy", "--only", "masked_keys",
                              cwd=tmp_path)
    assert run.code == 0, run.err
    assert not (tmp_path / ".hypothesis").exists()


def _children(pid: int) -> list[str]:
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True,
                           check=True).stdout
    return [line for line in table.splitlines() if line.split()[1] == str(pid)]


SLOW = HONEST.replace("    work = ", "    import time\n    time.sleep(0.02)\n    work = ")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT and ps are POSIX")
def test_ctrl_c_exits_2_within_a_second_with_reports_marked_interrupted(tmp_path):
    path = _write(tmp_path, "slow.py", SLOW)
    report = tmp_path / "r.json"
    with subprocess.Popen([*console_script(), "run", "--adapter", f"{path}:sdpa",
                           "--profile", "ci", "--report", f"json:{report}",
                           "--report", f"junit:{tmp_path / 'r.xml'}"],
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        lines, code, waited, out = _interrupt_when_under_way(proc)
    assert code == 2 and waited < 1.0, (code, waited)
    assert out == ""
    said = [line for line in lines if "interrupted" in line]
    assert len(said) == 1 and said[0].startswith("attnconf: interrupted (ctrl-C) after ")
    data = json.loads(report.read_text())
    assert data["interrupted"] is True and data["exit_code"] == 2
    assert data["results"] and len(data["results"]) == sum(data["summary"].values())
    props = {p.get("name"): p.get("value")
             for p in ET.parse(tmp_path / "r.xml").getroot().iter("property")}
    assert props["verdict"].startswith("INTERRUPTED")
    assert not _children(proc.pid)


def _interrupt_when_under_way(proc) -> tuple[list[str], int, float, str]:
    """SIGINT once a check has finished (a worker is running): (stderr lines, exit status,
    seconds from the signal to the exit, stdout)."""
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "sdpa/output_contract:" in line:  # a check finished: the run is under way
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(240), "".join(lines)
    assert _children(proc.pid), "the run should have a worker process"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    code = proc.wait(timeout=30)
    waited = time.monotonic() - sent
    reader.join(5)
    return lines, code, waited, out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_names_the_running_case_and_the_time_left():
    terminal = _Terminal()
    progress = Progress(terminal, {("sdpa", "numeric"): ["case-a", "case-b", "case-c"]},
                        tick=0.02)
    try:
        progress(Result("sdpa", "numeric", "case-a", PASSED))
        time.sleep(0.2)  # case-b "runs": the ticker redraws while nothing finishes
        drawn = terminal.getvalue().split("\r\x1b[K")[-1]
    finally:
        progress.close()
    assert drawn.startswith("running sdpa/numeric case-b (")
    assert " · 1/3 numeric · ~" in drawn and " s left · 1 passed 0 failed 0 skipped" in drawn


# -- the README, verbatim, on a fresh machine -------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"
KIT_PLACEHOLDER = "path/to/attention-conformance"
COPY_IGNORES = (".git", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
                ".ruff_cache", ".mypy_cache", ".pytest_cache", ".venv", ".ci-venv", "reports")


def readme_first_hour() -> dict:
    """From README.md: the tox install line, the kit's install line, the example adapter, the
    three ways to run it, and the counts the README says they give."""
    text = README.read_text()
    section = text.split("## Check your own function", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    two_commands = re.findall(r"```sh\n(.*?)```", text.split("## Two commands", 1)[1], re.S)
    counts = re.search(r"`(\d+) passed, (\d+) failed, (\d+) skipped … CONFORMANT`", section)
    return {
        "tox_install": two_commands[0].split("&&")[0].strip(),
        "install": blocks[0].strip(),
        "example": re.search(r"```python\n# my_attention.py\n(.*?)```", section, re.S)[1],
        "ways": [line.removeprefix("# or: ").strip() for line in blocks[1].strip().splitlines()],
        "counts": tuple(int(n) for n in counts.groups()),
    }


def _case_counts(output: str) -> tuple[int, ...] | None:
    found = (re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", output, re.M)
             or re.search(r"(\d+) passed, (\d+) failed, (\d+) skipped \(cases", output))
    return tuple(int(n) for n in found.groups()) if found else None


@pytest.mark.slow
@pytest.mark.torch
def test_readme_commands_work_verbatim_in_a_fresh_virtual_environment(tmp_path):
    """A real fresh venv (``python3 -m venv``, nothing inherited) and the README's lines as
    written, run by bash: the install from a copy of the kit's checkout, then the three ways
    from the user's own directory. The one substitution: the README's placeholder for where
    the kit is checked out. Installing torch takes minutes (pip's index: PIP_* as set)."""
    import shutil

    readme = readme_first_hour()
    kit, user, venv = tmp_path / "attention-conformance", tmp_path / "project", tmp_path / "venv"
    shutil.copytree(README.parent, kit, ignore=shutil.ignore_patterns(*COPY_IGNORES))
    user.mkdir()
    (user / "my_attention.py").write_text(readme["example"])
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv),
               OMP_NUM_THREADS="1")

    def sh(line: str, cwd: Path) -> subprocess.CompletedProcess:
        done = subprocess.run(["bash", "-c", line.replace(KIT_PLACEHOLDER, str(kit))],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=1800,
                              check=False)
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    sh(readme["install"], kit)
    sh(readme["tox_install"], kit)
    assert len(readme["ways"]) == 3
    for way in readme["ways"]:
        done = sh(way, user)
        assert _case_counts(done.stdout) == readme["counts"], (way, done.stdout[-3000:])
