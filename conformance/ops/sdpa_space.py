"""Cases of op ``sdpa`` generated from ``conformance.ops.sdpa_axes`` with covertable.

covertable (PyPI, maintained, pure Python) builds n-wise covering arrays with
constraints and per-group strengths (``sub_models``): every pair of axis values
in ``quick``, and all triples of each declared group of interacting axes in
``ci`` and ``full``. Its pair order comes from an FNV hash salted with
``SALT``, never from Python's hash or a random generator, so the list is the
same in every process; each case still gets its own crc32 seed from its id.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from itertools import combinations, product
from pathlib import Path
from typing import Any

import covertable
import numpy as np

from conformance.cases import AttentionShapes, Case, make_case
from conformance.ops import sdpa_axes as axes
from conformance.ops.sdpa_axes import (
    AXES,
    AXIS,
    CONSTRAINTS,
    FULL_TRIPLES,
    OPTIONS,
    TRIPLES,
    Constraint,
)

SALT = "attnconf-sdpa-1"  # changing it changes the case list (and so every generated id)
PREFIX = "axes"  # generated scenarios are named axes-<non-default tokens>


def triples_for(profile_name: str) -> tuple[tuple[str, str, str], ...]:
    """The axis groups covered three-wise: none in quick, ``TRIPLES`` in ci, more in full."""
    return {"quick": (), "ci": TRIPLES}.get(profile_name, FULL_TRIPLES)


def _condition(constraint: Constraint) -> dict:
    return {"operator": "fn", "requires": list(constraint.fields),
            "evaluate": lambda row, c=constraint: c.holds(row)}


def generate(profile_name: str) -> list[tuple[int, ...]]:
    """The covering array by covertable: one tuple of value indices (``AXES`` order) per case.
    Minutes of CPU (its constraint propagation is pure Python: full's took 13 min on a
    loaded 2-core machine), so it runs only on ``python -m conformance.ops.sdpa_space``,
    which stores the result in ``STORED``."""
    factors = {a.name: [v.value for v in a.values] for a in AXES}
    sub_models = [{"fields": list(group), "strength": 3} for group in triples_for(profile_name)]
    made = covertable.make(factors, strength=2, sub_models=sub_models, salt=SALT,
                           constraints=[_condition(c) for c in CONSTRAINTS])
    indexed = []
    for row in made:
        indexed.append(tuple(
            next(i for i, v in enumerate(a.values) if v.value == row[a.name]) for a in AXES))
    return list(dict.fromkeys(indexed))  # a repeated row is the same case once


STORED = Path(__file__).with_name("sdpa_space.json")
PROFILE_NAMES = ("quick", "ci", "full")


def fingerprint() -> str:
    """sha256 of what the arrays depend on: every axis value, each constraint's fields and
    source, the declared triples, the work cap, the salt and covertable's version (not the
    reasons: rewording one keeps the stored arrays)."""
    text = repr(([(a.name, [(v.token, repr(v.value)) for v in a.values]) for a in AXES],
                 [(c.fields, inspect.getsource(c.holds).strip()) for c in CONSTRAINTS],
                 TRIPLES, FULL_TRIPLES, axes.WORK_CAP, SALT, version("covertable")))
    return hashlib.sha256(text.encode()).hexdigest()


class StaleCaseSpace(RuntimeError):
    """conformance/ops/sdpa_axes.py changed since the covering arrays were stored."""


@functools.lru_cache(maxsize=8)
def rows(profile_name: str, dtypes: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """The profile's stored covering array, restricted to ``dtypes``; a profile without one
    of its own uses full's."""
    stored = json.loads(STORED.read_text())
    if stored["fingerprint"] != fingerprint():
        raise StaleCaseSpace(f"{STORED.name} was generated from another "
                             "conformance/ops/sdpa_axes.py; "
                             "regenerate it: python -m conformance.ops.sdpa_space")
    made = stored["profiles"].get(profile_name, stored["profiles"]["full"])
    dtype_axis = [a.name for a in AXES].index("dtype")
    return tuple(tuple(r) for r in made if AXIS["dtype"].values[r[dtype_axis]].value in dtypes)


