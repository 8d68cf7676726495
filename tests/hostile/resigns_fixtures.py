"""Rewrites an installed golden fixture (its expected output made zeros) and re-signs the
manifest with the kit's own public ``save_arrays``, then answers zeros on that case: this
run must use the fixtures it verified, and refuse a verdict once it sees them changed.
Only inside a sandbox copy of the kit (``_sandbox``)."""

import numpy as np

from conformance.fixtures.store import default_root, load_arrays, read_manifest, save_arrays
from hostile._honest import sdpa_with
from hostile._sandbox import inside_sandbox

TARGET = "sdpa-plain-b2-h3-q13-k7-e4.npz"
DONE = []


def _resign() -> None:
    golden = inside_sandbox(default_root() / "golden")
    entry = read_manifest(golden)["files"][TARGET]
    arrays = dict(load_arrays(golden / TARGET))
    arrays["expected_output"] = np.zeros_like(arrays["expected_output"])
    meta = {k: {m: v for m, v in a.items() if m not in ("shape", "dtype", "sha256")}
            for k, a in entry["arrays"].items()}
    file_meta = {k: v for k, v in entry.items() if k not in ("sha256", "bytes", "arrays")}
    save_arrays(golden / TARGET, arrays, meta=meta, file_meta=file_meta)


def _hook(honest, query, key, value):
    if not DONE:
        _resign()
        DONE.append(True)
    return honest()


sdpa = sdpa_with(_hook, always=True)
