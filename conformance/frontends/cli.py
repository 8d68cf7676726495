"""``attnconf``: run the checks, list what there is, manage fixtures.

Exit codes: 0 conformant, 1 any failure (or the adapter was never exercised, or a
``--require``d feature or dtype was never exercised by a passed case),
2 usage or adapter-load error (one line, no traceback unless --traceback),
3 internal error of the kit (never counted as the adapter's failure).
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from conformance.adapters.load import AdapterLoadError, did_you_mean
from conformance.checks import CHECKS
from conformance.errors import UsageError as UsageError
from conformance.frontends.progress import Progress, planned_cases
from conformance.frontends.report import parse_report_spec, to_text
from conformance.frontends.report_files import print_safely, safe_results
from conformance.judging.tolerance import DEFAULT_K, Tolerance
from conformance.profiles import PROFILES
from conformance.results import EXIT_INTERNAL_ERROR, EXIT_USAGE, Result, run_verdict
from conformance.runner import (
    DEFAULT_SEED,
    RunConfig,
    check_only,
    check_require,
    isolation_mode,
    resolve_adapter,
    run,
    timeout_range,
)
from conformance.shard import parse_shard

INTERRUPTED_LINE = ("attnconf: interrupted (ctrl-C) after {n} results: the reports asked for "
                    "are written and marked interrupted; exit 2")


def profile_name(value: str) -> str:
    """A known profile name; otherwise argparse's error, with the closest name suggested."""
    if value not in PROFILES:
        raise argparse.ArgumentTypeError(
            f"unknown profile {value!r}; known: {', '.join(sorted(PROFILES))}"
            f"{did_you_mean(value, sorted(PROFILES))}")
    return value


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="check an adapter")
    p.add_argument("--adapter", required=True, metavar="SPEC",
                   help="built-in name, module:attr, path/file.py:attr or entry-point name")
    p.add_argument("--framework", help="numpy (default), torch: what the adapter is handed")
    p.add_argument("--profile", type=profile_name, default="quick",
                   help=f"one of {', '.join(sorted(PROFILES))} (default quick)")
    p.add_argument("--only", nargs="+", default=(), metavar="CHECK")
    p.add_argument("--case", help="run only the case with this id (see failure messages)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--k", default=DEFAULT_K, help="tolerance multiplier k (finite, ≥ 0)")
    p.add_argument("--atol", default=None, help="override atol for every case (finite, ≥ 0)")
    p.add_argument("--isolate", choices=("inprocess", "subprocess"), default=None,
                   help="where the adapter runs (default: subprocess, a worker process, in "
                        "every profile; inprocess for debugging)")
    p.add_argument("--timeout", default=None,
                   help="per-call timeout in seconds, finite and > 0, enforced with "
                        "--isolate subprocess (default: scaled by case size)")
    p.add_argument("--maxfail", metavar="N", default=None,
                   help="stop after N failed results; what did not run is not counted")
    p.add_argument("--max-time", metavar="SECONDS", default=None,
                   help="budget for the whole run (finite, > 0): what did not run by then "
                        "fails as not run")
    p.add_argument("-x", "--exitfirst", dest="maxfail", action="store_const", const="1",
                   help="stop at the first failed result (--maxfail 1)")
    p.add_argument("--report", action="append", default=[], metavar="FORMAT:PATH",
                   help="json:PATH, junit:PATH or md:PATH (repeatable)")
    _require_option(p)
    p.add_argument("--shard", metavar="I/N", default=None,
                   help="run only part I of N of the cases (CI matrix; `attnconf merge` the "
                        "JSON reports)")
    p.add_argument("--dump", metavar="DIR", default=None,
                   help="write each failing numeric/output_contract case as DIR/*.npz "
                        "(inputs, options, expected, actual, bound) with its repro line")
    p.add_argument("--traceback", action="store_true", help="show tracebacks of load errors")


