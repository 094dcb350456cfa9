"""The ways of doing gradient surgery (and gram) that the benchmarks compare.

Every variant computes what ``sgs_ext.reference`` computes, to rounding
(checked by ``tests/test_benchmark_variants.py``), on the same Python lists of
tensors:

- ``naive``    the paper's way: ``torch.cat`` both lists into flat vectors,
               compute there, copy the result back (``sgs_ext.reference``).
- ``loop``     a Python loop over the parameters: ``torch.dot`` per tensor for
               the statistics, ``add_`` per tensor for the projection.
- ``foreach``  the best composition of ``torch._foreach_*`` ops we found:
               ``_foreach_norm`` for the two norms, and for the dot product
               the per-tensor ``torch.dot`` loop (there is no
               ``_foreach_dot``; ``_foreach_mm`` of 1xn by nx1 views and
               ``_foreach_mul`` + per-tensor sums were both slower, see
               ``FOREACH_ALTERNATIVES``), then one ``_foreach_add_`` with
               ``alpha=-c`` for the projection.
- ``fused``    ``sgs_ext``'s one-pass kernels.

A surgery variant's ``surgery_`` returns the statistics ``[dot, |oracle|^2,
|train|^2]`` from before the projection and projects ``train`` in place; its
``dot_norm`` only returns the statistics, its ``project_`` only projects with
given statistics.  Gram variants return the L x L matrix of dot products.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import torch

import sgs_ext
from sgs_ext import reference

Tensors = List[torch.Tensor]


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)


def coefficient(stats: torch.Tensor, eps: float = 1e-12) -> float:
    """:func:`sgs_ext.reference.projection_coefficient` of ``stats = [dot, |oracle|^2, |train|^2]``."""
    return reference.projection_coefficient(*(float(v) for v in stats), eps)


# ---------------------------------------------------------------------------
# loop: one torch op per tensor, driven from Python


def loop_dot_norm(train: Tensors, oracle: Tensors) -> torch.Tensor:
    dots, oos, tts = [], [], []
    for t, o in zip(train, oracle):
        t, o = _flat(t), _flat(o)
        dots.append(torch.dot(t, o))
        oos.append(torch.dot(o, o))
        tts.append(torch.dot(t, t))
    if not dots:
        return torch.zeros(3)
    dtype = reference.stats_dtype(train)
    return torch.stack([torch.stack(x).to(dtype).sum() for x in (dots, oos, tts)])


def loop_project_(train: Tensors, oracle: Tensors, stats: torch.Tensor, eps: float = 1e-12) -> None:
    c = coefficient(stats, eps)
    if c != 0.0:
        for t, o in zip(train, oracle):
            t.add_(o, alpha=-c)


def loop_surgery_(train: Tensors, oracle: Tensors, eps: float = 1e-12) -> torch.Tensor:
    stats = loop_dot_norm(train, oracle)
    loop_project_(train, oracle, stats, eps)
    return stats


# ---------------------------------------------------------------------------
# foreach: multi-tensor torch ops wherever torch has one


def foreach_dot_norm(train: Tensors, oracle: Tensors) -> torch.Tensor:
    if not train:
        return torch.zeros(3)
    dtype = reference.stats_dtype(train)
    dot = torch.stack([torch.dot(_flat(t), _flat(o)) for t, o in zip(train, oracle)]).to(dtype).sum()
    oracle_sq = torch.stack(torch._foreach_norm(oracle)).to(dtype).pow(2).sum()
    train_sq = torch.stack(torch._foreach_norm(train)).to(dtype).pow(2).sum()
    return torch.stack([dot, oracle_sq, train_sq])


def foreach_project_(train: Tensors, oracle: Tensors, stats: torch.Tensor, eps: float = 1e-12) -> None:
    c = coefficient(stats, eps)
    if c != 0.0 and train:
        torch._foreach_add_(train, oracle, alpha=-c)


def foreach_surgery_(train: Tensors, oracle: Tensors, eps: float = 1e-12) -> torch.Tensor:
    stats = foreach_dot_norm(train, oracle)
    foreach_project_(train, oracle, stats, eps)
    return stats


def _foreach_mm_dot(train: Tensors, oracle: Tensors) -> torch.Tensor:
    products = torch._foreach_mm([_flat(t).view(1, -1) for t in train], [_flat(o).view(-1, 1) for o in oracle])
    return torch.stack([p.reshape(()) for p in products]).sum()


def _foreach_mul_dot(train: Tensors, oracle: Tensors) -> torch.Tensor:
    return torch.stack([p.sum() for p in torch._foreach_mul(train, oracle)]).sum()


# Other ways to get the dot product from foreach ops, kept so they can be
# re-timed (benchmarks/run.py --help says how); both lost to the torch.dot loop.
FOREACH_ALTERNATIVES: Dict[str, Callable[[Tensors, Tensors], torch.Tensor]] = {
    "foreach_mm 1xn @ nx1": _foreach_mm_dot,
    "foreach_mul + sum": _foreach_mul_dot,
}


# ---------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class SurgeryVariant:
    name: str
    dot_norm: Callable[[Tensors, Tensors], torch.Tensor]
    project_: Callable[[Tensors, Tensors, torch.Tensor], None]
    surgery_: Callable[[Tensors, Tensors], torch.Tensor]
    pure_pytorch: bool  # False only for the compiled extension


SURGERY_VARIANTS: Dict[str, SurgeryVariant] = {
    v.name: v
    for v in [
        SurgeryVariant("naive", reference.dot_norm, reference.project_, reference.surgery_, True),
        SurgeryVariant("loop", loop_dot_norm, loop_project_, loop_surgery_, True),
        SurgeryVariant("foreach", foreach_dot_norm, foreach_project_, foreach_surgery_, True),
        SurgeryVariant("fused", sgs_ext.dot_norm, sgs_ext.project_, sgs_ext.surgery_, False),
    ]
}


def pairwise_loop_gram(sets: Sequence[Tensors]) -> torch.Tensor:
    """G[i, j] = sum over tensors of torch.dot, for every pair i <= j: each set is read L times."""
    sets = [list(s) for s in sets]
    L = len(sets)
    dtype = reference.stats_dtype(sets[0])
    device = sets[0][0].device if sets[0] else torch.device("cpu")
    G = torch.zeros(L, L, dtype=dtype, device=device)
    for i in range(L):
        for j in range(i, L):
            d = torch.stack([torch.dot(_flat(a), _flat(b)) for a, b in zip(sets[i], sets[j])]).to(dtype).sum()
            G[i, j] = d
            G[j, i] = d
    return G


GRAM_VARIANTS: Dict[str, Callable[[Sequence[Tensors]], torch.Tensor]] = {
    "naive": reference.gram,  # torch.cat every set, then torch.dot per pair of flat vectors
    "pairwise_loop": pairwise_loop_gram,
    "fused": sgs_ext.gram,
}
