"""sdpa's blocked form: every option equals the plain formula, dtypes hold, memory stays bounded.

``reference.sdpa`` is the definition; ``reference.blocked_sdpa`` (which the harness runs
above ``conformance.ops.sdpa.BLOCKED_ABOVE`` scores) must give the same numbers: ≤ 1e-13 relative in
float64, and with a ``compute_dtype`` the same rounding story (stored tiles
in that dtype, float32 sums) to within a few units of it.
"""

from __future__ import annotations

import itertools
import tracemalloc

import ml_dtypes
import numpy as np
import pytest

from conformance.ops.sdpa import BLOCKED_ABOVE, run_reference
from reference import sdpa as plain_sdpa
from reference.blocked import THREADS_ENV, blocked_sdpa, default_threads

PATHS = {"plain": plain_sdpa, "blocked": blocked_sdpa}
RTOL64 = 1e-13

OPTIONS = {
    "causal": dict(is_causal=True),
    "causal-bottom-right": dict(is_causal=True, causal_alignment="bottom_right"),
    "window": dict(window=(3, 2)),
    "window-causal-bottom-right": dict(window=(4, None), is_causal=True,
                                       causal_alignment="bottom_right"),
    "softcap": dict(softcap=5.0),
    "alibi": dict(alibi_slopes=np.array([0.5, 0.25, 0.125, 0.0625])),
    "sinks": dict(sinks=np.array([0.3, -1.0, 2.0, 0.0])),
    "gqa": dict(enable_gqa=True),
    "scale": dict(scale=0.7),
    "dropout": dict(dropout_p=0.25),
    "bool-mask": dict(mask="bool"),
    "float-mask": dict(mask="float"),
    "empty-rows-zeros": dict(mask="rows", fully_masked="zeros"),
    "empty-rows-nan": dict(mask="rows", fully_masked="nan"),
    "empty-rows-uniform": dict(mask="rows", fully_masked="uniform"),
    "empty-rows-uniform-dropout": dict(mask="rows", fully_masked="uniform", dropout_p=0.5),
    "everything": dict(is_causal=True, window=(6, None), softcap=8.0, mask="float",
                       alibi_slopes=np.array([0.5, 0.25, 0.125, 0.0625]),
                       sinks=np.array([0.3, -1.0, 2.0, 0.0]), enable_gqa=True, dropout_p=0.1),
}
# (query block, key block, threads): one key block, several, ragged ones, a pool
BLOCKINGS = [(4, 5, 1), (3, None, 2), (None, None, 2)]


def _case(name: str, seed: int = 0) -> tuple[tuple, dict]:
    """q, k, v and the sdpa keyword arguments of the option set ``name``."""
    rng = np.random.default_rng(seed)
    options = dict(OPTIONS[name])
    batch, hq, lq, lk = 2, 4, 13, 17
    hk = 2 if options.get("enable_gqa") else hq
    q = 2 * rng.standard_normal((batch, hq, lq, 8))
    k = 2 * rng.standard_normal((batch, hk, lk, 8))
    v = rng.standard_normal((batch, hk, lk, 6))
    mask = {
        None: None,
        "bool": rng.random((batch, 1, lq, lk)) > 0.4,
        "float": np.where(rng.random((lq, lk)) > 0.7, -np.inf, rng.standard_normal((lq, lk))),
        "rows": np.repeat((np.arange(lq) % 3 != 1)[:, None], lk, axis=1),
    }[options.pop("mask", None)]
    if options.get("dropout_p"):
        options["dropout_mask"] = rng.random((batch, hq, lq, lk)) > options["dropout_p"]
    return (q, k, v, mask), options


