"""What the ops promise beyond parity: determinism, no-op cases, NaN/Inf, layouts
(under every CPU instruction set this CPU supports)."""
import math

import pytest
import torch

import sgs_ext
from ops_testing import (  # noqa: F401  (every_cpu_isa: autouse, runs each test under each ISA)
    DTYPES,
    assert_surgery_matches_oracle,
    clone_list,
    conflicting_pair,
    dot_error_bound,
    every_cpu_isa,
    expected_projection,
    random_list,
)

# More than one chunk per thread, with tensors of many sizes.
SIZES = [3_000_000, 65_536, 65_537, 1, 0, 4099, 200_000, 768, 1_000_003]


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_results_identical_for_one_and_two_threads(dtype, restore_threads):
    train, oracle = conflicting_pair(SIZES, dtype, 5)
    sets = [train, oracle, random_list(SIZES, dtype, 9)]
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = clone_list(train)
        stats = sgs_ext.surgery_(t, oracle)
        results[threads] = (stats, t, sgs_ext.gram(sets))
    s1, t1, g1 = results[1]
    s2, t2, g2 = results[2]
    assert torch.equal(s1, s2)
    assert torch.equal(g1, g2)
    assert all(torch.equal(a, b) for a, b in zip(t1, t2))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_no_conflict_leaves_inputs_untouched_bit_for_bit(dtype):
    oracle = random_list(SIZES[:5], dtype, 1)
    train = [(o.double() * 2 + 0.01).to(dtype) for o in oracle]  # dot > 0
    before_t, before_o = clone_list(train), clone_list(oracle)
    stats = sgs_ext.surgery_(train, oracle)
    assert float(stats[0]) > 0
    assert all(torch.equal(a, b) for a, b in zip(train, before_t))
    assert all(torch.equal(a, b) for a, b in zip(oracle, before_o))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("seed", range(5))
def test_after_surgery_the_conflict_is_gone(dtype, seed):
    """train·oracle is 0 after an exact projection; what remains is the projection's rounding
    (sum of tolerance * |o|) and dot_norm's own error."""
    train, oracle = conflicting_pair([10_000, 70_000, 5], dtype, seed)
    _, tolerance = expected_projection(train, oracle)
    before = sgs_ext.surgery_(train, oracle)
    assert float(before[0]) < 0
    after = sgs_ext.dot_norm(train, oracle)
    left = sum(float((tol * o.double().abs()).sum()) for tol, o in zip(tolerance, oracle))
    assert abs(float(after[0])) <= left + dot_error_bound(train, oracle)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_all_zero_oracle_changes_nothing_and_gives_no_nan(dtype):
    train = random_list([100, 70_000], dtype, 2)
    oracle = [torch.zeros_like(t) for t in train]
    before = clone_list(train)
    stats = sgs_ext.surgery_(train, oracle)
    assert torch.isfinite(stats).all()
    assert float(stats[0]) == 0 and float(stats[1]) == 0
    assert all(torch.equal(a, b) for a, b in zip(train, before))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["train", "oracle"])
def test_non_finite_values_show_in_stats_and_project_writes_nothing(bad, where):
    train, oracle = conflicting_pair([1000, 70_000], torch.float32, 4)
    (train if where == "train" else oracle)[1][123] = bad
    before_t = clone_list(train)
    stats = sgs_ext.dot_norm(train, oracle)
    assert not torch.isfinite(stats).all()
    sgs_ext.project_(train, oracle, stats)
    sgs_ext.surgery_(train, oracle)
    for a, b in zip(train, before_t):
        assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())


def test_empty_lists_give_zeros():
    assert torch.equal(sgs_ext.dot_norm([], []), torch.zeros(3))
    assert torch.equal(sgs_ext.surgery_([], []), torch.zeros(3))
    sgs_ext.project_([], [], torch.tensor([-1.0, 1.0, 1.0]))
    assert torch.equal(sgs_ext.gram([[], []]), torch.zeros(2, 2))


def test_lists_of_empty_tensors_give_zeros():
    train = [torch.empty(0), torch.empty(0, 5)]
    assert torch.equal(sgs_ext.dot_norm(train, clone_list(train)), torch.zeros(3))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda x: x.t(), id="transposed"),
        pytest.param(lambda x: x[:, ::2], id="strided-slice"),
        pytest.param(lambda x: x[1:], id="offset-view"),  # contiguous, at an offset into its storage
    ],
)
def test_non_contiguous_tensors_work(make):
    g = torch.Generator().manual_seed(3)
    base_t = [torch.randn(300, 500, generator=g), torch.randn(64, 64, generator=g)]
    base_o = [-b + 0.2 * torch.randn(b.shape, generator=g) for b in base_t]
    train = [make(b) for b in base_t]
    oracle = [make(b.clone()) for b in base_o]
    before = clone_list(train)
    stats = sgs_ext.surgery_(train, oracle)
    assert float(stats[0]) < 0
    assert_surgery_matches_oracle(stats, train, before, oracle)
    # the projection landed in the caller's (non-contiguous) tensors' storage
    assert all(t.data_ptr() == make(b).data_ptr() for t, b in zip(train, base_t))


def test_non_contiguous_train_with_contiguous_oracle():
    g = torch.Generator().manual_seed(4)
    base = torch.randn(200, 100, generator=g)
    train = [base.t()]
    oracle = [(-base.t() + 0.1).contiguous()]
    before = clone_list(train)
    stats = sgs_ext.surgery_(train, oracle)
    assert_surgery_matches_oracle(stats, [base.t()], before, oracle)


def test_channels_last_pairs_are_used_in_place():
    g = torch.Generator().manual_seed(5)
    t = torch.randn(4, 8, 6, 6, generator=g).contiguous(memory_format=torch.channels_last)
    o = (-t + 0.1 * torch.randn(t.shape, generator=g)).contiguous(memory_format=torch.channels_last)
    before = [t.clone()]
    stats = sgs_ext.surgery_([t], [o])
    assert t.is_contiguous(memory_format=torch.channels_last)
    assert_surgery_matches_oracle(stats, [t], before, [o])


def test_accepts_generators_of_gradients():
    params = [torch.nn.Parameter(torch.randn(10)) for _ in range(3)]
    for p in params:
        p.grad = torch.randn(10)
    oracle = [-p.grad.clone() for p in params]
    stats = sgs_ext.surgery_((p.grad for p in params), oracle)
    assert float(stats[0]) < 0
    assert max(float(p.grad.abs().max()) for p in params) < 1e-5
