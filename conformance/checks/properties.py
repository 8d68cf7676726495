"""Properties every correct attention has, driven by hypothesis (shrinking → minimal case).

Property checks never call the reference: they compare the adapter with
itself under transformations whose effect is known, so nothing checks itself.
Each property is a function ``(ctx, problem) -> None`` raising
``PropertyFailure``; ``run_property`` drives it with hypothesis.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import FailedHealthCheck, Flaky, Unsatisfiable
from hypothesis.reporting import with_reporter
from hypothesis.strategies import SearchStrategy

from conformance.adapters.frameworks import OutputTypeError, eps
from conformance.adapters.invoke import AdapterError, Outcome
from conformance.checks.base import RunContext, headline, result
from conformance.errors import PropertyFailure as PropertyFailure
from conformance.errors import Unsupported
from conformance.judging.tolerance import PROPERTY_UNITS  # the one tolerance table
from conformance.results import FAILED, PASSED, SKIPPED, Result
from conformance.strategies import AttentionProblem, attention_problems, attention_shapes


@dataclass(frozen=True)
class Property:
    name: str
    body: Callable[[RunContext, Any], None]
    needs: tuple[str, ...]
    mask: str  # "none" | "bool" | "float" | "mask" (bool, else float) | "mask?" (or none)
    shapes: dict
    description: str
    op: str = "sdpa"  # the op it checks (one of vocabulary.OPS)
    # the strategy of its problems, when not sdpa's (``problems`` from ``shapes`` and ``mask``)
    draw: Callable[[RunContext], SearchStrategy] | None = None


def property_dtype(ctx: RunContext) -> str:
    return next((d for d in ("float64", "float32") if d in ctx.adapter.dtypes),
                ctx.adapter.dtypes[0])


def op_outcome(ctx: RunContext, op: str, args: list, kwargs: dict) -> Outcome:
    """One call of the adapter's ``op``, counted in ``ctx.calls`` when it returns; failures
    become PropertyFailure, and NotImplementedError (``Unsupported``) rejects the example
    (``run_property`` counts it)."""
    try:
        outcome = ctx.call(op, args, kwargs)
    except (AdapterError, OutputTypeError) as exc:
        raise PropertyFailure(str(exc)) from None
    ctx.calls += 1
    return outcome


def sdpa_outcome(ctx: RunContext, query, key, value, **kwargs) -> Outcome:
    """One call of the adapter's sdpa (``op_outcome``), dropout_p = 0 where it has one."""
    if "dropout_p" in ctx.adapter.ops["sdpa"].params:
        kwargs["dropout_p"] = 0.0
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return op_outcome(ctx, "sdpa", [query, key, value], kwargs)


def op_output(ctx: RunContext, op: str, args: list, kwargs: dict,
              expected: tuple[int, ...]) -> np.ndarray:
    """The adapter's ``op`` output, checked to be an array of shape ``expected``."""
    out = op_outcome(ctx, op, args, kwargs).value
    if not isinstance(out, np.ndarray) or out.shape != expected:
        got = getattr(out, "shape", type(out).__name__)
        raise PropertyFailure(f"{op} output {got} is not an array of shape {expected}")
    return out


def sdpa(ctx: RunContext, query, key, value, **kwargs) -> np.ndarray:
    """The adapter's sdpa output, checked to be an array of the right shape."""
    out = sdpa_outcome(ctx, query, key, value, **kwargs).value
    expected = (*query.shape[:-1], value.shape[-1])
    if not isinstance(out, np.ndarray) or out.shape != expected:
        got = getattr(out, "shape", type(out).__name__)
        raise PropertyFailure(f"output {got} is not an array of shape {expected}")
    return out


