"""``attnconf``: run the checks, list what there is, manage fixtures.

Exit codes: 0 conformant, 1 any failure (or the adapter was never exercised),
2 usage or adapter-load error (one line, no traceback unless --traceback),
3 internal error of the kit (never counted as the adapter's failure).
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Sequence

from conformance.adapters.load import AdapterLoadError
from conformance.checks import CHECKS
from conformance.errors import UsageError as UsageError
from conformance.frontends.progress import Progress
from conformance.frontends.report import parse_report_spec, to_text, write_report
from conformance.judging.tolerance import DEFAULT_K, Tolerance
from conformance.profiles import PROFILES
from conformance.results import EXIT_INTERNAL_ERROR, Result, verdict
from conformance.runner import (
    DEFAULT_SEED,
    RunConfig,
    check_only,
    isolation_mode,
    resolve_adapter,
    run,
    timeout_range,
)


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="check an adapter")
    p.add_argument("--adapter", required=True, metavar="SPEC",
                   help="built-in name, module:attr, path/file.py:attr or entry-point name")
    p.add_argument("--framework", help="numpy (default), torch: what the adapter is handed")
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
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
    p.add_argument("-x", "--exitfirst", dest="maxfail", action="store_const", const="1",
                   help="stop at the first failed result (--maxfail 1)")
    p.add_argument("--report", action="append", default=[], metavar="FORMAT:PATH",
                   help="json:PATH, junit:PATH or md:PATH (repeatable)")
    p.add_argument("--traceback", action="store_true", help="show tracebacks of load errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnconf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    p = sub.add_parser("list", help="list adapters, ops, checks and the case matrix")
    p.add_argument("what", nargs="?", choices=("adapters", "checks", "cases", "all"),
                   default="all")
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci")
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
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return RunConfig(profile=PROFILES[args.profile], seed=args.seed, only=only, case=args.case,
                     tolerance=Tolerance(k=k, atol=atol), isolate=args.isolate,
                     timeout=timeout, framework_flag=args.framework, maxfail=maxfail)


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


def _verify_fixtures() -> None:
    try:
        from conformance.fixtures.store import default_root, verify
    except ImportError:
        return
    problems = verify(default_root())
    if problems:
        raise UsageError(f"refusing to give a verdict: shipped fixtures fail verification "
                         f"({problems[0]}{'; …' if len(problems) > 1 else ''})")


def _only_case(case: str | None, progress: Progress):
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
    try:
        memory = memory_limit_from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return (f"timeout {timeout}, worker memory "
            f"{'unlimited' if memory is None else f'{memory / 2**30:g} GiB'}")


def command_run(args) -> int:
    config = _config(args)
    _verify_fixtures()
    isolate = isolation_mode(config)  # decided first: a worker-only adapter is never imported here
    limits = _isolation_limits(config) if isolate == "subprocess" else "no timeout or memory limit"
    adapter = resolve_adapter(args.adapter, config, framework=args.framework)
    print(f"attnconf run: adapter {adapter.spec} ({adapter.name}, framework "
          f"{getattr(adapter.framework, 'name', 'custom')}, ops {', '.join(adapter.ops)}), "
          f"profile {config.profile.name}, seed {config.seed}, isolation {isolate}, "
          f"{limits}{_overridden(config, isolate)}", file=sys.stderr)
    progress = Progress()
    try:
        results, info = run(adapter, config, _only_case(config.case, progress))
    finally:
        progress.close()
    results = _case_results(config.case, results)
    sys.stdout.write(to_text(results, info))
    for spec in args.report:
        try:
            print(f"report written: {write_report(spec, results, info)}", file=sys.stderr)
        except OSError as exc:  # written atomically: nothing half-written is left behind
            raise UsageError(f"could not write report {spec}: {exc}") from None
    return verdict(results)[0]


def command_list(args) -> int:
    from conformance.adapters.builtin import BUILTINS
    from conformance.ops import op_specs

    if args.what in ("adapters", "all"):
        print("adapters (built-in):", ", ".join(BUILTINS))
        print("ops:", ", ".join(op_specs()))
    if args.what in ("checks", "all"):
        print("checks:")
        for check in CHECKS:
            print(f"  {check.name:18} {check.description}  [ops: {', '.join(check.ops)}]")
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
        if args.command == "matrix":
            from conformance.frontends.matrix import run_matrix

            return run_matrix(args)
        from conformance.frontends.fixtures_cli import run_fixtures

        return run_fixtures(args)
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