def _require_option(p) -> None:
    p.add_argument("--require", nargs="+", action="extend", default=[], metavar="FEATURE",
                   help="fail (exit 1) unless a passed case exercised each named feature or "
                        "dtype (causal, bool_mask, float16, …); `declared`: every feature and "
                        "dtype the adapter declares")


def _merge_parser(sub) -> None:
    p = sub.add_parser("merge", help="combine the JSON reports of --shard runs into one verdict")
    p.add_argument("reports", nargs="+", metavar="REPORT.json")
    p.add_argument("--report", action="append", default=[], metavar="FORMAT:PATH",
                   help="json:PATH, junit:PATH or md:PATH (repeatable) for the merged run")
    _require_option(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnconf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _merge_parser(sub)
    p = sub.add_parser("list", help="list adapters, ops, checks and the case matrix")
    p.add_argument("what", nargs="?", choices=("adapters", "checks", "cases", "all"),
                   default="all")
    p.add_argument("--profile", type=profile_name, default="ci")
    p.add_argument("--coverage", action="store_true",
                   help="with 'cases': which sdpa axis values, pairs and triples are covered")
    from conformance.frontends.matrix import add_matrix_parser

    add_matrix_parser(sub)
    try:
        from conformance.frontends.fixtures_cli import add_fixtures_parser
    except ImportError:  # fixtures tooling not installed in this checkout
        pass
    else:
        add_fixtures_parser(sub)
    return parser


def number_option(flag: str, value: str | float, *, positive: bool = False) -> float:
    """``value`` as a float that is finite and ≥ 0 (> 0 with ``positive``); anything else,
    NaN and infinities included, is a ValueError naming the flag and what was given: a NaN
    bound would let every comparison pass, a zero timeout fail every case."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        rule = "> 0" if positive else "≥ 0"
        raise ValueError(f"{flag} must be a finite number {rule}, got {value}")
    return number


def count_option(flag: str, value: str | None) -> int | None:
    """``value`` as an integer ≥ 1; anything else is a ValueError naming the flag."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ValueError(f"{flag} must be an integer ≥ 1, got {value}")
    return number


def _config(args) -> RunConfig:
    try:
        only = check_only(args.only)
        for spec in args.report:
            parse_report_spec(spec)
        k = number_option("--k", args.k)
        atol = None if args.atol is None else number_option("--atol", args.atol)
        timeout = (None if args.timeout is None else
                   number_option("--timeout", args.timeout, positive=True))
        maxfail = count_option("--maxfail", args.maxfail)
        max_time = (None if args.max_time is None else
                    number_option("--max-time", args.max_time, positive=True))
        shard = parse_shard(args.shard)
        require = check_require(args.require)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return RunConfig(profile=PROFILES[args.profile], seed=args.seed, only=only, case=args.case,
                     tolerance=Tolerance(k=k, atol=atol), isolate=args.isolate,
                     timeout=timeout, framework_flag=args.framework, maxfail=maxfail,
                     max_time=max_time, shard=shard, require=require)


def _overridden(config: RunConfig, isolate: str) -> str:
    """The header's words for a k, atol or timeout the user set, "" when none was."""
    words = []
    if config.tolerance.k != DEFAULT_K:
        words.append(f"k={config.tolerance.k:g} (default {DEFAULT_K:g})")
    if config.tolerance.atol is not None:
        words.append(f"atol={config.tolerance.atol:g} for every case (default: per dtype)")
    if config.timeout is not None:
        words.append(f"timeout={config.timeout:g} s" + (
            "" if isolate == "subprocess" else
            " NOT ENFORCED: an in-process call cannot be interrupted (--isolate subprocess)"))
    return f", overridden: {'; '.join(words)}" if words else ""


def _verify_fixtures():
    """Import what the run needs, pin and verify the shipped fixtures (conformance.integrity);
    the snapshot ``_after_run`` checks."""
    from conformance.integrity import guard

    snapshot = guard()
    problems = snapshot.problems
    if problems:
        raise UsageError(f"refusing to give a verdict: shipped fixtures fail verification "
                         f"({problems[0]}{'; …' if len(problems) > 1 else ''})")
    return snapshot


def _after_run(snapshot) -> None:
    """A fixture changed during the run: no verdict (later runs would trust it); a kit source
    file changed: a warning (this run never executed it)."""
    if snapshot is None:
        return
    from conformance.integrity import changes

    fixtures, sources = changes(snapshot)
    for path in sources:
        print(f"attnconf: warning: kit file {path} changed during the run (this run did not "
              f"execute the change; later runs will): reinstall the kit", file=sys.stderr)
    if fixtures:
        raise UsageError(f"refusing to give a verdict: fixture {fixtures[0]} changed during the "
                         f"run{f' (and {len(fixtures) - 1} more)' if len(fixtures) > 1 else ''}"
                         f"; reinstall the kit (or `attnconf fixtures regen`)")


def _only_case(case: str | None, progress):
    """The progress callback, seeing only results of ``case`` when --case is given."""
    return progress if case is None else (lambda r: progress(r) if r.case == case else None)


def _case_results(case: str | None, results: list[Result]) -> list[Result]:
    """--case ID reruns exactly that case: other results (a check's blanket skip) are dropped,
    and an ID that matches nothing is a usage error rather than a silent 'nothing passed'."""
    if case is None:
        return results
    kept = [r for r in results if r.case == case]
    if not kept:
        raise UsageError(f"--case {case!r} matches no case of the selected checks "
                         f"(ids: `attnconf list cases --profile …`, or a failure's repro line)")
    return kept


def _isolation_limits(config: RunConfig) -> str:
    """The header's words for the per-call timeout and the worker's memory limit."""
    from conformance.adapters.isolated.parent import memory_limit_from_env

    low, high = timeout_range(config)
    timeout = (f"{config.timeout:g} s per call" if config.timeout else
               f"scaled by case size ({low:g}–{high:g} s per call)")
    from conformance.adapters.isolated.limits import describe_limits

    try:
        memory_limit_from_env()
        limits = describe_limits()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    budget = f", whole run at most {config.max_time:g} s" if config.max_time else ""
    return f"timeout {timeout}{budget}, {limits}"


def private_hypothesis_home() -> None:
    """Hypothesis's files (``constants`` cache; the run keeps no example database) go to a
    temporary directory removed at exit, not to ``.hypothesis/`` in the user's directory."""
    import atexit
    import shutil
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir

    home = tempfile.mkdtemp(prefix="attnconf-hypothesis-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    set_hypothesis_home_dir(home)


def command_run(args) -> int:
    config = _config(args)
    _prepare_reports(args.report)
    private_hypothesis_home()
    snapshot = _verify_fixtures()
    isolate = isolation_mode(config)  # decided first: a worker-only adapter is never imported here
    limits = _isolation_limits(config) if isolate == "subprocess" else "no timeout or memory limit"
    adapter = resolve_adapter(args.adapter, config, framework=args.framework)
    print(f"attnconf run: adapter {adapter.spec} ({adapter.name}, framework "
          f"{getattr(adapter.framework, 'name', 'custom')}, ops {', '.join(adapter.ops)}), "
          f"profile {config.profile.name}, seed {config.seed}, isolation {isolate}, "
          f"{limits}{_overridden(config, isolate)}", file=sys.stderr)
    progress = Progress(case_lists=planned_cases(adapter, config, _wanted(config)))
    try:
        results, info = run(adapter, config, _only_case(config.case, progress))
    finally:
        progress.close()
    interrupted = info.settings.get("interrupted")
    if interrupted:
        print(INTERRUPTED_LINE.format(n=len(results)), file=sys.stderr)
    else:
        results = _case_results(config.case, results)
    _after_run(snapshot)
    if not interrupted:
        print_safely(sys.stdout, to_text(*safe_results(results, info)))
    _write_reports(args.report, results, info)
    if args.dump and not interrupted:
        from conformance.frontends.dump import dump_failures

        written = dump_failures(Path(args.dump), adapter, config, results)
        print(f"dumped {len(written)} failing case(s) to {Path(args.dump).resolve()}"
              + (" (*.npz: np.load(path, allow_pickle=False); *.repro.txt)" if written else ""),
              file=sys.stderr)
    return EXIT_USAGE if interrupted else run_verdict(results, info)[0]


def _wanted(config: RunConfig):
    """(op, check, case id) → will this run call it: its shard and --case."""
    def wanted(op: str, check: str, case: str) -> bool:
        in_shard = config.shard is None or config.shard.has(op, check, case)
        return in_shard and config.case in (None, case)
    return wanted


def _prepare_reports(specs: list[str]) -> list:
    """Every --report target checked (writable, distinct) and an earlier run's removed."""
    from conformance.frontends.report_files import prepare

    try:
        return prepare(specs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _write_reports(specs: list[str], results: list[Result], info) -> None:
    """All reports or none (conformance.frontends.report_files)."""
    from conformance.frontends.report_files import write_all

    try:
        paths = write_all(_prepare_reports(specs), results, info)
    except OSError as exc:
        raise UsageError(f"could not write the reports ({exc}); none was left in place") from None
    for path in paths:
        print(f"report written: {path}", file=sys.stderr)


def command_merge(args) -> int:
    from conformance.errors import MergeError
    from conformance.frontends.merge import merge_reports

    try:
        for spec in args.report:
            parse_report_spec(spec)
        results, info = merge_reports([Path(p) for p in args.reports],
                                      require=check_require(args.require))
    except (MergeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(to_text(results, info))
    _write_reports(args.report, results, info)
    return run_verdict(results, info)[0]


def command_list(args) -> int:
    from conformance.adapters.builtin import BUILTINS
    from conformance.ops import op_specs

    if args.what in ("adapters", "all"):
        from conformance.adapters.load import ENTRY_POINT_GROUP, entry_point_adapters

        print("adapters (built-in):", ", ".join(BUILTINS))
        installed = entry_point_adapters()
        print(f"adapters (entry points, group {ENTRY_POINT_GROUP}):"
              + ("" if installed else " none installed"))
        for name, dist, target in installed:
            print(f"  {name:20} {target}  (from {dist})")
        print("ops:", ", ".join(op_specs()))
    if args.what in ("checks", "all"):
        print("checks:")
        for check in CHECKS:
            print(f"  {check.name:18} {check.description}  [ops: {', '.join(check.ops)}]")
    if args.what == "cases" and args.coverage:
        from conformance.ops.sdpa_space import coverage_lines

        print("\n".join(coverage_lines(PROFILES[args.profile])))
        return 0
    if args.what in ("cases", "all"):
        print(f"cases (profile {args.profile}, seed {DEFAULT_SEED}):")
        for _op, spec in op_specs().items():
            for case in spec.cases(PROFILES[args.profile], DEFAULT_SEED):
                print(f"  {case.id}")
        print("  and, for --case: probe:causal_alignment, probe:fully_masked, "
              "probe:masked_nonfinite (conventions); hypothesis[DTYPE] (each property check, "
              "in its dtype); golden:NAME (golden); sdpa-grad-…[…] (gradients)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "list":
            return command_list(args)
        if args.command == "merge":
            return command_merge(args)
        if args.command == "matrix":
            from conformance.frontends.matrix import run_matrix

            return run_matrix(args)
        from conformance.frontends.fixtures_cli import run_fixtures

        return run_fixtures(args)
    except KeyboardInterrupt:  # before or after the run (during it, run() reports it)
        print("attnconf: interrupted (ctrl-C); exit 2", file=sys.stderr)
        return EXIT_USAGE
    except (AdapterLoadError, UsageError) as exc:
        if getattr(args, "traceback", False):
            traceback.print_exc()
        print(f"attnconf: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the kit's own bug: not a verdict on the adapter
        traceback.print_exc()
        print(f"attnconf: internal error of the kit (not the adapter's failure): "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
