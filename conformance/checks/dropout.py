"""Dropout, where the adapter's sdpa takes ``dropout_p`` (feature ``dropout``).

With value = the identity (Lk × Lk, so Ev = Lk) the output *is* the weight
matrix: ``out = W ⊙ keep / (1 − p)``, keep ~ Bernoulli(1 − p) per entry, where
W is the undropped softmax. W comes from the same adapter at ``dropout_p = 0``
(a property check never calls the reference). For each p in ``PROBABILITIES``
and each of float64/float32 the adapter declares, N = ``CALLS`` calls, each after
seeding the framework's generator (``torch.manual_seed(base + c)`` for call c;
a NumPy adapter draws from generators of its own, which the kit cannot seed):

1. values: every entry is 0 or W/(1 − p), within τ = PROPERTY_UNITS · eps(dtype) /
   (1 − p) (the p = 0 and p > 0 calls may run different kernels: a few ulps).
   An entry is *decidable* when W/(1 − p) > 2τ (0 and the kept value are then
   told apart); one that is neither is a failure (deterministic: no false alarm);
2. zero fraction: among the n decidable entries of all calls, Z are 0. For a
   correct kernel Z ~ Binomial(n, p); Hoeffding: P(|Z/n − p| ≥ t) ≤ 2·exp(−2 n t²),
   so t = sqrt(ln(2/δ) / (2n)) is exceeded with probability ≤ δ;
3. mean over calls: for entry e, M_e = (1/N) Σ_c out_c,e has E[M_e] = W_e and each
   term lies in [0, W_e/(1 − p)]; Hoeffding per entry and a union bound over the m
   entries: P(max_e |M_e − W_e| / (W_e/(1 − p)) ≥ r) ≤ 2m·exp(−2 N r²) = δ for
   r = sqrt(ln(2m/δ) / (2N)). (A kernel that draws the same mask every call has
   relative deviations 1 − p or p on every entry: ≥ 0.3 here, above r ≈ 0.42.)

Statistical bounds are exact inequalities for independent keep decisions (no normal
approximation). δ = 1e-6 / (number of statistical tests in a run: 2 per (p, dtype), at
most 8), so a correct kernel fails a run with probability below 1e-6. Inputs come from
the run seed; the seed of each call is in the result's message.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from conformance.adapters.frameworks import DTYPE_BY_NAME, eps
from conformance.adapters.load import DescribedFramework
from conformance.cases import derive_seed
from conformance.checks.base import RunContext, guarded_call, headline, result
from conformance.errors import DropoutFailure as DropoutFailure
from conformance.judging.tolerance import PROPERTY_UNITS
from conformance.results import FAILED, PASSED, SKIPPED, Result

PROBABILITIES = (0.2, 0.7)  # 1/p and 1/(1 − p) differ at both; one below and one above 1/2
CALLS = 64
DTYPES = ("float64", "float32")
SHAPE = dict(batch=2, heads=2, len_q=12, len_k=16)  # E = Ev = Lk = 16: m = 768 entries/call
FALSE_ALARM = 1e-6  # per run, all tests together
TESTS_PER_RUN = 2 * len(PROBABILITIES) * len(DTYPES)
DELTA = FALSE_ALARM / TESTS_PER_RUN
CHECK = "dropout"


@dataclass(frozen=True)
class Trial:
    """One (dtype, p): its case id, the inputs and the seed of its first call."""

    dtype: str
    p: float
    case_id: str
    base_seed: int


def zero_fraction_bound(n: int, delta: float = DELTA) -> float:
    """Hoeffding: |Z/n − p| < sqrt(ln(2/δ)/(2n)) with probability ≥ 1 − δ."""
    return math.sqrt(math.log(2.0 / delta) / (2.0 * n))


def mean_bound(calls: int, entries: int, delta: float = DELTA) -> float:
    """Hoeffding + union bound: max_e |M_e − W_e| / (W_e/(1−p)) < sqrt(ln(2m/δ)/(2N))."""
    return math.sqrt(math.log(2.0 * entries / delta) / (2.0 * calls))


def identity_inputs(dtype: str, seed: int) -> tuple[list[np.ndarray], dict]:
    """[query, key, value = I]: the output is then the (dropped) weight matrix."""
    rng = np.random.default_rng(seed)
    b, h, lq, lk = SHAPE["batch"], SHAPE["heads"], SHAPE["len_q"], SHAPE["len_k"]
    dt = DTYPE_BY_NAME[dtype]
    query = rng.standard_normal((b, h, lq, lk)).astype(dt)
    key = rng.standard_normal((b, h, lk, lk)).astype(dt)
    value = np.broadcast_to(np.eye(lk), (b, h, lk, lk)).astype(dt)
    return [query, key, value], {}


def seeded_by_kit(framework) -> bool:
    """Whether ``sdpa:seeded`` seeds this framework's generator: a framework with ``seed``
    (torch's); in a worker run the parent holds only its name, and "torch" is the kit's own."""
    return callable(getattr(framework, "seed", None)) or (
        isinstance(framework, DescribedFramework) and framework.name == "torch")


def seed_note(ctx: RunContext, trial: Trial) -> str:
    if seeded_by_kit(ctx.adapter.framework):
        return (f"call c (0 ≤ c < {CALLS}) ran after torch.manual_seed({trial.base_seed} + c), "
                f"i.e. the framework's generator seeded by the kit")
    return (f"{CALLS} calls; the adapter draws its own randomness (framework "
            f"{getattr(ctx.adapter.framework, 'name', 'custom')}: the kit cannot seed it)")


def check_values(out: np.ndarray, kept: np.ndarray, tau: float, call: str) -> None:
    """Every entry 0 or the kept value W/(1−p), within τ."""
    zero = np.abs(out) <= tau
    keep = np.abs(out - kept) <= tau
    bad = ~(zero | keep)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        ratio = out[idx] / kept[idx] if kept[idx] else math.inf
        raise DropoutFailure(
            f"{call}: {int(bad.sum())} of {bad.size} entries are neither 0 nor "
            f"W/(1 − p); first at {idx}: {out[idx]:.6g}, W/(1 − p) = {kept[idx]:.6g} "
            f"(ratio {ratio:.4g}; τ = {tau:.3g})")


def check_zero_fraction(zeros: int, n: int, p: float) -> str:
    bound = zero_fraction_bound(n)
    frac = zeros / n
    if abs(frac - p) >= bound:
        raise DropoutFailure(
            f"{zeros} of {n} decidable entries dropped: fraction {frac:.4f}, expected p = {p} "
            f"± {bound:.4f} (Hoeffding, false alarm ≤ {DELTA:.2g})")
    return f"dropped {frac:.4f} (p = {p} ± {bound:.4f})"


def check_mean(total: np.ndarray, weights: np.ndarray, kept: np.ndarray, decidable: np.ndarray,
               calls: int) -> str:
    """max relative deviation of the mean over calls from W, over decidable entries."""
    bound = mean_bound(calls, int(decidable.sum()))
    dev = np.where(decidable, np.abs(total / calls - weights) / np.where(decidable, kept, 1), 0)
    worst = float(dev.max())
    if worst >= bound:
        idx = tuple(int(i) for i in np.argwhere(dev == worst)[0])
        raise DropoutFailure(
            f"mean over {calls} calls does not converge to the p = 0 output: at {idx} mean "
            f"{total[idx] / calls:.6g} vs W = {weights[idx]:.6g}, deviation {worst:.3f} of "
            f"W/(1 − p) ≥ {bound:.3f} (Hoeffding + union bound, false alarm ≤ {DELTA:.2g})")
    return f"mean deviation ≤ {worst:.3f} of W/(1 − p) (bound {bound:.3f})"


def run_trial(ctx: RunContext, op: str, trial: Trial) -> Result:
    """W at p = 0, then CALLS seeded calls at p; the three laws in order."""
    args, _ = identity_inputs(trial.dtype, trial.base_seed)
    describe = f"{trial.case_id}: value = I, dropout_p = {trial.p}"
    outcome = guarded_call(ctx, op, CHECK, trial.case_id, describe, args, {"dropout_p": 0.0})
    if isinstance(outcome, Result):  # skipped or failed instead
        return outcome
    weights = np.asarray(outcome.value, np.float64)
    tau = PROPERTY_UNITS[trial.dtype] * eps(trial.dtype) / (1.0 - trial.p)
    kept = weights / (1.0 - trial.p)
    decidable = kept > 2 * tau
    total, zeros = np.zeros_like(weights), 0
    seeded = seeded_by_kit(ctx.adapter.framework)
    try:
        for c in range(CALLS):
            seed = trial.base_seed + c
            outcome = guarded_call(ctx, "sdpa:seeded", CHECK, trial.case_id, describe, args,
                                   {"dropout_p": trial.p, "seed": seed})
            if isinstance(outcome, Result):
                return outcome
            out = np.asarray(outcome.value, np.float64)
            call = f"call {c}" + (f" (after torch.manual_seed({seed}))" if seeded else "")
            if out.shape != weights.shape:
                raise DropoutFailure(f"{call}: output {out.shape}, expected {weights.shape}")
            check_values(out, kept, tau, call)
            total += out
            zeros += int((decidable & (np.abs(out) <= tau)).sum())
        n = int(decidable.sum()) * CALLS
        notes = [check_zero_fraction(zeros, n, trial.p),
                 check_mean(total, weights, kept, decidable, CALLS)]
    except DropoutFailure as exc:
        return result(ctx, op, CHECK, trial.case_id, FAILED,
                      headline(op, CHECK, describe) + f"\n{exc}\n{seed_note(ctx, trial)}",
                      seed=trial.base_seed)
    return result(ctx, op, CHECK, trial.case_id, PASSED,
                  "; ".join(notes) + f"; {seed_note(ctx, trial)}", seed=trial.base_seed)


def dropout(ctx: RunContext, op: str) -> Iterator[Result]:
    """Dropped entries are 0, kept ones W/(1 − p), a fraction p dropped, the mean is W."""
    if ctx.case_filter and not ctx.case_filter.startswith("dropout"):
        return
    binding = ctx.adapter.ops["sdpa"]
    dtypes = [d for d in DTYPES if d in ctx.adapter.dtypes]
    if "dropout" not in binding.features or "dropout_p" not in binding.params:
        yield result(ctx, op, CHECK, "dropout", SKIPPED,
                     "unsupported: needs feature(s) ['dropout'] (an sdpa taking dropout_p)")
        return
    if not dtypes:
        yield result(ctx, op, CHECK, "dropout", SKIPPED,
                     f"unsupported: needs float64 or float32, the adapter declares "
                     f"{list(ctx.adapter.dtypes)}")
        return
    for dtype in dtypes:
        for p in PROBABILITIES:
            case_id = f"dropout[{dtype}-p{p}]"
            if ctx.case_filter and ctx.case_filter != case_id:
                continue
            yield run_trial(ctx, op, Trial(dtype, p, case_id, derive_seed(ctx.seed, case_id)))
