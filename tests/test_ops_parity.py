"""The fused ops against the float64 oracle, for every op and dtype, under
every CPU instruction set this CPU supports.

Each result must be within the error bound derived from how the kernels
accumulate (ops_testing.dot_error_bound, ops_testing.expected_projection).
"""
import pytest
import torch
from hypothesis import strategies as st

import sgs_ext
from ops_testing import (  # noqa: F401  (every_cpu_isa: autouse, runs each test under each ISA)
    DTYPES,
    U32,
    assert_gram_matches_oracle,
    assert_projection_matches_oracle,
    assert_stats_match_oracle,
    assert_surgery_matches_oracle,
    clone_list,
    conflicting_pair,
    every_cpu_isa,
    exact_gram,
    isa_property,
    random_list,
)


@st.composite
def list_sizes(draw):
    """1-300 tensors: many small (0-4096 elements), at most two large (up to 1e6)."""
    count = draw(st.integers(1, 300))
    n_big = draw(st.integers(0, min(2, count)))
    big = draw(st.lists(st.integers(0, 1_000_000), min_size=n_big, max_size=n_big))
    small = draw(st.lists(st.integers(0, 4096), min_size=count - n_big, max_size=count - n_big))
    return draw(st.permutations(big + small))


LISTS = dict(sizes=list_sizes(), seed=st.integers(0, 2**31 - 1))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@isa_property(12, **LISTS)
def test_dot_norm_matches_oracle(dtype, sizes, seed):
    train, oracle = random_list(sizes, dtype, seed), random_list(sizes, dtype, seed + 7)
    assert_stats_match_oracle(sgs_ext.dot_norm(train, oracle), train, oracle)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@isa_property(12, **LISTS)
def test_surgery_matches_oracle(dtype, sizes, seed):
    train, oracle = conflicting_pair(sizes, dtype, seed)
    before = clone_list(train)
    stats = sgs_ext.surgery_(train, oracle)
    assert_surgery_matches_oracle(stats, train, before, oracle)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@isa_property(12, **LISTS)
def test_project_with_given_stats_matches_oracle(dtype, sizes, seed):
    train, oracle = conflicting_pair(sizes, dtype, seed)
    stats = sgs_ext.dot_norm(train, oracle)
    before = clone_list(train)
    sgs_ext.project_(train, oracle, stats)
    assert_projection_matches_oracle(train, before, oracle, stats)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("num_sets", [1, 2, 3, 5, 8])
@isa_property(6, **LISTS)
def test_gram_matches_oracle(dtype, num_sets, sizes, seed):
    sets = [random_list(sizes, dtype, seed + 11 * s) for s in range(num_sets)]
    assert_gram_matches_oracle(sgs_ext.gram(sets), sets)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_float64_accumulation_leaves_the_float32_rounding_of_the_result(dtype):
    """gram (any dtype) and 16-bit dot_norm accumulate in float64: for these sizes the float64
    part of their bound (and the oracle's error) is below 1e-12 of sum|xy|, so what remains is
    the float32 rounding of the result."""
    sizes = [354_853, 1000, 70_000]
    sets = [random_list(sizes, dtype, s) for s in range(3)]
    exact = exact_gram(sets)
    abs_sum = exact_gram([[t.abs() for t in s] for s in sets])
    allowed = U32 * exact.abs() + 1e-12 * abs_sum
    assert ((sgs_ext.gram(sets).double() - exact).abs() <= allowed).all()
    if dtype != torch.float32:  # float32 dot_norm sums 4 products per lane in float32
        stats = sgs_ext.dot_norm(sets[0], sets[1]).double()
        pairs = [(0, 1), (1, 1), (0, 0)]  # train·oracle, ‖oracle‖², ‖train‖²
        assert all(abs(float(s) - float(exact[p])) <= float(allowed[p]) for s, p in zip(stats, pairs))


def test_mixed_dtypes_across_parameters():
    sizes = [1000, 70_000, 33]
    dtypes = [torch.float32, torch.bfloat16, torch.float64]
    t64, o64 = conflicting_pair(sizes, torch.float64, 3)
    train = [t.to(d) for t, d in zip(t64, dtypes)]
    oracle = [o.to(d) for o, d in zip(o64, dtypes)]
    assert_stats_match_oracle(sgs_ext.dot_norm(train, oracle), train, oracle)
    before = clone_list(train)
    stats = sgs_ext.surgery_(train, oracle)
    assert_surgery_matches_oracle(stats, train, before, oracle)


def test_shapes_other_than_vectors():
    sizes = [(250, 768), (768,), (3, 4, 5), (0, 7), ()]
    g = torch.Generator().manual_seed(0)
    train = [torch.randn(s, generator=g) for s in sizes]
    oracle = [-t + 0.1 * torch.randn(t.shape, generator=g) for t in train]
    before = clone_list(train)
    stats = sgs_ext.surgery_(train, oracle)
    assert_surgery_matches_oracle(stats, train, before, oracle)
