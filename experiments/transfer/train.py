"""The one training loop every method uses, with evaluation-based checkpoint selection.

One optimizer step::

    for each micro-batch of the step:      (--grad-accum-steps micro-batches)
        loss = model(**batch).loss / accum;  loss.backward()
        [surgery.step(oracles)]             (--surgery-per-micro-batch: the published code)
    [surgery.step(oracles)]                 (default: once per optimizer step, the paper's text)
    clip_grad_norm_(max_grad_norm)          (after the surgery)
    optimizer.step(); scheduler.step(); zero_grad()

Several processes (``torchrun``, see :mod:`transfer.distributed_run`): the model is wrapped in
``DistributedDataParallel``; every rank draws the same global micro-batches (the same seeded
sampler) and trains on its contiguous slice of the rows, its loss weighted by its share of the
micro-batch's loss units (labelled tokens for tagging, rows otherwise), so the averaged gradient
is the one-process gradient of the global micro-batch's mean loss (the sums run in another
order: equal to float rounding). Accumulation is local (``no_sync``) until a step's last
micro-batch, unless the surgery runs after every micro-batch. The surgery uses ``sgs_ext``'s
DDP support (rank 0's draws; every rank runs the whole oracle batch with the same private RNG;
the oracle gradients are averaged). Every rank evaluates and keeps rank 0's score. Equality
with one process needs no dropout in the training forward (each rank draws its own masks, for
its own slice); the oracle passes' dropout is the one-process one on every rank.

AdamW (eps 1e-8, no weight decay on biases and LayerNorm weights), a linear
schedule with optional warm-up. With a :class:`Selector`, the model is evaluated
every ``selector.every`` optimizer steps and after the last one; the best
checkpoint (highest score, the earliest on ties) is kept in memory and loaded at
the end. Without one the last checkpoint is kept. With ``average=True`` (checkpoint
averaging, Schmidt et al. 2023, "Free Lunch: Robust Cross-Lingual Transfer via Model
Checkpoint Averaging": no dev set needed) the model returned is the uniform average of the
trainable parameters after each of the last ``AVERAGE_FRACTION`` of the optimizer steps,
kept as a running mean in one extra copy; the rule's checkpoint (the selector's, or the
last) comes back in ``result.rule_state``.

Memory (see :func:`recomputed_layers` and :func:`release_free_heap`): on the CPU, a
micro-batch of at least :data:`RECOMPUTE_LAYERS_MIN_TOKENS` padded tokens recomputes its
layers' activations in the backward pass instead of keeping them (same inputs, same
dropout draws: the gradients are bit-identical), and before a micro-batch larger than any
before it the freed heap is handed back to the OS, so the few long micro-batches (one
126-token English sentence pads its micro-batch to 126 tokens; the median pads to ~30) do
not set the run's peak memory.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from . import distributed_run as R

logger = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass(frozen=True)
class OptimSettings:
    lr: float
    epochs: float
    micro_batch_size: int
    grad_accum_steps: int = 1
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    max_steps: int | None = None


@dataclass(frozen=True)
class SurgerySettings:
    alpha: float
    per_micro_batch: bool = False  # the published code: surgery on the running accumulated gradient
    mode: str = "stochastic"  # or "off" (naive-mix-train)
    observe: bool = False  # with mode "off": run the oracle passes and count conflicts, project nothing


@dataclass
class Selector:
    """Checkpoint selection: ``evaluate(model) -> score`` (higher is better) every ``every`` steps."""

    evaluate: Callable[[torch.nn.Module], float]
    every: int
    name: str = "dev"


@dataclass
class TrainResult:
    steps: int
    selected_step: int
    selected_score: float | None
    curve: list[dict] = field(default_factory=list)  # rows {"step", "kind": loss|dev|cos, "value", ...}
    surgery_counters: dict | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    last_state: dict | None = None  # keep_last: the last checkpoint's trainable state (not serialised)
    rule_state: dict | None = None  # average: the selector's checkpoint (None: it is the last one)
    rule_step: int | None = None  # average: the step of the selector's checkpoint, or the last step
    average_from_step: int | None = None  # average: the first step whose parameters enter the mean

    def to_dict(self) -> dict:
        return {
            "steps": self.steps, "selected_step": self.selected_step, "selected_score": self.selected_score,
            "curve": self.curve, "surgery_counters": self.surgery_counters,
            "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
            **({"average_from_step": self.average_from_step, "rule_step": self.rule_step}
               if self.average_from_step is not None else {}),
        }


class MixedSet(Dataset):
    """Several encoded sets (same task and tokenizer) as one dataset, with their collate."""

    def __init__(self, sets):
        self.sets = [s for s in sets if len(s)]
        if not self.sets:
            raise ValueError("nothing to train on: every training set is empty")
        self.offsets = np.cumsum([0] + [len(s) for s in self.sets])

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, index):
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.sets[which][index - int(self.offsets[which])]

    def collate(self, items):
        return self.sets[0].collate(items)


class RandomOracleBatch:
    """A fresh random batch of ``size`` examples of ``dataset`` at every call.

    The published code's oracles beyond the text: its English oracle is a random source
    batch of min(K, micro-batch) examples each time it is drawn, and its XNLI oracle a
    random min(K, micro-batch) subset of the 3K shots. The draws come from a private
    ``random.Random(seed)``, so they are reproducible and move no other random stream.
    """

    def __init__(self, dataset, size: int, seed: int):
        if len(dataset) == 0:
            raise ValueError("RandomOracleBatch: the dataset is empty")
        self.dataset, self.size = dataset, min(int(size), len(dataset))
        self.rng = random.Random(seed)

    def __call__(self) -> Mapping:
        picked = self.rng.sample(range(len(self.dataset)), self.size)
        return self.dataset.collate([self.dataset[i] for i in picked])


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def freeze_word_embeddings(model: torch.nn.Module) -> int:
    """Freeze the input word embedding; returns how many parameters that froze."""
    weight = model.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (the BERT recipe)."""
    no_decay = set()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            no_decay.add(id(param))
    params = trainable_parameters(model)
    decay = [p for p in params if id(p) not in no_decay]
    plain = [p for p in params if id(p) in no_decay]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0})
            if g["params"]]


