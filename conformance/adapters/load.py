"""Load an adapter from a spec and resolve what it provides.

A spec is a built-in name (``numpy``, ``torch``, …), ``module:attr``,
``path/to/file.py:attr``, a bare module name, or a name in the entry-point
group ``attention_conformance.adapters``. The object found is either a plain
callable (op ``sdpa``, features read from its signature) or an object/module
exposing op names. Loading happens when a run is configured, never at import.

``describe`` turns a ResolvedAdapter into plain data and ``from_description``
builds one back from it: that is how ``conformance.adapters.isolated.parent`` resolves an
adapter inside a worker process without the parent ever importing it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from conformance.adapters.declare import Declaration, declaration_of
from conformance.adapters.declare import _check_conventions as valid_conventions
from conformance.adapters.frameworks import Framework, framework_for
from conformance.errors import AdapterLoadError as AdapterLoadError
from conformance.errors import describe_exception
from conformance.vocabulary import DEFAULT_CONVENTIONS, DTYPES, FEATURES, OPS

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
# how many arguments the harness passes each op positionally (docs/ops.md)
POSITIONAL_ARGS = {"sdpa": ("query", "key", "value"),
                   "sdpa_backward": ("query", "key", "value", "grad_out"),
                   "multi_head_attention": ("query", "key", "value", "num_heads",
                                            "in_proj_weight", "in_proj_bias",
                                            "out_proj_weight", "out_proj_bias"),
                   "rotary_embedding": ("x",), "alibi_slopes": ("num_heads",),
                   "relative_attention": ("query", "key", "value", "rel_embeddings"),
                   "additive_attention": ("query", "keys", "values", "w_query", "w_key",
                                          "w_score"),
                   "decode_step": ("query", "key_cache", "value_cache", "new_key",
                                   "new_value"),
                   "sdpa_varlen": ("query", "key", "value", "cu_seqlens_q", "cu_seqlens_k"),
                   "paged_attention": ("query", "key_pages", "value_pages", "block_table",
                                       "seq_lens")}
TORCH_EXTRA = "python3 -m pip install -c constraints.txt 'attention-conformance[torch]'"
DECLARED_ONLY = frozenset({"mask_with_causal"})


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
    framework_arg: str | None = None  # the framework given to resolve (a worker re-resolves)
    isolated: bool = False  # resolved in a worker: OpBinding.fn is None here


def _import_file(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        where = "" if file.is_absolute() else f" (a relative path is read from {Path.cwd()})"
        raise AdapterLoadError(f"adapter file {file.resolve()} does not exist{where}")
    module_name = f"_attnconf_user_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:  # not a file Python can import
        raise AdapterLoadError(f"adapter file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _entry_point(name: str) -> Any | None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return None


def entry_point_adapters() -> list[tuple[str, str, str]]:
    """(name, distribution that registered it, ``module:attr``) of every adapter in the
    entry-point group, sorted by name; nothing is imported."""
    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        owner = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "unknown"
        found.append((ep.name, owner, ep.value))
    return sorted(found)


def known_adapter_names() -> list[str]:
    """Built-in and entry-point adapter names: what a misspelt name is matched against."""
    from conformance.adapters.builtin import BUILTINS

    return [*BUILTINS, *(name for name, _, _ in entry_point_adapters())]


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """``; did you mean 'torch'?`` for the closest of ``known`` (difflib ratio ≥ 0.6), or ""."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def import_from_cwd(module: str) -> Any:
    """``importlib.import_module`` with the current directory searched last, as uvicorn and
    gunicorn find ``module:attr``: the ``attnconf`` script's sys.path[0] is its bin/ folder,
    not where the user stands. Appended, so a local file never shadows an installed package."""
    import reference  # noqa: F401  (before cwd joins: see isolation._load)

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    return importlib.import_module(module)


def _is_the_spec_module(where: str, exc: ModuleNotFoundError) -> bool:
    """True when the module the spec names is missing, False when it exists and imports
    something missing (that is the user's import error, with its traceback)."""
    return exc.name in (where.split(".")[0], where)


def _unknown_module(spec: str, where: str) -> AdapterLoadError:
    """The one line for a spec whose module is not found: the file it looked for, where, and
    the closest adapter name when the spec was a bare name."""
    hint = did_you_mean(spec, known_adapter_names()) if ":" not in spec else ""
    looked = Path.cwd() / (where.replace(".", os.sep) + ".py")
    return AdapterLoadError(
        f"adapter {spec!r}: no module {where!r} ({looked} does not exist, nor does a package "
        f"of that name on sys.path); not a built-in or entry-point adapter either{hint}")