@pytest.mark.parametrize("blocking", BLOCKINGS, ids=lambda b: "q{}-k{}-t{}".format(*b))
@pytest.mark.parametrize("name", list(OPTIONS))
def test_blocked_path_equals_plain_formula(name: str, blocking: tuple) -> None:
    args, options = _case(name)
    expected, expected_lse = plain_sdpa(*args, return_lse=True, **options)
    block_size, key_block, threads = blocking
    got, got_lse = blocked_sdpa(*args, return_lse=True, block_size=block_size,
                                key_block=key_block, threads=threads, **options)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isneginf(got_lse), np.isneginf(expected_lse))
    finite = np.isfinite(expected)
    scale = max(np.abs(expected[finite]).max(initial=0.0), 1.0)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=0, atol=RTOL64 * scale)
    finite_lse = np.isfinite(expected_lse)
    np.testing.assert_allclose(got_lse[finite_lse], expected_lse[finite_lse], rtol=RTOL64)


def test_mutated_tile_formula_is_caught() -> None:
    """The comparison above can fail: a blocked path that drops the sink does."""
    args, options = _case("sinks")
    expected = plain_sdpa(*args, **options)
    without_sink = blocked_sdpa(*args, **{**options, "sinks": None}, block_size=4)
    assert not np.allclose(without_sink, expected, rtol=0, atol=RTOL64)


def _traced_peak(fn) -> tuple[np.ndarray, int]:
    tracemalloc.start()
    try:
        return fn(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("options", [dict(), dict(is_causal=True, enable_gqa=True)],
                         ids=["plain", "causal-gqa"])
def test_harness_takes_the_bounded_path_above_threshold(options: dict) -> None:
    """Above BLOCKED_ABOVE scores the harness's reference never holds Lq × Lk, and equals
    the plain formula."""
    rng = np.random.default_rng(5)
    lq, lk = 1100, 1000
    q = rng.standard_normal((2, 2, lq, 16))
    k, v = (rng.standard_normal((2, 1 if options else 2, lk, 16)) for _ in range(2))
    scores_bytes = q.shape[0] * q.shape[1] * lq * lk * 8
    assert q.shape[0] * q.shape[1] * lq * lk > BLOCKED_ABOVE
    got, peak = _traced_peak(lambda: run_reference(q, k, v, **options))
    assert peak < scores_bytes / 4, f"peak {peak} B against {scores_bytes} B of scores"
    expected, plain_peak = _traced_peak(lambda: plain_sdpa(q, k, v, **options))
    assert plain_peak > scores_bytes  # the measurement sees a materialised matrix
    np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL64 * np.abs(expected).max())


def test_harness_keeps_the_plain_path_below_threshold() -> None:
    args, _ = _case("causal")
    out = run_reference(*args[:3], is_causal=True)
    np.testing.assert_array_equal(out, plain_sdpa(*args[:3], is_causal=True))


def test_weights_come_from_the_plain_formula() -> None:
    args, _ = _case("causal")
    out, weights = plain_sdpa(*args[:3], is_causal=True, return_weights=True)
    assert weights.shape == (2, 4, 13, 17)
    np.testing.assert_allclose(out, weights @ args[2], rtol=0, atol=1e-14)


DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]


