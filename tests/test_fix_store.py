"""Fixture store and ``attnconf fixtures verify|regen``: hashes, names, no unpickling.

Every test works on a copy of the shipped fixtures under tmp_path: a test run never
writes into fixtures/.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import conformance
from conformance.fixtures import store as fixturestore
from conformance.fixtures.generate import regenerate
from conformance.fixtures.store import (
    FixtureError,
    default_root,
    load_arrays,
    read_manifest,
    save_arrays,
    verify,
)
from conformance.frontends.fixtures_cli import add_fixtures_parser, main

ROOT = default_root()


@pytest.fixture
def copy(tmp_path) -> Path:
    root = tmp_path / "fixtures"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".npz", ".json"))


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_default_root_is_the_shipped_fixtures():
    assert (ROOT / "documents" / "manifest.json").is_file()
    assert (ROOT / "golden" / "manifest.json").is_file()
    repo_fixtures = Path(conformance.__file__).resolve().parent.parent / "fixtures"
    if repo_fixtures.is_dir():  # editable install: the repository's fixtures/
        assert ROOT.resolve() == repo_fixtures


def test_shipped_fixtures_verify_clean():
    assert verify(ROOT) == []


def test_flipping_one_byte_of_every_npz_names_each_file(copy):
    rng = np.random.default_rng(0)
    npz = [p for p in data_files(copy) if p.suffix == ".npz"]
    for path in npz:
        flip(path, int(rng.integers(path.stat().st_size)))
    problems = verify(copy)
    named = sorted(line.split(":", 1)[0] for line in problems)
    assert named == sorted(str(p.relative_to(copy)) for p in npz)
    assert all("mismatch" in line for line in problems)


@pytest.mark.parametrize("sub", ["documents", "golden"])
def test_flipping_any_byte_of_a_manifest_names_it(copy, sub):
    path = copy / sub / "manifest.json"
    original = path.read_bytes()
    rng = np.random.default_rng(1)
    for offset in [0, len(original) - 1, *rng.integers(len(original), size=60).tolist()]:
        flip(path, offset)
        with pytest.raises(FixtureError, match=re.escape(str(path))):
            read_manifest(path.parent)
        path.write_bytes(original)
    flip(path, len(original) // 2)
    problems = verify(copy)
    assert problems and problems[0].startswith(f"{sub}/manifest.json: ")


@pytest.mark.parametrize("which", [*(f"documents/notebook_00{i}.npz" for i in range(5)),
                                   "golden/sdpa-everything-b2-h4kv2-q7-k13-e8v5.npz",
                                   "golden/alibi_slopes-h1.npz"])
def test_cli_verify_fails_naming_the_flipped_file(copy, capsys, which):
    flip(copy / which, 1000)
    assert main(["verify", "--root", str(copy)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{which}: sha256 mismatch")


def test_missing_and_extra_files(copy, capsys):
    (copy / "documents" / "notebook_002.npz").unlink()
    (copy / "golden" / "stray.npz").write_bytes(b"not a fixture")
    (copy / "elsewhere").mkdir()
    (copy / "elsewhere" / "data.npz").write_bytes(b"")
    problems = verify(copy)
    assert "documents/notebook_002.npz: missing (listed in" in "\n".join(problems)
    assert "golden/stray.npz: extra file, listed in no manifest.json" in problems
    assert "elsewhere/data.npz: extra file, listed in no manifest.json" in problems
    assert main(["verify", "--root", str(copy)]) == 1
    assert "notebook_002.npz" in capsys.readouterr().out
    with pytest.raises(FixtureError, match=r"notebook_002\.npz: missing"):
        load_arrays(copy / "documents" / "notebook_002.npz")


def test_unreadable_and_hand_edited_manifests(copy):
    manifest = copy / "documents" / "manifest.json"
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    doc["files"]["notebook_001.npz"]["seed"] = 24  # edited, not re-hashed
    manifest.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    assert any(p.startswith("documents/manifest.json: manifest sha256 mismatch")
               for p in verify(copy))
    manifest.write_text("{not json", encoding="utf-8")
    assert verify(copy)[0].startswith("documents/manifest.json: unreadable manifest")
    manifest.unlink()
    problems = verify(copy)
    assert "documents/notebook_001.npz: extra file, listed in no manifest.json" in problems


def test_load_checks_the_hash_before_parsing(copy, monkeypatch):
    path = copy / "documents" / "notebook_001.npz"
    flip(path, 500)
    calls = []
    monkeypatch.setattr(fixturestore.np, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(FixtureError, match=r"notebook_001\.npz: sha256 mismatch"):
        load_arrays(path)
    assert calls == []


class Boom:
    """Unpickling this would record it: the store must never get that far."""

    unpickled = False

    def __reduce__(self):
        return (Boom._mark, ())

    @staticmethod
    def _mark():
        Boom.unpickled = True
        return "boom"


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    buf = io.BytesIO()
    np.savez(buf, payload=np.array([Boom()], dtype=object))
    path.write_bytes(buf.getvalue())
    # a consistent manifest (right file hash, right member hash): only allow_pickle=False
    # stands between the file and an unpickle
    import zipfile

    with zipfile.ZipFile(path) as zf:
        member = zf.read("payload.npy")
    entry = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": 0,
             "arrays": {"payload": {"shape": [1], "dtype": "object",
                                    "sha256": hashlib.sha256(member).hexdigest()}}}
    fixturestore.write_manifest(tmp_path, {"evil.npz": entry})
    with pytest.raises(FixtureError, match=r"evil\.npz: refused to load"):
        load_arrays(path)
    assert verify(tmp_path) and "evil.npz: refused to load" in verify(tmp_path)[0]
    assert not Boom.unpickled
    with pytest.raises(FixtureError, match="object arrays are refused"):
        save_arrays(tmp_path / "again.npz", {"payload": np.array([Boom()], dtype=object)})


def test_save_is_canonical(tmp_path):
    arrays = {"b": np.arange(6.0).reshape(2, 3), "a": np.array(True), "c": np.zeros((0, 3))}
    first = save_arrays(tmp_path / "one" / "x.npz", arrays, meta={"b": {"note": "n"}},
                        file_meta={"seed": 1})
    second = save_arrays(tmp_path / "two" / "x.npz", dict(reversed(arrays.items())),
                         meta={"b": {"note": "n"}}, file_meta={"seed": 1})
    assert first == second
    for name in ("x.npz", "manifest.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    loaded = load_arrays(tmp_path / "one" / "x.npz")
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)


def test_regen_twice_gives_identical_bytes(tmp_path, capsys):
    root = tmp_path / "fresh"
    assert main(["regen", "--root", str(root)]) == 0
    first = {p: p.read_bytes() for p in data_files(root)}
    assert main(["regen", "--root", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"fixtures unchanged: {root}"
    assert {p: p.read_bytes() for p in data_files(root)} == first
    assert verify(root) == []


FLOAT_RTOL = {"float64": 1e-12, "float32": 1e-6}


def _without_hashes(entry):
    drop = ("sha256", "bytes")
    return {k: ({n: {kk: vv for kk, vv in m.items() if kk not in drop} for n, m in v.items()}
                if k == "arrays" else v) for k, v in entry.items() if k not in drop}


def test_regen_reproduces_the_shipped_fixtures(tmp_path):
    """The generators and the reference still give what is shipped: metadata exactly,
    floats to a few ulps (another BLAS may round differently; on the machine that
    generated them regen reports no change at all)."""
    fresh = tmp_path / "fresh"
    regenerate(fresh)
    assert [p.relative_to(fresh) for p in data_files(fresh)] == [
        p.relative_to(ROOT) for p in data_files(ROOT)]
    for sub in ("documents", "golden"):
        new, old = read_manifest(fresh / sub)["files"], read_manifest(ROOT / sub)["files"]
        for name in old:
            assert _without_hashes(new[name]) == _without_hashes(old[name]), name
            got, want = load_arrays(fresh / sub / name), load_arrays(ROOT / sub / name)
            lowp = "compute_dtype" in old[name].get("kwargs", {})  # rounding may flip
            for key, array in want.items():
                if array.dtype.kind == "f":
                    rtol = 5e-2 if lowp else FLOAT_RTOL.get(array.dtype.name, 1e-3)
                    np.testing.assert_allclose(got[key], array, equal_nan=True, rtol=rtol,
                                               atol=5e-2 if lowp else 1e-12,
                                               err_msg=f"{sub}/{name}: {key}")
                else:
                    np.testing.assert_array_equal(got[key], array, f"{sub}/{name}: {key}")


def test_regen_repairs_and_reports(copy, capsys):
    flip(copy / "documents" / "notebook_003.npz", 10)
    (copy / "documents" / "notebook_004.npz").unlink()
    (copy / "golden" / "stale.npz").write_bytes(b"old")
    (copy / "README.md").write_text("kept\n")
    assert main(["regen", "--root", str(copy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line in ("changed documents/notebook_003.npz", "added documents/notebook_004.npz",
                 "removed golden/stale.npz"):
        assert line in lines
    assert verify(copy) == [] and (copy / "README.md").read_text() == "kept\n"


def test_fixtures_subcommand_parses():
    import argparse

    parser = argparse.ArgumentParser(prog="attnconf")
    add_fixtures_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fixtures", "verify", "--root", "x"])
    assert (args.command, args.action, args.root) == ("fixtures", "verify", Path("x"))
    assert args.handler.__name__ == "run_fixtures"
    with pytest.raises(SystemExit):
        parser.parse_args(["fixtures", "rewrite"])
