"""Collectives for running gradient surgery under ``torch.distributed``.

Two layouts are supported:

* **Replicated gradients** (DDP, or any data-parallel scheme whose ``.grad`` is the full,
  already averaged gradient on every rank). Every rank must draw the same language and the
  same ``p``, :func:`broadcast_draw` makes them so; the oracle gradient is averaged across
  ranks with :func:`all_reduce_mean_`, exactly as DDP averages the training gradient, and
  then every rank runs the same surgery on the same numbers.
* **Sharded gradients** (FSDP / ZeRO: each rank holds a disjoint slice of every gradient).
  :func:`sharded_surgery_` computes ``dot_norm`` on the local slices, all-reduces the three
  scalars once, and projects the local slices with the global scalars.

:func:`surgery_by_device_` is the one implementation of the surgery on lists that span
several devices or ranks; ``StochasticGradientSurgery`` and :func:`sharded_surgery_` call it.

Nothing here allocates a model-sized tensor: the collectives run in place on the caller's
buffers.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .ops import dot_norm, project_, surgery_


def is_active(group=None) -> bool:
    """True when ``torch.distributed`` is initialised and ``group`` has more than one rank."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    return torch.distributed.get_world_size(group) > 1


def world_size(group=None) -> int:
    return torch.distributed.get_world_size(group) if is_active(group) else 1


def is_dtensor(t) -> bool:
    """True for a ``torch.distributed.tensor.DTensor`` (FSDP2 parameters and gradients)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:   # torch built without distributed
        return False
    return isinstance(t, DTensor)


def local_tensor(t: Tensor) -> Tensor:
    """The local shard of a ``DTensor`` (FSDP2 gradients); any other tensor unchanged."""
    return t.to_local() if is_dtensor(t) else t


def dtensor_like(local: Tensor, param) -> Tensor:
    """Wrap ``local`` (this rank's slice, e.g. a view into a flat buffer) as a DTensor laid out
    like ``param``, without copying, so it can be assigned to ``param.grad``."""
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(local, param.device_mesh, param.placements, run_check=False,
                              shape=param.shape, stride=param.stride())


def _src_rank(group) -> int:
    """Global rank of the group's rank 0 (``broadcast`` takes a global rank)."""
    if group is None or group is torch.distributed.GroupMember.WORLD:
        return 0
    return torch.distributed.get_global_rank(group, 0)


def broadcast_draw(values: Sequence[float], group=None, device=None) -> list[float]:
    """Make a random draw (language indices and ``p``) identical on every rank.

    Every rank passes its own draw; all get back group rank 0's. The seeded generators
    already agree when every rank was given the same seed, this also covers the common
    ``seed + rank`` pattern and any drift, at the price of one tiny broadcast per step.
    """
    if not is_active(group):
        return [float(v) for v in values]
    buf = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    torch.distributed.broadcast(buf, src=_src_rank(group), group=group)
    return buf.tolist()


def check_same_languages(languages: Sequence[str], group=None) -> None:
    """Raise on every rank if the ranks were given different sets of oracle languages."""
    if not is_active(group):
        return
    gathered: list = [None] * torch.distributed.get_world_size(group)
    torch.distributed.all_gather_object(gathered, list(languages), group=group)
    if any(g != gathered[0] for g in gathered):
        detail = "; ".join(f"rank {r}: {g}" for r, g in enumerate(gathered))
        raise ValueError(
            "StochasticGradientSurgery.step: every rank must pass closures for the same "
            f"languages, got {detail}"
        )


def all_reduce_mean_(tensors: Sequence[Tensor], group=None) -> None:
    """Average each tensor across the group, in place (SUM then divide: gloo has no AVG)."""
    n = world_size(group)
    if n == 1:
        return
    for t in tensors:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM, group=group)
        t.div_(n)


def all_reduce_sum_(stats: Tensor, group=None) -> Tensor:
    """Sum a small tensor (the ``dot_norm`` scalars) across the group, in place."""
    if is_active(group):
        torch.distributed.all_reduce(stats, op=torch.distributed.ReduceOp.SUM, group=group)
    return stats


