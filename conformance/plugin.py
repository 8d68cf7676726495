"""pytest plugin: ``pytest --attn-adapter SPEC`` runs the harness's checks as pytest items.

One item per op × check × case group (the numeric matrix is grouped by
scenario), ids such as ``attnconf[sdpa-numeric-causal]``. The adapter is
resolved at configure time, never at import, and the report header names it,
its framework and version. Items are collected identically on every
pytest-xdist worker, so ``-n 2`` gives the same verdict.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.adapters import AdapterLoadError, ResolvedAdapter, resolve
from conformance.checks import CHECKS, Check, RunContext
from conformance.ops import op_specs
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED, SKIPPED
from conformance.runner import DEFAULT_SEED, RunConfig, make_invoker, versions
from conformance.tolerance import DEFAULT_K, Tolerance

ADAPTER_KEY = pytest.StashKey[ResolvedAdapter]()
CONFIG_KEY = pytest.StashKey[RunConfig]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("attention-conformance")
    group.addoption("--attn-adapter", metavar="SPEC", default=None,
                    help="check this adapter (built-in name, module:attr, file.py:attr)")
    group.addoption("--attn-framework", default=None, help="numpy or torch")
    group.addoption("--attn-profile", default="ci", choices=sorted(PROFILES))
    group.addoption("--attn-seed", type=int, default=DEFAULT_SEED)
    group.addoption("--attn-k", type=float, default=DEFAULT_K)
    group.addoption("--attn-isolate", default="inprocess", choices=("inprocess", "subprocess"))


def pytest_configure(config: pytest.Config) -> None:
    spec = config.getoption("--attn-adapter", default=None)
    if not spec:
        return
    try:
        config.stash[ADAPTER_KEY] = resolve(spec, framework=config.getoption("--attn-framework"))
    except AdapterLoadError as exc:
        raise pytest.UsageError(f"attnconf: {exc}") from None
    config.stash[CONFIG_KEY] = RunConfig(
        profile=PROFILES[config.getoption("--attn-profile")],
        seed=config.getoption("--attn-seed"),
        tolerance=Tolerance(k=config.getoption("--attn-k")),
        isolate=config.getoption("--attn-isolate"),
        framework_flag=config.getoption("--attn-framework"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    if ADAPTER_KEY not in config.stash:
        return []
    adapter, run = config.stash[ADAPTER_KEY], config.stash[CONFIG_KEY]
    found = ", ".join(f"{k} {v}" for k, v in versions(adapter).items())
    return [f"attnconf adapter: {adapter.spec} ({adapter.name}), framework "
            f"{getattr(adapter.framework, 'name', 'custom')}; profile {run.profile.name}, "
            f"seed {run.seed}; {found}"]


def groups(adapter: ResolvedAdapter, run: RunConfig) -> Iterator[tuple[Check, str, str | None]]:
    """(check, op, case group) for every item; the numeric matrix is grouped by scenario."""
    for check in CHECKS:
        for op in adapter.ops:
            if op not in check.ops:
                continue
            if check.name != "numeric":
                yield check, op, None
                continue
            scenarios = dict.fromkeys(c.scenario for c in op_specs()[op].cases(run.profile,
                                                                                run.seed))
            for scenario in scenarios:
                yield check, op, f"{op}-{scenario}"


class ConformanceItem(pytest.Item):
    def __init__(self, *, check: Check, op: str, group: str | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.check, self.op, self.group = check, op, group

    def runtest(self) -> None:
        config = self.config
        adapter, run = config.stash[ADAPTER_KEY], config.stash[CONFIG_KEY]
        invoker = make_invoker(adapter, run)
        ctx = RunContext(adapter, invoker, run.profile, run.seed, run.tolerance,
                         framework_flag=run.framework_flag, group=self.group)
        try:
            results = list(self.check.run(ctx, self.op))
        finally:
            invoker.close()
        failed = [r for r in results if r.status == FAILED]
        if failed:
            raise ConformanceFailure(failed)
        if results and not any(r.status == PASSED for r in results):
            pytest.skip(next(r.message for r in results if r.status == SKIPPED))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ConformanceFailure):
            return "\n\n".join(r.message for r in excinfo.value.results)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return "attnconf", None, self.name


class ConformanceFailure(Exception):
    def __init__(self, results) -> None:
        super().__init__(f"{len(results)} failed")
        self.results = results


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if ADAPTER_KEY not in config.stash:
        return
    adapter, run = config.stash[ADAPTER_KEY], config.stash[CONFIG_KEY]
    for check, op, group in groups(adapter, run):
        label = group.replace(f"{op}-", f"{op}-{check.name}-", 1) if group else (
            f"{op}-{check.name}")
        items.append(ConformanceItem.from_parent(session, name=f"attnconf[{label}]",
                                                 check=check, op=op, group=group))


__all__ = ["ConformanceItem", "SKIPPED"]