def assert_close(what: str, actual: np.ndarray, expected: np.ndarray, dtype: str,
                 where: np.ndarray | None = None) -> None:
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    if where is not None:
        a, e = a[np.broadcast_to(where, a.shape)], e[np.broadcast_to(where, e.shape)]
    if a.size == 0:
        return
    finite = np.isfinite(e)
    magnitude = float(np.abs(e[finite]).max()) if finite.any() else 1.0
    tol = PROPERTY_UNITS[dtype] * eps(dtype) * max(1.0, magnitude)
    with np.errstate(invalid="ignore"):
        err = np.where(np.isnan(a) & np.isnan(e), 0.0, np.abs(a - e))
    worst = float(np.nanmax(np.where(np.isnan(err), np.inf, err)))
    if not worst <= tol:
        raise PropertyFailure(
            f"{what}: max abs difference {worst:.3g} > {tol:.3g} "
            f"({PROPERTY_UNITS[dtype]:g} eps({dtype}) at magnitude {magnitude:.3g})")


def aligned_positions(ctx: RunContext, lq: int, lk: int) -> np.ndarray:
    offset = 0 if ctx.adapter.conventions["causal_alignment"] == "top_left" else lk - lq
    return np.arange(lq) + offset


def mask_kind(ctx: RunContext, wanted: str, op: str = "sdpa") -> str | None:
    features = ctx.adapter.ops[op].features
    if wanted in ("bool", "float"):
        return wanted if f"{wanted}_mask" in features else None
    if wanted in ("mask", "mask?"):
        found = next((k for k in ("bool", "float") if f"{k}_mask" in features), None)
        return found if found or wanted == "mask" else "none"
    return "none"


def as_mask(visible: np.ndarray, kind: str, dtype) -> np.ndarray:
    return visible if kind == "bool" else np.where(visible, 0.0, -np.inf).astype(dtype)


@functools.cache
def problems(shapes: tuple[tuple[str, Any], ...], dtype: str,
             mask: str) -> SearchStrategy[AttentionProblem]:
    """The strategy of a property's problems, built (and validated by hypothesis) once per
    process rather than once per run of the property."""
    return attention_problems(attention_shapes(**dict(shapes)), dtype=dtype, mask=mask)


_DERANDOMIZED: dict[object, int] = {}


def derandomized_seed(inner_test: Callable[..., None]) -> int | None:
    """The seed ``derandomize=True`` gives ``inner_test``: hypothesis's digest of its source.

    Hypothesis recomputes that digest (inspect.getsource + tokenize, ~1.4 ms) twice per
    property run, and ``run_property``'s test has the same source for every property, so
    it is computed once per process here and passed as an explicit seed, which draws the
    same examples. Should hypothesis stop providing the digest, derandomize's own is used.
    """
    code = inner_test.__code__
    if code not in _DERANDOMIZED:
        try:
            from hypothesis.internal.compat import int_from_bytes
            from hypothesis.internal.reflection import function_digest
        except ImportError:  # pragma: no cover - a hypothesis without them
            return None
        _DERANDOMIZED[code] = int_from_bytes(function_digest(inner_test))
    return _DERANDOMIZED[code]


class Tally:
    """What became of a property's examples up to its first failure (shrinking excluded):
    ``ran`` (the body failed, or finished after at least one call of the adapter returned),
    ``unsupported`` (the adapter raised NotImplementedError: rejected) and ``vacuous`` (the
    body had nothing to check and returned without a call). Only ``ran`` examples may count
    as a pass."""

    def __init__(self) -> None:
        self.ran = self.unsupported = self.vacuous = 0
        self.reason = ""  # the adapter's last NotImplementedError message

    def not_exercised(self) -> str:
        """The skip reason of a property none of whose examples ran."""
        drawn = self.unsupported + self.vacuous
        if self.unsupported:
            return (f"unsupported: {self.reason} ({self.unsupported} of {drawn} examples; "
                    f"none exercised the adapter)")
        return (f"not exercised: none of its {drawn} examples called the adapter "
                f"(each had nothing to check)")


def run_property(ctx: RunContext, prop: Property, body_mask: str) -> Result:
    """The property under hypothesis: passed only when some example exercised the adapter,
    and ``examples`` records how many did."""
    tally = Tally()
    found = _drive(ctx, prop, body_mask, tally)
    if found.status == PASSED and not tally.ran:
        found = result(ctx, prop.op, prop.name, found.case, SKIPPED, tally.not_exercised())
    return replace(found, examples=tally.ran)


