"""Results of one run: one record per (op, check, case), their summary and the verdict."""

from __future__ import annotations

import re
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
    return {EXIT_CONFORMANT: "CONFORMANT", EXIT_INTERNAL_ERROR: "NO VERDICT",
            EXIT_USAGE: "INTERRUPTED"}.get(
        code, "NOT CONFORMANT")


INTERRUPTED = ("interrupted by the user after {n} results: what did not run is not counted, "
               "no verdict")


def run_verdict(results: list[Result], info: RunInfo | None) -> tuple[int, str]:
    """``verdict``, except that an interrupted run (``info.settings["interrupted"]``) exits 2
    whatever finished: a partial run is not a verdict (pytest also exits 2 on ctrl-C)."""
    if info is not None and info.settings.get("interrupted"):
        return EXIT_USAGE, INTERRUPTED.format(n=len(results))
    return verdict(results)


def _body_lines(r: Result) -> list[str]:
    """The message's lines after its headline (``op / check: case``) and without the repro."""
    lines = [line for line in r.message.splitlines() if line.strip()]
    if lines and lines[0].startswith(f"{r.op} / "):
        lines = lines[1:]
    # a headline's indented continuation, the example's shapes and the repro are not causes
    return [line for line in lines if not line.startswith(
        ("repro: ", " ", "minimal failing example", "hypothesis stopped at"))]


def diagnosis(r: Result) -> str:
    """One line saying what went wrong (JUnit's ``message``, the grouping key): for a numeric
    mismatch the error against the bound and how many elements; otherwise the first line of
    the message after its headline, or the headline when there is nothing else."""
    body = _body_lines(r)
    counted = next((line for line in body if line.startswith("Mismatched elements")), None)
    if counted and r.max_abs_err is not None and r.bound is not None:
        return f"max abs err {r.max_abs_err:.3g} > bound {r.bound:.3g} ({counted})"
    if body:
        return body[0].strip()
    first = r.message.splitlines()[0] if r.message else r.status
    return first


def _hint(cause: str) -> str:
    """What to try for a cause whose fix is known."""
    if "expected a numpy.ndarray, got Tensor" in cause:
        return " — the adapter returns torch tensors: run it with --framework torch"
    if "expected a torch.Tensor, got ndarray" in cause:
        return " — the adapter returns NumPy arrays: drop --framework torch"
    return ""


def failure_groups(results: list[Result]) -> list[tuple[str, int, Result]]:
    """(diagnosis + hint, how many failures share it, the first of them), most common first;
    numeric mismatches (each its own numbers) are not grouped."""
    shared: dict[str, list[Result]] = {}
    for r in results:
        if r.status == FAILED and not (r.max_abs_err is not None and r.bound is not None):
            shared.setdefault(diagnosis(r), []).append(r)
    groups = [(cause + _hint(cause), len(rs), rs[0]) for cause, rs in shared.items()]
    return sorted(groups, key=lambda g: -g[1])


CASE_ID = re.compile(r"\s*(?:needed by|for)?\s*\b[\w:-]+\[[^\]]*\]")


def _reason(message: str) -> str:
    """A skip message's first line without the case id it names, so that one reason over many
    cases is counted once: ``adapter does not support feature(s) ['gqa'] needed by CASE``."""
    first = message.splitlines()[0] if message else "no reason given"
    return CASE_ID.sub("", first).strip() or first


def skip_reasons(results: list[Result]) -> list[tuple[str, str, int]]:
    """(check, reason, count) of the skipped results, one per distinct reason and check,
    most common first: pytest's ``-rs`` summary."""
    counts = Counter((r.check, _reason(r.message)) for r in results if r.status == SKIPPED)
    return [(check, reason, n) for (check, reason), n in counts.most_common()]
