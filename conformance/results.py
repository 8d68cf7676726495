"""Results of one run: one record per (op, check, case), and their summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class Result:
    op: str
    check: str
    case: str
    status: str
    message: str = ""
    max_abs_err: float | None = None
    bound: float | None = None
    repro: str = ""
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary(results: list[Result]) -> dict[str, int]:
    counts = Counter(r.status for r in results)
    return {status: counts.get(status, 0) for status in (PASSED, FAILED, SKIPPED)}


@dataclass
class RunInfo:
    """Everything needed to reproduce a run, recorded in every report."""

    adapter: str
    profile: str
    seed: int
    kit_version: str
    versions: dict[str, str] = field(default_factory=dict)
    conventions: dict[str, Any] = field(default_factory=dict)
    declared: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def verdict(results: list[Result]) -> tuple[int, str]:
    """(exit code, one-line reason): 1 on any failure or when nothing passed."""
    counts = summary(results)
    if counts[FAILED]:
        return 1, f"{counts[FAILED]} failed"
    if not counts[PASSED]:
        return 1, "no case passed (everything was skipped): the adapter was never exercised"
    return 0, "conformant"