def linear_schedule(optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up from 0 over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1) if warmup_steps else 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def to_device(batch: Mapping, device) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def _snapshot(model) -> dict[str, torch.Tensor]:
    """A copy of what training changes: trainable parameters and buffers."""
    state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    state.update({n: b.detach().clone() for n, b in model.named_buffers()})
    return state


#: Checkpoint averaging (``train(average=True)``): the parameters after each of the last half
#: of the optimizer steps enter the mean (the later, lower-learning-rate half of the linear
#: schedule; a fixed choice, never tuned on an evaluation set).
AVERAGE_FRACTION = 0.5


def average_start(total_steps: int) -> int:
    """The first optimizer step whose parameters the average includes (1-based)."""
    return total_steps - max(1, math.ceil(AVERAGE_FRACTION * total_steps)) + 1


class RunningAverage:
    """The uniform running mean of some tensors (one extra copy): ``add`` after each step."""

    def __init__(self, params: list[torch.Tensor]):
        self.params = params
        self.mean = [p.detach().clone() for p in params]
        self.count = 1

    @torch.no_grad()
    def add(self) -> None:
        self.count += 1
        torch._foreach_lerp_(self.mean, [p.detach() for p in self.params], 1.0 / self.count)


#: CPU training micro-batches of at least this many padded tokens (batch x padded length) do
#: not keep their transformer layers' activations for the backward pass but recompute them
#: there, one layer at a time (torch.utils.checkpoint, non-reentrant, RNG state preserved:
#: the same dropout draws, so every gradient is bit-identical). A micro-batch keeps about
#: 0.5 MB per padded token of me5-small for backward: 1.3 GB for the demo's one 16 x 126
#: micro-batch (its longest English sentence), 0.6 GB at 16 x 64, 0.3 GB at 16 x 30 (the
#: median). Recomputed, the 16 x 126 one needs 0.37 GB, for one more forward pass of it.
#: 768 = 16 x 48: the longer micro-batches pay the extra forward (in the default run 26%
#: of them, 46% of the padded tokens). None: never.
RECOMPUTE_LAYERS_MIN_TOKENS: int | None = 768


def encoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's repeated transformer blocks: its longest ``ModuleList`` (``encoder.layer``)."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


