"""Fixture storage: canonical .npz files, a manifest.json per directory, sha256 everywhere.

Format (one ``manifest.json`` governs the files of its own directory)::

    {"format": 1,
     "manifest_sha256": "<sha256 of this file's bytes with this digest zeroed>",
     "files": {"<name>.npz": {"sha256": "<file hash>", "bytes": N, ...file meta,
                              "arrays": {"<array>": {"shape": [...], "dtype": "float64",
                                                     "sha256": "<hash of its .npy member>",
                                                     ...array meta}}}}}

Writing is canonical, so regenerating twice gives identical bytes: zip members
sorted by name, stored (no compression, so no dependence on the zlib build),
a fixed 1980-01-01 timestamp, .npy format version 1.0, JSON with sorted keys
and no timestamps. Reading never unpickles: the file's sha256 is checked
against the manifest *before* anything is parsed, then the bytes that were
hashed are read with ``np.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import math
import re
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
FORMAT = 1
# Files that may sit in a fixtures tree without being fixtures.
NOT_FIXTURES = frozenset({"README.md", "__init__.py"})
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Directories the kit ships under its fixtures root: a tree holding one must hold all.
SHIPPED_DIRS = ("documents", "golden")
NPY_HEADER_MAX = 4096  # bytes of a .npy member beyond its data (format 1.0 headers: ~128)
_PINNED: dict[Path, bytes] = {}  # file → the bytes read once and verified (``pin``)


def _read_bytes(path: Path) -> bytes:
    """The pinned bytes of ``path`` (see ``pin``), else its bytes on disk."""
    pinned = _PINNED.get(Path(path).resolve())
    return pinned if pinned is not None else Path(path).read_bytes()


def pin(root: str | Path) -> dict[Path, bytes]:
    """Read every file under ``root`` into memory, once: from then on the fixtures of this
    process are those bytes, whatever happens to the files (a run's adapter may rewrite and
    re-sign them). Returns what was pinned; ``unpin`` forgets it."""
    root = Path(root).resolve()
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()
                           and not _is_ignored(p.relative_to(root))):
            _PINNED[path] = path.read_bytes()
    return {p: b for p, b in _PINNED.items() if p.is_relative_to(root)}


def unpin() -> None:
    _PINNED.clear()


class FixtureError(Exception):
    """A fixture file or manifest is missing, corrupted, or not what its manifest says."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(name: str, array: np.ndarray) -> bytes:
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise FixtureError(f"array {name!r} has dtype {array.dtype}: object arrays are refused")
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(array, order="C"), version=(1, 0),
                              allow_pickle=False)
    return buf.getvalue()


def _npz_bytes(members: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, members[name])
    return buf.getvalue()


# -- manifest ---------------------------------------------------------------------------


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


_PLACEHOLDER = "0" * 64


def _digest_line(digest: str) -> str:
    return f'"manifest_sha256": "{digest}"'


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of ``directory``, checked against its own sha256.

    ``manifest_sha256`` is the sha256 of the file's exact bytes with that digest replaced
    by 64 zeros, so any changed byte (whitespace included) is caught without re-encoding.
    """
    path = Path(directory) / MANIFEST
    try:
        text = _read_bytes(path).decode("utf-8")
        manifest = json.loads(text)
    except FileNotFoundError:
        raise FixtureError(f"{path}: missing manifest") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FixtureError(f"{path}: unreadable manifest ({exc})") from None
    except RecursionError:
        raise FixtureError(f"{path}: unreadable manifest (JSON nested too deeply)") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise FixtureError(f"{path}: not a fixtures manifest (no 'files' object)")
    _check_entries(path, manifest["files"])
    if manifest.get("format") != FORMAT:
        raise FixtureError(f"{path}: manifest format {manifest.get('format')!r}, "
                           f"this kit reads format {FORMAT}")
    digest = manifest.get("manifest_sha256")
    line = _digest_line(digest) if isinstance(digest, str) else None
    if line is None or text.count(line) != 1 or sha256_bytes(
            text.replace(line, _digest_line(_PLACEHOLDER)).encode("utf-8")) != digest:
        raise FixtureError(f"{path}: manifest sha256 mismatch (the manifest was edited "
                           f"outside `attnconf fixtures regen`)")
    return manifest


_NAME = re.compile(r"[A-Za-z0-9_.+=-]+\.npz")
_ARRAY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _check_entries(path: Path, files: Mapping[str, Any]) -> None:
    """Every listed file is a plain ``NAME.npz`` in the manifest's own directory (no ``/``,
    ``..`` or absolute path) with an object entry whose ``arrays`` map plain array names to
    objects with an integer ``shape`` and a dtype: FixtureError (one line) otherwise."""
    for name, entry in files.items():
        if not _NAME.fullmatch(name) or name.startswith("."):
            raise FixtureError(f"{path}: refused file name {name[:80]!r} (a manifest lists "
                               f"plain NAME.npz files of its own directory)")
        arrays = entry.get("arrays") if isinstance(entry, dict) else None
        if not isinstance(arrays, dict):
            raise FixtureError(f"{path}: entry {name!r} is not an object with 'arrays'")
        for array, meta in arrays.items():
            shape = meta.get("shape") if isinstance(meta, dict) else None
            if (not _ARRAY.fullmatch(array) or not isinstance(shape, list)
                    or not all(type(n) is int and n >= 0 for n in shape)
                    or not isinstance(meta.get("dtype"), str)):
                raise FixtureError(f"{path}: entry {name!r} array {array[:40]!r} has no "
                                   f"valid shape and dtype")


def declared_bytes(meta: Mapping[str, Any]) -> int | None:
    """Bytes of an array's data by its manifest shape and dtype; None for an unknown dtype."""
    try:
        itemsize = np.dtype(meta["dtype"]).itemsize
    except (TypeError, ValueError):
        try:
            import ml_dtypes

            itemsize = np.dtype(getattr(ml_dtypes, meta["dtype"])).itemsize
        except (AttributeError, TypeError, ValueError, ImportError):
            return None
    return math.prod(meta["shape"]) * itemsize


