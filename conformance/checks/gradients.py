"""Gradients of a torch adapter by its own autograd against ``reference.sdpa_backward``.

NumPy adapters have no autograd; they expose op ``sdpa_backward``, which the
numeric check compares with the same reference.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from conformance.cases import make_case
from conformance.checks.base import RunContext, guarded_call, headline, result
from conformance.judging.compare import check_contract, compare
from conformance.judging.tolerance import bound_for
from conformance.ops import op_specs
from conformance.results import FAILED, PASSED, SKIPPED, Result


def gradients(ctx: RunContext, op: str) -> Iterator[Result]:
    """dq, dk, dv by autograd equal the analytic backward (float64)."""
    import reference

    if ctx.case_filter and not ctx.case_filter.startswith("sdpa-grad"):
        return
    if getattr(ctx.adapter.framework, "name", "") != "torch":
        yield result(ctx, op, "gradients", "autograd", SKIPPED,
                     "unsupported: gradients are checked by autograd for torch adapters; "
                     "a NumPy adapter exposes op sdpa_backward instead")
        return
    if "float64" not in ctx.adapter.dtypes:
        yield result(ctx, op, "gradients", "autograd", SKIPPED, "unsupported: needs float64")
        return
    spec = op_specs()["sdpa_backward"]
    features = ctx.adapter.ops["sdpa"].features
    for case in spec.cases(ctx.profile, ctx.seed):
        case = make_case("sdpa", "grad-" + case.scenario, case.label, "float64", ctx.seed,
                         dict(case.options))
        if not ctx.wants(case):
            continue
        values = spec.inputs(case)
        needed = {"is_causal": "causal", "enable_gqa": "gqa", "attn_mask": "bool_mask"}
        missing = [f for k, f in needed.items() if k in values and f not in features]
        if missing:
            yield result(ctx, op, "gradients", case.id, SKIPPED, f"unsupported: needs {missing}")
            continue
        args = [values[n] for n in ("query", "key", "value", "grad_out")]
        kwargs = {k: values[k] for k in needed if k in values}
        expected = reference.VARIANTS["sdpa_backward"](*args, **kwargs)
        outcome = guarded_call(ctx, "sdpa:grad", "gradients", case.id, case.describe(),
                               args, kwargs)
        if isinstance(outcome, Result):
            yield outcome
            continue
        yield _judge(ctx, op, case, outcome.value, expected)


def _judge(ctx, op, case, grads, expected) -> Result:
    for name, got, want in zip(("dq", "dk", "dv"), grads, expected, strict=True):
        if got is None:
            return result(ctx, op, "gradients", case.id, FAILED,
                          headline(op, "gradients", case.describe()) + f"\n{name} is None")
        problem = check_contract(got, want.shape, np.float64)
        bound = bound_for("sdpa_backward", "float64", want, want, ctx.tolerance)
        if not problem:
            verdict = compare(got, want, bound)
            if verdict.ok:
                continue
            problem = "\n".join(verdict.lines)
        return result(ctx, op, "gradients", case.id, FAILED,
                      headline(op, "gradients", case.describe()) + f" — {name}\n{problem}",
                      seed=case.seed)
    return result(ctx, op, "gradients", case.id, PASSED, seed=case.seed)
