"""The op tests' oracle and bounds (tests/ops_testing.py): the oracle is exact,
and the tolerances are tight enough that wrong results fail them."""
import math
from fractions import Fraction

import pytest
import torch

import sgs_ext
from ops_testing import (
    SAFETY,
    U32,
    U64,
    assert_projection_matches_oracle,
    assert_stats_match_oracle,
    clone_list,
    conflicting_pair,
    dot_error_bound,
    exact_dot,
    exact_stats,
    expected_projection,
    oracle_error_bound,
    random_list,
)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_the_oracle_is_within_its_bound_of_the_exact_sum(dtype):
    g = torch.Generator().manual_seed(0)
    # magnitudes over many binades, so that float64 products and sums both round
    x = (torch.randn(3001, generator=g, dtype=torch.float64) * torch.exp(4 * torch.randn(3001, generator=g))).to(dtype)
    y = torch.randn(3001, generator=g, dtype=torch.float64).to(dtype)
    products = [Fraction(a) * Fraction(b) for a, b in zip(x.double().tolist(), y.double().tolist())]
    exact, abs_sum = sum(products), float(sum(abs(p) for p in products))
    got = exact_dot([x[:1000], x[1000:]], [y[:1000], y[1000:]])
    assert abs(Fraction(got) - exact) <= Fraction(oracle_error_bound(abs_sum, got))


def test_the_bounds_have_the_documented_size():
    """On the CPU, a float32 list of 100,000 elements (2 chunks): dot_norm rounds each product
    at most 4 times in float32 and 1295 + 2 times in float64; gram 275 + 2 times in float64;
    both return float32 (one more rounding of the result)."""
    x, y = random_list([100_000], torch.float32, 1), random_list([100_000], torch.float32, 2)
    abs_sum = float((x[0].double() * y[0].double()).abs().sum())
    s = abs(exact_dot(x, y))
    assert dot_error_bound(x, y) == pytest.approx(
        SAFETY * ((4 * U32 + 1297 * U64) * abs_sum + U32 * s), rel=1e-6)
    assert dot_error_bound(x, y, op="gram") == pytest.approx(SAFETY * (277 * U64 * abs_sum + U32 * s), rel=1e-6)


def test_wrong_statistics_fail():
    train, oracle = conflicting_pair([70_000, 300], torch.float32, 0)
    got = sgs_ext.dot_norm(train, oracle)
    assert_stats_match_oracle(got, train, oracle)
    exact = exact_stats(train, oracle)
    bounds = [dot_error_bound(train, oracle), dot_error_bound(oracle, oracle), dot_error_bound(train, train)]
    for k in range(3):
        wrong = torch.tensor(exact, dtype=torch.float64)
        wrong[k] += 10 * bounds[k]
        with pytest.raises(AssertionError, match="> bound"):
            assert_stats_match_oracle(wrong.float(), train, oracle)
    missing_one = sgs_ext.dot_norm([train[0][1:], train[1]], [oracle[0][1:], oracle[1]])
    with pytest.raises(AssertionError, match="> bound"):
        assert_stats_match_oracle(missing_one, train, oracle)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_one_wrong_projected_element_fails(dtype):
    train, oracle = conflicting_pair([5000, 70_000], dtype, 1)
    before = clone_list(train)
    stats = sgs_ext.dot_norm(train, oracle)
    sgs_ext.project_(train, oracle, stats)
    assert_projection_matches_oracle(train, before, oracle, stats)
    expected, tolerance = expected_projection(before, oracle, stats)
    i = int(expected[1].abs().argmax())
    value, ulps = train[1][i].clone(), 0
    while abs(float(value) - float(expected[1][i])) <= float(tolerance[1][i]):
        value, ulps = torch.nextafter(value, torch.tensor(math.inf, dtype=dtype)), ulps + 1
    assert ulps <= 8, "the tolerance of this element spans more than 8 ulps"
    off = train[1].clone()
    off[i] = value
    with pytest.raises(AssertionError, match="out of tolerance"):
        assert_projection_matches_oracle([train[0], off], before, oracle, stats)
    unprojected = [train[0], before[1]]
    with pytest.raises(AssertionError, match="out of tolerance"):
        assert_projection_matches_oracle(unprojected, before, oracle, stats)
