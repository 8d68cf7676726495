"""Results of one run: one record per (op, check, case), their summary and the verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
ERROR = "error"  # the kit itself stopped on an exception: never the adapter's failure

# exit codes of a run, as pytest's: 0 ok, 1 failures, 2 usage/interrupted, 3 internal error
EXIT_CONFORMANT, EXIT_NOT_CONFORMANT, EXIT_USAGE, EXIT_INTERNAL_ERROR = 0, 1, 2, 3

NEVER_EXERCISED = "no case passed (everything was skipped): the adapter was never exercised"
NO_CORE_EXERCISED = ("no numeric case and no property exercised the adapter (only {checks} "
                     "passed): nothing says it computes attention")


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
    examples: int | None = None  # property checks: examples that called the adapter and ran
    traceback: str = ""  # ERROR results: where in the kit it stopped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary(results: list[Result]) -> dict[str, int]:
    """{"passed", "failed", "skipped"} counts, and "errors" only when the kit had any."""
    counts = Counter(r.status for r in results)
    found = {status: counts.get(status, 0) for status in (PASSED, FAILED, SKIPPED)}
    if counts.get(ERROR):
        found["errors"] = counts[ERROR]
    return found


def is_core(r: Result) -> bool:
    """A numeric case or a property: the results that say the adapter computes attention
    (a property result carries ``examples``, 0 when none ran)."""
    return r.check == "numeric" or r.examples is not None


def exercised(results: list[Result]) -> tuple[bool, str]:
    """(was the adapter exercised, why not). It was when a numeric case or a property with at
    least one example passed; a run that selected neither (``--only golden``, a probe's
    ``--case``) needs any passed result."""
    core = [r for r in results if is_core(r)]
    if any(r.status == PASSED and (r.check == "numeric" or r.examples) for r in core):
        return True, ""
    passed = sorted({r.check for r in results if r.status == PASSED})
    if not passed:
        return False, NEVER_EXERCISED
    if not core:
        return True, ""
    return False, NO_CORE_EXERCISED.format(checks=", ".join(passed))


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
    """(exit code, one-line reason): 3 if the kit stopped on an internal error, else 1 on any
    failure, else 1 when the adapter was never exercised (see ``exercised``), else 0."""
    counts = summary(results)
    if counts.get("errors"):
        return EXIT_INTERNAL_ERROR, (f"{counts['errors']} internal error(s) of the kit, not of "
                                     f"the adapter: no verdict (tracebacks in the JSON report)")
    if counts[FAILED]:
        return EXIT_NOT_CONFORMANT, f"{counts[FAILED]} failed"
    ok, why = exercised(results)
    if not ok:
        return EXIT_NOT_CONFORMANT, why
    return EXIT_CONFORMANT, "conformant"


def verdict_word(code: int) -> str:
    """The word the summary prints for an exit code."""
    return {EXIT_CONFORMANT: "CONFORMANT", EXIT_INTERNAL_ERROR: "NO VERDICT"}.get(
        code, "NOT CONFORMANT")
