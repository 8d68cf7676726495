"""What the ops over many sequences (``sdpa_varlen``, ``paged_attention``) share.

A scenario is a name, the input recipe (``recipe``: sequence lengths, heads, page
size, table kind, garbage …, shaping the inputs only) and the call's keyword
options (sent to the adapter as they are). An option the adapter's function does
not accept makes the case *unsupported* (skipped), as for the ops of
``other_ops``; a value it does not support is its NotImplementedError (skipped).

The expected output is the reference op in float64, and in the case's dtype
through ``compute_dtype`` (the tolerance model's ``ref_lowp``); the conditioning
term of the bound is the largest of the per-sequence dense terms
(``conformance.ops.sdpa.conditioning_of``). Rows of a sequence without keys are 0
in the reference; they are ignored for an adapter that declares another
``fully_masked`` policy (the reference's dense rule is the empty sum).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from conformance.adapters.frameworks import DTYPE_BY_NAME, OutputTypeError
from conformance.cases import AttentionShapes, Case, make_case, unique_cases
from conformance.errors import Unsupported
from conformance.judging.tolerance import Conditioning
from conformance.ops.sdpa import conditioning_of
from conformance.ops.spec import Expected
from conformance.profiles import Profile
from reference import sdpa

# the dtypes of the long (memory) scenarios: a kernel that materialises
# total_q × total_k needs 1 GiB of float32 for the 16k-token pack
LONG_DTYPES = ("float32",)


@dataclass(frozen=True)
class Scenario:
    name: str
    recipe: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    core: bool = False  # run in every dtype of the profile, not only float64/float32
    profiles: tuple[str, ...] = ("quick", "ci", "full")
    dtypes: tuple[str, ...] | None = None


def frozen(value: Any) -> Any:
    """Lists → tuples, recursively, so a recipe can live in a hashable Case."""
    if isinstance(value, list | tuple):
        return tuple(frozen(v) for v in value)
    return value


def build_cases(op: str, scenarios: tuple[Scenario, ...], profile: Profile, run_seed: int,
                label: Callable[[dict[str, Any]], str],
                size: Callable[[dict[str, Any]], AttentionShapes]) -> list[Case]:
    """One case per (scenario, dtype) the profile runs; ``size`` sizes the call's timeout."""
    cases = []
    for s in scenarios:
        if profile.name not in s.profiles:
            continue
        dtypes = profile.dtypes if (s.core or not profile.lowp_scenarios_only_core) else tuple(
            d for d in profile.dtypes if d in ("float64", "float32"))
        dtypes = tuple(d for d in dtypes if s.dtypes is None or d in s.dtypes)
        recipe = {k: frozen(v) for k, v in s.recipe.items()}
        options = {k: frozen(v) for k, v in s.options.items()}
        for dtype in dtypes:
            cases.append(make_case(op, s.name, label(recipe), dtype, run_seed,
                                   {"recipe": tuple(sorted(recipe.items())), **options},
                                   shapes=size(recipe)))
    return unique_cases(cases)


def recipe_of(case: Case) -> dict[str, Any]:
    return dict(case.option("recipe", ()))


def call_options(case: Case, dtype) -> dict[str, Any]:
    """The keyword options the case sends, per-head arrays in ``dtype``."""
    options = {k: v for k, v in case.options if k != "recipe"}
    if "alibi_slopes" in options:
        options["alibi_slopes"] = np.asarray(options["alibi_slopes"], dtype=dtype)
    return options


def arguments_for(positional: tuple[str, ...]):
    """The op's ``arguments``: the arrays positionally, the options as keywords."""

    def arguments(binding, inputs: dict[str, Any], case: Case) -> tuple[list, dict[str, Any]]:
        options = call_options(case, DTYPE_BY_NAME[case.dtype])
        missing = sorted(k for k in options if k not in binding.params)
        if missing:
            raise Unsupported(f"adapter's {case.op} does not accept {missing} needed by "
                              f"{case.id}")
        return [inputs[n] for n in positional], options

    return arguments


def merged_conditioning(parts: list[Conditioning]) -> Conditioning | None:
    """The largest of each term over the sequences: the bound of the worst sequence."""
    if not parts:
        return None
    return Conditioning(*(max(getattr(p, f.name) for p in parts) for f in fields(Conditioning)))


def sequence_conditioning(dense: Iterator[tuple[np.ndarray, ...]], options: dict[str, Any]
                          ) -> Conditioning | None:
    """Conditioning of each non-empty sequence (dense (H, L, D) float64 views), merged."""
    names = ("is_causal", "causal_alignment", "scale", "window", "softcap", "alibi_slopes",
             "enable_gqa")
    kwargs: dict[str, Any] = {k: options[k] for k in names if k in options}
    parts = []
    for q, k, v in dense:
        if q.shape[-2] and k.shape[-2]:
            _, lse = sdpa(q, k, v, return_lse=True, **kwargs)
            parts.append(conditioning_of([q, k, v], lse, None, kwargs))
    return merged_conditioning(parts)


def expected_for(reference: Callable, positional: tuple[str, ...],
                 dense: Callable[..., Iterator[tuple[np.ndarray, ...]]],
                 keyless_rows: Callable[[dict[str, Any]], np.ndarray]):
    """The op's ``expected``: out (and lse when asked) from ``reference`` in float64 and in
    the case's dtype; rows of keyless sequences ignored unless the adapter declares zeros."""

    def expected(inputs: dict[str, Any], case: Case, conventions: dict[str, Any]
                 ) -> list[Expected]:
        options = call_options(case, np.float64)
        wide = {n: (inputs[n].astype(np.float64) if inputs[n].dtype.kind in "fV" else inputs[n])
                for n in positional}
        args64 = [wide[n] for n in positional]
        ref64 = reference(*args64, **{**options, "return_lse": True})
        dtype = inputs[positional[0]].dtype
        if case.dtype == "float64":
            lowp = ref64
        else:
            lowp = reference(*(inputs[n] for n in positional),
                             **{**options, "return_lse": True, "compute_dtype": dtype})
        ignore = None
        if conventions.get("fully_masked") != "zeros":
            ignore = keyless_rows(inputs)[..., None, None]
        conditioning = sequence_conditioning(dense(wide, options), options)
        out = [Expected("output", ref64[0].astype(np.float64), lowp[0].astype(np.float64),
                        dtype, ignore, None, conditioning)]
        if options.get("return_lse"):
            out.append(Expected("lse", ref64[1].astype(np.float64), lowp[1].astype(np.float64),
                                ref64[1].dtype if case.dtype == "float64" else np.float32))
        return out

    return expected


def outputs(converted: Any, expectations: list[Expected]) -> list[np.ndarray]:
    """``out``, or ``(out, lse)`` when the case asked for the lse."""
    values = converted if isinstance(converted, tuple) else (converted,)
    if len(values) != len(expectations):
        names = tuple(e.name for e in expectations)
        raise OutputTypeError(f"expected {len(expectations)} output(s) {names}, got "
                              f"{len(values)}")
    for exp, value in zip(expectations, values, strict=True):
        if not isinstance(value, np.ndarray):
            raise OutputTypeError(f"output {exp.name!r} is {type(value).__name__}, "
                                  f"expected an array")
    return list(values)
