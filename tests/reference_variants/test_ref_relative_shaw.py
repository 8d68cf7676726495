"""Shaw et al. relative attention: eq. 3–4 by a plain loop, and its sdpa special cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.relative_shaw import shaw_relative_attention as shaw
from reference.scaled_dot_product import sdpa


def _loop(q, k, v, rel_k, rel_v, max_distance, causal):
    """One (L, E) head: e_ij = q_i·(k_j + a^K_ij)/√E, z_i = Σ α_ij (v_j + a^V_ij)."""
    out = np.zeros((q.shape[0], v.shape[1]))
    for i in range(q.shape[0]):
        keys = range(i + 1) if causal else range(k.shape[0])
        row = {j: max(-max_distance, min(max_distance, j - i)) + max_distance for j in keys}
        logits = {j: q[i] @ (k[j] + rel_k[r]) / math.sqrt(q.shape[1]) for j, r in row.items()}
        top = max(logits.values())
        total = sum(math.exp(s - top) for s in logits.values())
        for j, r in row.items():
            out[i] += math.exp(logits[j] - top) / total * (v[j] + rel_v[r])
    return out


def _inputs(seed, lead, lq, lk, e, ev, max_distance):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(*lead, lq, e)), rng.normal(size=(*lead, lk, e)),
            rng.normal(size=(*lead, lk, ev)), rng.normal(size=(2 * max_distance + 1, e)),
            rng.normal(size=(2 * max_distance + 1, ev)))


CASES = [((1,), 4, 4, 3, 3, 2), ((2, 3), 7, 7, 4, 5, 2), ((3,), 5, 9, 6, 2, 3),
         ((2,), 6, 6, 4, 4, 0), ((1,), 3, 3, 2, 2, 10)]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("lead", "lq", "lk", "e", "ev", "k"), CASES)
def test_matches_the_formula_loop(lead, lq, lk, e, ev, k, causal):
    q, key, v, rel_k, rel_v = _inputs(lq * lk + e, lead, lq, lk, e, ev, k)
    got = shaw(q, key, v, rel_k, rel_v, max_distance=k, is_causal=causal)
    assert got.shape == (*lead, lq, ev)
    for index in np.ndindex(*lead):
        np.testing.assert_allclose(got[index], _loop(q[index], key[index], v[index],
                                                     rel_k, rel_v, k, causal),
                                   rtol=0, atol=1e-13)


@pytest.mark.parametrize("causal", [False, True])
def test_zero_tables_equal_sdpa(causal):
    q, k, v, rel_k, rel_v = _inputs(1, (2, 3), 6, 6, 4, 5, 3)
    got = shaw(q, k, v, np.zeros_like(rel_k), np.zeros_like(rel_v), max_distance=3,
               is_causal=causal)
    np.testing.assert_allclose(got, sdpa(q, k, v, is_causal=causal), rtol=0, atol=1e-14)


def test_single_row_tables_shift_keys_and_values():
    # max_distance = 0: every pair reads row 0; a constant key offset shifts each score
    # row by q_i·c (softmax-invariant), a constant value offset adds to the output.
    q, k, v, rel_k, rel_v = _inputs(2, (3,), 5, 5, 4, 4, 0)
    got = shaw(q, k, v, rel_k, rel_v, max_distance=0)
    np.testing.assert_allclose(got, sdpa(q, k, v) + rel_v[0], rtol=0, atol=1e-13)


def test_dtype_and_inputs_untouched():
    arrays = [a.astype(np.float32) for a in _inputs(3, (2,), 4, 4, 2, 2, 1)]
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.setflags(write=False)
    assert shaw(*arrays, max_distance=1).dtype == np.float32
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    ("shapes", "max_distance", "error", "words"),
    [
        (((1, 4, 3), (1, 4, 3), (1, 4, 3), (4, 3), (5, 3)), 2, ValueError, r"rel_keys \(4, 3\)"),
        (((1, 4, 3), (1, 4, 3), (1, 4, 3), (5, 3), (5, 2)), 2, ValueError,
         r"rel_values \(5, 2\)"),
        (((1, 4, 3), (1, 4, 2), (1, 4, 3), (5, 3), (5, 3)), 2, ValueError, r"key \(1, 4, 2\)"),
        (((1, 4, 3), (1, 4, 3), (1, 5, 3), (5, 3), (5, 3)), 2, ValueError, r"value \(1, 5, 3\)"),
        (((1, 4, 3), (1, 4, 3), (1, 4, 3), (5, 3), (5, 3)), -1, ValueError, "max_distance"),
        (((1, 4, 3), (1, 4, 3), (1, 4, 3), (5, 3), (5, 3)), 2.0, TypeError, "max_distance"),
    ],
)
def test_bad_input_names_the_argument(shapes, max_distance, error, words):
    with pytest.raises(error, match=words):
        shaw(*(np.zeros(s) for s in shapes), max_distance=max_distance)
