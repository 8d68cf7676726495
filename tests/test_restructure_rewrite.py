"""dev/restructure.py --rewrite-only: a file written against the old flat layout (say one a
later ``git merge main`` brought in) imports the new modules after the rewrite, and a
second rewrite changes nothing; the whole tree is already in the new layout."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "dev" / "restructure.py"

OLD = '''"""See conformance/tolerance.py."""
import conformance.isolation as iso
from conformance.adapters.isolated.process import worker_main
from conformance.isolation import resolve_isolated
import reference.sdpa as sdpa_module
from conformance import tolerance
from conformance.adapters import resolve
from conformance.declare import OPS, adapter
from conformance.fixturegen import notebook_000
from conformance.strategies import MASK_KINDS
from reference.sdpa import BLOCKED_ABOVE, sdpa
from conformance.procs import end_tree
from conformance.isolation import memory_limit_from_env
from conformance.ops import Expected, OpSpec
from reference.sdpa_varlen import sdpa_varlen
from conformance.layout import copy_view
from conformance.axes import AXES
from conformance import axes

bound = conformance.compare.compare
'''

# the old names, by the move table in docs/architecture.md and the symbols the hand
# commits moved (OPS to the vocabulary, BLOCKED_ABOVE to the harness)
NEW_LINES = [
    '"""See conformance/judging/tolerance.py."""',
    "import conformance.adapters.isolated.parent as iso",
    "from conformance.adapters.isolated.worker import worker_main",
    "from conformance.adapters.isolated.parent import resolve_isolated",
    "import reference.scaled_dot_product as sdpa_module",
    "from conformance.judging import tolerance",
    "from conformance.adapters.load import resolve",
    "from conformance.adapters.declare import adapter",
    "from conformance.vocabulary import OPS",
    "from conformance.fixtures.generate import notebook_000",
    "from conformance.strategies import MASK_CHOICES as MASK_KINDS",
    "from conformance.ops.sdpa import BLOCKED_ABOVE",
    "from reference.scaled_dot_product import sdpa",
    # modules main gained after the restructure (LATER_MOVES) and names that left theirs
    "from conformance.adapters.isolated.procs import end_tree",
    "from conformance.adapters.isolated.limits import memory_limit_from_env",
    "from conformance.ops.spec import Expected, OpSpec",
    "from reference.varlen import sdpa_varlen",
    "from conformance.adapters.layout import copy_view",
    "from conformance.ops.sdpa_axes import AXES",
    "from conformance.ops import sdpa_axes as axes",
    "bound = conformance.judging.compare.compare",
]


def rewrite_only(*paths: Path) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), "--rewrite-only", *map(str, paths)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_old_style_file_is_rewritten_to_the_new_layout(tmp_path):
    path = tmp_path / "old_style.py"
    path.write_text(OLD)
    rewrite_only(path)
    lines = path.read_text().splitlines()
    missing = [line for line in NEW_LINES if line not in lines]
    assert not missing, f"not rewritten: {missing}\n---\n{path.read_text()}"


def test_a_second_rewrite_changes_nothing(tmp_path):
    path = tmp_path / "old_style.py"
    path.write_text(OLD)
    rewrite_only(path)
    once = path.read_text()
    assert "rewrote 0 of 1" in rewrite_only(path)
    assert path.read_text() == once


def test_the_tree_is_already_in_the_new_layout(tmp_path):
    """Every kit module under the new layout is left as it is (copied: the run writes)."""
    sources = [*sorted((ROOT / "conformance").rglob("*.py")), ROOT / "tests" / "test_layers.py"]
    copies = []
    for i, source in enumerate(sources):
        copy = tmp_path / f"{i}_{source.name}"
        copy.write_text(source.read_text())
        copies.append(copy)
    assert f"rewrote 0 of {len(copies)}" in rewrite_only(*copies)


def test_the_script_is_importable_without_running():
    spec = importlib.util.spec_from_file_location("restructure", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert ("conformance.declare", "OPS") in module.SYMBOL_MOVES
