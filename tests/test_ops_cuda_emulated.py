"""The CUDA kernels of csrc/cuda/, unchanged, run on the CPU under the test-only emulation
(tests/cuda_emu/, tests/emulated_cuda.py) and checked against the float64 oracle with the CUDA
kernels' error bounds: every op, gram at L = 1..17, launches split between and inside tensors,
empty tensors and lists, mixed dtypes, unaligned views, train aliasing oracle.

What this cannot show (tests/test_ops_cuda.py and benchmarks/gpu_check.sh need a GPU for it):
the code nvcc generates (the __CUDA_ARCH__ branches such as the hardware fp16/bf16 conversions),
occupancy and bandwidth, the torch glue's streams and device guards, races between blocks.
"""
import math

import pytest
import torch

from emulated_cuda import EmulatedCuda, compiler_available
from ops_testing import (
    DTYPES,
    assert_gram_matches_oracle,
    assert_projection_matches_oracle,
    assert_stats_match_oracle,
    assert_surgery_matches_oracle,
    clone_list,
    conflicting_pair,
    exact_gram,
    random_list,
)

pytestmark = pytest.mark.skipif(not compiler_available(), reason="no C++ compiler (g++) to build the CUDA emulation")

CHUNK = 1 << 16
# > one launch's tensor slots for the pair ops (96) and for gram (40); chunks split mid-tensor
SIZES = [3 * CHUNK + 5, CHUNK, CHUNK + 1, 1, 0, 4099, 768, 17] + [3] * 100
GRAM_SIZES = [CHUNK + 7, 4099, 0, 1, 130] + [2] * 41


@pytest.fixture(scope="module")
def emu():
    return EmulatedCuda("default")


@pytest.fixture(scope="module")
def emu_split():
    """Built with at most 3 blocks per launch: launches also end inside a tensor."""
    return EmulatedCuda("split")


def mixed_list(sizes, seed):
    """float32, float16 and bfloat16 tensors in one list (stats in float32)."""
    dtypes = [torch.float32, torch.float16, torch.bfloat16]
    return [t.to(dtypes[i % 3]) for i, t in enumerate(random_list(sizes, torch.float64, seed))]


# ---------------------------------------------------------------------------- the emulator itself


def test_the_emulator_runs_every_thread_once_and_catches_broken_launches(emu):
    emu.selftest("good")
    with pytest.raises(RuntimeError, match="divergent barrier"):
        emu.selftest("divergent_barrier")
    with pytest.raises(RuntimeError, match="invalid configuration"):
        emu.selftest("oversized_block")


def test_every_launch_is_within_the_real_limits(emu):
    emu.clear_launches()
    train, oracle = conflicting_pair(SIZES, torch.float32, 0)
    emu.surgery_(train, oracle)
    emu.gram([random_list(GRAM_SIZES, torch.float32, s) for s in range(10)])
    launches = emu.launches()
    assert launches
    assert all(1 <= block <= 1024 and grid >= 1 and 0 < nbytes <= emu.max_param_bytes
               for grid, block, nbytes in launches), launches
    # the pair ops split on tensor slots: 108 tensors -> 2 launches each, plus one reduction
    pair_launches = [l for l in launches if l[1] == 512]
    assert len(pair_launches) == 2 * 2