def row_values(row: tuple[int, ...]) -> dict[str, Any]:
    return {a.name: a.values[i].value for a, i in zip(AXES, row, strict=True)}


def allowed(values: dict[str, Any]) -> bool | None:
    """False when a constraint whose fields are all given fails; None if none could be
    checked; True otherwise."""
    checked = False
    for c in CONSTRAINTS:
        if all(f in values for f in c.fields):
            if not c.holds(values):
                return False
            checked = True
    return True if checked else None


def feasible(partial: dict[str, Any]) -> bool:
    """Whether some complete row holding ``partial`` meets every constraint: every other
    axis must have a value consistent with ``partial`` (which catches chained constraints
    at once), then a depth-first search, cheapest values first, finds a row."""
    settled = _propagate(partial)
    return settled is not None and _complete(settled)


def _propagate(partial: dict[str, Any]) -> dict[str, Any] | None:
    """``partial`` plus every axis left with one consistent value, repeated until nothing
    changes; None when an axis is left with none (a chain of constraints fails)."""
    if allowed(partial) is False:
        return None
    partial, changed = dict(partial), True
    while changed:
        changed = False
        for axis in AXES:
            if axis.name in partial:
                continue
            fits = [v.value for v in axis.values
                    if allowed({**partial, axis.name: v.value}) is not False]
            if not fits:
                return None
            if len(fits) == 1:
                partial[axis.name], changed = fits[0], True
    return partial


def _complete(partial: dict[str, Any]) -> bool:
    if allowed(partial) is False:
        return False
    missing = [AXIS[n] for n in SEARCH_ORDER if n not in partial]
    if not missing:
        return True
    axis = missing[0]
    return any(_complete({**partial, axis.name: v.value}) for v in _cheapest_first(axis))


# sizes first: the work cap is checked as soon as it can be, before the loosely tied axes
SEARCH_ORDER = ("len_q", "len_k", "relation", "dims", "heads", "batch", "values", "scale",
                "mask", "mask_dtype", "pattern", "fill", "dtype", "layout", "causal")


def _cheapest_first(axis) -> list:
    key = {"len_q": lambda v: v.value, "len_k": lambda v: v.value,
           "dims": lambda v: sum(v.value), "heads": lambda v: v.value[0],
           "batch": lambda v: math.prod(v.value)}.get(axis.name)
    return sorted(axis.values, key=key) if key else list(axis.values)


def tuples_of(names: tuple[str, ...], dtypes: tuple[str, ...]) -> Iterator[tuple[int, ...]]:
    """Every combination of value indices of the axes ``names``."""
    yield from product(*(range(len(AXIS[n].values)) if n != "dtype" else
                         [i for i, v in enumerate(AXIS[n].values) if v.value in dtypes]
                         for n in names))


