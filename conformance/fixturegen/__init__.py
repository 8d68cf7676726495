"""Generators of the golden data under fixtures/ (run only by `attnconf fixtures regen`).

``documents/``: one generator per seed notebook (``notebook_000`` … ``notebook_004``),
recomputing every array the notebook printed. ``golden/``: seeded cases per reference
variant (``golden``). :func:`regenerate` writes everything into a fresh directory, then
brings ``root`` to exactly that content and reports what changed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def _generators():
    from conformance.fixturegen import (
        golden,
        notebook_000,
        notebook_001,
        notebook_002,
        notebook_003,
        notebook_004,
    )

    notebooks = (notebook_000, notebook_001, notebook_002, notebook_003, notebook_004)
    return {"documents": [m.generate for m in notebooks], "golden": [golden.generate]}


DATA_SUFFIXES = (".npz", ".json")


def _data_files(directory: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())
            if p.is_file() and p.suffix in DATA_SUFFIXES}


def regenerate(root: str | Path) -> list[str]:
    """Rewrite ``root/documents`` and ``root/golden``; one line per added/changed/removed file.

    Only ``.npz`` and ``.json`` files in those two directories are touched (README.md and
    ``__init__.py`` stay). Running it twice in a row changes nothing the second time.
    """
    root = Path(root)
    changes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="attnconf-regen-") as tmp:
        for sub, generators in _generators().items():
            fresh_dir = Path(tmp) / sub
            fresh_dir.mkdir()
            for generate in generators:
                generate(fresh_dir)
            fresh, old = _data_files(fresh_dir), _data_files(root / sub)
            (root / sub).mkdir(parents=True, exist_ok=True)
            for name in sorted(set(fresh) | set(old)):
                target = root / sub / name
                if name not in fresh:
                    target.unlink()
                    changes.append(f"removed {sub}/{name}")
                elif name not in old:
                    shutil.copyfile(fresh_dir / name, target)
                    changes.append(f"added {sub}/{name}")
                elif fresh[name] != old[name]:
                    shutil.copyfile(fresh_dir / name, target)
                    changes.append(f"changed {sub}/{name}")
    return changes
