"""Run the checks against one adapter: the single entry point the CLI and the plugin share."""

from __future__ import annotations

import dataclasses
import functools
import platform
import re
import time
import traceback
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
from hypothesis.errors import Flaky

import conformance
from conformance.adapters.frameworks import OutputTypeError
from conformance.adapters.invoke import (
    AdapterError,
    InProcessInvoker,
    Invoker,
    StopExamples,
    crash_reports,
    describe_exception,
)
from conformance.adapters.load import ResolvedAdapter, check_installed, did_you_mean, resolve
from conformance.cases import Case
from conformance.checks import CHECK_NAMES, CHECKS, Check, RunContext
from conformance.checks.base import call_timeout
from conformance.checks.numeric import op_cases
from conformance.checks.properties import PropertyFailure, property_dtype
from conformance.checks.property_bodies import PROPERTIES
from conformance.errors import Unsupported
from conformance.judging.tolerance import Tolerance
from conformance.ops import op_specs
from conformance.profiles import PROFILES, Profile
from conformance.results import ERROR, FAILED, REQUIRE_NAMES, SKIPPED, Result, RunInfo
from conformance.shard import Shard

DEFAULT_SEED = 20260101
HYPOTHESIS_CHECKS = frozenset(p.name for p in PROPERTIES)


@dataclass(frozen=True)
class RunConfig:
    profile: Profile = PROFILES["ci"]
    seed: int = DEFAULT_SEED
    only: tuple[str, ...] = ()
    case: str | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)
    isolate: str | None = None  # None = the profile's default
    timeout: float | None = None  # None = per-case default scaled by size
    framework_flag: str | None = None
    maxfail: int | None = None  # stop after this many failed results (--maxfail N, -x)
    shard: Shard | None = None  # --shard I/N: only this part of the run's cases
    max_time: float | None = None  # --max-time S: the whole run's budget in seconds
    require: tuple[str, ...] = ()  # --require: features/dtypes a passed case must exercise


def check_only(names: Iterable[str]) -> tuple[str, ...]:
    """The --only names, validated: unknown names are a usage error."""
    names = tuple(names)
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        hint = did_you_mean(unknown[0], CHECK_NAMES)
        raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(CHECK_NAMES)}{hint}")
    return names


def check_require(names: Iterable[str]) -> tuple[str, ...]:
    """The --require names, validated: a feature, a dtype or ``declared`` (all the adapter
    declares); anything else is a usage error naming the valid names."""
    names = tuple(names)
    unknown = [n for n in names if n not in REQUIRE_NAMES]
    if unknown:
        hint = did_you_mean(unknown[0], REQUIRE_NAMES)
        raise ValueError(f"--require: unknown feature or dtype {unknown[0]!r}; known: "
                         f"{', '.join(REQUIRE_NAMES)}{hint}")
    return names


def isolation_mode(config: RunConfig) -> str:
    """``inprocess`` or ``subprocess``: --isolate, else the profile's default."""
    return config.isolate or config.profile.isolate


def resolve_adapter(spec: str, config: RunConfig, framework: str | None = None
                    ) -> ResolvedAdapter:
    """Resolve ``spec`` the way the run will call it: under subprocess isolation the
    adapter is loaded in a worker only, never imported into this process. A framework that is
    not installed is a load error here, before any worker starts."""
    check_installed(spec, framework)
    if isolation_mode(config) == "subprocess":
        from conformance.adapters.isolated.parent import resolve_isolated

        return resolve_isolated(spec, framework)
    return resolve(spec, framework=framework)


def run_flags(config: RunConfig) -> tuple[str, ...]:
    """The isolation flags a repro must repeat (a hang must not re-run in-process)."""
    flags = ("--isolate", config.isolate) if config.isolate else ()
    return flags + (("--timeout", f"{config.timeout:g}") if config.timeout else ())


def timeout_range(config: RunConfig) -> tuple[float, float]:
    """The per-call timeouts the checks use without --timeout: (smallest, largest case)."""
    profile = config.profile
    return call_timeout(profile, 0), call_timeout(profile, 2 * profile.long_length ** 2)


def make_invoker(adapter: ResolvedAdapter, config: RunConfig) -> Invoker:
    if isolation_mode(config) == "subprocess":
        from conformance.adapters.isolated.parent import SubprocessInvoker

        deadline = time.monotonic() + config.max_time if config.max_time else None
        return SubprocessInvoker(adapter, timeout=config.timeout, deadline=deadline,
                                 max_time=config.max_time)
    if adapter.isolated:
        raise ValueError(f"adapter {adapter.spec!r} was resolved in a worker process; "
                         "it can only be called with isolate='subprocess'")
    return InProcessInvoker(adapter)


def selected_checks(config: RunConfig) -> list[Check]:
    return [c for c in CHECKS if not config.only or c.name in config.only]


