"""T5 relative position buckets and bias (Raffel et al. 2020, mesh-tensorflow code)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.relative_t5 import t5_relative_bias
from reference.relative_t5 import t5_relative_position_bucket as bucket

# Worked by hand. bidirectional, 32 buckets, max_distance 128: n = 16 per side, exact
# region |d| < 8, keys after the query (d > 0) offset by 16; for 8 <= |d|:
# 8 + ⌊log(|d|/8) / log(16) · 8⌋ = 8 + ⌊2·log2(|d|/8)⌋, capped at 15.
BIDIRECTIONAL = {0: 0, -1: 1, -7: 7, 1: 17, 7: 23, -8: 8, 8: 24, -10: 8, -11: 8, -12: 9,
                 -16: 10, 16: 26, -32: 12, 32: 28, -64: 14, -127: 15, -128: 15, -1000: 15,
                 128: 31, 1000: 31}
# causal (bidirectional=False), 32 buckets, max_distance 128: d > 0 → 0, exact region
# |d| < 16, then 16 + ⌊log(|d|/16) / log(8) · 16⌋ capped at 31.
CAUSAL = {0: 0, 5: 0, 100: 0, -1: 1, -15: 15, -16: 16, -32: 21, -64: 26, -127: 31,
          -128: 31, -5000: 31}


@pytest.mark.parametrize(("bidirectional", "table"), [(True, BIDIRECTIONAL), (False, CAUSAL)])
def test_known_buckets(bidirectional, table):
    distances = np.array(list(table))
    got = bucket(distances, bidirectional=bidirectional)
    assert got.shape == distances.shape and np.issubdtype(got.dtype, np.integer)
    assert dict(zip(table, got.tolist(), strict=True)) == table


def test_boundary_distance_lands_where_the_t5_code_puts_it():
    # num_buckets=18, max_distance=128: n = 9, exact region < 4; |d| = 16 gives
    # 4 + ⌊log(16/4) / log(128/4) · 5⌋ = 4 + ⌊(2/5) · 5⌋ = 6 in exact arithmetic, and the
    # T5 code's float32 log agrees; a float64 log rounds 2/5 · 5 just below 2 and gives 5.
    got = bucket(np.array([-16, 16]), num_buckets=18, max_distance=128)
    np.testing.assert_array_equal(got, [6, 9 + 6])


@pytest.mark.parametrize("num_buckets", [8, 16, 32, 64])
def test_exact_region_is_the_distance(num_buckets):
    half = num_buckets // 2
    d = np.arange(1, half // 2)
    np.testing.assert_array_equal(bucket(-d, num_buckets=num_buckets), d)
    np.testing.assert_array_equal(bucket(d, num_buckets=num_buckets), d + half)
    np.testing.assert_array_equal(bucket(-d, bidirectional=False, num_buckets=num_buckets), d)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (8, 20), (64, 256),
                                                            (10, 40)])
def test_monotone_in_range_and_clipped(bidirectional, num_buckets, max_distance):
    d = np.arange(0, 4 * max_distance)
    n = num_buckets // 2 if bidirectional else num_buckets
    kw = {"bidirectional": bidirectional, "num_buckets": num_buckets,
          "max_distance": max_distance}
    before = bucket(-d, **kw)  # keys before the query
    assert np.all(np.diff(before) >= 0) and before.min() == 0
    assert np.all(before[max_distance:] == n - 1)  # clipped: one bucket from max_distance on
    assert np.all(before < n)
    after = bucket(d[1:], **kw)
    if bidirectional:
        assert np.all(np.diff(after) >= 0) and np.all((after >= n) & (after < 2 * n))
        assert np.all(after[max_distance - 1:] == 2 * n - 1)
    else:
        assert np.all(after == 0)


@pytest.mark.torch
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (18, 128), (20, 160),
                                                            (64, 256), (108, 128)])
def test_matches_the_hf_t5_code(bidirectional, num_buckets, max_distance):
    torch = pytest.importorskip("torch")

    def hf_bucket(relative_position, bidirectional, num_buckets, max_distance):
        # transformers' T5Attention._relative_position_bucket, verbatim but for names
        relative_buckets = 0
        if bidirectional:
            num_buckets //= 2
            relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
            relative_position = torch.abs(relative_position)
        else:
            relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
        max_exact = num_buckets // 2
        is_small = relative_position < max_exact
        if_large = max_exact + (
            torch.log(relative_position.float() / max_exact)
            / math.log(max_distance / max_exact) * (num_buckets - max_exact)
        ).to(torch.long)
        if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
        return relative_buckets + torch.where(is_small, relative_position, if_large)

    d = np.arange(-3 * max_distance, 3 * max_distance + 1)
    expected = hf_bucket(torch.from_numpy(d), bidirectional, num_buckets, max_distance).numpy()
    got = bucket(d, bidirectional=bidirectional, num_buckets=num_buckets,
                 max_distance=max_distance)
    np.testing.assert_array_equal(got, expected)


def test_bias_gathers_the_table_per_pair():
    table = np.random.default_rng(0).normal(size=(16, 3))
    bias = t5_relative_bias(4, 6, table, num_buckets=16, max_distance=32)
    assert bias.shape == (3, 4, 6)
    for i in range(4):
        for j in range(6):
            b = int(bucket(np.array(j - i), num_buckets=16, max_distance=32))
            np.testing.assert_array_equal(bias[:, i, j], table[b])
    # d = j − i: j > i reads the upper half of the table, j < i the lower half
    np.testing.assert_array_equal(bias[:, 0, 1], table[9])
    np.testing.assert_array_equal(bias[:, 2, 0], table[2])


def test_causal_bias_reads_bucket_zero_above_the_diagonal():
    table = np.arange(32.0 * 2).reshape(32, 2)
    bias = t5_relative_bias(3, 3, table, bidirectional=False)
    np.testing.assert_array_equal(bias[1], [[1, 1, 1], [3, 1, 1], [5, 3, 1]])


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: bucket(np.array([1.5])), TypeError, "relative_position"),
        (lambda: bucket(np.array([1]), num_buckets=2), ValueError, "num_buckets"),
        (lambda: bucket(np.array([1]), max_distance=8), ValueError, "max_distance"),
        (lambda: bucket(np.array([1]), num_buckets=32.0), TypeError, "num_buckets"),
        (lambda: t5_relative_bias(3, 3, np.zeros((31, 2))), ValueError,
         r"bias_table.*\(31, 2\)"),
        (lambda: t5_relative_bias(-1, 3, np.zeros((32, 2))), ValueError, "lq"),
        (lambda: t5_relative_bias(3, 3, np.zeros((32, 2), dtype=int)), TypeError, "bias_table"),
    ],
)
def test_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()