def counting(body: Callable[[RunContext, Any], None], tally: Tally,
             failure: dict) -> Callable[[RunContext, Any], None]:
    """``body``, counting its examples into ``tally`` until ``failure`` is set: shrinking runs
    are not counted, their number depends on hypothesis's internals (even PYTHONHASHSEED).
    NotImplementedError (``Unsupported``) rejects the example."""

    def counted(ctx: RunContext, problem: Any) -> None:
        calls, shrinking = ctx.calls, bool(failure)
        try:
            body(ctx, problem)
        except PropertyFailure:
            tally.ran += not shrinking
            raise
        except Unsupported as exc:
            tally.unsupported += not shrinking
            tally.reason = str(exc)
            reject()
        if not shrinking:
            tally.ran += ctx.calls > calls
            tally.vacuous += ctx.calls == calls

    return counted


def _drive(ctx: RunContext, prop: Property, body_mask: str, tally: Tally) -> Result:
    # the test below is kept word for word: derandomized hypothesis draws its examples from
    # a digest of its source, so the counting wraps the body instead
    failure: dict = {}
    prop = replace(prop, body=counting(prop.body, tally, failure))
    dtype = property_dtype(ctx)
    strategy = prop.draw(ctx) if prop.draw else problems(tuple(sorted(prop.shapes.items())),
                                                         dtype, body_mask)

    @settings(max_examples=ctx.profile.max_examples, derandomize=ctx.profile.derandomize,
              database=None, deadline=None, report_multiple_bugs=False, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def test(problem: AttentionProblem) -> None:
        try:
            prop.body(ctx, problem)
        except PropertyFailure as exc:
            failure.update(problem=problem, message=str(exc))
            raise

    # hypothesis's wrapper: the attributes it carries (.hypothesis, the database key) are untyped
    run_test: Any = test
    run_test = hypothesis_seed(ctx.seed if not ctx.profile.derandomize else
                               derandomized_seed(run_test.hypothesis.inner_test))(run_test)
    run_test._hypothesis_internal_database_key = None  # database=None: spares another digest
    case_id = f"hypothesis[{dtype}]"
    try:
        with with_reporter(lambda _: None):
            run_test()
    except PropertyFailure:
        problem = failure["problem"]
        return result(ctx, prop.op, prop.name, case_id, FAILED, headline(
            prop.op, prop.name, f"{prop.description}\nminimal failing example: "
            f"{problem.describe()}\n{failure['message']}"), seed=problem.seed)
    except Flaky as exc:
        # hypothesis re-ran a failing example and it passed: the adapter is not a function
        # of its inputs. That is a failure of this property, not of the harness.
        problem = failure.get("problem")
        where = f"\nexample: {problem.describe()}" if problem else ""
        return result(ctx, prop.op, prop.name, case_id, FAILED, headline(
            prop.op, prop.name, f"{prop.description}\nthe same example failed once and passed "
            f"when re-run: the adapter's output is not a function of its inputs "
            f"({type(exc).__name__}){where}\n{failure.get('message', '')}"),
            seed=problem.seed if problem else None)
    except (Unsatisfiable, FailedHealthCheck) as exc:
        return result(ctx, prop.op, prop.name, case_id, SKIPPED, tally.not_exercised()
                      if tally.unsupported else
                      f"unsupported: every example was rejected ({type(exc).__name__})")
    return result(ctx, prop.op, prop.name, case_id, PASSED)


def check_property(prop: Property):
    def run(ctx: RunContext, op: str) -> Iterator[Result]:
        if ctx.case_filter and not ctx.case_filter.startswith("hypothesis"):
            return
        missing = sorted(set(prop.needs) - ctx.adapter.ops[prop.op].features)
        kind = mask_kind(ctx, prop.mask, prop.op)
        if missing or kind is None:
            needs = missing or ["bool_mask or float_mask"]
            yield replace(result(ctx, prop.op, prop.name, f"hypothesis[{property_dtype(ctx)}]",
                                 SKIPPED, f"unsupported: needs feature(s) {needs}"), examples=0)
            return
        yield run_property(ctx, prop, kind)

    run.__doc__ = prop.description
    return run
