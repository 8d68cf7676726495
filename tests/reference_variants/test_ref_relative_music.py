"""Music Transformer relative attention: skew == naive == a plain loop over the formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.relative_music import relative_attention, relative_attention_naive
from reference.scaled_dot_product import sdpa


def _loop(q, k, v, emb):
    """One (L, D) head, straight from the formula: E row j − i + L − 1, causal, /√D."""
    seq, dim = q.shape
    out = np.zeros((seq, v.shape[-1]))
    for i in range(seq):
        logits = [(q[i] @ k[j] + q[i] @ emb[j - i + seq - 1]) / math.sqrt(dim)
                  for j in range(i + 1)]
        top = max(logits)
        weights = [math.exp(s - top) for s in logits]
        total = sum(weights)
        for j, w in enumerate(weights):
            out[i] += w / total * v[j]
    return out


def _inputs(seed, lead, seq, dim, dim_v=None):
    rng = np.random.default_rng(seed)
    q, k = rng.normal(size=(2, *lead, seq, dim))
    v = rng.normal(size=(*lead, seq, dim_v or dim))
    return q, k, v, rng.normal(size=(seq, dim))


SHAPES = [((1,), 1, 4), ((2,), 5, 3), ((3,), 7, 8), ((2, 4), 13, 16), ((2, 1, 3), 9, 5)]


@pytest.mark.parametrize(("lead", "seq", "dim"), SHAPES)
def test_skew_equals_naive(lead, seq, dim):
    q, k, v, emb = _inputs(seq * dim, lead, seq, dim)
    np.testing.assert_allclose(relative_attention(q, k, v, emb),
                               relative_attention_naive(q, k, v, emb), rtol=0, atol=1e-13)


@pytest.mark.parametrize("fn", [relative_attention, relative_attention_naive])
@pytest.mark.parametrize(("lead", "seq", "dim"), SHAPES[:4])
def test_matches_the_formula_loop(fn, lead, seq, dim):
    q, k, v, emb = _inputs(seq + dim, lead, seq, dim, dim_v=3)
    got = fn(q, k, v, emb)
    assert got.shape == (*lead, seq, 3)
    for index in np.ndindex(*lead):
        np.testing.assert_allclose(got[index], _loop(q[index], k[index], v[index], emb),
                                   rtol=0, atol=1e-13)


@pytest.mark.parametrize("fn", [relative_attention, relative_attention_naive])
def test_zero_embeddings_is_causal_sdpa(fn):
    q, k, v, emb = _inputs(7, (2, 3), 11, 6)
    np.testing.assert_allclose(fn(q, k, v, np.zeros_like(emb)), sdpa(q, k, v, is_causal=True),
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize("fn", [relative_attention, relative_attention_naive])
def test_per_head_embeddings(fn):
    q, k, v, _ = _inputs(8, (2, 3), 6, 4)
    emb = np.random.default_rng(9).normal(size=(3, 6, 4))
    got = fn(q, k, v, emb)
    for b in range(2):
        for h in range(3):
            np.testing.assert_allclose(got[b, h], _loop(q[b, h], k[b, h], v[b, h], emb[h]),
                                       rtol=0, atol=1e-13)


def test_dtype_and_inputs_untouched():
    arrays = [a.astype(np.float32) for a in _inputs(10, (2,), 5, 4)]
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.setflags(write=False)
    for fn in (relative_attention, relative_attention_naive):
        assert fn(*arrays).dtype == np.float32
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("fn", [relative_attention, relative_attention_naive])
@pytest.mark.parametrize(
    ("shapes", "words"),
    [
        (((2, 5, 4), (2, 5, 4), (2, 5, 4), (4, 4)), r"rel_embeddings.*\(4, 4\)"),
        (((2, 5, 4), (2, 5, 4), (2, 5, 4), (5, 3)), r"rel_embeddings.*\(5, 3\)"),
        (((2, 5, 4), (2, 5, 4), (2, 5, 4), (3, 5, 4)), r"rel_embeddings.*\(3, 5, 4\)"),
        (((2, 5, 4), (2, 6, 4), (2, 6, 4), (5, 4)), r"key \(2, 6, 4\)"),
        (((5, 4), (5, 4), (5, 4), (5, 4)), r"query.*\(5, 4\)"),
    ],
)
def test_bad_shapes_name_the_argument(fn, shapes, words):
    with pytest.raises(ValueError, match=words):
        fn(*(np.zeros(s) for s in shapes))
