"""Golden cases: the reference still gives the pinned outputs (reference drift tests).

One store, read-only in a test run: ``fixtures/golden/<case>.npz`` (sha256-verified,
rewritten only by ``attnconf fixtures regen``) holds the inputs and expected outputs of
every case. A case whose outputs drift beyond the stated tolerance fails, and the obtained
outputs are written to ``<case>.obtained.npz`` in the test's temporary directory, named
in the failure (not beside the golden: ``attnconf fixtures verify`` refuses any file no
manifest lists, and the shipped store must stay verifiable).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import reference
from conformance.fixtures.generate import golden_writer as golden
from conformance.fixtures.store import default_root, load_arrays, read_manifest

GOLDEN = default_root() / "golden"
MANIFEST = read_manifest(GOLDEN)
FILES = sorted(MANIFEST["files"])
# A re-run differs from the pinned outputs only by summation order (BLAS kernels differ
# across machines): a few ulps of the dtype the reference computed in. With a
# compute_dtype, one ulp of rounding can flip at a boundary and propagate.
TOLERANCES = {
    "float64": {"rtol": 1e-12, "atol": 1e-14},
    "float32": {"rtol": 1e-5, "atol": 1e-6},
    "float16": {"rtol": 1e-2, "atol": 1e-2},
    "bfloat16": {"rtol": 5e-2, "atol": 5e-2},
}


def _tolerance(entry, arrays) -> dict[str, float]:
    dtypes = [entry["kwargs"].get("compute_dtype")] + [
        arrays[n].dtype.name for n in entry["inputs"] if arrays[n].dtype.kind == "f"]
    for name in ("bfloat16", "float16", "float32"):
        if name in dtypes:
            return TOLERANCES[name]
    return TOLERANCES["float64"]


def _expected(entry, arrays):
    return {name: arrays[f"expected_{name}"] for name in entry["outputs"]
            if name not in entry["none_outputs"]}


def _drift(case: str, obtained: dict[str, np.ndarray], expected: dict[str, np.ndarray],
           tolerance: dict[str, float], obtained_dir: Path) -> str | None:
    """None when every output matches its golden within ``tolerance``; otherwise what
    differs, after writing the obtained outputs to ``<case>.obtained.npz``."""
    problems = []
    for name, value in obtained.items():
        try:
            np.testing.assert_allclose(value, expected[name], equal_nan=True, **tolerance,
                                       err_msg=f"{case}: {name} drifted from the golden")
        except AssertionError as exc:
            problems.append(str(exc))
    if not problems:
        return None
    path = obtained_dir / f"{case}.obtained.npz"
    np.savez(path, **obtained)
    return "\n".join([*problems, f"obtained outputs written to {path}"])


@pytest.mark.parametrize("filename", FILES, ids=[f.removesuffix(".npz") for f in FILES])
def test_reference_matches_golden(filename, tmp_path):
    entry = MANIFEST["files"][filename]
    arrays = load_arrays(GOLDEN / filename, manifest=MANIFEST)
    inputs = {name: arrays[name] for name in entry["inputs"]}
    before = {name: a.copy() for name, a in inputs.items()}
    obtained = golden.call(entry["variant"], inputs, entry["kwargs"])
    for name in entry["none_outputs"]:
        assert obtained.pop(name) is None, f"{entry['case']}: {name} should be None"
    expected = _expected(entry, arrays)
    tolerance = _tolerance(entry, arrays)
    assert obtained.keys() == expected.keys()
    obtained = {name: np.asarray(value) for name, value in obtained.items()}
    for name, value in obtained.items():
        assert value.dtype == expected[name].dtype and value.shape == expected[name].shape, (
            f"{entry['case']}: {name} is {value.dtype}{value.shape}, golden "
            f"{expected[name].dtype}{expected[name].shape}")
    drift = _drift(entry["case"], obtained, expected, tolerance, tmp_path)
    assert drift is None, drift
    for name, a in inputs.items():
        np.testing.assert_array_equal(a, before[name], err_msg=f"input {name} was modified")


def test_drift_fails_and_writes_the_obtained_outputs(tmp_path):
    """The lifecycle: a drifted output fails and leaves <case>.obtained.npz to inspect."""
    expected = {"output": np.array([1.0, 2.0])}
    drifted = {"output": np.array([1.0, 2.0 + 1e-9])}
    tolerance = TOLERANCES["float64"]
    assert _drift("c", expected, expected, tolerance, tmp_path) is None
    assert not (tmp_path / "c.obtained.npz").exists()
    message = _drift("c", drifted, expected, tolerance, tmp_path)
    assert message is not None and "c: output drifted from the golden" in message
    with np.load(tmp_path / "c.obtained.npz") as written:
        np.testing.assert_array_equal(written["output"], drifted["output"])


@pytest.mark.parametrize("case", golden.CASES, ids=lambda c: c.id)
def test_golden_inputs_come_from_the_case_seed(case):
    entry = MANIFEST["files"].get(case.filename)
    assert entry is not None, f"{case.filename} not generated: run `attnconf fixtures regen`"
    assert entry["seed"] == case.seed and entry["params"] == dict(case.params)
    inputs, kwargs = golden.build(case)
    stored = load_arrays(GOLDEN / case.filename, manifest=MANIFEST)
    assert entry["kwargs"] == kwargs
    for name, value in inputs.items():
        np.testing.assert_array_equal(stored[name], value, err_msg=name)


def test_every_variant_has_a_golden_case():
    covered = {entry["variant"] for entry in MANIFEST["files"].values()}
    missing = sorted(set(reference.VARIANTS) - covered)
    assert not missing, f"variants without a golden case (add one in fixturegen): {missing}"
    assert covered <= set(reference.VARIANTS)


def test_golden_sdpa_covers_every_option():
    seen = set()
    for entry in MANIFEST["files"].values():
        if entry["variant"] == "sdpa":
            seen.update(entry["kwargs"])
            seen.update(entry["inputs"])
            seen.update(f"{k}={v}" for k, v in entry["kwargs"].items() if isinstance(v, str))
    wanted = {"attn_mask", "is_causal", "scale", "enable_gqa", "window", "softcap",
              "alibi_slopes", "sinks", "dropout_p", "dropout_mask", "return_lse",
              "return_weights", "compute_dtype", "causal_alignment=bottom_right",
              "fully_masked=zeros", "fully_masked=nan", "fully_masked=uniform"}
    assert wanted <= seen, sorted(wanted - seen)
