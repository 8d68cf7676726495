"""ALiBi slopes: the paper's numbers, typed from the rule, and the paper's code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference.alibi import alibi_slopes


def _paper_code_get_slopes(n):
    """Transcription of ``get_slopes`` from ofirpress/attention_with_linear_biases."""

    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (
        get_slopes_power_of_2(closest_power_of_2)
        + _paper_code_get_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2]
    )


# Exponents e in slope = 2**e, written out by hand from the rule in the paper and its code.
EXPECTED_EXPONENTS = {
    1: [-8],
    3: [-4, -8, -2],  # 2 heads: 2^-4, 2^-8; then the 4-head slopes at indices 0: 2^-2
    5: [-2, -4, -6, -8, -1],  # 4 heads, then 8-head slope at index 0
    6: [-2, -4, -6, -8, -1, -3],  # 4 heads, then 8-head slopes at indices 0, 2
    8: [-1, -2, -3, -4, -5, -6, -7, -8],
    # 8 heads, then the 16-head slopes 2^(-k/2) at k = 1, 3, 5, 7
    12: [-1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5],
    16: [-k / 2 for k in range(1, 17)],
}


@pytest.mark.parametrize("num_heads", sorted(EXPECTED_EXPONENTS))
def test_slopes_match_the_rule(num_heads):
    expected = np.array([2.0**e for e in EXPECTED_EXPONENTS[num_heads]])
    got = alibi_slopes(num_heads)
    assert got.dtype == np.float64 and got.shape == (num_heads,)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)


def test_eight_heads_are_exact_powers_of_two():
    np.testing.assert_array_equal(alibi_slopes(8), [0.5, 0.25, 0.125, 0.0625,
                                                    0.03125, 0.015625, 0.0078125, 0.00390625])


@pytest.mark.parametrize("num_heads", range(1, 65))
def test_matches_the_paper_code(num_heads):
    np.testing.assert_allclose(
        alibi_slopes(num_heads), _paper_code_get_slopes(num_heads), rtol=1e-14, atol=0
    )


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (-3, ValueError),
                                            (2.0, TypeError), (True, TypeError), ("8", TypeError)])
def test_bad_num_heads_names_the_argument(bad, error):
    with pytest.raises(error, match="num_heads"):
        alibi_slopes(bad)
