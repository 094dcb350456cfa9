"""One cell on several processes: ``torchrun --nproc-per-node N experiments/run.py ...``.

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``);
with ``WORLD_SIZE`` > 1, :func:`init_from_env` starts the process group (gloo for the CPU,
nccl for CUDA, each rank on ``cuda:LOCAL_RANK``). Every rank then runs the whole run, cell by
cell, in the same order; :func:`transfer.train.train` wraps the model in
``DistributedDataParallel`` and gives each rank its slice of every global micro-batch (see
:func:`shard_batch`), and the surgery runs through ``sgs_ext``'s own DDP support. Only rank 0
writes (results, runs, reports, shot manifests, source models, run.log); decisions that
depend on the disk (which cells are done, whether a source model is cached) are taken on
rank 0 and broadcast (:func:`on_main`), so every rank takes the same branch and no rank
waits in a collective that another skips.

Without torchrun (or with one process) everything here is a no-op: rank 0 of a world of 1.
"""
from __future__ import annotations

import datetime
import logging
import os
import sys
from typing import Callable, Mapping

import torch
import torch.distributed as dist


def launched_with_several_processes() -> bool:
    """True when torchrun (or any launcher setting ``WORLD_SIZE``) started more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0, the only rank that writes (always True in one process)."""
    return rank() == 0


def launch_rank() -> int:
    """The launcher's ``RANK`` (0 when there is none), before or without a process group."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device: str) -> str:
    """Start the process group when launched with several processes; return the rank's device.

    ``device`` ``cpu``: gloo. ``cuda`` (or ``cuda:I``): nccl, this rank on ``cuda:LOCAL_RANK``.
    The timeout (``SGS_DIST_TIMEOUT_MINUTES``, default 60) bounds how long a rank waits for rank 0
    to finish writing a cell's files.
    """
    if not launched_with_several_processes() or is_distributed():
        if is_distributed() and device.startswith("cuda"):
            return f"cuda:{local_rank()}"
        return device
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank())
        device = f"cuda:{local_rank()}"
    minutes = float(os.environ.get("SGS_DIST_TIMEOUT_MINUTES", "60"))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=minutes))
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def setup_worker_logging() -> None:
    """Ranks other than 0: warnings and errors on stderr, tagged with the rank; no log file."""
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[rank {rank()}] %(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    root.addHandler(handler)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:
        pass


def _comm_device() -> torch.device:
    """Where tensors for a collective must live: the current CUDA device under nccl, else the CPU."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (pickled)."""
    if not is_distributed():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


class RankZeroError(RuntimeError):
    """An exception raised on rank 0 inside :func:`on_main`, re-raised on another rank."""


def on_main(fn: Callable, *args, **kwargs):
    """Run ``fn`` on rank 0 only and return its result on every rank.

    An exception on rank 0 is raised there and, on the other ranks, re-raised (the same
    exception when it pickles, else a :class:`RankZeroError` with its message), so a check that
    fails on rank 0 (a changed run config, a damaged store) stops every rank.
    """
    if not is_distributed():
        return fn(*args, **kwargs)
    outcome, error = None, None
    if is_main():
        try:
            outcome = ("ok", fn(*args, **kwargs))
        except Exception as err:  # noqa: BLE001 - handed on to every rank
            import pickle

            error = err
            try:
                pickle.dumps(err)
                outcome = ("error", err)
            except Exception:  # noqa: BLE001 - an exception that does not pickle: its message
                outcome = ("error", f"{type(err).__name__}: {err}")
    kind, value = broadcast_object(outcome)
    if error is not None:
        raise error
    if kind == "error":
        raise value if isinstance(value, BaseException) else RankZeroError(str(value))
    return value


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@torch.no_grad()
def broadcast_module_state(module: torch.nn.Module) -> None:
    """Rank 0's trainable parameters and buffers into ``module`` on every rank, in place (frozen
    parameters are the base model's on every rank)."""
    if not is_distributed():
        return
    device = _comm_device()
    for tensor in module.state_dict(keep_vars=True).values():
        if isinstance(tensor, torch.nn.Parameter) and not tensor.requires_grad:
            continue
        t = tensor.detach()
        if t.device == device:
            dist.broadcast(t, src=0)
        else:
            buf = t.to(device)
            dist.broadcast(buf, src=0)
            t.copy_(buf)


def broadcast_float(value: float) -> float:
    """Rank 0's number on every rank (a selection score: every rank keeps the same checkpoint)."""
    if not is_distributed():
        return value
    buf = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.broadcast(buf, src=0)
    return float(buf.item())


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of a scalar tensor (a detached copy; ``value`` is not changed)."""
    out = value.detach().clone().reshape(1).double()
    if is_distributed():
        out = out.to(_comm_device())
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.reshape(())


# ------------------------------------------------------------------ sharding a global micro-batch

IGNORE_INDEX = -100  # transformers' CrossEntropyLoss default: tagging's sub-words and special tokens


def loss_units(batch: Mapping) -> int:
    """What the model's loss averages over: the labelled tokens of a token-classification batch
    (2-D ``labels``, -100 ignored), otherwise the rows (sequence classification, QA)."""
    labels = batch.get("labels")
    if torch.is_tensor(labels) and labels.dim() >= 2:
        return int((labels != IGNORE_INDEX).sum())
    ids = batch.get("input_ids")
    if torch.is_tensor(ids):
        return int(ids.shape[0])
    first = next(v for v in batch.values() if torch.is_tensor(v))
    return int(first.shape[0])


def shard_batch(batch: Mapping, rank_: int, world: int) -> tuple[dict, int, int, bool]:
    """This rank's contiguous slice of the rows of the global micro-batch ``batch``.

    Returns ``(local, local_units, global_units, empty)``. The slices keep the global padding,
    so every row is computed with the shapes of the one-process run. ``empty``: this rank has no
    rows (a last micro-batch smaller than the world); ``local`` is then the first row, to be
    given zero weight, so the rank still runs the forward and backward DDP waits for.
    """
    rows = next(v for v in batch.values() if torch.is_tensor(v)).shape[0]
    bounds = torch.arange(rows).tensor_split(world)[rank_]
    empty = bounds.numel() == 0
    lo, hi = (0, 1) if empty else (int(bounds[0]), int(bounds[-1]) + 1)
    local = {k: v[lo:hi] if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == rows else v
             for k, v in batch.items()}
    return local, 0 if empty else loss_units(local), loss_units(batch), empty


def zero_loss(output) -> torch.Tensor:
    """A loss of exactly 0 through every output the model computed (all parameters get a zero
    gradient): for a rank whose slice carries nothing to learn from."""
    items = output.items() if hasattr(output, "items") else []
    terms = [v.float().sum() for k, v in items if k != "loss" and torch.is_tensor(v) and v.requires_grad]
    if not terms:
        return output.loss * 0.0
    return torch.stack(terms).sum() * 0.0
