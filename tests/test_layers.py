"""The kit's import graph: no cycles, and no module imports a layer above its own.

Read from the source with ``ast`` (nothing is imported), counting imports inside
functions too: an import moved into a function to break a cycle is still a cycle.
docs/architecture.md explains the layers; LAYERS below is their one list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reference
from conformance import vocabulary
from conformance.ops import op_specs

ROOT = Path(__file__).resolve().parents[1]

# lowest first; a module may import its own layer and those before it
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("spec", ("reference",)),
    ("vocabulary", ("conformance.vocabulary", "conformance.errors")),
    ("values", ("conformance.cases", "conformance.profiles", "conformance.results")),
    ("adapters", ("conformance.adapters", "conformance")),
    ("judging", ("conformance.judging", "conformance.strategies", "conformance.fixtures")),
    ("ops", ("conformance.ops",)),
    ("checks", ("conformance.checks",)),
    # the run: the runner, how a run's cases split across CI jobs, and the kit's own files
    # pinned and checked around a run (integrity reads the op table)
    ("run", ("conformance.runner", "conformance.shard", "conformance.integrity")),
    ("frontends", ("conformance.frontends", "conformance.__main__")),
)


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix naming ``module`` (``conformance`` itself is
    the package's __init__: the public ``conformance.adapter`` decorator)."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (module.startswith(prefix + ".")
                                           and prefix != "conformance")
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def kit_modules() -> dict[str, Path]:
    found = {}
    for top in ("conformance", "reference"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = kit_modules()


def imports_of(module: str, path: Path) -> set[str]:
    """The kit modules ``module`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    targets = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
    return {t for t in targets if t in MODULES and t != module}


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module):
    own = layer_of(module)
    above = sorted(t for t in GRAPH[module] if layer_of(t) > own)
    assert not above, (f"{module} (layer {LAYERS[own][0]}) imports "
                       + ", ".join(f"{t} (layer {LAYERS[layer_of(t)][0]})" for t in above))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_reference_never_imports_the_harness():
    assert not any(t.startswith("conformance") for m in MODULES if m.startswith("reference")
                   for t in GRAPH[m])


def test_no_reference_module_is_shadowed_by_a_function():
    """``import reference.X as m`` must give the module: no export shares a module's name."""
    modules = {m.rpartition(".")[2] for m in MODULES if m.startswith("reference.")}
    assert not modules & set(reference.__all__)


def test_one_list_of_ops():
    assert tuple(op_specs()) == vocabulary.OPS
    assert set(vocabulary.OPS) <= set(reference.VARIANTS)


def test_dtype_table_matches_the_vocabulary():
    from conformance.adapters.frameworks import DTYPE_BY_NAME

    assert tuple(DTYPE_BY_NAME) == vocabulary.DTYPES
