"""Notebook self-attention: the matrix formula, and the numbers notebook 001 printed."""

from __future__ import annotations

import numpy as np
import pytest

from reference.projected_self_attention import self_attention


def _notebook_formula(x, w_q, w_k, w_v, scale):
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = q @ k.T * scale
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ v


@pytest.mark.parametrize(("seq", "d_model", "d_k", "d_v"), [(1, 1, 1, 1), (5, 4, 3, 3),
                                                            (40, 144, 12, 12), (7, 6, 2, 9)])
def test_matches_the_formula(seq, d_model, d_k, d_v):
    rng = np.random.default_rng(seq * d_model)
    x = rng.normal(size=(seq, d_model))
    w_q, w_k = rng.normal(size=(2, d_model, d_k))
    w_v = rng.normal(size=(d_model, d_v))
    got = self_attention(x, w_q, w_k, w_v)
    np.testing.assert_allclose(got, _notebook_formula(x, w_q, w_k, w_v, 1 / np.sqrt(d_k)),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(self_attention(x, w_q, w_k, w_v, scale=0.3),
                               _notebook_formula(x, w_q, w_k, w_v, 0.3), rtol=1e-12, atol=1e-14)


def test_batch_dims():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 5, 4))
    w = rng.normal(size=(3, 4, 4))
    got = self_attention(x, *w)
    assert got.shape == (2, 3, 5, 4)
    for index in np.ndindex(2, 3):
        np.testing.assert_allclose(got[index], _notebook_formula(x[index], *w, 0.5),
                                   rtol=1e-12, atol=1e-14)


def test_reproduces_notebook_001_printed_numbers():
    # Notebook 001 draws, with np.random.seed(23): five word vectors (d_model = 4),
    # adds the fixed positional rows, then W_q, W_k, W_v = randn(4, 3) * 0.1, and
    # computes softmax(Q Kᵀ) V *without* the 1/√d_k scale (hence scale=1.0).
    rng = np.random.RandomState(23)
    words = np.stack([rng.randn(4) for _ in range(5)])
    positions = np.array([[0.3, -0.9, -0.6, 0.8], [-0.6, 0.8, -0.9, 0.15],
                          [0.8, -0.5, -0.9, 0.5], [-0.9, 0.2, -0.4, -0.9],
                          [0.95, 0.16, 0.2, -0.95]])
    w_q, w_k, w_v = (rng.randn(4, 3) * 0.1 for _ in range(3))
    x = words + positions
    printed_x = [[0.967, -0.8742, -1.3776, 1.7486], [0.1017, -0.2511, -1.2675, -0.9875],
                 [-0.5221, 1.2723, -1.2475, 1.1701], [-0.5777, 0.2603, -1.4435, -1.9099],
                 [1.3917, 1.2889, -1.6381, -1.8888]]
    np.testing.assert_allclose(x, printed_x, rtol=0, atol=5e-5)  # the draw is reproduced
    printed_attention = [[0.0066, -0.0286, 0.0036], [0.0062, -0.0306, -0.0024],
                         [0.0066, -0.0293, 0.0018], [0.006, -0.0315, -0.0049],
                         [0.0068, -0.0313, -0.0067]]
    got = self_attention(x, w_q, w_k, w_v, scale=1.0)
    np.testing.assert_allclose(got, printed_attention, rtol=0, atol=5.01e-5)


def test_dtype_and_inputs_untouched():
    rng = np.random.default_rng(2)
    args = [rng.normal(size=s).astype(np.float32) for s in ((3, 4), (4, 2), (4, 2), (4, 5))]
    copies = [a.copy() for a in args]
    for a in args:
        a.setflags(write=False)
    assert self_attention(*args).dtype == np.float32
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    ("shapes", "error", "words"),
    [
        (((5, 4), (3, 3), (4, 3), (4, 3)), ValueError, r"w_query.*\(3, 3\).*x shape \(5, 4\)"),
        (((5, 4), (4, 3), (5, 3), (4, 3)), ValueError, r"w_key.*\(5, 3\)"),
        (((5, 4), (4, 3), (4, 3), (4,)), ValueError, r"w_value.*\(4,\)"),
        (((5, 4), (4, 3), (4, 2), (4, 3)), ValueError, r"d_k.*\(4, 3\).*\(4, 2\)"),
        (((4,), (4, 3), (4, 3), (4, 3)), ValueError, r"x.*\(4,\)"),
    ],
)
def test_bad_input_names_the_argument(shapes, error, words):
    with pytest.raises(error, match=words):
        self_attention(*(np.zeros(s) for s in shapes))


def test_integer_input_is_a_type_error():
    with pytest.raises(TypeError, match="x"):
        self_attention(np.ones((2, 2), dtype=int), *np.zeros((3, 2, 2)))
