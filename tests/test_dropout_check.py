"""The dropout check (conformance/checks/dropout.py): correct dropout passes, each law bites.

Correct: torch's F.scaled_dot_product_attention (the built-in ``torch`` adapter)
over 100 run seeds, and the NumPy one in tests/correct. Wrong: rescaled by 1/p
(the zoo's real-world mutant), kept with probability p, the same keep-mask on
every call. Never exercised (no dropout, or NotImplementedError at p > 0):
skipped, never passed.
"""

from __future__ import annotations

import importlib
import math
import time

import numpy as np
import pytest
from correct.dropout_sdpa import dropout_sdpa
from correct.numpy_sdpa import einsum_sdpa

import conformance
from conformance.adapters.load import resolve
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED, SKIPPED
from conformance.runner import RunConfig, run

check = importlib.import_module("conformance.checks.dropout")  # the package's `dropout` is
# the check function, which shadows the module as an attribute
RUNS = 100
TRIALS = len(check.PROBABILITIES) * len(check.DTYPES)


def dropout_results(adapter, seed: int = 20260101, spec: str = "tests:adapter"):
    resolved = resolve(spec, obj=adapter)
    config = RunConfig(profile=PROFILES["ci"], seed=seed, only=("dropout",), isolate="inprocess")
    return run(resolved, config)[0]


def _weights(query, key, attn_mask=None, is_causal=False, scale=None):
    """The undropped weights, by the correct kernel with value = I."""
    lk = key.shape[-2]
    eye = np.broadcast_to(np.eye(lk), (*key.shape[:-1], lk))
    return dropout_sdpa(query, key, eye, attn_mask, 0.0, is_causal, scale).astype(np.float64)


def _broken(name: str, keep_of):
    """A NumPy SDPA whose dropout keeps entries where ``keep_of(shape, p)`` is True and
    rescales them by 1/(1 − p): everything but the keep-mask is right."""

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False):
        w = _weights(query, key, attn_mask, is_causal, scale)
        if dropout_p:
            w = w * keep_of(w.shape, dropout_p) / (1.0 - dropout_p)
        return (w @ np.asarray(value, np.float64)).astype(query.dtype)

    return conformance.adapter(sdpa, name=name, dtypes=("float64",),
                               features=("bool_mask", "float_mask", "causal", "scale", "dropout"))


def _failed_messages(results) -> list[str]:
    return [r.message for r in results if r.status == FAILED]


# --- correct dropout passes ---------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.slow
def test_torch_dropout_passes_100_run_seeds():
    start = time.perf_counter()
    for seed in range(RUNS):
        results = dropout_results(None, seed, "torch")
        assert [r.status for r in results] == [PASSED] * TRIALS, (seed, _failed_messages(results))
    print(f"{RUNS} runs of the dropout check on torch: {time.perf_counter() - start:.1f} s")


@pytest.mark.torch
def test_torch_dropout_calls_are_seeded_by_the_kit():
    """Same run seed, same keep-masks: the recorded seeds reproduce the run."""
    first, again = dropout_results(None, spec="torch"), dropout_results(None, spec="torch")
    assert [r.message for r in first] == [r.message for r in again]
    assert all("torch.manual_seed(" in r.message and r.seed is not None for r in first)


def test_numpy_dropout_passes():
    for seed in range(3):
        results = dropout_results(dropout_sdpa, seed)
        assert [r.status for r in results] == [PASSED] * TRIALS, _failed_messages(results)
        assert all("the kit cannot seed it" in r.message for r in results)


# --- each law bites -----------------------------------------------------------------------


def test_rescaled_by_one_over_p_fails_the_values():
    from mutants.real_kernel_bugs import dropout_rescaled_by_p

    messages = _failed_messages(dropout_results(dropout_rescaled_by_p))
    assert len(messages) == TRIALS
    assert all("neither 0 nor W/(1 − p)" in m for m in messages)
    assert any("ratio 4" in m for m in messages)  # 1/p ÷ 1/(1 − p) at p = 0.2


def test_keep_probability_swapped_fails_the_zero_fraction():
    rng = np.random.default_rng()
    swapped = _broken("keeps-with-p", lambda shape, p: rng.random(shape) < p)
    messages = _failed_messages(dropout_results(swapped))
    assert messages and all("decidable entries dropped" in m for m in messages)


def test_same_mask_every_call_fails_the_mean():
    frozen = _broken("same-mask", lambda shape, p: np.random.default_rng(0).random(shape) >= p)
    messages = _failed_messages(dropout_results(frozen))
    # float64 only, both p; the zero fraction of one fixed mask may already be off
    assert len(messages) == 2 and any("does not converge" in m for m in messages)


# --- never exercised: skipped -------------------------------------------------------------


def test_unsupported_dropout_is_skipped():
    def plain(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False):  # a plain callable: dropout_p in its signature → feature
        return einsum_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale)

    results = dropout_results(plain)
    assert results and all(r.status == SKIPPED for r in results)
    assert all("NotImplementedError" in r.message for r in results)


def test_no_dropout_feature_is_skipped():
    results = dropout_results(einsum_sdpa)
    assert [r.status for r in results] == [SKIPPED]
    assert "needs feature(s) ['dropout']" in results[0].message


# --- the bounds -----------------------------------------------------------------------------


def test_bounds_are_the_stated_hoeffding_inequalities():
    assert check.DELTA * check.TESTS_PER_RUN <= 1e-6
    for n in (100, 768 * 64):
        t = check.zero_fraction_bound(n)
        assert math.isclose(2 * math.exp(-2 * n * t * t), check.DELTA, rel_tol=1e-9)
    for calls, m in ((64, 768), (10, 5)):
        r = check.mean_bound(calls, m)
        assert math.isclose(2 * m * math.exp(-2 * calls * r * r), check.DELTA, rel_tol=1e-9)
