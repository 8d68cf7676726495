"""Load an adapter from a spec and resolve what it provides.

A spec is a built-in name (``numpy``, ``torch``, …), ``module:attr``,
``path/to/file.py:attr``, a bare module name, or a name in the entry-point
group ``attention_conformance.adapters``. The object found is either a plain
callable (op ``sdpa``, features read from its signature) or an object/module
exposing op names. Loading happens when a run is configured, never at import.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from conformance.declare import (
    DEFAULT_CONVENTIONS,
    DTYPES,
    OPS,
    Declaration,
    declaration_of,
)
from conformance.frameworks import Framework, framework_for

ENTRY_POINT_GROUP = "attention_conformance.adapters"

# sdpa parameter → feature it provides (torch's signature plus the extensions)
PARAM_FEATURES = {
    "attn_mask": ("bool_mask", "float_mask"),
    "is_causal": ("causal",),
    "scale": ("scale",),
    "enable_gqa": ("gqa",),
    "dropout_p": ("dropout",),
    "causal_alignment": ("bottom_right",),
    "window": ("window",),
    "softcap": ("softcap",),
    "alibi_slopes": ("alibi",),
    "sinks": ("sinks",),
    "return_lse": ("lse",),
}
TORCH_PARAMS = ("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
DECLARED_ONLY = frozenset({"mask_with_causal"})


class AdapterLoadError(Exception):
    """The spec cannot give an adapter; the message is one line for the user."""


@dataclass(frozen=True)
class OpBinding:
    """One op of an adapter: the callable, the parameters it accepts, its features."""

    op: str
    fn: Any
    params: frozenset[str]
    features: frozenset[str]


@dataclass(frozen=True)
class ResolvedAdapter:
    spec: str
    name: str
    framework: Framework
    device: str
    dtypes: tuple[str, ...]
    ops: dict[str, OpBinding]
    conventions: dict[str, Any]
    declared_conventions: dict[str, Any]
    unavailable: str | None = None


def _import_file(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise AdapterLoadError(f"adapter file {path} does not exist")
    module_name = f"_attnconf_user_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _entry_point(name: str) -> Any | None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return None


def load_object(spec: str) -> Any:
    """The object a spec names; AdapterLoadError (one line) when it cannot be had."""
    from conformance.builtin_adapters import BUILTINS

    if spec in BUILTINS:
        return BUILTINS[spec]()
    where, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    try:
        if where.endswith(".py"):
            obj = _import_file(where)
        else:
            found = None if ":" in spec else _entry_point(spec)
            if found is not None:
                return found
            obj = importlib.import_module(where)
    except AdapterLoadError:
        raise
    except Exception as exc:  # any import-time error of user code is a load error
        raise AdapterLoadError(
            f"adapter {spec!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    for part in filter(None, attr.split(".")):
        if not hasattr(obj, part):
            raise AdapterLoadError(f"adapter {spec!r}: {where} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


def _accepted_params(fn: Any) -> frozenset[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return frozenset(TORCH_PARAMS)  # builtins without a signature: torch's own
    names = set()
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            names.update(TORCH_PARAMS)
        elif p.kind is not p.VAR_POSITIONAL:
            names.add(p.name)
    return frozenset(names)


def _sdpa_features(params: frozenset[str], declared: frozenset[str] | None, spec: str):
    from_signature = {f for p in params for f in PARAM_FEATURES.get(p, ())}
    if declared is None:
        return frozenset(from_signature)
    impossible = sorted(f for f in declared - from_signature - DECLARED_ONLY
                        if any(f in fs for fs in PARAM_FEATURES.values()))
    if impossible:
        needs = {f: next(p for p, fs in PARAM_FEATURES.items() if f in fs) for f in impossible}
        raise AdapterLoadError(
            f"adapter {spec!r} declares features {impossible} but its sdpa does not accept "
            + ", ".join(f"{p!r} (for {f})" for f, p in needs.items())
        )
    return frozenset(declared)


def _bindings(obj: Any, declaration: Declaration, spec: str) -> dict[str, OpBinding]:
    found = {op: getattr(obj, op) for op in OPS if callable(getattr(obj, op, None))}
    if not found and callable(obj):
        found = {"sdpa": obj}
    if not found:
        raise AdapterLoadError(
            f"adapter {spec!r} is neither a callable nor an object exposing any of {list(OPS)}"
        )
    bindings = {}
    for op, fn in found.items():
        params = _accepted_params(fn)
        features = (_sdpa_features(params, declaration.features, spec) if op == "sdpa"
                    else frozenset(declaration.features or ()))
        bindings[op] = OpBinding(op, fn, params, features)
    return bindings


def _check_conventions(declaration: Declaration, bindings: dict, spec: str) -> None:
    sdpa = bindings.get("sdpa")
    if "causal_alignment" in declaration.conventions and (sdpa is None or
                                                          "is_causal" not in sdpa.params):
        raise AdapterLoadError(
            f"adapter {spec!r} declares causal_alignment but its sdpa has no is_causal parameter"
        )


def resolve(spec: str, framework: str | None = None, obj: Any = None) -> ResolvedAdapter:
    """Load and resolve ``spec`` (or the given object) into a ResolvedAdapter."""
    obj = load_object(spec) if obj is None else obj
    declaration = declaration_of(obj)
    bindings = _bindings(obj, declaration, spec)
    _check_conventions(declaration, bindings, spec)
    try:
        fw = framework_for(framework or declaration.framework, declaration.device)
    except ValueError as exc:
        raise AdapterLoadError(f"adapter {spec!r}: {exc}") from None
    return ResolvedAdapter(
        spec=spec,
        name=declaration.name or spec,
        framework=fw,
        device=declaration.device,
        dtypes=declaration.dtypes or DTYPES,
        ops=bindings,
        conventions={**DEFAULT_CONVENTIONS, **declaration.conventions},
        declared_conventions=dict(declaration.conventions),
        unavailable=getattr(obj, "__attnconf_unavailable__", None),
    )
