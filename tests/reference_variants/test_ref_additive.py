"""Additive (Bahdanau) attention against a plain loop over the formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.additive import additive_attention


def _loop(query, keys, values, w_query, w_key, w_score, mask):
    """One batch element: score = w_score · tanh(q_i W_q + k_j W_k), masked row → zeros."""
    out = np.zeros((query.shape[0], values.shape[1]))
    for i in range(query.shape[0]):
        scores = {}
        for j in range(keys.shape[0]):
            if mask is None or mask[i, j]:
                hidden = [math.tanh(sum(query[i, p] * w_query[p, a] for p in range(len(query[i])))
                                    + sum(keys[j, p] * w_key[p, a] for p in range(len(keys[j]))))
                          for a in range(len(w_score))]
                scores[j] = sum(w * h for w, h in zip(w_score, hidden, strict=True))
        if not scores:
            continue
        top = max(scores.values())
        total = sum(math.exp(s - top) for s in scores.values())
        for j, s in scores.items():
            out[i] += math.exp(s - top) / total * values[j]
    return out


def _inputs(seed, lead, lq, lk, dq, dk, dv, a):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(*lead, lq, dq)), rng.normal(size=(*lead, lk, dk)),
            rng.normal(size=(*lead, lk, dv)), rng.normal(size=(dq, a)),
            rng.normal(size=(dk, a)), rng.normal(size=(a,)))


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize(("lead", "lq", "lk", "dq", "dk", "dv", "a"),
                         [((), 1, 1, 2, 2, 1, 1), ((), 3, 5, 4, 6, 2, 7), ((2,), 4, 3, 3, 5, 4, 2),
                          ((2, 2), 2, 6, 3, 3, 3, 4)])
def test_matches_the_formula_loop(lead, lq, lk, dq, dk, dv, a, with_mask):
    args = _inputs(lq * 10 + lk, lead, lq, lk, dq, dk, dv, a)
    mask = None
    if with_mask:
        mask = np.random.default_rng(1).random((*lead, lq, lk)) < 0.6
        mask[(*([0] * len(lead)), 0, slice(None))] = False  # one fully-masked row
    got = additive_attention(*args, mask)
    assert got.shape == (*lead, lq, dv)
    for index in np.ndindex(*lead):
        expected = _loop(args[0][index], args[1][index], args[2][index], *args[3:],
                         None if mask is None else mask[index])
        np.testing.assert_allclose(got[index], expected, rtol=0, atol=1e-13)
    if with_mask:
        np.testing.assert_array_equal(got[(*([0] * len(lead)), 0)], 0.0)


def test_mask_broadcasts_over_batch():
    args = _inputs(3, (3,), 2, 4, 3, 3, 2, 5)
    mask = np.array([[True, False, True, True], [False, False, True, False]])
    got = additive_attention(*args, mask)
    np.testing.assert_array_equal(got, additive_attention(*args, np.broadcast_to(mask, (3, 2, 4))))


def test_dtype_and_inputs_untouched():
    args = [a.astype(np.float32) for a in _inputs(4, (2,), 3, 4, 2, 2, 2, 3)]
    copies = [a.copy() for a in args]
    for a in args:
        a.setflags(write=False)
    assert additive_attention(*args).dtype == np.float32
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c)


def _bad(index, shape):
    args = list(_inputs(5, (), 3, 4, 2, 5, 6, 7))
    args[index] = np.zeros(shape)
    return args


@pytest.mark.parametrize(
    ("args", "mask", "error", "words"),
    [
        (_bad(0, (3, 3)), None, ValueError, r"w_query.*query \(3, 3\)"),
        (_bad(1, (4, 4)), None, ValueError, r"w_key.*keys \(4, 4\)"),
        (_bad(2, (5, 6)), None, ValueError, r"keys and values.*values \(5, 6\)"),
        (_bad(5, (6,)), None, ValueError, r"w_score \(6,\)"),
        (_bad(4, (5, 6)), None, ValueError, r"w_key \(5, 6\)"),
        (_bad(0, (2, 3, 2)), None, None, None),  # batch dims broadcast against unbatched keys
        (_bad(3, (2, 7)), np.ones((3, 4)), TypeError, "mask.*float64"),
        (_bad(3, (2, 7)), np.ones((3, 5), dtype=bool), ValueError, r"mask.*\(3, 5\)"),
    ],
)
def test_bad_input_names_the_argument(args, mask, error, words):
    if error is None:
        assert additive_attention(*args, mask).shape == (2, 3, 6)
        return
    with pytest.raises(error, match=words):
        additive_attention(*args, mask)
