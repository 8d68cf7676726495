"""Numeric agreement with the reference over the case matrix, and the output contract.

Expected values are computed in this (the parent) process before the adapter
is called, from reference functions bound when the harness was imported, so
an adapter cannot reach or alter them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from conformance.adapters.frameworks import OutputTypeError
from conformance.cases import Case
from conformance.checks.base import RunContext, guarded_call, headline, result
from conformance.errors import Unsupported
from conformance.judging.compare import check_contract, compare
from conformance.judging.empty_rows import explain, explanation_origin
from conformance.judging.tolerance import bound_for
from conformance.ops import op_specs
from conformance.profiles import Profile
from conformance.results import FAILED, PASSED, SKIPPED, Result


def _case_size(case: Case) -> int:
    s = case.shapes
    if s is None:
        return 1
    return int(np.prod(s.batch, dtype=int)) * s.heads_q * s.len_q * s.len_k


# (op, case, conventions) → (inputs, expectations). Cases are values with their own seed,
# so the same case always has the same inputs and expectations: several adapters checked
# in one process (the detection matrix, a pytest session) compute the reference once.
# Adapters only ever see copies (framework.to_native), so the cached arrays stay pristine.
_EXPECTED_CACHE: dict[tuple, tuple] = {}
_CACHE_LIMIT = 4096


def _inputs_and_expected(op: str, case: Case, conventions: dict):
    key = (op, case, repr(sorted(conventions.items())))
    if key not in _EXPECTED_CACHE:
        if len(_EXPECTED_CACHE) >= _CACHE_LIMIT:
            _EXPECTED_CACHE.clear()
        spec = op_specs()[op]
        inputs = spec.inputs(case)
        _EXPECTED_CACHE[key] = (inputs, spec.expected(inputs, case, conventions))
    return _EXPECTED_CACHE[key]


def _prepare(ctx: RunContext, op: str, check: str, case: Case):
    """(inputs, args, kwargs, expectations) or a skipped Result."""
    if case.dtype not in ctx.adapter.dtypes:
        return result(ctx, op, check, case.id, SKIPPED,
                      f"unsupported: dtype {case.dtype} not in the adapter's dtypes "
                      f"{list(ctx.adapter.dtypes)}")
    inputs, expectations = _inputs_and_expected(op, case, ctx.adapter.conventions)
    try:
        args, kwargs = op_specs()[op].arguments(ctx.adapter.ops[op], inputs, case)
    except Unsupported as exc:
        return result(ctx, op, check, case.id, SKIPPED, f"unsupported: {exc}")
    return inputs, args, kwargs, expectations


def _outputs(ctx, op, check, case, args, kwargs, expectations):
    """(list of output arrays, None) or (None, failed/skipped Result)."""
    outcome = guarded_call(ctx, op, check, case.id, case.describe(), args, kwargs,
                           _case_size(case))
    if isinstance(outcome, Result):
        return None, outcome
    try:
        return op_specs()[op].outputs(outcome.value, expectations), None
    except OutputTypeError as exc:
        return None, result(ctx, op, check, case.id, FAILED,
                            headline(op, check, case.describe()) + f"\n{exc}", seed=case.seed)


def _judge(ctx: RunContext, op: str, case: Case, outs, expectations) -> Result:
    worst, bounds = 0.0, []
    for exp, out in zip(expectations, outs, strict=True):
        problem = check_contract(out, exp.ref64.shape, exp.dtype)
        if problem:
            return result(ctx, op, "numeric", case.id, FAILED,
                          headline(op, "numeric", case.describe()) + f"\n{exp.name}: {problem}",
                          seed=case.seed)
        bound = bound_for(op, case.dtype, exp.ref64, exp.ref_lowp, ctx.tolerance,
                          exp.conditioning)
        verdict = compare(out, exp.ref64, bound, exp.ignore)
        bounds.append(bound.value)
        worst = max(worst, verdict.max_abs_err or 0.0)
        if not verdict.ok:
            why = explain(out, exp.ref64, bound, exp.empty_rows,
                          ctx.adapter.conventions["fully_masked"],
                          explanation_origin(ctx.adapter.declared_conventions))
            lines = "\n".join((*verdict.lines, why) if why else verdict.lines)
            return result(ctx, op, "numeric", case.id, FAILED,
                          headline(op, "numeric", case.describe()) + f" — {exp.name}\n{lines}",
                          seed=case.seed, max_abs_err=verdict.max_abs_err, bound=verdict.bound)
    return result(ctx, op, "numeric", case.id, PASSED, seed=case.seed, max_abs_err=worst,
                  bound=min(bounds) if bounds else None)


def _run_cases(ctx: RunContext, op: str, check: str, cases, judge) -> Iterator[Result]:
    """Prepare, call and judge each case; skips and call failures are results too."""
    for case in cases:
        prepared = _prepare(ctx, op, check, case)
        if not isinstance(prepared, tuple):
            yield prepared
            continue
        _, args, kwargs, expectations = prepared
        outs, bad = _outputs(ctx, op, check, case, args, kwargs, expectations)
        yield bad if bad else judge(ctx, op, case, outs, expectations)


@functools.lru_cache(maxsize=64)
def op_cases(op: str, profile: Profile, seed: int) -> tuple[Case, ...]:
    """The op's case matrix, built once per (op, profile, seed): the plugin runs it one
    scenario per item, and building it (~1.6 ms for sdpa) cost each item as much again as
    its tiny cases."""
    return tuple(op_specs()[op].cases(profile, seed))


def numeric(ctx: RunContext, op: str) -> Iterator[Result]:
    """Candidate vs reference on every case of the op's matrix, tolerance model applied."""
    cases = [c for c in op_cases(op, ctx.profile, ctx.seed) if ctx.wants(c)]
    yield from _run_cases(ctx, op, "numeric", cases, _judge)


CONTRACT_SCENARIOS = ("plain", "empty-rows-bool", "causal")


def output_contract(ctx: RunContext, op: str) -> Iterator[Result]:
    """Output type, shape and dtype exactly as specified; finite wherever the reference is."""
    cases = [c for c in op_cases(op, ctx.profile, ctx.seed)
             if c.scenario in CONTRACT_SCENARIOS and c.shapes is not None
             and c.shapes.len_q <= 64 and ctx.wants(c)]
    yield from _run_cases(ctx, op, "output_contract", cases, _judge_contract)


def _judge_contract(ctx: RunContext, op: str, case: Case, outs, expectations) -> Result:
    problems = []
    for exp, out in zip(expectations, outs, strict=True):
        problem = check_contract(out, exp.ref64.shape, exp.dtype)
        if problem is None and not np.array_equal(np.isfinite(np.asarray(out, np.float64)),
                                                  np.isfinite(exp.ref64)):
            problem = "non-finite values where the reference is finite (or the reverse)"
        if problem:
            problems.append(f"{exp.name}: {problem}")
    message = (headline(op, "output_contract", case.describe()) + "\n" + "\n".join(problems)
               if problems else "")
    return result(ctx, op, "output_contract", case.id, FAILED if problems else PASSED, message,
                  seed=case.seed)