def write_manifest(directory: str | Path, files: Mapping[str, Any]) -> Path:
    """Write the canonical manifest of ``directory`` listing ``files``."""
    text = _canonical_json({"format": FORMAT, "files": dict(files),
                            "manifest_sha256": _PLACEHOLDER})
    digest = sha256_bytes(text.encode("utf-8"))
    path = Path(directory) / MANIFEST
    path.write_bytes(text.replace(_digest_line(_PLACEHOLDER), _digest_line(digest)).encode(
        "utf-8"))
    return path


# -- arrays -----------------------------------------------------------------------------


def save_arrays(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    *,
    meta: Mapping[str, Mapping[str, Any]] | None = None,
    file_meta: Mapping[str, Any] | None = None,
    update_manifest: bool = True,
) -> dict[str, Any]:
    """Write ``arrays`` to the .npz ``path`` and record it in the directory's manifest.

    ``meta[name]`` is merged into that array's manifest entry (source, code, seed, bug,
    ...); ``file_meta`` into the file's. Returns the file's manifest entry. With
    ``update_manifest=False`` the caller writes the manifest (``write_manifest``) once
    for many files.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"fixture files are .npz, got {path.name}")
    meta = meta or {}
    unknown = set(meta) - set(arrays)
    if unknown:
        raise ValueError(f"{path.name}: meta for arrays that are not saved: {sorted(unknown)}")
    members, entries = {}, {}
    for name, array in arrays.items():
        array = np.asarray(array)
        members[name] = _npy_bytes(name, array)
        entry = dict(meta.get(name, {}))
        entry.update(shape=list(array.shape), dtype=array.dtype.name,
                     sha256=sha256_bytes(members[name]))
        entries[name] = entry
    data = _npz_bytes(members)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    file_entry = dict(file_meta or {})
    file_entry.update(sha256=sha256_bytes(data), bytes=len(data), arrays=entries)
    if update_manifest:
        try:
            files = dict(read_manifest(path.parent)["files"])
        except FixtureError:
            files = {}
        files[path.name] = file_entry
        write_manifest(path.parent, files)
    return file_entry


def _check_sizes(path: Path, zf: zipfile.ZipFile, arrays: Mapping[str, Any]) -> None:
    """Each member's declared uncompressed size fits its array's manifest shape and dtype,
    checked before anything is inflated (a zip bomb declares gigabytes)."""
    for info in zf.infolist():
        meta = arrays.get(info.filename.removesuffix(".npy"), {})
        data = declared_bytes(meta) if meta else None
        allowed = (data if data is not None else info.compress_size) + NPY_HEADER_MAX
        if info.file_size > allowed:
            raise FixtureError(f"{path}: member {info.filename!r} declares {info.file_size} "
                               f"bytes uncompressed, its manifest shape and dtype allow "
                               f"{allowed}: refused before inflating")


def _check_members(path: Path, data: bytes, arrays: Mapping[str, Any]) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            expected = sorted(f"{name}.npy" for name in arrays)
            if sorted(names) != expected:
                raise FixtureError(f"{path}: holds members {sorted(names)[:10]}, manifest "
                                   f"lists {expected[:10]}")
            _check_sizes(path, zf, arrays)
            for name, entry in arrays.items():
                digest = sha256_bytes(zf.read(f"{name}.npy"))
                if digest != entry.get("sha256"):
                    raise FixtureError(f"{path}: array {name!r} sha256 mismatch "
                                       f"(manifest {entry.get('sha256')}, file {digest})")
    except (zipfile.BadZipFile, KeyError, OSError, NotImplementedError, RuntimeError,
            EOFError, ValueError, zlib.error) as exc:
        raise FixtureError(f"{path}: not a readable .npz ({exc})") from None


def load_arrays(path: str | Path, *, manifest: Mapping[str, Any] | None = None
                ) -> dict[str, np.ndarray]:
    """Arrays of the fixture ``path``, after checking them against the manifest.

    Order: the file is listed, present, and its sha256 matches; each member's sha256
    matches; only then are the arrays parsed, with ``allow_pickle=False`` and from the
    very bytes that were hashed. Any failure raises :class:`FixtureError` naming the file.
    """
    path = Path(path)
    manifest = manifest if manifest is not None else read_manifest(path.parent)
    entry = manifest["files"].get(path.name)
    if entry is None:
        raise FixtureError(f"{path}: not listed in {path.parent / MANIFEST}")
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        raise FixtureError(f"{path}: missing (listed in {path.parent / MANIFEST})") from None
    digest = sha256_bytes(data)
    if digest != entry.get("sha256"):
        raise FixtureError(f"{path}: sha256 mismatch (manifest {entry.get('sha256')}, "
                           f"file {digest}); it was changed outside `attnconf fixtures regen`")
    arrays_meta = entry.get("arrays", {})
    _check_members(path, data, arrays_meta)
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            for name, meta in arrays_meta.items():
                array = npz[name]
                if list(array.shape) != meta.get("shape") or array.dtype.name != meta.get(
                        "dtype"):
                    raise FixtureError(
                        f"{path}: array {name!r} is {array.dtype.name}{list(array.shape)}, "
                        f"manifest says {meta.get('dtype')}{meta.get('shape')}")
                out[name] = array
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # object arrays, …
        raise FixtureError(f"{path}: refused to load ({exc})") from None
    return out


def entry_of(path: str | Path) -> dict[str, Any]:
    """The manifest entry (file meta and per-array meta) of the fixture ``path``."""
    path = Path(path)
    entry = read_manifest(path.parent)["files"].get(path.name)
    if entry is None:
        raise FixtureError(f"{path}: not listed in {path.parent / MANIFEST}")
    return entry


# -- whole trees ------------------------------------------------------------------------


def _is_ignored(rel: Path) -> bool:
    return "__pycache__" in rel.parts or rel.name in NOT_FIXTURES


def verify(root: str | Path) -> list[str]:
    """Every problem under ``root``, one line each starting with the file (relative to root).

    Problems: unreadable/edited manifest, file listed but missing, sha256 mismatch
    (whole file or one array), file present but listed in no manifest.
    """
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: fixtures root is not a directory"]
    problems: list[str] = []
    if any((root / d).exists() for d in SHIPPED_DIRS):  # the kit's tree, or a copy of it
        problems += [f"{d}/: missing (the kit ships it; `attnconf fixtures regen` rebuilds it)"
                     for d in SHIPPED_DIRS if not (root / d).is_dir()]
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not _is_ignored(p.relative_to(root)))
    manifests = [p for p in files if p.name == MANIFEST]
    if not manifests:
        return [f"{root}: no {MANIFEST} under the fixtures root"]
    listed: set[Path] = set(manifests)
    for mpath in manifests:
        directory = mpath.parent
        try:
            manifest = read_manifest(directory)
        except FixtureError as exc:
            problems.append(f"{mpath.relative_to(root)}: {_after_path(exc, mpath)}")
            # its files are not "extra": they are unverifiable, which is already reported
            listed.update(p for p in files if p.parent == directory)
            continue
        for name in sorted(manifest["files"]):
            fpath = directory / name
            listed.add(fpath)
            try:
                load_arrays(fpath, manifest=manifest)
            except FixtureError as exc:
                problems.append(f"{fpath.relative_to(root)}: {_after_path(exc, fpath)}")
    for path in files:
        if path not in listed:
            problems.append(f"{path.relative_to(root)}: extra file, listed in no {MANIFEST}")
    return problems


def _after_path(exc: FixtureError, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def default_root() -> Path:
    """The fixtures shipped with the installed kit (package data ``conformance._fixtures``).

    In an editable install this is the repository's ``fixtures/``; if the package cannot
    be resolved on the file system, the ``fixtures/`` directory next to the package is used.
    """
    try:
        found = importlib.resources.files("conformance._fixtures")
    except ModuleNotFoundError:
        found = None
    if isinstance(found, Path) and found.is_dir():
        return found
    return Path(__file__).resolve().parent.parent / "fixtures"
