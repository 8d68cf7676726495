"""pytest plugin: ``pytest --attn-adapter SPEC`` runs the harness's checks as pytest items.

One item per op × check, and the numeric matrix one item per scenario:
``attnconf[torch]::sdpa-numeric-causal``, ``attnconf[torch]::sdpa-masked_keys``.
The option may be given more than once: each adapter gets its own collector,
so one session can check two adapters. Adapters are resolved at configure
time, never at import, and the report header names each one, its framework
and version. An item passes when its cases passed (some may be skipped), is
skipped when every case was, and fails with the harness's own messages
(repro command included). A check that stops on an internal error of the
kit is an *error* of its item (raised at setup, where the check runs), never a
failure of the adapter. Items are collected identically on every
pytest-xdist worker, so ``-n 2`` gives the same verdict as ``-n 0``; and, as
with ``attnconf run``, a session in which no numeric case and no property
exercised an adapter fails. ``--attn-k`` and ``--attn-atol`` must be finite
and ≥ 0 (a usage error otherwise); an override is shown in the header and
the terminal summary. The conventions the adapter was observed to follow
are printed in the terminal summary, and so are the case counts as ``attnconf
run`` gives them (items group cases). ``--attn-shard I/N`` takes the split of
``attnconf run --shard I/N`` (``conformance.shard``): an item whose cases are
all in other shards is not collected. The terminal summary names each declared
feature and dtype no case exercised (``unsupported: …``, as ``attnconf run``'s
verdict line), and ``--attn-require FEATURE`` (``attnconf run --require``) fails
the session when no passed case exercised it (not with ``--attn-shard``: one
shard does not see every case).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from conformance.adapters.load import AdapterLoadError, ResolvedAdapter
from conformance.checks import CHECKS, Check, RunContext
from conformance.errors import ConformanceFailure, KitInternalError
from conformance.judging.tolerance import DEFAULT_K, Tolerance
from conformance.ops import op_specs
from conformance.profiles import PROFILES
from conformance.results import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    AxisCount,
    Result,
    axis_counts,
    coverage,
    is_core,
    require_problem,
    summary,
    unsupported_axes,
)
from conformance.runner import (
    DEFAULT_SEED,
    RunConfig,
    check_require,
    declared_of,
    make_invoker,
    resolve_adapter,
    sharded,
    versions,
)
from conformance.shard import parse_shard

ADAPTERS_KEY = pytest.StashKey[list[ResolvedAdapter]]()
CONFIG_KEY = pytest.StashKey[RunConfig]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("attention-conformance")
    group.addoption("--attn-adapter", metavar="SPEC", action="append", default=[],
                    help="check this adapter (built-in name, module:attr, file.py:attr, "
                         "entry-point name); repeat to check several")
    group.addoption("--attn-framework", default=None, help="numpy or torch")
    group.addoption("--attn-profile", default="ci", choices=sorted(PROFILES))
    group.addoption("--attn-seed", type=int, default=DEFAULT_SEED)
    group.addoption("--attn-k", type=float, default=DEFAULT_K)
    group.addoption("--attn-atol", type=float, default=None)
    group.addoption("--attn-isolate", default="inprocess", choices=("inprocess", "subprocess"))
    group.addoption("--attn-shard", metavar="I/N", default=None,
                    help="only part I of N of the cases, the same split as attnconf run --shard")
    group.addoption("--attn-require", metavar="FEATURE", action="append", default=[],
                    help="fail the session unless a passed case exercised this feature or "
                         "dtype (repeatable, or comma-separated; `declared`: all the adapter "
                         "declares), as attnconf run --require")


def pytest_configure(config: pytest.Config) -> None:
    specs = config.getoption("--attn-adapter", default=None) or []
    if not specs:
        return
    from conformance.frontends.cli import number_option

    framework = config.getoption("--attn-framework")
    try:
        atol = config.getoption("--attn-atol")
        tolerance = Tolerance(k=number_option("--attn-k", config.getoption("--attn-k")),
                              atol=None if atol is None else number_option("--attn-atol", atol))
        shard = parse_shard(config.getoption("--attn-shard"))
        require = check_require(n for value in config.getoption("--attn-require")
                                for n in value.split(",") if n)
        if shard and require:
            raise ValueError("--attn-require is judged over every case, and one shard has part "
                             "of them: run the shards with attnconf run --shard and give "
                             "--require to attnconf merge")
    except ValueError as exc:
        raise pytest.UsageError(f"attnconf: {exc}") from None
    run = RunConfig(
        profile=PROFILES[config.getoption("--attn-profile")],
        seed=config.getoption("--attn-seed"),
        tolerance=tolerance,
        isolate=config.getoption("--attn-isolate"),
        framework_flag=framework, shard=shard, require=require)
    try:
        # under --attn-isolate subprocess the adapter is never imported into pytest
        config.stash[ADAPTERS_KEY] = [resolve_adapter(spec, run, framework=framework)
                                      for spec in specs]
    except AdapterLoadError as exc:
        raise pytest.UsageError(f"attnconf: {exc}") from None
    config.stash[CONFIG_KEY] = run
    config.pluginmanager.register(SessionVerdict(config), "attnconf-session-verdict")


def pytest_report_header(config: pytest.Config) -> list[str]:
    if ADAPTERS_KEY not in config.stash:
        return []
    run = config.stash[CONFIG_KEY]
    lines = []
    for adapter in config.stash[ADAPTERS_KEY]:
        found = ", ".join(f"{k} {v}" for k, v in versions(adapter).items())
        lines.append(f"attnconf adapter: {adapter.spec} ({adapter.name}), framework "
                     f"{getattr(adapter.framework, 'name', 'custom')}; profile "
                     f"{run.profile.name}, seed {run.seed}{overridden(run)}; {found}")
    return lines


def overridden(run: RunConfig) -> str:
    """``, overridden: k=3, atol=1e-05`` when --attn-k/--attn-atol changed a default."""
    words = [f"k={run.tolerance.k:g}"] if run.tolerance.k != DEFAULT_K else []
    words += [f"atol={run.tolerance.atol:g}"] if run.tolerance.atol is not None else []
    return f", overridden: {', '.join(words)}" if words else ""


def groups(adapter: ResolvedAdapter, run: RunConfig) -> Iterator[tuple[Check, str, str | None]]:
    """(check, op, case group) for every item; the numeric matrix is grouped by scenario."""
    for check in CHECKS:
        for op in adapter.ops:
            if op not in check.ops or (run.shard and not run.shard.has_check(op, check.name)):
                continue
            if check.name != "numeric":
                yield check, op, None
                continue
            cases = [c for c in op_specs()[op].cases(run.profile, run.seed)
                     if run.shard is None or run.shard.has(op, check.name, c.id)]
            for scenario in dict.fromkeys(c.scenario for c in cases):
                yield check, op, f"{op}-{scenario}"


class AdapterCollector(pytest.Collector):
    """All items of one adapter: ``attnconf[SPEC]``."""

    def __init__(self, *, adapter: ResolvedAdapter, **kwargs) -> None:
        super().__init__(**kwargs)
        self.adapter = adapter

    def collect(self) -> list[ConformanceItem]:
        run = self.config.stash[CONFIG_KEY]
        items = []
        for check, op, group in groups(self.adapter, run):
            label = (group.replace(f"{op}-", f"{op}-{check.name}-", 1) if group
                     else f"{op}-{check.name}")
            items.append(ConformanceItem.from_parent(self, name=label, check=check, op=op,
                                                     group=group))
        return items

    def reportinfo(self):
        return f"attnconf[{self.adapter.spec}]", 0, self.name


class ConformanceItem(pytest.Item):
    def __init__(self, *, check: Check, op: str, group: str | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.check, self.op, self.group = check, op, group
        assert isinstance(self.parent, AdapterCollector)  # from_parent in its collect()
        self.adapter: ResolvedAdapter = self.parent.adapter

    def setup(self) -> None:
        """Run the check here, so that an internal error of the kit is this item's *error*
        (pytest's word for what went wrong outside the test), not its failure."""
        self.results: list[Result] = []
        if self.adapter.unavailable:
            return  # skipped in runtest, where the session verdict sees it
        run = self.config.stash[CONFIG_KEY]
        invoker = make_invoker(self.adapter, run)
        ctx = RunContext(self.adapter, invoker, run.profile, run.seed, run.tolerance,
                         framework_flag=run.framework_flag, group=self.group)
        try:
            self.results = list(sharded(self.check, ctx, self.op, run.shard))
        finally:
            invoker.close()
        for name, observed in ctx.observed.items():
            self.user_properties.append((f"attnconf-observed-{name}", repr(observed)))
        counts = summary(self.results)
        self.user_properties.append(
            ("attnconf-counts", f"{counts[PASSED]} {counts[FAILED]} {counts[SKIPPED]}"))
        core = [r for r in self.results if is_core(r)]
        axes = {name: c.as_dict() for name, c in axis_counts(self.results).items()}
        self.user_properties += [
            ("attnconf-axes", json.dumps(axes)),  # a string: xdist sends it to the controller
            ("attnconf-core", bool(core)),
            ("attnconf-exercised", any(r.status == PASSED and (r.check == "numeric" or r.examples)
                                       for r in core))]
        errors = [r for r in self.results if r.status == ERROR]
        if errors:
            raise KitInternalError(errors)

    def runtest(self) -> None:
        if self.adapter.unavailable:
            self.skip(f"unsupported: {self.adapter.unavailable}")
        results = self.results
        failed = [r for r in results if r.status == FAILED]
        if failed:
            raise ConformanceFailure(failed)
        if not results:
            self.skip("no case of this check applies to the adapter in this profile")
        if not any(r.status == PASSED for r in results):
            self.skip(next(r.message for r in results if r.status == SKIPPED))

    def skip(self, reason: str) -> None:
        """Skip, reported at this item (``-rs`` names it) rather than at this line."""
        raise pytest.skip.Exception(f"{self.name}: {reason}", _use_item_location=True)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ConformanceFailure):
            return "\n\n".join(r.message for r in excinfo.value.results)
        return super().repr_failure(excinfo)

    def _repr_failure_py(self, excinfo, style=None):
        # pytest formats an error at setup with this (not repr_failure): the kit's own
        # traceback, where it stopped, is what a bug report needs; this plugin's frames are not
        if isinstance(excinfo.value, KitInternalError):
            return "\n\n".join(f"{r.message}\n{r.traceback}" for r in excinfo.value.results)
        return super()._repr_failure_py(excinfo, style)

    def reportinfo(self):
        return f"attnconf[{self.adapter.spec}]", 0, self.name


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so those select among these items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if ADAPTERS_KEY not in config.stash:
        return
    for adapter in config.stash[ADAPTERS_KEY]:
        name = f"attnconf[{adapter.spec}]"
        collector = AdapterCollector.from_parent(session, name=name, nodeid=name,
                                                 adapter=adapter)
        found = collector.collect()
        # a collect report, so the terminal counts these items like any others
        result: list[pytest.Item | pytest.Collector] = list(found)
        config.hook.pytest_collectreport(
            report=pytest.CollectReport(collector.nodeid, "passed", None, result))
        items.extend(found)


