"""Helpers shared by the op tests: gradient lists and tolerances."""
import math
from typing import List, Sequence

import torch

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# Relative tolerance of the statistics (dot relative to |t||o|) per dtype.
STATS_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}
# Tolerance of projected values relative to the largest magnitude involved.
VALUES_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def random_list(sizes: Sequence[int], dtype: torch.dtype, seed: int, scale: float = 1.0) -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, generator=g, dtype=torch.float64) * scale).to(dtype) for n in sizes]


def conflicting_pair(sizes: Sequence[int], dtype: torch.dtype, seed: int):
    """A train list and an oracle list whose dot product is clearly negative."""
    oracle = random_list(sizes, torch.float64, seed)
    noise = random_list(sizes, torch.float64, seed + 1)
    train = [0.3 * n - 0.8 * o for n, o in zip(noise, oracle)]
    return [t.to(dtype) for t in train], [o.to(dtype) for o in oracle]


def clone_list(tensors):
    return [t.clone() for t in tensors]


def norm(tensors) -> float:
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in tensors))


def assert_stats_close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    rtol = STATS_RTOL[dtype]
    dot, oo, tt = (float(v) for v in want)
    scale_dot = math.sqrt(abs(oo) * abs(tt)) or 1.0
    g = [float(v) for v in got]
    assert abs(g[0] - dot) <= rtol * scale_dot + 1e-30, (g, [dot, oo, tt])
    assert abs(g[1] - oo) <= rtol * max(abs(oo), 1e-30), (g, [dot, oo, tt])
    assert abs(g[2] - tt) <= rtol * max(abs(tt), 1e-30), (g, [dot, oo, tt])


def assert_lists_close(got, want, dtype: torch.dtype) -> None:
    scale = max([float(t.double().abs().max()) for t in want if t.numel()] or [1.0])
    tol = VALUES_RTOL[dtype] * max(scale, 1e-30)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, i
        if a.numel():
            err = float((a.double() - b.double()).abs().max())
            assert err <= tol, f"tensor {i}: max error {err} > {tol}"
