"""Guards for the entries that write to the kit's own files: they act only on a copy of
the kit made by the test (ATTNCONF_HOSTILE_SANDBOX names it), never on a real checkout."""

import os
from pathlib import Path


def inside_sandbox(path: str | Path) -> Path:
    """``path``, resolved, when it lies in the sandbox; RuntimeError otherwise."""
    sandbox = os.environ.get("ATTNCONF_HOSTILE_SANDBOX")
    path = Path(path).resolve()
    if not sandbox or not path.is_relative_to(Path(sandbox).resolve()):
        raise RuntimeError(f"refusing to touch {path}: not inside ATTNCONF_HOSTILE_SANDBOX")
    return path
