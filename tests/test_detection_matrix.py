"""The detection matrix gates CI: every mutant caught, every correct implementation passing,
every check the first to catch at least one mutant, and docs/detection-matrix.md in sync.

The matrix is computed once per session (two worker processes, the ci profile);
the doc is written only by ``tox -e matrix``,
never by this test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mutants import CATCHES, MUTANTS

from conformance.checks import CHECK_NAMES
from conformance.frontends.matrix import detection_matrix, first_catches, render_markdown

# slow (left out by `tox -e fast`): the whole mutant and correct zoos through the ci profile
pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parent.parent / "docs" / "detection-matrix.md"


@pytest.fixture(scope="module")
def rows():
    pytest.importorskip("torch")
    return detection_matrix("mutants:MUTANTS", "correct:CORRECT", workers=2)


def test_every_mutant_is_caught(rows):
    survivors = [r.name for r in rows if r.kind == "mutant" and not r.caught]
    assert len([r for r in rows if r.kind == "mutant"]) == len(MUTANTS) >= 30
    assert not survivors, f"mutants that survived the ci profile: {survivors}"


def test_every_correct_implementation_passes(rows):
    failing = {r.name: r.first_failure for r in rows if r.kind == "correct" and r.caught}
    assert len([r for r in rows if r.kind == "correct"]) >= 16
    assert not failing, f"correct implementations that failed: {failing}"


def test_every_check_is_first_to_catch_a_mutant(rows):
    credited = first_catches(rows)
    idle = [check for check in CHECK_NAMES if not credited.get(check)]
    assert not idle, f"checks that catch no mutant first (redundant or untested): {idle}"


def test_catches_registry_matches_the_measured_matrix(rows):
    measured = {r.name: r.failed_checks for r in rows if r.kind == "mutant"}
    assert measured == {name: tuple(CATCHES[name]) for name in measured}


def test_doc_is_in_sync(rows):
    assert DOC.read_text(encoding="utf-8") == render_markdown(rows), (
        "docs/detection-matrix.md is stale: run `tox -e matrix`")
