"""Golden cases per reference variant: seeded inputs, the reference's outputs, pinned.

A golden case is a value: variant, scenario (a readable, file-safe id) and its params
(sizes and options, JSON). Its seed is derived from its id with crc32, so adding or
reordering cases never changes another case's data. The variant's builder draws the
inputs with ``np.random.default_rng(case.seed)``; the outputs come from the public
entry point ``reference.VARIANTS[variant]``; both are stored in
``golden/<id>.npz`` (inputs under their parameter names, outputs as ``expected_<name>``)
with the call's scalar arguments in the manifest (``kwargs``), so a file alone says how
to re-run it: ``VARIANTS[variant](**inputs, **kwargs)`` (see :func:`call`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes  # noqa: F401  (registers "bfloat16" for compute_dtype)
import numpy as np

import reference
from conformance.fixturegen import golden_sdpa, golden_variants
from conformance.fixturestore import save_arrays, write_manifest

Builder = Callable[[np.random.Generator, Mapping[str, Any]], tuple[dict, dict]]


@dataclass(frozen=True)
class GoldenCase:
    variant: str
    scenario: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.variant}-{self.scenario}"

    @property
    def seed(self) -> int:
        return zlib.crc32(self.id.encode()) & 0x7FFFFFFF

    @property
    def filename(self) -> str:
        return f"{self.id}.npz"


BUILDERS: dict[str, Builder] = {"sdpa": golden_sdpa.build, **golden_variants.BUILDERS}
PACKERS = golden_variants.PACKERS
OUTPUT_NAMES = {
    "sdpa_backward": ("dq", "dk", "dv"),
    "multi_head_attention": ("output", "weights"),
    "decode_step": ("output", "key_cache", "value_cache"),
}


def _cases() -> tuple[GoldenCase, ...]:
    table = [("sdpa", s, p) for s, p in golden_sdpa.CASES]
    table += [(v, s, p) for v, s, p in golden_variants.CASES]
    cases = tuple(GoldenCase(v, s, tuple(sorted(p.items()))) for v, s, p in table)
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise ValueError(f"duplicate golden case id {case.id!r}")
        seen.add(case.id)
    return cases


CASES = _cases()


def output_names(variant: str, kwargs: Mapping[str, Any], n: int) -> tuple[str, ...]:
    if variant in ("sdpa",):
        names = ("output", *(["lse"] if kwargs.get("return_lse") else []),
                 *(["weights"] if kwargs.get("return_weights") else []))
    else:
        names = OUTPUT_NAMES.get(variant, tuple(f"out{i}" for i in range(n)))
    if len(names) != n:
        raise ValueError(f"{variant}: {n} outputs, expected names {names}")
    return names


def call(variant: str, arrays: Mapping[str, np.ndarray], kwargs: Mapping[str, Any]
         ) -> dict[str, np.ndarray | None]:
    """Run ``reference.VARIANTS[variant]`` on stored inputs; outputs by name."""
    fn = reference.VARIANTS[variant]
    args = PACKERS.get(variant, dict)(arrays)
    result = fn(**args, **kwargs)
    if not isinstance(result, tuple):
        return {"output": result}
    return dict(zip(output_names(variant, kwargs, len(result)), result, strict=True))


def build(case: GoldenCase) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    rng = np.random.default_rng(case.seed)
    return BUILDERS[case.variant](rng, dict(case.params))


def generate(out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    entries = {}
    for case in CASES:
        inputs, kwargs = build(case)
        outputs = call(case.variant, inputs, kwargs)
        arrays = dict(inputs)
        meta = {name: {"role": "input"} for name in inputs}
        for name, value in outputs.items():
            if value is not None:
                arrays[f"expected_{name}"] = value
                meta[f"expected_{name}"] = {"role": "output"}
        file_meta = {
            "variant": case.variant, "case": case.id, "seed": case.seed,
            "params": dict(case.params), "kwargs": kwargs,
            "inputs": sorted(inputs), "outputs": list(outputs),
            "none_outputs": sorted(n for n, v in outputs.items() if v is None),
            "entry_point": f"reference.VARIANTS[{case.variant!r}]",
            "generator": "conformance.fixturegen.golden:generate",
        }
        entries[case.filename] = save_arrays(out_dir / case.filename, arrays, meta=meta,
                                             file_meta=file_meta, update_manifest=False)
    write_manifest(out_dir, entries)