def passive_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning: ``OMP_WAIT_POLICY=PASSIVE`` unless the
    environment sets a policy. The thread count is left alone.

    A run alternates tiny adapter calls with the harness's own NumPy work. With torch's
    default (spinning) policy on a 2-core machine, each tiny torch call took ~5 ms instead of
    ~0.1 ms and the torch property checks ran ~5x slower (benchmarks/bench_harness.py). The
    OpenMP runtime reads the variable when it loads, so this runs before any adapter is
    imported; where torch is already imported it changes nothing.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def load_object(spec: str) -> Any:
    """The object a spec names; AdapterLoadError (one line) when it cannot be had."""
    from conformance.adapters.builtin import BUILTINS

    passive_openmp()

    where, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    try:
        if spec in BUILTINS:
            if spec.startswith("torch"):
                check_framework_installed("torch", f"adapter {spec!r}")
            return BUILTINS[spec]()
        if where.endswith(".py"):
            obj = _import_file(where)
        else:
            found = None if ":" in spec else _entry_point(spec)
            if found is not None:
                return found
            try:
                obj = import_from_cwd(where)
            except ModuleNotFoundError as exc:
                if not _is_the_spec_module(where, exc):
                    raise  # an import error of the user's code: reported below, chained
                raise _unknown_module(spec, where) from None
        for part in filter(None, attr.split(".")):
            if not hasattr(obj, part):
                hint = did_you_mean(part, [n for n in dir(obj) if not n.startswith("_")])
                raise AdapterLoadError(
                    f"adapter {spec!r}: {where} has no attribute {part!r}{hint}")
            obj = getattr(obj, part)
    except (AdapterLoadError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # any import-time error of user code, sys.exit included
        raise AdapterLoadError(f"adapter {spec!r} failed to import: {_describe(exc)}") from exc
    return obj


def _describe(exc: BaseException) -> str:
    return describe_exception(exc)


def _accepted_params(fn: Any) -> frozenset[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return frozenset(TORCH_PARAMS)  # builtins without a signature: torch's own
    names: set[str] = set()
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


def check_positional(op: str, fn: Any, spec: str) -> None:
    """AdapterLoadError (one line) when ``fn`` cannot be called with the arguments the harness
    passes ``op`` positionally, or needs more: every call would fail with the same
    TypeError. A callable without a readable signature is given the benefit of the doubt."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    names = POSITIONAL_ARGS.get(op)
    if names is None:  # an op this table does not describe yet: checked when called
        return
    try:
        signature.bind(*names)
    except TypeError as exc:
        raise AdapterLoadError(
            f"adapter {spec!r}: its {op} must accept ({', '.join(names)}) positionally "
            f"(docs/ops.md), but {getattr(fn, '__name__', op)}{signature}: {exc}") from None


def check_framework_installed(framework: Any, who: str = "--framework torch") -> None:
    """AdapterLoadError naming the extra to install when ``framework`` is "torch" and torch
    is not installed: before a run, not as one failure per case."""
    if framework == "torch" and importlib.util.find_spec("torch") is None:
        raise AdapterLoadError(f"{who} needs torch, which is not installed here: {TORCH_EXTRA}")


def check_installed(spec: str, framework: Any) -> None:
    """What can be told before loading anything: ``--framework torch`` or a built-in torch
    adapter without torch installed is a load error naming the extra to install."""
    from conformance.adapters.builtin import BUILTINS

    check_framework_installed(framework)
    if spec in BUILTINS and spec.startswith("torch"):
        check_framework_installed("torch", f"adapter {spec!r}")


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
        check_positional(op, fn, spec)
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
    check_framework_installed(framework or declaration.framework)
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
        framework_arg=framework,
    )


# -- plain-data descriptions (resolution in a worker process) -------------------------


class DescribedFramework:
    """The parent's stand-in for a framework that lives in a worker: name and version only."""

    def __init__(self, name: str, framework_version: str | None) -> None:
        self.name, self._version = name, framework_version

    def version(self) -> str:
        return self._version or "unknown"

    def to_native(self, array: Any) -> Any:
        raise RuntimeError("an isolated adapter's arrays are converted in its worker")

    to_numpy = to_native


def describe(adapter: ResolvedAdapter) -> dict[str, Any]:
    """Everything the harness reads from a ResolvedAdapter, as JSON-able data."""
    fw = adapter.framework
    try:
        fw_version = str(fw.version()) if callable(getattr(fw, "version", None)) else None
    except Exception:  # a user framework object whose version() is broken
        fw_version = None
    return {
        "name": str(adapter.name),
        "framework": {"name": str(getattr(fw, "name", "custom")), "version": fw_version},
        "device": str(adapter.device),
        "dtypes": list(adapter.dtypes),
        "ops": {op: {"params": sorted(b.params), "features": sorted(b.features)}
                for op, b in adapter.ops.items()},
        "conventions": adapter.conventions,
        "declared_conventions": adapter.declared_conventions,
        "unavailable": None if adapter.unavailable is None else str(adapter.unavailable),
    }


def _strings(value: Any, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r:.80}")
    if allowed is not None and set(value) - set(allowed):
        raise ValueError(f"unknown names {sorted(set(value) - set(allowed))}")
    return tuple(value)


def _ops(value: Any) -> dict[str, OpBinding]:
    if not isinstance(value, dict) or not value or set(value) - set(OPS):
        raise ValueError(f"ops must map some of {list(OPS)} to params/features")
    return {op: OpBinding(op, None, frozenset(_strings(entry["params"])),
                          frozenset(_strings(entry["features"], FEATURES)))
            for op, entry in value.items()}


def from_description(spec: str, framework: str | None, data: Any) -> ResolvedAdapter:
    """A ResolvedAdapter (without callables) from ``describe``'s data, checked field by field.

    The data comes from a process that ran the adapter's import-time code, so
    nothing in it is trusted: a malformed description is a load error.
    """
    try:
        fw = data["framework"]
        conventions = valid_conventions(data["conventions"])
        if set(conventions) != set(DEFAULT_CONVENTIONS):
            raise ValueError("conventions must name every convention")
        text = (data["name"], fw["name"], data["device"])
        if not all(isinstance(t, str) for t in text) or not all(
                isinstance(t, (str, type(None))) for t in (fw["version"], data["unavailable"])):
            raise ValueError("name, framework, device and unavailable must be strings")
        return ResolvedAdapter(
            spec=spec, name=data["name"],
            framework=DescribedFramework(fw["name"], fw["version"]), device=data["device"],
            dtypes=_strings(data["dtypes"], DTYPES), ops=_ops(data["ops"]),
            conventions=conventions,
            declared_conventions=valid_conventions(data["declared_conventions"]),
            unavailable=data["unavailable"], framework_arg=framework, isolated=True)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AdapterLoadError(
            f"adapter {spec!r}: its worker sent an invalid description ({exc})") from None