def sharded_dot_norm(train: Sequence[Tensor], oracle: Sequence[Tensor], group=None) -> Tensor:
    """``dot_norm`` over gradients sharded across ``group``: local partial sums, one all-reduce.

    Each rank must hold a disjoint slice of the gradient (replicated tensors would be counted
    once per rank).
    """
    stats = dot_norm([local_tensor(t) for t in train], [local_tensor(o) for o in oracle])
    return all_reduce_sum_(stats, group)


@torch.no_grad()
def surgery_by_device_(train: Sequence[Tensor], oracle: Sequence[Tensor], eps: float = 1e-12, *,
                       project: bool = True, reduce: bool = False, group=None) -> Tensor:
    """``surgery_`` (or, with ``project=False``, ``dot_norm``) of lists that may span devices
    and, with ``reduce=True``, ranks (each rank holding a disjoint slice: sharded gradients).

    On one device without ``reduce``: the fused op, statistics in its dtype. Otherwise
    ``dot_norm`` per device, the partial sums added in float64 on the first tensor's device,
    one all-reduce of the three scalars over ``group`` when ``reduce``, then ``project_`` per
    device with the global float64 scalars. Returns ``[train·oracle, ‖oracle‖², ‖train‖²]``
    from before the projection. The tensors must be plain (local) tensors.
    """
    groups: dict[torch.device, tuple[list[Tensor], list[Tensor]]] = {}
    for t, o in zip(train, oracle):
        ts, os_ = groups.setdefault(t.device, ([], []))
        ts.append(t)
        os_.append(o)
    if len(groups) <= 1 and not reduce:
        ts, os_ = next(iter(groups.values()), ([], []))
        return surgery_(ts, os_, eps) if project else dot_norm(ts, os_)
    parts = [dot_norm(ts, os_) for ts, os_ in groups.values()] or [torch.zeros(3)]
    first = parts[0].device
    stats = parts[0].double()
    for s in parts[1:]:
        stats = stats + s.double().to(first)
    if reduce:
        stats = all_reduce_sum_(stats, group)
    if project:
        for ts, os_ in groups.values():
            project_(ts, os_, stats.to(ts[0].device), eps)
    return stats


def sharded_surgery_(train: Sequence[Tensor], oracle: Sequence[Tensor], group=None,
                     eps: float = 1e-12) -> Tensor:
    """Gradient surgery on sharded gradients; the result equals the unsharded surgery.

    ``dot_norm`` on the local shard, one all-reduce of the three scalars (in float64), then
    ``project_`` on the local shard with the global scalars: :func:`surgery_by_device_` with
    ``reduce`` on when ``group`` has more than one rank, as ``StochasticGradientSurgery(...,
    sharded=True)`` runs it. Returns the global ``[train·oracle, ‖oracle‖², ‖train‖²]`` from
    before the projection (float64 when reduced).
    """
    train = [local_tensor(t) for t in train]
    oracle = [local_tensor(o) for o in oracle]
    return surgery_by_device_(train, oracle, eps, reduce=is_active(group), group=group)


@torch.no_grad()
def sharded_clip_grad_norm_(params: Sequence[Tensor], max_norm: float, norm_type: float = 2.0,
                            group=None) -> Tensor:
    """``clip_grad_norm_`` for sharded gradients: the norm is taken over all ranks' shards.

    Same formula as :func:`torch.nn.utils.clip_grad_norm_` (grads scaled by
    ``min(max_norm / (total + 1e-6), 1)``); returns the total pre-clip norm, equal on every rank.
    """
    grads = [local_tensor(p.grad) for p in params if p.grad is not None]
    norm_type = float(norm_type)
    if grads:
        local = torch.nn.utils.get_total_norm(grads, norm_type).double()
    else:
        local = torch.zeros((), dtype=torch.float64)
    if math.isinf(norm_type):
        total = local.clone()
        if is_active(group):
            torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.MAX, group=group)
    else:
        total = all_reduce_sum_(local ** norm_type, group) ** (1.0 / norm_type)
    coef = torch.clamp(float(max_norm) / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.to(device=g.device, dtype=g.dtype))
    return total.float()