# ---------------------------------------------------------------------------- the ops vs the oracle


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dot_norm_matches_oracle(emu, dtype):
    train, oracle = random_list(SIZES, dtype, 1), random_list(SIZES, dtype, 2)
    assert_stats_match_oracle(emu.dot_norm(train, oracle), train, oracle, device="cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_surgery_matches_oracle(emu, dtype):
    train, oracle = conflicting_pair(SIZES, dtype, 3)
    got = clone_list(train)
    stats = emu.surgery_(got, oracle)
    assert_surgery_matches_oracle(stats, got, train, oracle, device="cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_launches_split_inside_a_tensor(emu_split, dtype):
    assert emu_split.max_blocks_per_launch == 3
    emu_split.clear_launches()
    train, oracle = conflicting_pair(SIZES, dtype, 4)
    got = clone_list(train)
    stats = emu_split.surgery_(got, oracle)
    assert_surgery_matches_oracle(stats, got, train, oracle, device="cuda")
    assert sum(1 for l in emu_split.launches() if l[1] == 512) > 2 * 2  # more than the slot splits alone
    for num_sets in (3, 12):  # the register and the shared-memory pass
        sets = [random_list(GRAM_SIZES, dtype, 10 + s) for s in range(num_sets)]
        assert_gram_matches_oracle(emu_split.gram(sets), sets, device="cuda")


def test_mixed_dtypes_in_one_list(emu):
    train, oracle = mixed_list(SIZES, 5), mixed_list(SIZES, 6)
    assert_stats_match_oracle(emu.dot_norm(train, oracle), train, oracle, device="cuda")
    t, o = conflicting_pair(SIZES, torch.float64, 7)
    train = [x.to(y.dtype) for x, y in zip(t, mixed_list(SIZES, 0))]
    oracle = [x.to(y.dtype) for x, y in zip(o, train)]
    got = clone_list(train)
    assert_surgery_matches_oracle(emu.surgery_(got, oracle), got, train, oracle, device="cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("offsets", [(1, 0), (0, 1), (3, 5)])
def test_unaligned_views_take_the_scalar_path_and_match(emu, dtype, offsets):
    """Views that start off a 16-byte boundary (train, oracle, or both), as slices of a flat buffer."""
    sizes = [CHUNK + 13, 37, 8, 1]
    train0, oracle0 = conflicting_pair(sizes, dtype, 8)
    def views(tensors, offset):
        buf = torch.zeros(sum(sizes) + offset, dtype=dtype)
        out, at = [], offset
        for t in tensors:
            v = buf[at:at + t.numel()]
            v.copy_(t)
            out.append(v)
            at += t.numel()
        return out
    train, oracle = views(train0, offsets[0]), views(oracle0, offsets[1])
    assert (train[0].data_ptr() % 16 != 0) == (offsets[0] != 0)
    stats = emu.surgery_(train, oracle)
    assert_surgery_matches_oracle(stats, train, train0, oracle0, device="cuda")


def test_project_with_given_stats_and_train_aliasing_oracle(emu):
    train, oracle = conflicting_pair(SIZES, torch.float32, 9)
    stats = emu.dot_norm(train, oracle)
    got = clone_list(train)
    emu.project_(got, oracle, stats)
    assert_projection_matches_oracle(got, train, oracle, stats, device="cuda")
    # oracle[i] is train[i]: t - c t with c from stats that say "conflict"
    x = random_list([CHUNK + 3, 5], torch.float32, 10)
    before = clone_list(x)
    fake = torch.tensor([-2.0, 4.0, 1.0])  # c = -0.5: x -> 1.5 x
    emu.project_(x, x, fake)
    for got_t, b in zip(x, before):
        torch.testing.assert_close(got_t, 1.5 * b, rtol=2 * 2.0**-24, atol=0)


@pytest.mark.parametrize("num_sets", list(range(1, 18)))
def test_gram_matches_oracle_at_every_L(emu, num_sets):
    """1..8 sets in one register pass, 9..16 in one shared-memory pass, 17 by tiles scattered
    into the L x L result on the device."""
    sets = [random_list([300, 5, 1, 0], torch.float32, 100 + s) for s in range(num_sets)]
    assert_gram_matches_oracle(emu.gram(sets), sets, device="cuda")


@pytest.mark.parametrize("num_sets", [3, 12], ids=["register-pass", "shared-pass"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gram_matches_oracle_for_each_dtype(emu, dtype, num_sets):
    """float64 accumulates in float64 (it was rounded to float32 once: ~1e-7 relative error)."""
    sets = [random_list(GRAM_SIZES, dtype, 20 + s) for s in range(num_sets)]
    got = emu.gram(sets)
    assert_gram_matches_oracle(got, sets, device="cuda")
    if dtype == torch.float64:
        exact = exact_gram(sets)
        assert float(((got - exact).abs() / exact.abs()).max()) < 1e-12


@pytest.mark.parametrize("num_sets, passes", [(8, 1), (9, 1), (16, 1), (17, 6)])
def test_gram_reads_every_set_once_up_to_16_sets(emu, num_sets, passes):
    """One pass over the data for L <= 16 (8-set tiles read L = 16's sets 4 times: 10 passes);
    beyond, tiles of 16: L = 17 in 6 passes (15 with 8-set tiles). A pass ends in one scatter."""
    scatter_block = emu.gram_pass_sets * (emu.gram_pass_sets + 1) // 2
    emu.clear_launches()
    emu.gram([random_list([300, 5], torch.float32, 200 + s) for s in range(num_sets)])
    scatters = [l for l in emu.launches() if l[0] == 1 and l[1] == scatter_block]
    assert len(scatters) == passes


def test_gram_writes_the_whole_symmetric_matrix(emu):
    """Every entry of L x L, the lower triangle too (the output starts as NaN)."""
    sets = [random_list(GRAM_SIZES, torch.float64, 30 + s) for s in range(11)]
    got = emu.gram(sets)
    assert not got.isnan().any()
    assert torch.equal(got, got.T)


# ---------------------------------------------------------------------------- edge cases and guards


def test_empty_tensors_and_empty_lists(emu):
    assert emu.dot_norm([], []).tolist() == [0.0, 0.0, 0.0]
    emu.project_([], [], torch.tensor([-1.0, 1.0, 1.0]))
    empty = [torch.zeros(0), torch.zeros(0, 3)]
    assert emu.dot_norm(empty, clone_list(empty)).tolist() == [0.0, 0.0, 0.0]
    assert emu.gram([empty, clone_list(empty)]).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_nothing_is_written_without_a_finite_conflict(emu):
    oracle = random_list(SIZES, torch.float32, 40)
    train = [2 * o + 0.01 for o in oracle]  # no conflict
    before = clone_list(train)
    emu.surgery_(train, oracle)
    assert all(torch.equal(a, b) for a, b in zip(train, before))
    train, oracle = conflicting_pair(SIZES, torch.float32, 41)
    oracle[0][5] = float("nan")
    before = clone_list(train)
    emu.surgery_(train, oracle)
    assert all(torch.equal(a, b) for a, b in zip(train, before))


@pytest.mark.parametrize("stats", [[-1.0, 0.0, 1.0], [-1e30, 1e-30, 1.0]])
def test_a_coefficient_that_is_not_finite_writes_nothing(emu, stats):
    """|oracle|^2 = 0 under eps = 0 (the kernel API takes any eps; the ops reject it) or a
    quotient that overflows float32: never Inf/NaN in the gradient."""
    train = random_list([CHUNK + 1, 3], torch.float32, 42)
    oracle = random_list([CHUNK + 1, 3], torch.float32, 43)
    before = clone_list(train)
    emu.project_(train, oracle, torch.tensor(stats, dtype=torch.float32), eps=0.0 if stats[1] == 0 else 1e-38)
    assert all(torch.equal(a, b) for a, b in zip(train, before))


def test_an_error_pending_before_the_op_is_not_blamed_on_sgs(emu):
    train, oracle = random_list([10], torch.float32, 44), random_list([10], torch.float32, 45)
    emu.set_pending_error(719)  # cudaErrorLaunchFailure from some earlier kernel
    with pytest.raises(RuntimeError, match=r"earlier operation, pending when sgs dot_norm started \(not raised by sgs\)"):
        emu.dot_norm(train, oracle)
    emu.set_pending_error(0)
    assert math.isfinite(float(emu.dot_norm(train, oracle)[0]))


def test_the_two_schedulers_give_identical_bits(emu):
    """Fibers in thread order and one OS thread per GPU thread: the kernels' reductions have a
    fixed order, so the results are bitwise equal."""
    sizes = [CHUNK + 5, 700, 3]
    train, oracle = conflicting_pair(sizes, torch.float32, 50)
    sets = [random_list(sizes, torch.float32, 51 + s) for s in range(3)]
    results = []
    for scheduler in ("fibers", "threads"):
        emu.set_scheduler(scheduler)
        try:
            got = clone_list(train)
            results.append((emu.surgery_(got, oracle), got, emu.gram(sets)))
        finally:
            emu.set_scheduler("fibers")
    (s0, t0, g0), (s1, t1, g1) = results
    assert torch.equal(s0, s1) and torch.equal(g0, g1)
    assert all(torch.equal(a, b) for a, b in zip(t0, t1))