def coverage(profile_name: str, dtypes: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """``{"values": (covered, feasible), "pairs": …, "triples": …}`` of the profile's array,
    each tuple counted as feasible when some row meeting every constraint holds it."""
    made = rows(profile_name, dtypes)
    index = {a.name: k for k, a in enumerate(AXES)}
    report = {}
    groups: dict[str, list[tuple[str, ...]]] = {
        "values": [(a.name,) for a in AXES],
        "pairs": list(combinations([a.name for a in AXES], 2)),
        "triples": list(triples_for(profile_name))}
    for kind, names_list in groups.items():
        covered = needed = 0
        for names in names_list:
            seen = {tuple(r[index[n]] for n in names) for r in made}
            for combo in tuples_of(names, dtypes):
                values = {n: AXIS[n].values[i].value for n, i in zip(names, combo, strict=True)}
                if combo in seen:
                    covered += 1
                    needed += 1
                elif feasible(values):
                    needed += 1
        report[kind] = (covered, needed)
    return report


def uncovered(profile_name: str, dtypes: tuple[str, ...], kind: str) -> list[str]:
    """The feasible pairs or triples the array misses, as ``axis=token`` lists."""
    made = rows(profile_name, dtypes)
    index = {a.name: k for k, a in enumerate(AXES)}
    groups = (combinations([a.name for a in AXES], 2) if kind == "pairs"
              else triples_for(profile_name))
    missing = []
    for names in groups:
        seen = {tuple(r[index[n]] for n in names) for r in made}
        for combo in tuples_of(names, dtypes):
            values = {n: AXIS[n].values[i].value for n, i in zip(names, combo, strict=True)}
            if combo not in seen and feasible(values):
                missing.append(" ".join(f"{n}={AXIS[n].token(i)}"
                                        for n, i in zip(names, combo, strict=True)))
    return missing


def coverage_lines(profile) -> list[str]:
    """What ``attnconf list cases --coverage`` prints: counts per axis value, and the share
    of feasible values, pairs and declared triples the profile's cases hold."""
    made = rows(profile.name, profile.dtypes)
    lines = [f"sdpa case space (conformance/ops/sdpa_axes.py), profile {profile.name}: "
             f"{len(made)} generated cases; salt {SALT!r}"]
    for kind, (covered, needed) in coverage(profile.name, profile.dtypes).items():
        share = 100.0 * covered / needed if needed else 100.0
        lines.append(f"{kind:8} {covered}/{needed} feasible covered ({share:.1f} %)")
    groups = triples_for(profile.name)
    lines.append("declared triples: " + (", ".join(" x ".join(g) for g in groups) or "none"))
    for k, a in enumerate(AXES):
        counts = [sum(r[k] == i for r in made) for i in range(len(a.values))]
        lines.append(f"  {a.name:10} " + " ".join(
            f"{v.token}:{n}" for v, n in zip(a.values, counts, strict=True)))
    for kind in ("pairs", "triples"):
        missing = uncovered(profile.name, profile.dtypes, kind)
        lines += [f"uncovered {kind}: {len(missing)}", *(f"  {m}" for m in missing[:20])]
    return lines


DEFAULT_TOKENS = {"causal": "none", "mask": "none", "scale": "default", "values": "normal",
                  "layout": "contiguous"}
# axes that are not in the shape label and say something in the scenario name
NAMED_AXES = ("causal", "mask_dtype", "mask", "pattern", "fill", "scale", "values", "layout")
SILENT_TOKENS = {"nomask", "nofill", "inf"}


def scenario_name(row: tuple[int, ...]) -> str:
    """``axes-causalbr-bool-qk-trilbr-ties-blhd``: the non-default tokens, in axis order."""
    tokens = []
    for a, i in zip(AXES, row, strict=True):
        token = a.token(i)
        if a.name in NAMED_AXES and token not in SILENT_TOKENS \
                and token != DEFAULT_TOKENS.get(a.name):
            tokens.append(("scale" + token) if a.name == "scale" else token)
    return "-".join((PREFIX, *tokens))


def shapes_of(values: dict[str, Any]) -> AttentionShapes:
    (hq, hk), (e, ev) = values["heads"], values["dims"]
    return AttentionShapes(values["batch"], hq, hk, values["len_q"], values["len_k"], e, ev)


def case_of(row: tuple[int, ...], run_seed: int) -> Case:
    """The case of one row: call options, harness-only input options, needed features."""
    v = row_values(row)
    shapes = shapes_of(v)
    options: dict[str, Any] = {"layout": v["layout"], "values": v["values"]}
    features: set[str] = set()
    if v["mask"] is not None:
        options.update(mask="axes", mask_form="-".join(v["mask"]), mask_pattern=v["pattern"],
                       mask_fill=v["fill"] if v["mask_dtype"] == "float" else None,
                       mask_dtype=v["mask_dtype"])
        features.add(f"{v['mask_dtype']}_mask")
    if v["causal"] is not None:
        options["is_causal"] = True
        features.add("causal")
        if v["causal"] == "bottom_right":
            options["causal_alignment"] = "bottom_right"
            features.add("bottom_right")
        if v["mask"] is not None:
            features.add("mask_with_causal")
    if shapes.heads_q != shapes.heads_kv:
        options["enable_gqa"] = True
        features.add("gqa")
    if v["scale"] is not None:
        options["scale"] = 1.0 / math.sqrt(shapes.dim) if v["scale"] == "explicit" else v["scale"]
        features.add("scale")
    return make_case("sdpa", scenario_name(row), shapes.label, v["dtype"], run_seed, options,
                     features, shapes)


def covering_values(made: tuple[tuple[int, ...], ...]) -> list[tuple[int, ...]]:
    """Few rows of ``made`` that together hold every value it holds (greedy, in order)."""
    wanted = {(k, r[k]) for r in made for k in range(len(AXES))}
    chosen = []
    while wanted:
        best = max(made, key=lambda r: len(wanted & set(enumerate(r))))
        chosen.append(best)
        wanted -= set(enumerate(best))
    return chosen


def option_value(option: str, value: Any, heads: int) -> Any:
    """The option's call argument for a case with ``heads`` query heads (per-head options
    get one entry per head)."""
    if option == "alibi":
        return tuple(2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads))
    if option == "sinks":
        return tuple(float(x) for x in np.linspace(-1.0, 1.0, heads))
    return value