@pytest.mark.parametrize("path", ["plain", "blocked"])
@pytest.mark.parametrize("compute", ["default", "float32", "own"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_output_dtype_is_query_dtype(dtype, compute: str, path: str) -> None:
    rng = np.random.default_rng(6)
    q, k, v = (rng.standard_normal((2, 9, 8)).astype(dtype) for _ in range(3))
    compute_dtype = {"default": None, "float32": np.float32, "own": dtype}[compute]
    out, lse = PATHS[path](q, k, v, is_causal=True, compute_dtype=compute_dtype,
                           return_lse=True)
    assert out.dtype == np.dtype(dtype)
    assert lse.dtype == (np.float64 if compute_dtype in (None, np.float64) else np.float32)


@pytest.mark.parametrize("path", ["plain", "blocked"])
def test_float32_compute_runs_in_float32(path: str) -> None:
    """compute_dtype=float32 is float32 work (not float64 work rounded at the end):
    it differs from the float64 result by float32 rounding, and no more."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((4, 64, 32)).astype(np.float32) for _ in range(3))
    in_float64 = PATHS[path](q, k, v)
    in_float32 = PATHS[path](q, k, v, compute_dtype=np.float32)
    assert in_float64.dtype == in_float32.dtype == np.float32
    error = np.abs(in_float32.astype(np.float64) - in_float64).max()
    assert 0 < error < 64 * np.finfo(np.float32).eps


@pytest.mark.parametrize("compute_dtype", [np.float16, ml_dtypes.bfloat16, np.float32],
                         ids=lambda d: np.dtype(d).name)
def test_low_precision_blocked_matches_plain_to_its_resolution(compute_dtype) -> None:
    """Both paths round stored intermediates to compute_dtype; they differ only in
    where (plain: normalised weights; blocked: unnormalised tiles, as flash kernels do).
    The blocked error is more than rounding the exact output once: it did round its tiles."""
    args, options = _case("everything", seed=8)
    expected = plain_sdpa(*args, compute_dtype=compute_dtype, **options)
    got = blocked_sdpa(*args, compute_dtype=compute_dtype, block_size=4, key_block=5, **options)
    exact = plain_sdpa(*args, **options)
    resolution = float(ml_dtypes.finfo(compute_dtype).eps) * np.abs(exact).max()
    lowp_error = np.abs(expected.astype(np.float64) - exact).max()
    assert np.abs(got.astype(np.float64) - expected.astype(np.float64)).max() <= (
        2 * lowp_error + 4 * resolution)
    rounded_once = np.abs(exact.astype(compute_dtype).astype(np.float64) - exact).max()
    assert np.abs(got.astype(np.float64) - exact).max() > 1.5 * rounded_once


def test_thread_count_does_not_change_a_bit() -> None:
    args, options = _case("everything", seed=9)
    one = blocked_sdpa(*args, block_size=4, key_block=5, threads=1, **options)
    three = blocked_sdpa(*args, block_size=4, key_block=5, threads=3, **options)
    np.testing.assert_array_equal(one, three)


def test_threads_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads() == 3
    monkeypatch.delenv(THREADS_ENV)
    assert default_threads() >= 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ValueError, match=THREADS_ENV):
            default_threads()


@pytest.mark.parametrize("bad", [dict(block_size=0), dict(key_block=-3), dict(threads=1.5)])
def test_bad_block_or_thread_counts_are_named(bad: dict) -> None:
    args, _ = _case("causal")
    with pytest.raises(ValueError, match=next(iter(bad))):
        blocked_sdpa(*args[:3], **bad)


def test_inputs_are_not_modified() -> None:
    args, options = _case("everything", seed=10)
    copies = [None if a is None else a.copy() for a in args]
    blocked_sdpa(*args, block_size=4, threads=2, **options)
    for before, after in itertools.zip_longest(copies, args):
        np.testing.assert_array_equal(before, after)


EDGE_SHAPES = {  # (query shape, key/value shape)
    "no-queries": ((2, 0, 8), (2, 5, 8)),
    "no-keys": ((2, 3, 8), (2, 0, 8)),
    "empty-batch": ((0, 2, 3, 8), (0, 2, 5, 8)),
    "key-batch-broadcast": ((2, 2, 3, 8), (2, 5, 8)),
    "both-broadcast": ((3, 2, 4, 8), (1, 2, 6, 8)),
}


@pytest.mark.parametrize("policy", ["zeros", "nan", "uniform"])
@pytest.mark.parametrize("name", list(EDGE_SHAPES))
def test_edge_shapes_match_the_plain_formula(name: str, policy: str) -> None:
    rng = np.random.default_rng(11)
    shape_q, shape_kv = EDGE_SHAPES[name]
    q, k, v = (rng.standard_normal(s) for s in (shape_q, shape_kv, shape_kv))
    expected, expected_lse = plain_sdpa(q, k, v, fully_masked=policy, return_lse=True)
    got, got_lse = blocked_sdpa(q, k, v, fully_masked=policy, return_lse=True, block_size=2)
    assert got.shape == expected.shape and got_lse.shape == expected_lse.shape
    scale = max(np.abs(np.nan_to_num(expected)).max(initial=0.0), 1.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL64 * scale, equal_nan=True)
    np.testing.assert_allclose(got_lse, expected_lse, rtol=RTOL64, atol=0, equal_nan=True)
