"""Results of one run: one record per (op, check, case), their summary and the verdict."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from conformance.vocabulary import DTYPES, FEATURES

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
    # a case of the op's case matrix (or a dropout case): what it needs, for ``coverage``;
    # dtype "" where the result is not one case of known features (a property, a probe)
    features: tuple[str, ...] = ()
    dtype: str = ""

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


def verdict(results: list[Result], require: tuple[str, ...] = (),
            declared: dict[str, Any] | None = None) -> tuple[int, str]:
    """(exit code, one-line reason): 3 if the kit stopped on an internal error, else 1 on any
    failure, else 1 when the adapter was never exercised (see ``exercised``), else 1 when a
    ``require``d feature or dtype (``--require``; ``declared`` expands to those of
    ``declared``, a RunInfo's) was never exercised by a passed case (``require_problem``),
    else 0."""
    counts = summary(results)
    if counts.get("errors"):
        return EXIT_INTERNAL_ERROR, (f"{counts['errors']} internal error(s) of the kit, not of "
                                     f"the adapter: no verdict (tracebacks in the JSON report)")
    if counts[FAILED]:
        return EXIT_NOT_CONFORMANT, f"{counts[FAILED]} failed"
    ok, why = exercised(results)
    if not ok:
        return EXIT_NOT_CONFORMANT, why
    problem = require_problem(axis_counts(results), require, declared or {})
    if problem:
        return EXIT_NOT_CONFORMANT, problem
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
    whatever finished: a partial run is not a verdict (pytest also exits 2 on ctrl-C). The
    run's ``--require`` (``info.settings["require"]``) is judged against the adapter's
    declaration, except on one shard: only the merged run sees every case."""
    if info is None:
        return verdict(results)
    if info.settings.get("interrupted"):
        return EXIT_USAGE, INTERRUPTED.format(n=len(results))
    return verdict(results, judged_require(info), info.declared)


def judged_require(info: RunInfo) -> tuple[str, ...]:
    """The --require names this run's verdict judges: none on one shard of a run."""
    return () if info.settings.get("shard") else tuple(info.settings.get("require") or ())


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


# -- coverage: which declared features and dtypes the run exercised ------------------------

REQUIRE_DECLARED = "declared"  # --require declared: every feature and dtype declared
REQUIRE_NAMES = (*FEATURES, *DTYPES, REQUIRE_DECLARED)


@dataclass
class AxisCount:
    """The results of the cases that need one feature (or are in one dtype): passed, failed,
    ``refused`` (skipped because the adapter raised: by exception name) and ``not_called``
    (skipped by the kit without a call, say for another, undeclared feature: by cause, see
    ``skip_cause``). Counts add up across shards and pytest items."""

    passed: int = 0
    failed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    not_called: Counter[str] = field(default_factory=Counter)

    @property
    def exercised(self) -> int:
        """Cases that called the adapter and were judged: passed + failed."""
        return self.passed + self.failed

    @property
    def unsupported(self) -> int:
        """Cases the adapter refused (NotImplementedError, the contract's word for it)."""
        return sum(self.refused.values())

    def add(self, other: AxisCount) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.refused.update(other.refused)
        self.not_called.update(other.not_called)

    def as_dict(self) -> dict[str, Any]:
        return {"exercised": self.exercised, "passed": self.passed, "failed": self.failed,
                "unsupported": self.unsupported, "raised": dict(self.refused.most_common()),
                "not_called": dict(self.not_called.most_common())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AxisCount:
        def counter(key: str) -> Counter[str]:
            return Counter({str(k): int(v) for k, v in (data.get(key) or {}).items()})

        return cls(int(data.get("passed", 0)), int(data.get("failed", 0)), counter("raised"),
                   counter("not_called"))


RAISED = re.compile(r"adapter raised (\w+)")


def skip_cause(message: str) -> tuple[bool, str]:
    """(did the adapter raise, why the case was skipped in a few words): the exception it
    raised (``NotImplementedError``), else ``undeclared feature`` or ``undeclared dtype``
    where the kit did not call it, else the skip reason (``_reason``) without its
    ``unsupported:``."""
    raised = RAISED.search(message)
    if raised:
        return True, raised[1]
    if "does not support feature" in message or "needs feature" in message:
        return False, "undeclared feature"
    if "not in the adapter's dtypes" in message:
        return False, "undeclared dtype"
    return False, _reason(message).removeprefix("unsupported:").strip()[:60]


def axis_counts(results: list[Result]) -> dict[str, AxisCount]:
    """Feature or dtype → ``AxisCount`` over the results that are one case of known axes
    (``Result.dtype`` set): each counts for its dtype and for every feature it needs."""
    counts: dict[str, AxisCount] = {}
    for r in (r for r in results if r.dtype and r.status in (PASSED, FAILED, SKIPPED)):
        for name in (*r.features, r.dtype):
            found = counts.setdefault(name, AxisCount())
            if r.status == SKIPPED:
                raised, cause = skip_cause(r.message)
                (found.refused if raised else found.not_called)[cause] += 1
            else:
                found.passed += r.status == PASSED
                found.failed += r.status == FAILED
    return counts


def declared_axes(declared: dict[str, Any]) -> tuple[str, ...]:
    """The features (of any op) and dtypes a RunInfo's ``declared`` names, in vocabulary
    order: what the adapter advertises, by declaration or by its signature."""
    features = {f for fs in (declared.get("ops") or {}).values() for f in fs}
    dtypes = set(declared.get("dtypes") or ())
    return (*(f for f in FEATURES if f in features), *(d for d in DTYPES if d in dtypes))


def coverage(counts: dict[str, AxisCount], declared: dict[str, Any]) -> dict[str, AxisCount]:
    """``counts`` of every declared feature and dtype (an empty count where no case ran)."""
    return {name: counts.get(name, AxisCount()) for name in declared_axes(declared)}


def unsupported_axes(covered: dict[str, AxisCount]) -> list[str]:
    """The names no case exercised while the adapter refused some: advertised, and never
    supported."""
    return [name for name, c in covered.items() if not c.exercised and c.unsupported]


def expand_require(require: tuple[str, ...], declared: dict[str, Any],
                   counts: dict[str, AxisCount]) -> tuple[str, ...]:
    """``require``, each name once, with ``declared`` replaced by every declared feature and
    dtype that some case of this run needs (a name in ``counts``): a declared feature the
    kit has no case for (``lse`` today) is required only when named."""
    names: list[str] = []
    for name in require:
        names += ([n for n in declared_axes(declared) if n in counts]
                  if name == REQUIRE_DECLARED else [name])
    return tuple(dict.fromkeys(names))


def _causes(causes: Counter[str]) -> str:
    """``NotImplementedError`` for one cause, ``A: 40, B: 2`` for several."""
    if len(causes) == 1:
        return next(iter(causes))
    return ", ".join(f"{cause}: {n}" for cause, n in causes.most_common())


def axis_problem(name: str, c: AxisCount) -> str | None:
    """Why ``name`` was never exercised by a passed case; None when some case passed."""
    if c.passed:
        return None
    head = f"required {'dtype' if name in DTYPES else 'feature'} {name} was never exercised"
    if c.failed:
        return f"{head}: no {name} case passed ({c.failed} failed)"
    if c.unsupported:
        return f"{head}: every {name} case was unsupported ({_causes(c.refused)})"
    if c.not_called:
        return (f"{head}: no {name} case called the adapter ({sum(c.not_called.values())} "
                f"skipped: {_causes(c.not_called)})")
    return f"{head}: no case of this run needs it"


NOTHING_DECLARED_RAN = ("--require declared: no case of this run needs a declared feature or "
                       "dtype (the numeric, output_contract and dropout checks' cases do)")


def require_problem(counts: dict[str, AxisCount], require: tuple[str, ...],
                    declared: dict[str, Any]) -> str | None:
    """The first required name (``expand_require``) no passed case exercised, with why, and
    the others; None when a passed case exercised each."""
    names = expand_require(require, declared, counts)
    if REQUIRE_DECLARED in require and not any(n in counts for n in declared_axes(declared)):
        return NOTHING_DECLARED_RAN
    missing = [n for n in names if axis_problem(n, counts.get(n, AxisCount()))]
    if not missing:
        return None
    first = axis_problem(missing[0], counts.get(missing[0], AxisCount()))
    more = f"; also never exercised: {', '.join(missing[1:])}" if missing[1:] else ""
    return f"{first}{more}"
