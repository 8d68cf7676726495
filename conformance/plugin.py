"""pytest plugin: ``pytest --attn-adapter SPEC`` runs the harness's checks as pytest items.

One item per op × check, and the numeric matrix one item per scenario:
``attnconf[torch]::sdpa-numeric-causal``, ``attnconf[torch]::sdpa-masked_keys``.
The option may be given more than once: each adapter gets its own collector,
so one session can check two adapters. Adapters are resolved at configure
time, never at import, and the report header names each one, its framework
and version. An item passes when its cases passed (some may be skipped), is
skipped when every case was, and fails with the harness's own messages
(repro command included). Items are collected identically on every
pytest-xdist worker, so ``-n 2`` gives the same verdict as ``-n 0``; and, as
with ``attnconf run``, a session in which every item of an adapter was
skipped fails (the adapter was never exercised). The conventions the
adapter was observed to follow are printed in the terminal summary.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.adapters import AdapterLoadError, ResolvedAdapter
from conformance.checks import CHECKS, Check, RunContext
from conformance.ops import op_specs
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED, SKIPPED
from conformance.runner import (
    DEFAULT_SEED,
    RunConfig,
    make_invoker,
    resolve_adapter,
    versions,
)
from conformance.tolerance import DEFAULT_K, Tolerance

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


def pytest_configure(config: pytest.Config) -> None:
    specs = config.getoption("--attn-adapter", default=None) or []
    if not specs:
        return
    framework = config.getoption("--attn-framework")
    run = RunConfig(
        profile=PROFILES[config.getoption("--attn-profile")],
        seed=config.getoption("--attn-seed"),
        tolerance=Tolerance(k=config.getoption("--attn-k"), atol=config.getoption("--attn-atol")),
        isolate=config.getoption("--attn-isolate"),
        framework_flag=framework)
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
                     f"{run.profile.name}, seed {run.seed}; {found}")
    return lines


def groups(adapter: ResolvedAdapter, run: RunConfig) -> Iterator[tuple[Check, str, str | None]]:
    """(check, op, case group) for every item; the numeric matrix is grouped by scenario."""
    for check in CHECKS:
        for op in adapter.ops:
            if op not in check.ops:
                continue
            if check.name != "numeric":
                yield check, op, None
                continue
            cases = op_specs()[op].cases(run.profile, run.seed)
            for scenario in dict.fromkeys(c.scenario for c in cases):
                yield check, op, f"{op}-{scenario}"


class AdapterCollector(pytest.Collector):
    """All items of one adapter: ``attnconf[SPEC]``."""

    def __init__(self, *, adapter: ResolvedAdapter, **kwargs) -> None:
        super().__init__(**kwargs)
        self.adapter = adapter

    def collect(self) -> list[pytest.Item]:
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
        self.adapter: ResolvedAdapter = self.parent.adapter

    def runtest(self) -> None:
        run = self.config.stash[CONFIG_KEY]
        if self.adapter.unavailable:
            self.skip(f"unsupported: {self.adapter.unavailable}")
        invoker = make_invoker(self.adapter, run)
        ctx = RunContext(self.adapter, invoker, run.profile, run.seed, run.tolerance,
                         framework_flag=run.framework_flag, group=self.group)
        try:
            results = list(self.check.run(ctx, self.op))
        finally:
            invoker.close()
        for name, observed in ctx.observed.items():
            self.user_properties.append((f"attnconf-observed-{name}", repr(observed)))
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

    def reportinfo(self):
        return f"attnconf[{self.adapter.spec}]", 0, self.name


class ConformanceFailure(Exception):
    def __init__(self, results) -> None:
        super().__init__(f"{len(results)} failed")
        self.results = results


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
        config.hook.pytest_collectreport(
            report=pytest.CollectReport(collector.nodeid, "passed", None, found))
        items.extend(found)


class SessionVerdict:
    """Registered when adapters are given: per adapter, did any item pass or fail (not all
    skipped), and what conventions were observed (from the reports: works on the xdist
    controller too)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.exercised: dict[str, bool] = {}
        self.observed: dict[str, dict[str, str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        adapter = report.nodeid.split("::", 1)[0]
        if not adapter.startswith("attnconf[") or report.when != "call":
            return
        self.exercised[adapter] = self.exercised.get(adapter, False) or not report.skipped
        for key, value in report.user_properties:
            if key.startswith("attnconf-observed-"):
                name = key.removeprefix("attnconf-observed-")
                self.observed.setdefault(adapter, {})[name] = value

    def never_exercised(self) -> list[str]:
        return [adapter for adapter, exercised in self.exercised.items() if not exercised]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        on_worker = hasattr(self.config, "workerinput")
        if not on_worker and self.never_exercised() and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for adapter, found in self.observed.items():
            terminalreporter.write_sep("-", f"{adapter}: conventions observed")
            for name, value in sorted(found.items()):
                terminalreporter.write_line(f"{name}: {value}")
        for adapter in self.never_exercised():
            terminalreporter.write_line(
                f"{adapter}: no case passed (everything was skipped): the adapter was never "
                f"exercised; the session fails, as `attnconf run` would", red=True)
