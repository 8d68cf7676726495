"""Rotary embeddings: both conventions, hand values and the properties RoPE exists for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.rotary import rotary_embedding as rope

CONVENTIONS = ("half", "interleaved")


def _perm(dim):
    """Half slot s holds interleaved feature perm[s]: [0, 2, …, D−2, 1, 3, …, D−1]."""
    return np.concatenate([np.arange(0, dim, 2), np.arange(1, dim, 2)])


@pytest.mark.parametrize("shape", [(5, 2), (3, 7, 8), (2, 3, 4, 16)])
def test_conventions_agree_after_the_permutation(shape):
    x = np.random.default_rng(0).normal(size=shape)
    perm = _perm(shape[-1])
    # x laid out interleaved; x[..., perm] is the same vector laid out half-split
    np.testing.assert_allclose(
        rope(x[..., perm], convention="half"), rope(x, convention="interleaved")[..., perm],
        rtol=0, atol=1e-14,
    )
    inverse = np.argsort(perm)  # inverse[2i] = i, inverse[2i + 1] = i + D/2
    np.testing.assert_allclose(
        rope(x[..., inverse], convention="interleaved"), rope(x, convention="half")[..., inverse],
        rtol=0, atol=1e-14,
    )


def test_conventions_differ_without_the_permutation():
    x = np.random.default_rng(1).normal(size=(4, 8))
    assert not np.allclose(rope(x, convention="half"), rope(x, convention="interleaved"))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_two_features_rotate_counterclockwise_by_pos(convention):
    x = np.tile([1.0, 0.0], (3, 1))  # D = 2: θ_0 = 1, both conventions pair (x0, x1)
    out = rope(x, convention=convention)
    for pos in range(3):
        np.testing.assert_allclose(out[pos], [math.cos(pos), math.sin(pos)], atol=1e-15)


def test_hand_values_d4():
    # θ = [1, 10000^(-1/2)] = [1, 0.01]; position 2
    x = np.array([[0.0] * 4, [0.0] * 4, [1.0, 2.0, 3.0, 4.0]])
    c0, s0, c1, s1 = math.cos(2), math.sin(2), math.cos(0.02), math.sin(0.02)
    half = [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 1 * s0 + 3 * c0, 2 * s1 + 4 * c1]
    inter = [1 * c0 - 2 * s0, 1 * s0 + 2 * c0, 3 * c1 - 4 * s1, 3 * s1 + 4 * c1]
    np.testing.assert_allclose(rope(x, convention="half")[2], half, rtol=1e-14)
    np.testing.assert_allclose(rope(x, convention="interleaved")[2], inter, rtol=1e-14)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_preserves_norms(convention):
    x = np.random.default_rng(2).normal(size=(2, 3, 9, 16))
    out = rope(x, convention=convention)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-13)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_position_zero_is_identity(convention):
    x = np.random.default_rng(3).normal(size=(1, 12))
    np.testing.assert_allclose(rope(x, convention=convention), x, rtol=0, atol=0)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_dot_product_depends_only_on_the_offset(convention):
    rng = np.random.default_rng(4)
    q, k = rng.normal(size=(2, 1, 32))

    def dot(m, n):
        rq = rope(q, np.array([m]), convention=convention, base=500.0)
        rk = rope(k, np.array([n]), convention=convention, base=500.0)
        return float(rq[0] @ rk[0])

    for m, n in [(3, 1), (0, 7), (5, 5), (2.5, 0.25)]:
        reference_dot = dot(m - n, 0.0)
        for shift in (1, 17, 1000, -4.5):
            assert dot(m + shift, n + shift) == pytest.approx(reference_dot, rel=1e-9, abs=1e-9)
    assert dot(3, 1) != pytest.approx(dot(1, 3), rel=1e-6)  # depends on the sign of m − n


def test_positions_default_and_broadcast():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 6, 8))
    np.testing.assert_array_equal(rope(x), rope(x, np.arange(6)))
    per_batch = np.array([[0, 1, 2, 3, 4, 5], [10, 11, 12, 13, 14, 15]])[:, None, :]
    out = rope(x, per_batch)
    np.testing.assert_allclose(out[1], rope(x[1], np.arange(10, 16)), rtol=0, atol=0)


def test_dtype_and_input_untouched():
    x = np.random.default_rng(6).normal(size=(4, 8)).astype(np.float32)
    before = x.copy()
    x.setflags(write=False)
    out = rope(x, convention="interleaved")
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        ((np.zeros((3, 5)),), {}, ValueError, r"x.*\(3, 5\)"),
        ((np.zeros((3, 4)),), {"convention": "neox"}, ValueError, "convention.*neox"),
        ((np.zeros((3, 4)), np.arange(4)), {}, ValueError, r"positions.*\(4,\).*\(3,\)"),
        ((np.zeros((3, 4), dtype=int),), {}, TypeError, "x"),
        ((np.zeros((3, 4)), np.array(["a", "b", "c"])), {}, TypeError, "positions"),
    ],
)
def test_bad_input_names_the_argument(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        rope(*args, **kwargs)