def sharded(check: Check, ctx: RunContext, op: str, shard: Shard | None) -> Iterator[Result]:
    """``guarded`` restricted to ``shard``: a whole-check unit elsewhere is not run, a
    case-by-case check runs only this shard's cases (``RunContext.wants``), and any result
    outside the shard (a check's blanket skip) is dropped, so shards never overlap."""
    if shard is None:
        yield from guarded(check, ctx, op)
        return
    if not shard.has_check(op, check.name):
        return
    ctx.shard_filter = lambda case_op, case_id: shard.has(case_op, check.name, case_id)
    try:
        yield from (r for r in guarded(check, ctx, op) if shard.has(r.op, r.check, r.case))
    finally:
        ctx.shard_filter = None


def iter_results(ctx: RunContext, checks: list[Check],
                 shard: Shard | None = None) -> Generator[Result, None, None]:
    if ctx.adapter.unavailable:
        for op in ctx.adapter.ops:
            yield Result(op, "all", "-", SKIPPED, f"unsupported: {ctx.adapter.unavailable}")
        return
    budget = ctx.invoker.budget  # an isolating invoker's HangBudget
    for check in checks:
        for op in ctx.adapter.ops:
            if op in check.ops:
                for r in sharded(check, ctx, op, shard):
                    if budget is not None and r.status == FAILED:
                        budget.attribute(f"{r.check} {r.case}")  # names a lost call's case
                    yield r


def guarded(check: Check, ctx: RunContext, op: str) -> Iterator[Result]:
    """``check.run``; should the check itself stop with an exception, that is one result and
    the run goes on with the next check: failed when the exception is the adapter's (see
    ``adapter_cause``), an ERROR of the kit, with its traceback, otherwise.

    Around a hypothesis-driven check an isolating invoker stops the check at the first
    timeout or dead worker (``StopExamples``) instead of letting hypothesis shrink, which
    would cost one timeout or worker restart per example."""
    stops = check.name in HYPOTHESIS_CHECKS
    if stops:
        ctx.invoker.stop_examples = True
    try:
        yield from annotated(check.run(ctx, op), ctx)
    except StopExamples as stop:
        yield Result(op, check.name, f"hypothesis[{property_dtype(ctx)}]", FAILED,
                     f"{op} / {check.name}: {check.description}\n{stop.error}\nhypothesis "
                     f"stopped at that example: shrinking would cost one timeout or worker "
                     f"restart per example\nrepro: {ctx.repro(check.name)}",
                     repro=ctx.repro(check.name))
    except Exception as exc:
        yield stopped(check, ctx, op, exc)
    finally:
        if stops:
            ctx.invoker.stop_examples = False


@functools.lru_cache(maxsize=64)
def _matrix(op: str, profile: Profile, seed: int) -> dict[str, Case]:
    return {case.id: case for case in op_cases(op, profile, seed)}


DROPOUT_ID = re.compile(r"^dropout\[(\w+)-")  # the dropout check's ids: dropout[float32-p0.2]


def with_axes(r: Result, ctx: RunContext) -> Result:
    """``r`` with the features and dtype of its case (``results.axis_counts`` counts them):
    a case of the op's matrix (numeric, output_contract) or of the dropout check; any other
    result (a property, a probe, a golden case) is returned as it is."""
    case = _matrix(r.op, ctx.profile, ctx.seed).get(r.case) if r.op in op_specs() else None
    if case is not None:
        return dataclasses.replace(r, features=tuple(sorted(case.features)), dtype=case.dtype)
    dropout = DROPOUT_ID.match(r.case) if r.check == "dropout" else None
    if dropout:
        return dataclasses.replace(r, features=("dropout",), dtype=dropout[1])
    return r


def annotated(results: Iterable[Result], ctx: RunContext) -> Iterator[Result]:
    """``with_axes`` of each result; closing this closes the check's own generator at once
    (--maxfail stops a check before its worker is closed)."""
    try:
        for r in results:
            yield with_axes(r, ctx)
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


ADAPTER_EXCEPTIONS = (AdapterError, OutputTypeError, PropertyFailure, Flaky)
TRACEBACK_LIMIT = 20_000  # characters kept, from the end: the innermost frames say where


def adapter_cause(exc: BaseException) -> BaseException | None:
    """The adapter's exception that stopped a check: ``exc`` itself or one inside an exception
    group (hypothesis wraps what it raises) when it is the adapter's (it raised, returned
    something unusable, broke a property, or was nondeterministic: hypothesis's Flaky), or
    NotImplementedError (``Unsupported``); None when the kit itself failed."""
    if isinstance(exc, (*ADAPTER_EXCEPTIONS, Unsupported)):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = adapter_cause(inner)
        if found is not None:
            return found
    return None


def stopped(check: Check, ctx: RunContext, op: str, exc: Exception) -> Result:
    """The one result of a check that stopped on ``exc``: skipped if the adapter said
    unsupported, failed if the exception is the adapter's, else an internal error of the kit."""
    cause, repro = adapter_cause(exc), ctx.repro(check.name)
    head = f"{op} / {check.name}: the check stopped on"
    if isinstance(cause, Unsupported):
        return Result(op, check.name, "check-error", SKIPPED, f"unsupported: {cause}")
    if cause is not None:
        inner = f"\n{describe_exception(cause)}" if cause is not exc else ""
        return Result(op, check.name, "check-error", FAILED,
                      f"{head} {describe_exception(exc)}{inner}\nrepro: {repro}", repro=repro)
    trace = "".join(traceback.format_exception(exc))[-TRACEBACK_LIMIT:]
    return Result(op, check.name, "check-error", ERROR,
                  f"{head} an internal error of the kit, not the adapter's failure: "
                  f"{describe_exception(exc)}\nplease report it with this traceback "
                  f"(also in the JSON report)\nrepro: {repro}", repro=repro, traceback=trace)


