"""The host/device code shared with the CUDA path, exercised on the CPU.

The chunk table and launch plan decide which block reads which elements on a
GPU; the scalar conversions and the projection coefficient run inside every
CUDA block.  None of it can be run on a GPU here, so it is tested here.
"""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgs_ext  # noqa: F401  (loads the extension)
from sgs_ext import _C

sizes_strategy = st.lists(st.integers(0, 300_000), min_size=0, max_size=200)


@settings(max_examples=60, deadline=None)
@given(numels=sizes_strategy, chunk=st.sampled_from([1, 7, 4096, 65536]))
def test_chunk_table_covers_every_element_once_in_order(numels, chunk):
    chunks = _C.chunk_table(numels, chunk)
    covered = {}
    previous = (-1, -1)
    for tensor, offset, length in chunks:
        assert 1 <= length <= chunk
        assert (tensor, offset) > previous
        previous = (tensor, offset)
        assert offset == covered.get(tensor, 0), "chunks of a tensor must be contiguous and in order"
        covered[tensor] = offset + length
    assert covered == {i: n for i, n in enumerate(numels) if n > 0}


@settings(max_examples=60, deadline=None)
@given(numels=sizes_strategy, max_tensors=st.integers(1, 50), max_blocks=st.integers(1, 400))
def test_launch_plan_respects_limits_and_keeps_chunk_order(numels, max_tensors, max_blocks):
    chunk = 4096
    chunks = _C.chunk_table(numels, chunk)
    launches = _C.plan_launches(numels, chunk, max_tensors, max_blocks)
    next_chunk = 0
    for first, count, tensors, block_tensor in launches:
        assert first == next_chunk and count >= 1
        assert count <= max_blocks and len(tensors) <= max_tensors
        assert len(block_tensor) == count and len(set(tensors)) == len(tensors)
        for b in range(count):
            assert tensors[block_tensor[b]] == chunks[first + b][0]
        next_chunk = first + count
    assert next_chunk == len(chunks)


def test_launch_plan_for_xlmr_base_shapes_with_the_cuda_limits():
    pair_tensors, gram_tensors, blocks_limit, max_sets = _C.cuda_launch_limits()
    numels = [250002 * 768, 514 * 768, 768, 768] + [768 * 768, 768] * 4 * 12 + [3072 * 768, 3072, 768 * 3072, 768] * 12
    chunk = _C.cuda_chunk_size()
    for tensors_limit in (pair_tensors, gram_tensors):
        launches = _C.plan_launches(numels, chunk, tensors_limit, blocks_limit)
        assert sum(l[1] for l in launches) == sum(-(-n // chunk) for n in numels)
        assert all(len(l[2]) <= tensors_limit and l[1] <= blocks_limit for l in launches)
        # launches split on tensor slots only: the embedding's 2,930 chunks are one launch (many waves)
        assert launches[0][1] >= -(-250002 * 768 // chunk)
        assert len(launches) == -(-len(numels) // tensors_limit)
    assert max_sets == 16  # sets one gram pass reads (a shared-memory pass from 9 on)


@pytest.mark.parametrize("dtype, to_float", [(torch.float16, "half_bits_to_float"), (torch.bfloat16, "bf16_bits_to_float")])
def test_every_16_bit_pattern_converts_like_torch(dtype, to_float):
    bits = torch.arange(0, 1 << 16, dtype=torch.int32).to(torch.int16)
    want = bits.view(dtype).float()
    got = torch.tensor([getattr(_C, to_float)(int(b) & 0xFFFF) for b in bits.tolist()])
    same = (got == want) | (got.isnan() & want.isnan())
    assert bool(same.all())


def test_float_to_half_and_bf16_round_like_torch():
    g = torch.Generator().manual_seed(0)
    values = torch.cat([
        torch.randn(3000, generator=g) * 10.0 ** torch.randint(-9, 6, (3000,), generator=g),
        torch.tensor([0.0, -0.0, 65504.0, 65520.0, 1e-8, 6e-8, math.inf, -math.inf, 2.0**-24, 1.0 + 2.0**-11]),
    ])
    for v in values.tolist():
        h = torch.tensor([v]).half().view(torch.int16).item() & 0xFFFF
        b = torch.tensor([v]).bfloat16().view(torch.int16).item() & 0xFFFF
        assert _C.float_to_half_bits(v) == h, v
        assert _C.float_to_bf16_bits(v) == b, v
    assert math.isnan(_C.half_bits_to_float(_C.float_to_half_bits(math.nan)))
    assert math.isnan(_C.bf16_bits_to_float(_C.float_to_bf16_bits(math.nan)))


@pytest.mark.parametrize("in_float32", [False, True])
def test_projection_coefficient(in_float32):
    c = lambda *a: _C.projection_coefficient(*a, in_float32)  # noqa: E731
    assert c(-2.0, 4.0, 9.0, 1e-12) == -0.5
    assert c(2.0, 4.0, 9.0, 1e-12) == 0.0          # no conflict
    assert c(0.0, 0.0, 9.0, 1e-12) == 0.0          # all-zero oracle
    assert c(-1e-3, 0.0, 9.0, 1e-2) == pytest.approx(-0.1)  # eps guards the division
    for bad in (math.nan, math.inf, -math.inf):
        assert c(bad, 4.0, 9.0, 1e-12) == 0.0
        assert c(-2.0, bad, 9.0, 1e-12) == 0.0
        assert c(-2.0, 4.0, bad, 1e-12) == 0.0
    if in_float32:  # a float32 |oracle|^2 that overflows is non-finite, not a huge coefficient
        assert c(-1.0, 1e39, 1.0, 1e-12) == 0.0


@pytest.mark.parametrize("num_sets", [1, 2, 7, 8, 9, 12, 17, 48])
def test_gram_tiles_cover_every_pair_exactly_once(num_sets):
    max_sets = _C.cuda_launch_limits()[3]
    tiles = _C.gram_tiles(num_sets, max_sets)
    seen = []
    for sets, src, dst in tiles:
        assert 1 <= len(sets) <= max_sets and len(src) == len(dst)
        assert all(0 <= p < len(sets) * (len(sets) + 1) // 2 for p in src)
        seen += dst
    assert sorted(seen) == list(range(num_sets * (num_sets + 1) // 2))
    if num_sets <= max_sets:
        assert len(tiles) == 1


def test_gram_by_tiles_equals_the_full_gram():
    """Run the CUDA path's tiling on the CPU: one gram per tile, scattered into L x L."""
    num_sets = 11
    g = torch.Generator().manual_seed(0)
    sets = [[torch.randn(50, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)]
            for _ in range(num_sets)]
    full = sgs_ext.gram(sets)
    packed = torch.full((num_sets * (num_sets + 1) // 2,), float("nan"), dtype=torch.float64)
    for tile_sets, src, dst in _C.gram_tiles(num_sets, 8):
        sub = sgs_ext.gram([sets[s] for s in tile_sets])
        n = len(tile_sets)
        sub_packed = torch.cat([sub[i, i:] for i in range(n)])
        packed[dst] = sub_packed[src]
    rows = [(i, j) for i in range(num_sets) for j in range(i, num_sets)]
    assert torch.allclose(packed, torch.stack([full[i, j] for i, j in rows]), rtol=1e-12)
