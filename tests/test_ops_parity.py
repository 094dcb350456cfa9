"""The fused ops against sgs_ext.reference, for every op and dtype."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sgs_ext
from sgs_ext import reference
from ops_testing import DTYPES, assert_lists_close, assert_stats_close, clone_list, conflicting_pair, random_list


@st.composite
def list_sizes(draw):
    """1-300 tensors: many small (0-4096 elements), at most two large (up to 1e6)."""
    count = draw(st.integers(1, 300))
    n_big = draw(st.integers(0, min(2, count)))
    big = draw(st.lists(st.integers(0, 1_000_000), min_size=n_big, max_size=n_big))
    small = draw(st.lists(st.integers(0, 4096), min_size=count - n_big, max_size=count - n_big))
    return draw(st.permutations(big + small))


PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@PROPERTY
@given(sizes=list_sizes(), seed=st.integers(0, 2**31 - 1))
def test_dot_norm_matches_reference(dtype, sizes, seed):
    train, oracle = random_list(sizes, dtype, seed), random_list(sizes, dtype, seed + 7)
    got = sgs_ext.dot_norm(train, oracle)
    want = reference.dot_norm(train, oracle)
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_stats_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@PROPERTY
@given(sizes=list_sizes(), seed=st.integers(0, 2**31 - 1))
def test_surgery_matches_reference(dtype, sizes, seed):
    train, oracle = conflicting_pair(sizes, dtype, seed)
    expected = clone_list(train)
    want_stats = reference.surgery_(expected, oracle)
    got_stats = sgs_ext.surgery_(train, oracle)
    assert_stats_close(got_stats, want_stats, dtype)
    assert_lists_close(train, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@PROPERTY
@given(sizes=list_sizes(), seed=st.integers(0, 2**31 - 1))
def test_project_with_given_stats_matches_reference(dtype, sizes, seed):
    train, oracle = conflicting_pair(sizes, dtype, seed)
    stats = reference.dot_norm(train, oracle)
    expected = clone_list(train)
    reference.project_(expected, oracle, stats)
    sgs_ext.project_(train, oracle, stats)
    assert_lists_close(train, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("num_sets", [1, 2, 3, 5, 8])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=list_sizes(), seed=st.integers(0, 2**31 - 1))
def test_gram_matches_reference(dtype, num_sets, sizes, seed):
    sets = [random_list(sizes, dtype, seed + 11 * s) for s in range(num_sets)]
    got = sgs_ext.gram(sets)
    want = reference.gram(sets)
    assert got.shape == (num_sets, num_sets)
    assert torch.equal(got, got.T)
    diag = want.diagonal().double().clamp_min(1e-30)
    scale = torch.sqrt(diag[:, None] * diag[None, :])
    err = ((got.double() - want.double()).abs() / scale).max()
    assert err <= 1e-5 if dtype != torch.float64 else err <= 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_reductions_are_exact_to_float32_rounding(dtype):
    """Accumulating in float64 leaves only the float32 rounding of the result."""
    sizes = [354_853, 1000, 70_000]
    sets = [random_list(sizes, dtype, s) for s in range(3)]
    exact = reference.gram([[t.double() for t in s] for s in sets])
    scale = torch.sqrt(exact.diagonal()[:, None] * exact.diagonal()[None, :])
    assert float(((sgs_ext.gram(sets).double() - exact).abs() / scale).max()) < 1e-7
    stats = sgs_ext.dot_norm(sets[0], sets[1]).double()
    assert abs(float(stats[0]) - float(exact[0, 1])) / float(scale[0, 1]) < 1e-7
    assert abs(float(stats[1]) / float(exact[1, 1]) - 1) < 1e-7


def test_mixed_dtypes_across_parameters():
    sizes = [1000, 70_000, 33]
    dtypes = [torch.float32, torch.bfloat16, torch.float64]
    t32, o32 = conflicting_pair(sizes, torch.float64, 3)
    train = [t.to(d) for t, d in zip(t32, dtypes)]
    oracle = [o.to(d) for o, d in zip(o32, dtypes)]
    got = sgs_ext.dot_norm(train, oracle)
    assert got.dtype == torch.float32
    assert_stats_close(got, reference.dot_norm(train, oracle), torch.float32)


def test_shapes_other_than_vectors():
    sizes = [(250, 768), (768,), (3, 4, 5), (0, 7), ()]
    g = torch.Generator().manual_seed(0)
    train = [torch.randn(s, generator=g) for s in sizes]
    oracle = [-t + 0.1 * torch.randn(t.shape, generator=g) for t in train]
    expected = clone_list(train)
    reference.surgery_(expected, oracle)
    sgs_ext.surgery_(train, oracle)
    assert_lists_close(train, expected, torch.float32)
