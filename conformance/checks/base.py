"""What every check receives, and the one way a result message is written."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.adapters.frameworks import OutputTypeError
from conformance.adapters.invoke import AdapterError, Invoker, Outcome
from conformance.adapters.load import ResolvedAdapter
from conformance.cases import Case
from conformance.errors import Unsupported
from conformance.judging.tolerance import Tolerance
from conformance.profiles import Profile
from conformance.results import FAILED, PASSED, SKIPPED, Result


@dataclass
class RunContext:
    adapter: ResolvedAdapter
    invoker: Invoker
    profile: Profile
    seed: int
    tolerance: Tolerance = field(default_factory=Tolerance)
    case_filter: str | None = None
    framework_flag: str | None = None
    observed: dict[str, Any] = field(default_factory=dict)
    group: str | None = None  # "<op>-<scenario>": only that scenario's cases (pytest items)
    run_flags: tuple[str, ...] = ()  # --isolate/--timeout as given, for the repro line
    calls: int = 0  # adapter calls that returned, counted by properties.sdpa_outcome
    shard_filter: Callable[[str, str], bool] | None = None  # (op, case id): in this shard

    def repro(self, check: str, case: str | None = None) -> str:
        words = ["attnconf", "run", "--adapter", self.adapter.spec]
        if self.framework_flag:
            words += ["--framework", self.framework_flag]
        words += ["--profile", self.profile.name, "--seed", str(self.seed), "--only", check]
        if case:
            words += ["--case", case]
        words += list(self.run_flags)
        if self.tolerance.k != Tolerance().k:
            words += ["--k", repr(self.tolerance.k)]
        if self.tolerance.atol is not None:
            words += ["--atol", repr(self.tolerance.atol)]
        return shlex.join(words)

    def wants(self, case: Case) -> bool:
        in_group = self.group is None or self.group == f"{case.op}-{case.scenario}"
        in_shard = self.shard_filter is None or self.shard_filter(case.op, case.id)
        return in_group and in_shard and (self.case_filter is None or self.case_filter == case.id)

    def call(self, op: str, args: list, kwargs: dict, size: int = 1) -> Outcome:
        return self.invoker.call(op, args, kwargs, timeout=self.timeout_for(size))

    def timeout_for(self, size: int) -> float:
        return call_timeout(self.profile, size)


def call_timeout(profile: Profile, size: int) -> float:
    """Per-call timeout: scales with the number of score elements, at least 10 s."""
    largest = 2 * profile.long_length ** 2
    return max(10.0, profile.case_timeout * min(1.0, size / largest))


@dataclass(frozen=True)
class Check:
    name: str
    ops: tuple[str, ...]
    run: Callable[[RunContext, str], Iterable[Result]]
    description: str


def headline(op: str, check: str, what: str) -> str:
    return f"{op} / {check}: {what}"


def result(ctx: RunContext, op: str, check: str, case_id: str, status: str, message: str = "",
           *, seed: int | None = None, max_abs_err=None, bound=None) -> Result:
    repro = ctx.repro(check, case_id if status != PASSED else None) if status == FAILED else ""
    if status == FAILED:
        message = f"{message}\nrepro: {repro}"
    return Result(op, check, case_id, status, message, max_abs_err, bound, repro, seed)


def guarded_call(ctx: RunContext, op: str, check: str, case_id: str, describe: str,
                 args: list, kwargs: dict, size: int = 1) -> Outcome | Result:
    """The call's outcome, or the skipped/failed result the call produced instead."""
    try:
        return ctx.call(op, args, kwargs, size)
    except Unsupported as exc:
        return result(ctx, op, check, case_id, SKIPPED, f"unsupported: {exc}")
    except (AdapterError, OutputTypeError) as exc:
        return result(ctx, op, check, case_id, FAILED, headline(op, check, describe) + f"\n{exc}")
    except Exception as exc:  # conversion of a garbage output, a broken worker, …
        return result(ctx, op, check, case_id, FAILED,
                      headline(op, check, describe) +
                      f"\nharness could not use the adapter's output: "
                      f"{type(exc).__name__}: {exc}")