@contextlib.contextmanager
def recomputed_layers(model: torch.nn.Module, enabled: bool = True):
    """Within the block, each of ``model``'s transformer layers runs under activation checkpointing.

    Every layer's ``forward`` is wrapped (an instance attribute, removed on exit) in
    ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False, preserve_rng_state=True)``:
    only a layer's inputs are stored for backward, and backward reruns its forward with the
    same RNG state, so the loss and every gradient are bit-identical to keeping them. The
    backward pass may run after the block (the wrapped originals are what it reruns).
    """
    if not enabled:
        yield
        return
    from torch.utils.checkpoint import checkpoint

    layers = encoder_layers(model)
    for layer in layers:
        original = layer.forward

        def forward(*args, _original=original, **kwargs):
            return checkpoint(_original, *args, use_reentrant=False, preserve_rng_state=True, **kwargs)

        layer.forward = forward
    try:
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)


_LIBC = None


def release_free_heap() -> bool:
    """Hand the heap's free pages back to the OS (glibc ``malloc_trim``); False where unavailable.

    glibc keeps what a long micro-batch's activations freed as resident free heap, and a
    later, larger one then adds to it instead of reusing all of it (fragments too small for
    its tensors stay resident). Trimming first makes such fragments cost no memory. It
    changes no value, only which pages are resident; reused pages are faulted in again.
    """
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if hasattr(libc, "malloc_trim"):
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                libc.malloc_trim.restype = ctypes.c_int
                _LIBC = libc
        except OSError:
            pass
    if not _LIBC:
        return False
    _LIBC.malloc_trim(0)
    return True


