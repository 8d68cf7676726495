"""Run the checks against one adapter: the single entry point the CLI and the plugin share."""

from __future__ import annotations

import platform
import traceback
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from importlib import metadata

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
from conformance.adapters.load import ResolvedAdapter, resolve
from conformance.checks import CHECK_NAMES, CHECKS, Check, RunContext
from conformance.checks.base import call_timeout
from conformance.checks.properties import PropertyFailure, property_dtype
from conformance.checks.property_bodies import PROPERTIES
from conformance.judging.tolerance import Tolerance
from conformance.ops import Unsupported
from conformance.profiles import PROFILES, Profile
from conformance.results import ERROR, FAILED, SKIPPED, Result, RunInfo

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


def check_only(names: Iterable[str]) -> tuple[str, ...]:
    """The --only names, validated: unknown names are a usage error."""
    names = tuple(names)
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(CHECK_NAMES)}")
    return names


def isolation_mode(config: RunConfig) -> str:
    """``inprocess`` or ``subprocess``: --isolate, else the profile's default."""
    return config.isolate or config.profile.isolate


def resolve_adapter(spec: str, config: RunConfig, framework: str | None = None
                    ) -> ResolvedAdapter:
    """Resolve ``spec`` the way the run will call it: under subprocess isolation the
    adapter is loaded in a worker only, never imported into this process."""
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

        return SubprocessInvoker(adapter, timeout=config.timeout)
    if adapter.isolated:
        raise ValueError(f"adapter {adapter.spec!r} was resolved in a worker process; "
                         "it can only be called with isolate='subprocess'")
    return InProcessInvoker(adapter)


def selected_checks(config: RunConfig) -> list[Check]:
    return [c for c in CHECKS if not config.only or c.name in config.only]


def iter_results(ctx: RunContext, checks: list[Check]) -> Generator[Result, None, None]:
    if ctx.adapter.unavailable:
        for op in ctx.adapter.ops:
            yield Result(op, "all", "-", SKIPPED, f"unsupported: {ctx.adapter.unavailable}")
        return
    budget = ctx.invoker.budget  # an isolating invoker's HangBudget
    for check in checks:
        for op in ctx.adapter.ops:
            if op in check.ops:
                for r in guarded(check, ctx, op):
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
        yield from check.run(ctx, op)
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


def run(adapter: ResolvedAdapter, config: RunConfig,
        progress: Callable[[Result], None] | None = None) -> tuple[list[Result], RunInfo]:
    """All selected checks on every op the adapter provides; results in table order."""
    invoker = make_invoker(adapter, config)
    ctx = RunContext(adapter, invoker, config.profile, config.seed, config.tolerance,
                     config.case, config.framework_flag, run_flags=run_flags(config))
    results: list[Result] = []
    stream, failed, stopped = iter_results(ctx, selected_checks(config)), 0, None
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
    finally:
        stream.close()  # a check stopped by --maxfail ends here, before its worker is closed
        invoker.close()
    info = RunInfo(
        adapter=adapter.spec, profile=config.profile.name, seed=config.seed,
        kit_version=conformance.__version__, versions=versions(adapter),
        conventions=dict(ctx.observed),
        declared={"name": adapter.name, "framework": getattr(adapter.framework, "name", "custom"),
                  "device": adapter.device, "dtypes": list(adapter.dtypes),
                  "conventions": adapter.conventions,
                  "declared_conventions": adapter.declared_conventions,
                  "ops": {op: sorted(b.features) for op, b in adapter.ops.items()}},
        settings={"k": config.tolerance.k, "atol": config.tolerance.atol,
                  "isolate": invoker.mode,
                  "timeout": config.timeout, "only": list(config.only), "case": config.case,
                  "maxfail": config.maxfail, "stopped_early": stopped,
                  **invoker.settings()},
    )
    return results, info
