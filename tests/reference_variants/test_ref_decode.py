"""reference.decode_step: token-by-token (and chunked) decoding equals full causal
attention over the whole sequence."""

from __future__ import annotations

import numpy as np
import pytest

from reference.decode import decode_step
from reference.scaled_dot_product import sdpa

ATOL = 1e-12


def _sequence(seed: int, batch=(2,), heads=(4, 2), length=13, dim=8, dim_v=5):
    rng = np.random.default_rng(seed)
    hq, hk = heads
    q = rng.standard_normal((*batch, hq, length, dim))
    k = rng.standard_normal((*batch, hk, length, dim))
    v = rng.standard_normal((*batch, hk, length, dim_v))
    return q, k, v


def _full_causal(q, k, v, scale=None) -> np.ndarray:
    """Square causal attention, top-left aligned: the independent route."""
    length = q.shape[-2]
    visible = np.tril(np.ones((length, length), dtype=bool))
    return sdpa(q, k, v, visible, scale=scale, enable_gqa=q.shape[-3] != k.shape[-3])


def _decode(q, k, v, chunks, scale=None):
    cache_k, cache_v = k[..., :0, :], v[..., :0, :]
    outs, start = [], 0
    for size in chunks:
        rows = slice(start, start + size)
        out, cache_k, cache_v = decode_step(q[..., rows, :], cache_k, cache_v, k[..., rows, :],
                                            v[..., rows, :], scale=scale)
        outs.append(out)
        start += size
    assert start == q.shape[-2]
    return np.concatenate(outs, axis=-2), cache_k, cache_v


@pytest.mark.parametrize(
    ("heads", "batch", "scale"),
    [((4, 2), (2,), None), ((3, 3), (), None), ((6, 1), (2, 2), 0.3), ((1, 1), (1,), None)],
    ids=["gqa", "mha-unbatched", "mqa-scale", "single-head"],
)
def test_token_by_token_equals_full_causal(heads, batch, scale) -> None:
    q, k, v = _sequence(sum(heads), batch=batch, heads=heads)
    got, cache_k, cache_v = _decode(q, k, v, [1] * q.shape[-2], scale=scale)
    np.testing.assert_allclose(got, _full_causal(q, k, v, scale), rtol=0, atol=ATOL)
    np.testing.assert_array_equal(cache_k, k)
    np.testing.assert_array_equal(cache_v, v)


@pytest.mark.parametrize("chunks", [[13], [5, 1, 7], [1, 12], [4, 4, 4, 1]])
def test_chunked_prefill_equals_full_causal(chunks) -> None:
    q, k, v = _sequence(len(chunks))
    got, _, _ = _decode(q, k, v, chunks)
    np.testing.assert_allclose(got, _full_causal(q, k, v), rtol=0, atol=ATOL)


def test_single_step_with_cache_sees_everything() -> None:
    """One new token after a cache of 6: it attends to all 7 keys, unmasked."""
    q, k, v = _sequence(9, length=7)
    out, _, _ = decode_step(q[..., 6:, :], k[..., :6, :], v[..., :6, :], k[..., 6:, :],
                            v[..., 6:, :])
    weights = np.exp(q[..., 6:, :] @ np.swapaxes(np.repeat(k, 2, axis=-3), -1, -2) / np.sqrt(8))
    expected = (weights / weights.sum(-1, keepdims=True)) @ np.repeat(v, 2, axis=-3)
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)


def test_caches_are_new_arrays_and_inputs_untouched() -> None:
    q, k, v = _sequence(3, length=4)
    args = (q[..., 3:, :], k[..., :3, :].copy(), v[..., :3, :].copy(), k[..., 3:, :].copy(),
            v[..., 3:, :].copy())
    before = [a.copy() for a in args]
    _, new_k, new_v = decode_step(*args)
    for a, b in zip(args, before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(new_k, args[1]) and not np.shares_memory(new_v, args[2])