def count_steps(n_examples: int, settings: OptimSettings) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps) for ``n_examples``."""
    micro_batches = math.ceil(n_examples / settings.micro_batch_size)
    per_epoch = math.ceil(micro_batches / settings.grad_accum_steps)
    total = max(1, math.ceil(per_epoch * settings.epochs))
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    return per_epoch, total


def train(
    model: torch.nn.Module,
    dataset,
    settings: OptimSettings,
    *,
    seed: int,
    device="cpu",
    selector: Selector | None = None,
    oracle_batches: Mapping[str, Mapping] | None = None,
    surgery: SurgerySettings | None = None,
    progress: bool = True,
    desc: str = "train",
    keep_last: bool = False,
    average: bool = False,
) -> TrainResult:
    """Train ``model`` on ``dataset`` (a Dataset with ``.collate``); see the module docstring.

    ``oracle_batches`` maps a language to its oracle batch (its K shots, collated), or to a
    callable returning a new batch at every oracle pass (:class:`RandomOracleBatch`); with
    ``surgery`` set, ``sgs_ext.StochasticGradientSurgery`` projects the step's
    gradient against one of them at each step.

    Everything random is seeded from ``seed`` here (python, numpy and torch for dropout;
    a generator for the data order; the surgery's own draws; the oracle passes' dropout),
    so a training depends on its inputs and seed only, not on what ran before it.

    ``keep_last``: with a selector, also return the last checkpoint's state in
    ``result.last_state`` (None when the selected checkpoint is the last), so the last
    checkpoint can be scored beside the selected one.

    ``average``: return the average of the parameters over the last ``AVERAGE_FRACTION`` of
    the steps (see the module docstring); ``keep_last`` then returns the last checkpoint even
    without a selector, and the selector's choice comes back in ``result.rule_state``.
    """
    from tqdm.auto import tqdm

    set_seed(seed)
    if len(dataset) == 0:
        raise ValueError(f"{desc}: the training set is empty")
    device = torch.device(device)
    model.to(device)
    params = trainable_parameters(model)
    if not params:
        raise ValueError(f"{desc}: the model has no trainable parameters")
    # several processes (torchrun): DDP, each rank on its slice of every global micro-batch
    ddp, rank, world = None, R.rank(), R.world_size()
    if R.is_distributed():
        if rank:  # each rank its own dropout masks (rank 0 keeps the one-process stream)
            torch.manual_seed(seed + 1_000_003 * rank)
        from torch.nn.parallel import DistributedDataParallel

        import inspect

        # the buffers are constants (position ids): no sync before every forward (a collective each)
        no_buffer_sync = ({"forward_sync_buffers": False}
                          if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                          else {"broadcast_buffers": False})
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      **no_buffer_sync)
    forward = ddp if ddp is not None else model
    optimizer = torch.optim.AdamW(parameter_groups(model, settings.weight_decay), lr=settings.lr,
                                  eps=settings.adam_eps)
    per_epoch, total_steps = count_steps(len(dataset), settings)
    scheduler = linear_schedule(optimizer, settings.warmup_steps, total_steps)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=settings.micro_batch_size, sampler=RandomSampler(dataset, generator=generator),
                        collate_fn=dataset.collate)

    surgeon, closures = None, None
    if surgery is not None:
        if not oracle_batches:
            raise ValueError(f"{desc}: gradient surgery needs oracle batches")
        from sgs_ext import StochasticGradientSurgery

        # per-micro-batch surgery (the published code) projects the *running* accumulated gradient
        # under DDP (sgs_ext's own support): every rank runs the whole oracle batch with the same
        # private RNG, in DDP's no_sync; the surgery averages the (identical) oracle gradients
        surgeon = StochasticGradientSurgery(params, alpha=surgery.alpha, mode=surgery.mode, seed=seed,
                                            observe=surgery.observe,
                                            **({"ddp_module": ddp} if ddp is not None else {}))
        oracle_rng = IsolatedRNG(seed, device)

        def closure(batch):
            if callable(batch):  # a new batch at every oracle pass
                return lambda: oracle_rng.run(lambda: forward(**to_device(batch(), device)).loss)
            on_device = to_device(batch, device)  # one fixed batch, moved once
            return lambda: oracle_rng.run(lambda: forward(**on_device).loss)

        closures = {lang: closure(batch) for lang, batch in oracle_batches.items()}

    result = TrainResult(steps=0, selected_step=0, selected_score=None)
    best_state = None
    averaged, average_from = None, average_start(total_steps) if average else None
    eval_seconds = 0.0

    def run_surgery(step):
        stats = surgeon.step(closures)
        if getattr(stats, "oracle_ran", True):
            result.curve.append({"step": step, "kind": "cos", "value": _float(getattr(stats, "cos_before", None)),
                                 "language": getattr(stats, "language", None),
                                 "projected": bool(getattr(stats, "projected", False))})

    def evaluate(step):
        nonlocal best_state, eval_seconds
        start = time.perf_counter()
        score = R.broadcast_float(float(selector.evaluate(model)))  # every rank: rank 0's decision
        model.train()
        eval_seconds += time.perf_counter() - start
        result.curve.append({"step": step, "kind": "dev", "value": score, "set": selector.name})
        improved = result.selected_score is None or score > result.selected_score
        if improved:
            result.selected_score, result.selected_step = score, step
            best_state = _snapshot(model)
        logger.info("%s step %d/%d: %s %.2f (best %.2f at step %d)", desc, step, total_steps, selector.name,
                    score, result.selected_score, result.selected_step)

    start_time = time.perf_counter()
    model.train()
    optimizer.zero_grad(set_to_none=False)
    step, last_evaluated = 0, -1
    # padded tokens of the largest micro-batch so far, kept and recomputed apart (a recomputed one
    # needs far less memory per token): release_free_heap before a larger one of the same kind
    largest_batch = {False: 0, True: 0}
    bar = tqdm(total=total_steps, desc=desc, disable=not progress or rank != 0, leave=False)
    try:
        while step < total_steps:
            micro_losses = []
            batches = iter(loader)
            for i, batch in enumerate(batches):
                last_of_step = len(micro_losses) + 1 >= settings.grad_accum_steps or i + 1 == len(loader)
                if ddp is not None:
                    batch, units, total_units, empty = R.shard_batch(batch, rank, world)
                size = _batch_tokens(batch)
                recompute = (device.type == "cpu" and RECOMPUTE_LAYERS_MIN_TOKENS is not None
                             and size >= RECOMPUTE_LAYERS_MIN_TOKENS)
                if size > largest_batch[recompute]:  # a new largest micro-batch of its kind: a trimmed heap
                    largest_batch[recompute] = size
                    if device.type == "cpu":
                        release_free_heap()
                if ddp is None:
                    with recomputed_layers(model, recompute):
                        loss = model(**to_device(batch, device)).loss
                        if not torch.isfinite(loss):
                            raise FloatingPointError(f"{desc}: loss is {loss.item()} at step {step + 1}")
                        (loss / settings.grad_accum_steps).backward()
                else:
                    # accumulate locally (no_sync) until the step's last micro-batch, unless the surgery
                    # runs after every micro-batch: it must see the synchronised running gradient
                    local_only = not last_of_step and not (surgeon is not None and surgery.per_micro_batch)
                    with ddp.no_sync() if local_only else contextlib.nullcontext(), \
                            recomputed_layers(model, recompute):
                        out = ddp(**to_device(batch, device))
                        # this rank's share of the global micro-batch's mean loss (its units over all
                        # ranks' units): the shares sum to the one-process loss, DDP's mean of the
                        # gradients of world x share to its gradient
                        share = R.zero_loss(out) if empty or not units else out.loss * (units / total_units)
                        loss = R.all_reduce_sum(share)  # the same on every rank: all stop together
                        if not torch.isfinite(loss):
                            raise FloatingPointError(f"{desc}: loss is {loss.item()} at step {step + 1}")
                        (share * (world / settings.grad_accum_steps)).backward()
                micro_losses.append(loss.item())
                last_in_epoch = i + 1 == len(loader)
                if surgeon is not None and surgery.per_micro_batch:
                    run_surgery(step + 1)
                if len(micro_losses) < settings.grad_accum_steps and not last_in_epoch:
                    continue
                if surgeon is not None and not surgery.per_micro_batch:
                    run_surgery(step + 1)
                if settings.max_grad_norm and settings.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=False)
                step += 1
                mean_loss = float(np.mean(micro_losses))
                micro_losses = []
                result.curve.append({"step": step, "kind": "loss", "value": mean_loss})
                if average_from is not None and step >= average_from:
                    if averaged is None:
                        averaged = RunningAverage(params)
                    else:
                        averaged.add()
                bar.update(1)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                if selector is not None and step % selector.every == 0:
                    evaluate(step)
                    last_evaluated = step
                if step >= total_steps:
                    break
    finally:
        bar.close()
    if selector is not None and last_evaluated != step:
        evaluate(step)
    if averaged is not None:
        result.rule_step = result.selected_step if selector is not None else step
        if selector is not None and best_state is not None and result.selected_step != step:
            result.rule_state = best_state
        if keep_last:
            result.last_state = _snapshot(model)
        with torch.no_grad():
            torch._foreach_copy_(params, averaged.mean)
        result.selected_step, result.average_from_step = step, average_from
    elif selector is not None:
        if best_state is not None and result.selected_step != step:
            if keep_last:
                result.last_state = _snapshot(model)
            model.load_state_dict(best_state, strict=False)
    else:
        result.selected_step = step
    result.steps = step
    result.eval_seconds = eval_seconds
    result.train_seconds = time.perf_counter() - start_time - eval_seconds
    if surgeon is not None:
        result.surgery_counters = counters_to_dict(surgeon.counters)
    return result


def _batch_tokens(batch: Mapping) -> int:
    """A micro-batch's size for the memory bookkeeping: the elements of its input ids (padded tokens)."""
    ids = batch.get("input_ids") if isinstance(batch, Mapping) else None
    return int(ids.numel()) if torch.is_tensor(ids) else 0


