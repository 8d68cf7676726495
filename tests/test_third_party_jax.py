"""``jax.nn.dot_product_attention`` (tests/third_party/jax_attention.py) is conformant.

Run as a user runs it: in a worker process under the default limits (4 GiB
resident), through the ``ci`` and ``quick`` profiles. JAX reserves far more
address space than it touches; the limit is on resident memory, so it fits.

Two behaviours of JAX the wrapper declares rather than hides, each shown here
without the kit: on CPU, ``jax.jit`` of the function fails to compile for
float16, and for bfloat16 with one query and one key (so the wrapper calls it
eagerly there), and a finite bias below JAX's
hidden-key logit (-0.7 · float32 max, e.g. ``finfo(float32).min``) weighs less
than the keys a window hides (so the wrapper refuses that input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conformance.adapters.isolated.limits import MEMORY_ENV
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED, verdict
from conformance.runner import RunConfig, resolve_adapter, run

jax = pytest.importorskip("jax", reason="needs jax: pip install -c constraints.txt 'jax>=0.4.30'")

SPEC = f"{Path(__file__).parent / 'third_party' / 'jax_attention.py'}:jax_attention"
# numeric cases that must pass per profile (of those the declaration admits), so that a
# wrapper that skipped nearly everything cannot look conformant; measured: quick 91, ci 256
MIN_NUMERIC_PASSED = {"quick": 70, "ci": 200}


@pytest.fixture(scope="module")
def jax_attention():
    from third_party.jax_attention import jax_attention

    return jax_attention


def numpy_attention(q, k, v, visible, scale):
    """softmax(scale · q kᵀ, hidden keys excluded) v in float64; q (..., H, Lq, E)."""
    s = np.where(visible, scale * q @ np.swapaxes(k, -1, -2), -np.inf)
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    return (w / w.sum(axis=-1, keepdims=True)) @ v


def test_the_wrapper_agrees_with_the_formula(jax_attention):
    """Leading batch dims (2, 3), GQA 4/2, a bool mask, causal and a window, in float32."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 3, 4, 5, 8)).astype(np.float32)
    k, v = (rng.standard_normal((2, 3, 2, 7, 8)).astype(np.float32) for _ in range(2))
    qd, kd, vd = (np.repeat(x.astype(np.float64), 4 // x.shape[-3], axis=-3) for x in (q, k, v))
    mask = rng.random((3, 1, 5, 7)) < 0.7
    mask[..., 0] = True
    i, j = np.arange(5)[:, None], np.arange(7)[None, :]
    calls: list[tuple[dict[str, Any], np.ndarray]] = [({"attn_mask": mask}, mask),
             ({"is_causal": True, "scale": 0.3}, j <= i),
             ({"window": (1, 2)}, (j >= i - 1) & (j <= i + 2))]
    for kwargs, visible in calls:
        got = jax_attention(q, k, v, enable_gqa=True, **kwargs)
        scale = kwargs.get("scale", 1 / np.sqrt(8))
        want = numpy_attention(qd, kd, vd, visible, scale)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=str(kwargs))


def test_the_wrapper_refuses_what_jax_cannot_do(jax_attention):
    x = np.zeros((1, 2, 3, 8))
    with pytest.raises(NotImplementedError, match="float64"):
        jax_attention(x, x, x)
    x = x.astype(np.float32)
    with pytest.raises(NotImplementedError, match="head dim"):
        jax_attention(x, x, x[..., :4])
    bias = np.zeros((3, 3), np.float32)
    bias[:, 0] = np.finfo(np.float32).min
    with pytest.raises(NotImplementedError, match="finite logit"):
        jax_attention(x, x, x, attn_mask=bias, window=(0, 0))


def test_jit_of_jax_attention_fails_on_cpu_for_float16():
    """JAX's fallback from the F16_F16_F32 dot algorithm is a try/except around the einsum:
    it catches the error eagerly, not under jit, where the error comes at compile time."""
    if jax.default_backend() != "cpu":
        pytest.skip("the compile error is CPU's")
    q = jax.numpy.ones((1, 3, 2, 8), jax.numpy.float16)
    eager = np.asarray(jax.nn.dot_product_attention(q, q, q), np.float32)
    np.testing.assert_allclose(eager, 1.0)
    with pytest.raises(ValueError, match="F16_F16_F32"):
        jax.jit(jax.nn.dot_product_attention)(q, q, q).block_until_ready()


def test_jit_of_jax_attention_fails_on_cpu_for_bfloat16_with_one_query_and_one_key():
    """bfloat16 under jit compiles with Lq = 2, not with Lq = Lk = 1 (XLA's CPU emitter)."""
    if jax.default_backend() != "cpu":
        pytest.skip("the compile error is CPU's")
    attention = jax.jit(jax.nn.dot_product_attention)
    two = jax.numpy.ones((1, 2, 1, 8), jax.numpy.bfloat16)
    np.testing.assert_allclose(np.asarray(attention(two, two, two), np.float32), 1.0)
    one = jax.numpy.ones((1, 1, 1, 8), jax.numpy.bfloat16)
    with pytest.raises(RuntimeError, match="ALG_DOT_BF16_BF16_F32"):  # JaxRuntimeError
        attention(one, one, one).block_until_ready()


def test_a_bias_below_jax_hidden_logit_loses_to_the_window_hidden_keys():
    """Query 0 with window (0, 0) sees key 0 only; with bias finfo(float32).min on key 0 the
    output must still be v[0] (a finite bias never hides a key). JAX gives keys 1..3, which
    the window hides, logit -0.7 · float32 max > finfo.min: their mean comes out instead."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 4, 1, 8)).astype(np.float32) for _ in range(3))
    bias = np.zeros((1, 1, 4, 4), np.float32)
    bias[..., 0] = np.finfo(np.float32).min
    out = np.asarray(jax.nn.dot_product_attention(q, k, v, bias=bias, local_window_size=(0, 0)))
    np.testing.assert_allclose(out[0, 0, 0], v[0, 1:, 0].mean(axis=0), rtol=1e-5)
    assert not np.allclose(out[0, 0, 0], v[0, 0, 0], atol=1e-3)


def run_isolated(profile: str):
    """The profile through the runner in a worker process, under the default limits."""
    config = RunConfig(profile=PROFILES[profile])
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(MEMORY_ENV, raising=False)
        adapter = resolve_adapter(SPEC, config)
        assert adapter.isolated
        return run(adapter, config)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["quick", "ci"])
def test_jax_is_conformant_in_a_worker_under_the_default_limits(profile):
    results, info = run_isolated(profile)
    assert info.settings["isolate"] == "subprocess"
    failed = [f"{r.case}: {r.message[:400]}" for r in results if r.status == FAILED]
    assert not failed, "\n".join(failed[:5])
    assert verdict(results) == (0, "conformant")
    numeric = [r for r in results if r.check == "numeric" and r.status == PASSED]
    assert len(numeric) >= MIN_NUMERIC_PASSED[profile], len(numeric)
    for dtype in ("float32", "float16", "bfloat16"):
        assert any(r.case.endswith(f"-{dtype}]") for r in numeric), dtype
    assert not any(r.case.endswith("-float64]") for r in numeric)
