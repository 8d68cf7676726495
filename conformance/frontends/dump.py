"""``attnconf run --dump DIR``: each failing case as an ``.npz`` that plain NumPy loads.

One file per failed numeric or output_contract case, ``DIR/<op>--<check>--<case id>.npz``
(characters outside ``[A-Za-z0-9._=-]`` become ``_``), holding:

- ``input/<name>``: every array argument the adapter was given, positional ones under their
  names in docs/ops.md (query, key, value, …);
- ``expected/<name>`` (float64 reference), ``actual/<name>`` (what the adapter returned when
  the case was called again for the dump) and ``bound/<name>`` (each element's tolerance,
  its query row's bound: the shape of ``expected/<name>``);
- ``meta``: a JSON string with the op, check, case id, the positional argument names, the
  non-array options, the dtype of each array whose dtype NumPy cannot store (bfloat16 is
  stored as float32, which holds it exactly), the repro line and the failure message.

Load with ``np.load(path, allow_pickle=False)``; ``json.loads(str(f["meta"]))``. Property
failures (hypothesis examples) are not dumped: their repro line reruns them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from conformance.adapters.load import POSITIONAL_ARGS, ResolvedAdapter
from conformance.judging.tolerance import bound_for
from conformance.results import FAILED, Result

DUMPED_CHECKS = ("numeric", "output_contract")


def _storable(array: np.ndarray, name: str, dtypes: dict[str, str]) -> np.ndarray:
    """``array`` in a dtype ``np.load`` reads without ml_dtypes (bfloat16 → float32, exact)."""
    array = np.asarray(array)
    if array.dtype.kind == "V" or array.dtype.name == "bfloat16":
        dtypes[name] = array.dtype.name
        return array.astype(np.float32)
    return array


def _filename(r: Result) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]", "_", f"{r.op}--{r.check}--{r.case}")[:200] + ".npz"


def _json_value(value: Any) -> Any:
    """Options as JSON: NumPy scalars as Python numbers, anything else by its repr."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return repr(value)


def case_arrays(adapter: ResolvedAdapter, invoker: Any, config: Any, r: Result) -> dict:
    """The arrays and meta of one failed case, the adapter called once more for ``actual``."""
    from conformance.checks.numeric import op_cases
    from conformance.ops import op_specs

    case = next(c for c in op_cases(r.op, config.profile, config.seed) if c.id == r.case)
    spec = op_specs()[r.op]
    inputs = spec.inputs(case)
    expectations = spec.expected(inputs, case, adapter.conventions)
    args, kwargs = spec.arguments(adapter.ops[r.op], inputs, case)
    known = POSITIONAL_ARGS[r.op]
    names = (*known, *(f"arg{i}" for i in range(len(known), len(args))))[:len(args)]
    positional = dict(zip(names, args, strict=True))
    dtypes: dict[str, str] = {}
    given = {**positional, **kwargs}
    arrays = {f"input/{k}": _storable(v, k, dtypes) for k, v in given.items()
              if isinstance(v, np.ndarray)}
    options = {k: _json_value(v) for k, v in given.items() if not isinstance(v, np.ndarray)}
    meta = {"op": r.op, "check": r.check, "case": r.case, "positional": list(positional),
            "options": options, "dtypes": dtypes, "repro": r.repro, "message": r.message}
    try:
        outs = spec.outputs(invoker.call(r.op, args, kwargs, timeout=None).value, expectations)
    except Exception as exc:  # the adapter raised or returned garbage again: said, not saved
        outs, meta["actual_error"] = [], f"{type(exc).__name__}: {exc}"
    actual: list[np.ndarray | None] = [*outs] or [None] * len(expectations)
    for exp, out in zip(expectations, actual, strict=True):
        arrays[f"expected/{exp.name}"] = exp.ref64
        bound = bound_for(r.op, case.dtype, exp.ref64, exp.ref_lowp, config.tolerance,
                          exp.conditioning)
        arrays[f"bound/{exp.name}"] = np.broadcast_to(
            np.asarray(bound.limit, np.float64), exp.ref64.shape).copy()  # each element's own
        if out is not None:
            arrays[f"actual/{exp.name}"] = _storable(out, f"actual/{exp.name}", dtypes)
    arrays["meta"] = np.array(json.dumps(meta, default=repr))
    return arrays


def dump_failures(directory: Path, adapter: ResolvedAdapter, config: Any,
                  results: list[Result]) -> list[Path]:
    """Write one ``.npz`` per failed numeric/output_contract case; the paths written."""
    from conformance.runner import make_invoker

    failed = [r for r in results if r.status == FAILED and r.check in DUMPED_CHECKS
              and r.op in POSITIONAL_ARGS]
    if not failed:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    invoker, written = make_invoker(adapter, config), []
    try:
        for r in failed:
            try:
                arrays = case_arrays(adapter, invoker, config, r)
            except StopIteration:  # a result that names no case of the matrix
                continue
            path = directory / _filename(r)
            np.savez(path, **arrays)
            (directory / (path.stem + ".repro.txt")).write_text(r.repro + "\n", encoding="utf-8")
            written.append(path)
    finally:
        invoker.close()
    return written