def versions(adapter: ResolvedAdapter) -> dict[str, str]:
    found = {"attention-conformance": conformance.__version__, "numpy": np.__version__,
             "python": platform.python_version()}
    try:  # from the installed metadata: importing torch here would cost seconds for nothing
        found["torch"] = metadata.version("torch")
    except metadata.PackageNotFoundError:
        pass
    version = getattr(adapter.framework, "version", None)
    if callable(version):
        found[f"framework:{getattr(adapter.framework, 'name', 'custom')}"] = version()
    return found


# after --max-time has run out, cases still fail fast ("not run") for at most this long before
# the rest of the run is dropped; in-process calls cannot be cut, so there it is dropped at once
BUDGET_GRACE_S = 15.0
OUT_OF_TIME = "not run: the run's time budget (--max-time {s:g}) ran out"


def out_of_time(config: RunConfig, results: list[Result], elapsed: float, in_process: bool
                ) -> str | None:
    """The summary's words once --max-time has run out, else None. Past the budget (plus
    ``BUDGET_GRACE_S`` under isolation, where each refused call fails at once) the run stops."""
    if not config.max_time or elapsed < config.max_time + (0 if in_process else BUDGET_GRACE_S):
        return None
    return (f"{OUT_OF_TIME.format(s=config.max_time)} after {len(results)} results: the "
            f"remaining checks and cases were not run")


def budget_note(config: RunConfig, results: list[Result]) -> str | None:
    """``not run: … ran out (N results)`` when calls were refused for the run's budget."""
    if not config.max_time:
        return None
    text = OUT_OF_TIME.format(s=config.max_time)
    refused = sum(r.status == FAILED and text in r.message for r in results)
    return f"{text} ({refused} results not run)" if refused else None


def declared_of(adapter: ResolvedAdapter) -> dict[str, Any]:
    """What the adapter declares (or its signature says), as every report records it: the
    features and dtypes here are what ``results.coverage`` holds a run to."""
    return {"name": adapter.name, "framework": getattr(adapter.framework, "name", "custom"),
            "device": adapter.device, "dtypes": list(adapter.dtypes),
            "conventions": adapter.conventions,
            "declared_conventions": adapter.declared_conventions,
            "ops": {op: sorted(b.features) for op, b in adapter.ops.items()}}


def run(adapter: ResolvedAdapter, config: RunConfig,
        progress: Callable[[Result], None] | None = None) -> tuple[list[Result], RunInfo]:
    """All selected checks on every op the adapter provides; results in table order."""
    invoker = make_invoker(adapter, config)
    ctx = RunContext(adapter, invoker, config.profile, config.seed, config.tolerance,
                     config.case, config.framework_flag, run_flags=run_flags(config))
    results: list[Result] = []
    stream = iter_results(ctx, selected_checks(config), config.shard)
    failed, stopped, interrupted = 0, None, False
    started, clock = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.monotonic()
    try:
        in_process = invoker.mode == "inprocess"
        with crash_reports() if in_process else nullcontext():
            for r in stream:
                results.append(r)
                if progress:
                    progress(r)
                failed += r.status == FAILED
                if config.maxfail and failed >= config.maxfail:
                    stopped = (f"stopped early after {failed} failure{'s' * (failed != 1)} "
                               f"(--maxfail {config.maxfail}): the remaining checks and cases "
                               f"were not run")
                    break
                stopped = out_of_time(config, results, time.monotonic() - clock, in_process)
                if stopped:
                    break
    except KeyboardInterrupt:  # ctrl-C: what finished is reported, marked interrupted
        interrupted = True
    finally:
        stream.close()  # a check stopped by --maxfail ends here, before its worker is closed
        invoker.close()
    stopped = stopped or budget_note(config, results)
    info = RunInfo(
        adapter=adapter.spec, profile=config.profile.name, seed=config.seed,
        kit_version=conformance.__version__, versions=versions(adapter),
        conventions=dict(ctx.observed),
        declared=declared_of(adapter),
        settings={"k": config.tolerance.k, "atol": config.tolerance.atol,
                  "isolate": invoker.mode,
                  "timeout": config.timeout, "only": list(config.only), "case": config.case,
                  "maxfail": config.maxfail, "stopped_early": stopped,
                  "max_time": config.max_time, "require": list(config.require),
                  "shard": None if config.shard is None else str(config.shard),
                  "interrupted": interrupted, "started": started,
                  "duration_s": round(time.monotonic() - clock, 3),
                  **invoker.settings()},
    )
    return results, info
