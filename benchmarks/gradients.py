"""Gradient lists to benchmark on: one tensor per parameter, with real shapes.

Each list's tensors are views into one flat buffer, laid out parameter after
parameter.  The variants only ever see the lists (as they would see
``[p.grad for p in model.parameters()]``); the flat buffers let the bandwidth
probe run over exactly the same bytes, and let a benchmark restore ``train``
between rounds with one copy.

The values are built in place (no temporaries), so a process holding a pair
of lists holds exactly their bytes: ``memory.py`` relies on that.  ``train``
conflicts with ``oracle`` (``train . oracle < 0``), so every surgery call
projects: the expensive case, and the one whose traffic the benchmarks count.
"""
from dataclasses import dataclass
from math import prod
from typing import List, Sequence

import torch

from benchmarks.shapes import NamedShape


@dataclass
class GradientPair:
    train_flat: torch.Tensor
    oracle_flat: torch.Tensor
    train: List[torch.Tensor]
    oracle: List[torch.Tensor]

    @property
    def numel(self) -> int:
        return self.train_flat.numel()


def views(flat: torch.Tensor, shapes: Sequence[NamedShape]) -> List[torch.Tensor]:
    """One view of ``flat`` per shape, back to back."""
    out, offset = [], 0
    for _, shape in shapes:
        n = prod(shape)
        out.append(flat[offset : offset + n].view(shape))
        offset += n
    if offset != flat.numel():
        raise ValueError(f"the shapes hold {offset} elements but the buffer has {flat.numel()}")
    return out


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def make_pair(shapes: Sequence[NamedShape], dtype=torch.float32, device="cpu", seed: int = 0) -> GradientPair:
    """A train and an oracle gradient list with ``train . oracle < 0``."""
    device = torch.device(device)
    n = sum(prod(s) for _, s in shapes)
    gen = _generator(device, seed)
    oracle = torch.empty(n, dtype=dtype, device=device).normal_(generator=gen)
    train = torch.empty(n, dtype=dtype, device=device).normal_(generator=gen)
    train.mul_(0.3).add_(oracle, alpha=-0.8)  # mostly anti-parallel to the oracle
    return GradientPair(train, oracle, views(train, shapes), views(oracle, shapes))


def make_sets(shapes: Sequence[NamedShape], num_sets: int, dtype=torch.float32, device="cpu", seed: int = 0):
    """``num_sets`` gradient lists (flat buffers, lists of views) sharing a common component."""
    device = torch.device(device)
    n = sum(prod(s) for _, s in shapes)
    gen = _generator(device, seed)
    flats = [torch.empty(n, dtype=dtype, device=device).normal_(generator=gen) for _ in range(num_sets)]
    for f in flats[1:]:
        f.add_(flats[0], alpha=0.5)
    return flats, [views(f, shapes) for f in flats]