class IsolatedRNG:
    """A private random stream for the oracle passes (their dropout masks).

    The oracle forward runs in train mode, so it draws dropout masks; drawing them from
    the global generator would shift every later training mask, and gradient-mix-train
    would differ from naive-mix-train by noise even at steps where nothing is projected.
    With its own stream the two runs are identical up to the first projection, so their
    difference is the surgery's doing.
    """

    def __init__(self, seed: int, device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=self._devices()):
            torch.manual_seed(seed + 7919)  # any fixed offset: a stream apart from the training one
            self.cpu_state = torch.get_rng_state()
            self.cuda_state = torch.cuda.get_rng_state(self.device) if self.cuda else None

    def _devices(self):
        if not self.cuda:
            return []
        return [self.device.index if self.device.index is not None else torch.cuda.current_device()]

    def run(self, fn):
        with torch.random.fork_rng(devices=self._devices()):
            torch.set_rng_state(self.cpu_state)
            if self.cuda:
                torch.cuda.set_rng_state(self.cuda_state, self.device)
            out = fn()
            self.cpu_state = torch.get_rng_state()
            if self.cuda:
                self.cuda_state = torch.cuda.get_rng_state(self.device)
        return out


def _float(value):
    if value is None:
        return None
    if torch.is_tensor(value):
        value = value.item()
    return float(value)


def counters_to_dict(counters) -> dict:
    """Plain-data copy of the surgery object's per-language counters (for JSON)."""
    import dataclasses

    def plain(value):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if torch.is_tensor(value):
            return value.item() if value.numel() == 1 else value.tolist()
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(counters)