class SessionVerdict:
    """Registered when adapters are given: per adapter, was it exercised (as
    ``results.exercised``: a numeric case or a property with examples passed, or, where no
    such item ran, any item did not skip), and what conventions were observed (from the
    reports: works on the xdist controller too)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        # adapter → [a core item ran, a core item exercised it, any item did not skip]
        self.seen: dict[str, list[bool]] = {}
        self.observed: dict[str, dict[str, str]] = {}
        self.case_counts: dict[str, list[int]] = {}  # adapter → passed, failed, skipped cases
        self.axes: dict[str, dict[str, AxisCount]] = {}  # adapter → feature/dtype → counts
        self.declared = {f"attnconf[{a.spec}]": declared_of(a)
                         for a in config.stash[ADAPTERS_KEY]}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        adapter = report.nodeid.split("::", 1)[0]
        if not adapter.startswith("attnconf[") or report.when != "call":
            return
        found = dict(report.user_properties)
        seen = self.seen.setdefault(adapter, [False, False, False])
        seen[0] = seen[0] or bool(found.get("attnconf-core"))
        seen[1] = seen[1] or bool(found.get("attnconf-exercised"))
        seen[2] = seen[2] or not report.skipped
        counted = [int(n) for n in str(found.get("attnconf-counts", "0 0 0")).split()]
        totals = self.case_counts.setdefault(adapter, [0, 0, 0])
        self.case_counts[adapter] = [a + b for a, b in zip(totals, counted, strict=True)]
        axes = self.axes.setdefault(adapter, {})
        for name, data in json.loads(str(found.get("attnconf-axes") or "{}")).items():
            axes.setdefault(name, AxisCount()).add(AxisCount.from_dict(data))
        for key, value in report.user_properties:
            if key.startswith("attnconf-observed-"):
                name = key.removeprefix("attnconf-observed-")
                self.observed.setdefault(adapter, {})[name] = str(value)  # a repr already

    def never_exercised(self) -> list[str]:
        return [adapter for adapter, (core, exercised, unskipped) in self.seen.items()
                if not (exercised or (not core and unskipped))]

    def require_problems(self) -> dict[str, str]:
        """Adapter → why --attn-require is not met (``results.require_problem``)."""
        require = self.config.stash[CONFIG_KEY].require
        found = {adapter: require_problem(self.axes.get(adapter, {}), require, declared)
                 for adapter, declared in self.declared.items()} if require else {}
        return {adapter: problem for adapter, problem in found.items() if problem}

    def unsupported(self, adapter: str) -> list[str]:
        return unsupported_axes(coverage(self.axes.get(adapter, {}), self.declared[adapter]))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        on_worker = hasattr(self.config, "workerinput")
        failing = self.never_exercised() or self.require_problems()
        if not on_worker and failing and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        changed = overridden(self.config.stash[CONFIG_KEY])
        if changed:
            terminalreporter.write_line(f"attnconf{changed}")
        for adapter, found in self.observed.items():
            terminalreporter.write_sep("-", f"{adapter}: conventions observed")
            for name, value in sorted(found.items()):
                terminalreporter.write_line(f"{name}: {value}")
        for adapter, (p, f, s) in self.case_counts.items():
            missing = self.unsupported(adapter)
            terminalreporter.write_line(
                f"{adapter}: {p} passed, {f} failed, {s} skipped (cases, counted as "
                f"`attnconf run` counts them; the items above group them by check and scenario)"
                + (f"; unsupported: {', '.join(missing)}" if missing else ""))
        for adapter, problem in self.require_problems().items():
            terminalreporter.write_line(f"{adapter}: NOT CONFORMANT ({problem}); the session "
                                        f"fails, as `attnconf run --require` would", red=True)
        for adapter in self.never_exercised():
            terminalreporter.write_line(
                f"{adapter}: the adapter was never exercised (no numeric case and no property "
                f"passed); the session fails, as `attnconf run` would", red=True)
