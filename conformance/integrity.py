"""The kit as it was when the run started: imported, pinned, and checked again at the end.

An adapter runs with the user's permissions, so it can write to the kit's files.
Before the first worker starts, ``guard`` makes sure nothing it writes can reach
this run's parent process:

* every module of ``conformance`` and ``reference`` the parent may use is
  imported (a lazy import after the adapter ran would execute whatever the
  adapter appended to the file);
* the shipped fixtures are read into memory once (``fixturestore.pin``) and
  verified from those bytes; the golden check reads the pinned bytes;
* the sha256 of every fixture file and kit source file is recorded.

``changes(snapshot)`` after the run names every file that differs: a changed
fixture makes the run refuse a verdict (a later run would trust it), a changed
source file is warned about (this run never executed it, later runs will).
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

from conformance.fixtures import store as fixturestore
from conformance.fixtures.store import pin, unpin, verify

PACKAGES = ("reference", "conformance")
# modules the parent of a run never uses (they import pytest, torch or the generators)
NOT_PRELOADED = ("conformance.frontends.plugin", "conformance.frontends.matrix",
                 "conformance.fixtures.generate", "conformance.__main__",
                 "conformance.adapters.builtin", "conformance._fixtures")


def _skipped(name: str) -> bool:
    return any(name == s or name.startswith(s + ".") for s in NOT_PRELOADED)


def preload() -> list[str]:
    """Import every module of ``PACKAGES`` except ``NOT_PRELOADED``, and build the op
    registry; the names imported."""
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if _skipped(info.name):
                continue
            try:
                importlib.import_module(info.name)
            except Exception:
                continue
            names.append(info.name)
    from conformance.ops import op_specs

    op_specs()
    return names


def _sources() -> list[Path]:
    found = []
    for package in PACKAGES:
        for directory in importlib.import_module(package).__path__:
            found += sorted(Path(directory).rglob("*.py"))
    return found


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass
class Snapshot:
    """sha256 of the pinned fixture files and of the kit's source files at the run's start."""

    fixtures: dict[Path, str] = field(default_factory=dict)
    sources: dict[Path, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # fixtures that failed verification


def guard(root: Path | None = None) -> Snapshot:
    """Preload, pin and verify the fixtures under ``root`` (default: the shipped ones), and
    record the digests ``changes`` compares with."""
    preload()
    # looked up at call time: a caller (or a test) may point the kit at another tree
    root = fixturestore.default_root() if root is None else root
    unpin()  # a new run reads its fixtures afresh; an earlier run's pins must not linger
    pinned = pin(root)
    return Snapshot(fixtures={p: hashlib.sha256(b).hexdigest() for p, b in pinned.items()},
                    sources={p: _digest(p) for p in _sources()}, problems=verify(root))


def changes(snapshot: Snapshot) -> tuple[list[str], list[str]]:
    """(changed fixture files, changed kit source files) since ``snapshot``."""
    fixtures = [str(p) for p, d in snapshot.fixtures.items() if _digest(p) != d]
    sources = [str(p) for p, d in snapshot.sources.items() if _digest(p) != d]
    return fixtures, sources


__all__ = ["Snapshot", "changes", "guard", "preload"]
