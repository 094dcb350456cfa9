"""The same four ops in plain PyTorch, written the naive way.

This is how the paper's code (and most PCGrad implementations) do surgery:
flatten every gradient into one vector with ``torch.cat``, compute, and copy
the result back parameter by parameter.  It allocates two model-sized
vectors per call.  Unlike the paper's code it is eps-safe (an all-zero oracle
changes nothing) and skips non-finite statistics, so it can serve as the
tests' oracle and the benchmarks' baseline.

Low-precision gradients (float16, bfloat16) are computed in float32, as the
fused kernels do.

Two rules that every Python path shares (the fused ops' fake kernels, the
surgery class's statistics, the benchmarks' variants) are defined here, once:
:func:`stats_dtype` and :func:`projection_coefficient`.  The kernels' own copy
of the coefficient is ``sgs::projection_coefficient`` in
``csrc/common/surgery_math.h``; ``tests/test_reference.py`` checks that the two
agree.
"""
import math
from typing import Iterable, List, Sequence

import torch

__all__ = ["dot_norm", "project_", "surgery_", "gram", "stats_dtype", "projection_coefficient"]


def stats_dtype(tensors: Sequence[torch.Tensor]) -> torch.dtype:
    """The dtype of the statistics of these tensors: float64 when every tensor is
    float64, float32 otherwise (also for no tensors).  The reference computes in it."""
    if tensors and all(t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def projection_coefficient(dot: float, oracle_sq: float, train_sq: float, eps: float = 1e-12) -> float:
    """The coefficient c of the projection ``train -= c * oracle``: ``min(dot, 0) / max(oracle_sq, eps)``.

    0.0 means "write nothing": no conflict (``dot >= 0``), an all-zero oracle, a
    NaN/Inf statistic (``train_sq`` too: a non-finite gradient must never be
    spread into the other list), or a quotient that is not finite.  Raises
    ValueError unless ``eps`` is positive and finite, as the ops do.

    Computed in Python floats (float64), as the kernels do for float64
    statistics; for float32 statistics the kernels divide in float32, which
    rounds to the same value except where the quotient overflows float32 (it
    cannot when ``|dot| <= sqrt(oracle_sq * train_sq)``, as for the statistics of
    real gradients, and ``eps >= 1e-12``).
    """
    eps = float(eps)
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite number, got {eps}")
    dot, oracle_sq, train_sq = float(dot), float(oracle_sq), float(train_sq)
    if not all(math.isfinite(v) for v in (dot, oracle_sq, train_sq)) or not dot < 0:
        return 0.0
    c = dot / max(oracle_sq, eps)
    return c if math.isfinite(c) else 0.0


def _flatten(tensors: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    return torch.cat([t.reshape(-1).to(dtype) for t in tensors])


def dot_norm(train: Iterable[torch.Tensor], oracle: Iterable[torch.Tensor]) -> torch.Tensor:
    train, oracle = list(train), list(oracle)
    if not train:
        return torch.zeros(3)
    dtype = stats_dtype(train)
    t, o = _flatten(train, dtype), _flatten(oracle, dtype)
    return torch.stack([torch.dot(t, o), torch.dot(o, o), torch.dot(t, t)])


def project_(train: Iterable[torch.Tensor], oracle: Iterable[torch.Tensor], stats: torch.Tensor, eps: float = 1e-12) -> None:
    train, oracle = list(train), list(oracle)
    c = projection_coefficient(*(float(v) for v in stats), eps)
    if c == 0.0 or not train:
        return
    dtype = stats_dtype(train)
    flat = _flatten(train, dtype)
    flat -= c * _flatten(oracle, dtype)
    offset = 0
    for t in train:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def surgery_(train: Iterable[torch.Tensor], oracle: Iterable[torch.Tensor], eps: float = 1e-12) -> torch.Tensor:
    train, oracle = list(train), list(oracle)
    stats = dot_norm(train, oracle)
    project_(train, oracle, stats, eps)
    return stats


def gram(sets: Iterable[Iterable[torch.Tensor]]) -> torch.Tensor:
    sets: List[List[torch.Tensor]] = [list(s) for s in sets]
    if not sets[0]:
        return torch.zeros(len(sets), len(sets))
    dtype = stats_dtype(sets[0])
    flat = [_flatten(s, dtype) for s in sets]
    # pairwise torch.dot, as dot_norm does (a float32 `flat @ flat.T` GEMM loses
    # up to ~1e-5 relative accuracy on vectors of a million elements)
    out = torch.empty(len(sets), len(sets), dtype=dtype)
    for i in range(len(sets)):
        for j in range(i, len(sets)):
            out[i, j] = out[j, i] = torch.dot(flat[i], flat[j])
    return out
