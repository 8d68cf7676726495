"""One notebook's fixture file: arrays plus, for each, where it came from and what it is.

Kinds of array (the ``kind`` field of its manifest entry):

* ``printed``: a value the notebook printed, recomputed here from its seed and inputs;
* ``input``: a literal the notebook typed in (a sentence, a positional vector);
* ``intermediate``: computed by the notebook but never printed;
* ``printed-unreproducible``: printed by the notebook from an unseeded random draw, so
  it cannot be recomputed; stored as printed, checked only for plausibility;
* ``correct``: what the reference gives where the notebook computed something wrong;
* ``stand-in``: seeded data standing in for an unseeded draw. NOT from the notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conformance.fixturestore import save_arrays

KINDS = ("printed", "input", "intermediate", "printed-unreproducible", "correct", "stand-in")


@dataclass
class DocumentFixture:
    """Collects the arrays of one notebook, then writes ``notebook_NNN.npz`` + manifest."""

    number: str
    notebook: str
    module: str
    file_meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, array, kind: str, source: str, code: str, **extra: Any) -> None:
        """Record ``array`` as ``name``. ``source``: cell and statement in the notebook;
        ``code``: the function here that computed it; ``extra``: bug, note, seed, ..."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if name in self.arrays:
            raise ValueError(f"duplicate fixture array {name!r}")
        self.arrays[name] = np.asarray(array)
        self.meta[name] = {
            "kind": kind,
            "source": f"{self.notebook}, {source}",
            "code": f"{self.module.replace('.', '/')}.py:{code}",
            **{k: v for k, v in extra.items() if v is not None},
        }

    def save(self, out_dir: str | Path) -> dict[str, Any]:
        file_meta = {"notebook": self.notebook, "generator": f"{self.module}:generate",
                     **self.file_meta}
        return save_arrays(Path(out_dir) / f"notebook_{self.number}.npz", self.arrays,
                           meta=self.meta, file_meta=file_meta)


def shape_array(shape) -> np.ndarray:
    """A printed shape such as ``(5, 3)`` or ``torch.Size([5, 10])`` as an int64 array."""
    return np.asarray(tuple(shape), dtype=np.int64)
