"""Sinusoidal positional encoding (Vaswani et al. §3.5), spot-checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.positional import sinusoidal_positional_encoding as pe


@pytest.mark.parametrize(
    ("length", "d_model", "pos", "col", "expected"),
    [
        (4, 4, 1, 0, math.sin(1.0)),
        (4, 4, 1, 1, math.cos(1.0)),
        (4, 4, 1, 2, math.sin(1 / 100)),  # 10000^(2/4) = 100
        (4, 4, 3, 3, math.cos(3 / 100)),
        (5, 6, 3, 2, math.sin(3 / 10000 ** (2 / 6))),
        (5, 6, 4, 5, math.cos(4 / 10000 ** (4 / 6))),
        (50, 512, 49, 100, math.sin(49 / 10000 ** (100 / 512))),
        (50, 512, 17, 511, math.cos(17 / 10000 ** (510 / 512))),
        # odd d_model: the exponent keeps the odd width, the last column is a lone sine
        (3, 5, 2, 4, math.sin(2 / 10000 ** (4 / 5))),
        (3, 5, 2, 3, math.cos(2 / 10000 ** (2 / 5))),
        (2, 1, 1, 0, math.sin(1.0)),
    ],
)
def test_spot_values(length, d_model, pos, col, expected):
    table = pe(length, d_model)
    assert table.shape == (length, d_model) and table.dtype == np.float64
    assert table[pos, col] == pytest.approx(expected, rel=1e-13, abs=1e-15)


def test_position_zero_and_range():
    table = pe(200, 33)
    np.testing.assert_array_equal(table[0, 0::2], 0.0)
    np.testing.assert_array_equal(table[0, 1::2], 1.0)
    assert np.all(np.abs(table) <= 1.0)


def test_base_is_used():
    assert pe(3, 4, base=16.0)[2, 2] == pytest.approx(math.sin(2 / 4.0), rel=1e-14)


def test_empty_length():
    assert pe(0, 8).shape == (0, 8)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"length": -1, "d_model": 4}, ValueError, "length"),
        ({"length": 3.0, "d_model": 4}, TypeError, "length"),
        ({"length": 3, "d_model": 0}, ValueError, "d_model"),
        ({"length": 3, "d_model": "4"}, TypeError, "d_model"),
        ({"length": 3, "d_model": 4, "base": 0.0}, ValueError, "base"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        pe(**kwargs)