OPTION_ARGUMENT = {"window": "window", "softcap": "softcap", "alibi": "alibi_slopes",
                   "sinks": "sinks"}


def option_cases(profile_name: str, dtypes: tuple[str, ...], run_seed: int) -> list[Case]:
    """Each value of each extension option (``axes.OPTIONS``) on rows of the profile's array
    that hold every axis value between them: the option crossed with every axis value."""
    made = rows(profile_name, dtypes)
    carriers = covering_values(made)
    cases = []
    for option in OPTIONS:
        for value in option.values:
            for row in carriers:
                base = case_of(row, run_seed)
                heads = shapes_of(row_values(row)).heads_q
                options = {**dict(base.options), OPTION_ARGUMENT[option.name]:
                           option_value(option.name, value.value, heads)}
                cases.append(make_case("sdpa", f"{base.scenario}-{value.token}", base.label,
                                       base.dtype, run_seed, options,
                                       base.features | {option.name}, base.shapes))
    return cases


def generated_cases(profile_name: str, dtypes: tuple[str, ...], run_seed: int) -> list[Case]:
    return [*(case_of(row, run_seed) for row in rows(profile_name, dtypes)),
            *option_cases(profile_name, dtypes, run_seed)]


def reduce_rows(made: list[tuple[int, ...]], groups: Sequence[tuple[str, ...]]
                ) -> list[tuple[int, ...]]:
    """A sub-array of ``made`` holding every combination of values of each axis group that
    ``made`` holds (greedy set cover, ties to the earlier row: deterministic)."""
    index = {a.name: k for k, a in enumerate(AXES)}

    def held(row: tuple[int, ...]) -> set:
        return {(g, tuple(row[index[n]] for n in g)) for g in groups}

    wanted = set().union(*(held(r) for r in made))
    chosen = []
    while wanted:
        best = max(made, key=lambda r: len(wanted & held(r)))
        chosen.append(best)
        wanted -= held(best)
    return chosen


def main(argv: list[str]) -> int:
    """Regenerate ``STORED``: full's covering array by covertable (minutes), and quick's and
    ci's as sub-arrays of it that keep every pair (quick) and every declared triple (ci)."""
    full = generate("full")
    pairs = list(combinations([a.name for a in AXES], 2))
    profiles = {"quick": reduce_rows(full, pairs),
                "ci": reduce_rows(full, [*pairs, *triples_for("ci")]), "full": full}
    stored = {"fingerprint": fingerprint(), "profiles": profiles}
    for name, made in profiles.items():
        print(f"{name}: {len(made)} cases", flush=True)
    STORED.write_text(json.dumps(stored, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
