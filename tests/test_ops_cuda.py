"""The same checks against the float64 oracle on a GPU (skipped where there is
none), with the error bounds of the CUDA kernels' accumulation."""
import pytest
import torch

import sgs_ext
from ops_testing import (
    DTYPES,
    assert_gram_matches_oracle,
    assert_stats_match_oracle,
    assert_surgery_matches_oracle,
    clone_list,
    conflicting_pair,
    random_list,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
    pytest.mark.skipif(not sgs_ext.CUDA_COMPILED, reason="sgs_ext was built without its CUDA kernels"),
]

SIZES = [250_002 * 8, 65_536, 65_537, 1, 0, 4099, 768] + [3] * 100  # > one launch's tensor slots (96)


def cuda(tensors):
    return [t.cuda() for t in tensors]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_surgery_matches_oracle_on_cuda(dtype):
    train, oracle = conflicting_pair(SIZES, dtype, 0)
    t_cuda, o_cuda = cuda(train), cuda(oracle)
    got = sgs_ext.surgery_(t_cuda, o_cuda)
    assert got.device.type == "cuda"
    assert_surgery_matches_oracle(got, [t.cpu() for t in t_cuda], train, oracle, device="cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dot_norm_matches_oracle_on_cuda(dtype):
    train, oracle = random_list(SIZES, dtype, 1), random_list(SIZES, dtype, 2)
    assert_stats_match_oracle(sgs_ext.dot_norm(cuda(train), cuda(oracle)), train, oracle, device="cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("num_sets", [1, 2, 4, 8, 12, 17])  # 12: the shared-memory pass; 17: tiles
def test_gram_matches_oracle_on_cuda(num_sets, dtype):
    sets = [random_list(SIZES, dtype, s) for s in range(num_sets)]
    assert_gram_matches_oracle(sgs_ext.gram([cuda(s) for s in sets]), sets, device="cuda")


def test_no_conflict_and_non_finite_write_nothing_on_cuda():
    oracle = cuda(random_list(SIZES, torch.float32, 3))
    train = [o * 2 + 0.01 for o in oracle]
    before = clone_list(train)
    sgs_ext.surgery_(train, oracle)
    assert all(torch.equal(a, b) for a, b in zip(train, before))
    train2, oracle2 = [cuda(x) for x in conflicting_pair(SIZES, torch.float32, 4)]
    oracle2[0][5] = float("nan")
    before2 = clone_list(train2)
    sgs_ext.surgery_(train2, oracle2)
    assert all(torch.equal(a, b) for a, b in zip(train2, before2))


def test_project_needs_no_host_synchronisation():
    train, oracle = [cuda(x) for x in conflicting_pair(SIZES, torch.float32, 5)]
    stats = sgs_ext.dot_norm(train, oracle)
    torch.cuda.set_sync_debug_mode("error")
    try:
        sgs_ext.project_(train, oracle, stats)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_no_op_synchronises_with_the_host():
    train, oracle = [cuda(x) for x in conflicting_pair(SIZES, torch.float32, 6)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = sgs_ext.dot_norm(train, oracle)
        sgs_ext.surgery_(train, oracle)
        sgs_ext.project_(train, oracle, stats)
        sgs_ext.gram([train, oracle] * 9)  # 18 sets: tiled passes, scattered on the device
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_surgery_can_be_captured_in_a_cuda_graph():
    train, oracle = [cuda(x) for x in conflicting_pair(SIZES, torch.float32, 7)]
    eager = clone_list(train)
    want = sgs_ext.surgery_(eager, oracle)
    start = clone_list(train)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        sgs_ext.surgery_(clone_list(train), oracle)  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        got = sgs_ext.surgery_(train, oracle)
    for t, s in zip(train, start):
        t.copy_(s)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(got, want)
    assert all(torch.equal(a, b) for a, b in zip(train, eager))
