"""Stochastic gradient surgery on a model's ``.grad`` (Xu & Murray, 2022).

Gradient-mix-train, one optimizer step::

    loss = model(**mixed_batch).loss
    loss.backward()                                  # g_train is now in .grad
    stats = surgery.step({"hi": lambda: model(**oracle["hi"]).loss,
                          "ar": lambda: model(**oracle["ar"]).loss})
    # clip here if you clip: surgery.clip_grad_norm_(1.0) or torch.nn.utils.clip_grad_norm_
    optimizer.step(); optimizer.zero_grad()

``step`` draws one target language uniformly and ``p ~ U[0, 1)`` from its own seeded
generator; only when ``p < alpha`` does it run that language's closure (the oracle pass:
forward + backward on the language's K shots) and, if ``g_train · g_oracle < 0``, replace
``g_train`` by ``g_train - (g_train·g_oracle / ‖g_oracle‖²) g_oracle`` over the whole model,
with the fused ops of :mod:`sgs_ext.ops`.

How the oracle pass avoids touching ``g_train``: the ``.grad`` tensors of the parameters are
stashed (the tensor objects, no copy), every ``p.grad`` is pointed at a view into one
persistent, zeroed oracle buffer (allocated on the first oracle pass, reused afterwards), the
closure's loss is back-propagated with ``inputs=`` restricted to the surgery's parameters (so
parameters outside the surgery never see the oracle gradient), and the stashed tensors are put
back. No full-model-sized tensor is allocated or concatenated per step.

Recipes (each has a test):

* **Mixed precision.** With a ``torch.amp.GradScaler`` pass ``grad_scaler=scaler``: each oracle
  loss is multiplied by the scaler's current scale before its backward (as
  ``scaler.scale(loss).backward()`` would), so fp16 oracle gradients do not underflow. The
  projection ``(t·o/‖o‖²) o`` does not depend on the scale of ``o`` at all, so the surgery is
  correct whether ``step`` runs on the scaled training gradient (before
  ``scaler.unscale_(optimizer)``, the usual place) or on the unscaled one (after it). A step
  whose gradients contain Inf/NaN is left untouched (``stats.nonfinite``), so the scaler sees
  the Inf and skips the optimizer step as it would without surgery. ``oracle_norm`` and ``dot``
  in the stats are reported unscaled; ``train_norm`` is the norm of ``.grad`` as it is.
  bf16 autocast needs nothing special: run the closures under the same autocast as training
  (or call ``step`` inside the ``torch.autocast`` block).
* **Gradient accumulation.** By default call ``step`` once per optimizer step, after the last
  micro-batch's backward: the surgery then acts on the accumulated gradient. Per-micro-batch
  surgery comes in two flavours:

  - call ``step`` after every micro-batch's backward: each call projects the *running*
    accumulated gradient;
  - wrap each micro-batch in :meth:`micro_batch` to project that micro-batch's *own* gradient
    before it is added to the accumulated one::

        for micro in micro_batches:
            with surgery.micro_batch():          # .grad holds only this micro-batch inside
                model(**micro).loss.div(n).backward()
                surgery.step(closures)
        optimizer.step()

  Neither combines with DDP ``no_sync`` accumulation (there a micro-batch's gradient is
  local to its rank until the last backward).
* **Clipping** comes after the surgery: ``surgery.step(...)`` then ``surgery.clip_grad_norm_``
  (or ``torch.nn.utils.clip_grad_norm_``; with a GradScaler, ``scaler.unscale_(opt)`` first),
  then ``optimizer.step()``.
* **DDP.** Build it with ``ddp_module=ddp_model`` (or, when ``torch.distributed`` is initialised,
  call the closures on ``ddp_model.module``). The language and ``p`` are broadcast from rank 0
  every step, the oracle forward runs under ``ddp_model.no_sync()`` and the oracle gradient is
  averaged across ranks like the training gradient, so every rank applies the same surgery to
  the same synchronised gradients.
* **Sharded gradients** (FSDP / ZeRO): ``sharded=True``. Each rank's ``.grad`` is its slice
  (the framework reduce-scatters the oracle gradient during its backward); the surgery is
  ``dot_norm`` on the slice, one all-reduce of three scalars, ``project_`` on the slice.
  Tested with FSDP2 (``fully_shard``, DTensor gradients): the oracle buffer's slices are
  wrapped as DTensors. FSDP's autograd leaves are its unsharded parameters, so in this mode
  the oracle backward cannot be restricted to the surgery's parameters: pass all trainable
  parameters (``model.parameters()``). For hand-made shards see
  :func:`sgs_ext.distributed.sharded_surgery_`.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from . import distributed as _dist
from .reference import projection_coefficient

MODES = ("stochastic", "pcgrad", "off")

Closure = Callable[[], "Tensor | Iterable[Tensor]"]


@dataclass(frozen=True)
class SurgeryStats:
    """What one :meth:`StochasticGradientSurgery.step` did.

    In ``pcgrad`` mode ``language`` is None and ``per_language`` holds one entry per target
    language in the order they were applied; the flags are then "for any language",
    ``train_norm`` is the norm before the first projection and ``train_norm_after`` after the
    last, the other numbers are NaN.
    """

    step: int                      # 1-based count of step() calls
    language: str | None           # the sampled language
    p: float                       # the U[0,1) draw compared with alpha
    oracle_ran: bool               # an oracle forward/backward happened
    conflict: bool = False         # g_train · g_oracle < 0
    projected: bool = False        # .grad was modified
    nonfinite: bool = False        # Inf/NaN in either gradient: surgery skipped
    cos_before: float = math.nan   # cos(g_train, g_oracle)
    cos_after: float = math.nan    # cos(projected g_train, g_oracle); 0 after a projection
    dot: float = math.nan          # g_train · g_oracle
    train_norm: float = math.nan   # ‖g_train‖ before
    train_norm_after: float = math.nan  # ‖g_train‖ after
    oracle_norm: float = math.nan  # ‖g_oracle‖
    per_language: tuple[SurgeryStats, ...] = ()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["per_language"] = [s.as_dict() for s in self.per_language]
        return d


@dataclass
class LanguageCounters:
    """Running counts for one target language."""

    steps: int = 0          # times the language was drawn (every language, every step, in pcgrad)
    oracle_runs: int = 0    # times its oracle gradient was computed (p < alpha)
    conflicts: int = 0      # oracle runs with g_train · g_oracle < 0
    projections: int = 0    # conflicts that were projected (all of them unless mode="off")
    nonfinite: int = 0      # oracle runs skipped because of Inf/NaN
    cos_sum: float = 0.0    # sum of cos_before over oracle runs with a defined cosine
    cos_count: int = 0

    @property
    def mean_cos(self) -> float:
        return self.cos_sum / self.cos_count if self.cos_count else math.nan

    @property
    def conflict_rate(self) -> float:
        return self.conflicts / self.oracle_runs if self.oracle_runs else math.nan

    def add(self, s: SurgeryStats) -> None:
        """Count one oracle run of this language (``steps`` is counted when the language is drawn)."""
        self.oracle_runs += 1
        self.conflicts += int(s.conflict)
        self.projections += int(s.projected)
        self.nonfinite += int(s.nonfinite)
        if math.isfinite(s.cos_before):
            self.cos_sum += s.cos_before
            self.cos_count += 1


def oracle_run_stats(stats: list[float], *, step: int, language: str, p: float, project: bool,
                     eps: float, scale: float = 1.0) -> SurgeryStats:
    """What one oracle run did, from its ``[dot, ‖o‖², ‖t‖²]`` (taken before any projection).

    ``project``: whether a conflict is projected (False in ``mode="off"``). ``scale``: the
    GradScaler's scale the oracle loss was multiplied by (``dot`` and ``oracle_norm`` are
    reported unscaled). The statistics after the projection are derived from those before it
    with the coefficient the kernels use (:func:`sgs_ext.reference.projection_coefficient`).
    """
    dot, oo, tt = stats
    finite = all(math.isfinite(x) for x in stats)
    conflict = finite and dot < 0
    projected = conflict and project
    c = projection_coefficient(dot, oo, tt, eps) if projected else 0.0
    dot_after = dot - c * oo
    tt_after = max(tt - 2 * c * dot + c * c * oo, 0.0)

    def cos(d, a, b):
        return d / math.sqrt(a * b) if finite and a > 0 and b > 0 else math.nan

    return SurgeryStats(
        step=step, language=language, p=p, oracle_ran=True, conflict=conflict,
        projected=projected, nonfinite=not finite,
        cos_before=cos(dot, oo, tt), cos_after=0.0 if projected else cos(dot_after, oo, tt_after),
        dot=dot / scale, train_norm=math.sqrt(tt) if tt >= 0 else math.nan,
        train_norm_after=math.sqrt(tt_after) if finite else math.nan,
        oracle_norm=math.sqrt(oo) / scale if oo >= 0 else math.nan,
    )


class _OracleBuffer:
    """One flat, persistent buffer per (device, dtype) plus per-parameter views into it.

    For DTensor parameters (FSDP2) the views cover the local shard and are wrapped as DTensors
    laid out like the parameter, so they can be assigned to ``.grad``.
    """

    def __init__(self, params: list[Tensor]):
        self.signature = self._signature(params)
        locals_ = [_dist.local_tensor(p) for p in params]
        sizes: dict[tuple, int] = {}
        offsets = []
        for t in locals_:
            key = (t.device, t.dtype)
            offsets.append((key, sizes.get(key, 0)))
            sizes[key] = sizes.get(key, 0) + t.numel()
        self.flats = {key: torch.zeros(n, device=key[0], dtype=key[1]) for key, n in sizes.items()}
        self.views = []
        for (key, off), t, p in zip(offsets, locals_, params):
            view = self.flats[key][off:off + t.numel()].view(t.shape)
            self.views.append(_dist.dtensor_like(view, p) if t is not p else view)

    @staticmethod
    def _signature(params):
        return [(p.shape, p.dtype, p.device, _dist.local_tensor(p).shape) for p in params]

    def matches(self, params: list[Tensor]) -> bool:
        return self.signature == self._signature(params)

    def zero_(self) -> None:
        for flat in self.flats.values():
            flat.zero_()

    def owns(self, t: Tensor) -> bool:
        ptr = _dist.local_tensor(t).untyped_storage().data_ptr()
        return any(ptr == f.untyped_storage().data_ptr() for f in self.flats.values())


def _describe(value) -> str:
    """What a closure returned, for an error message: ``None``, ``a float (1.5)``, ``a Tensor of shape (2,)``."""
    if value is None:
        return "None"
    if isinstance(value, Tensor):
        return f"a Tensor of shape {tuple(value.shape)}"
    name, text = type(value).__name__, repr(value)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}" + (f" ({text})" if len(text) <= 40 else "")


def _losses(lang: str, out) -> Iterable:
    """A closure's result as an iterable of losses: one tensor, or the iterable it returned.
    Anything else (None, a Python number: a ``loss.item()``, a forgotten ``return``) is a
    TypeError naming the language and what came back, before any backward."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (str, bytes)) or not isinstance(out, Iterable):
        raise TypeError(f"StochasticGradientSurgery: the closure for {lang!r} returned {_describe(out)}; it must "
                        "return the oracle loss, a scalar tensor that requires grad (or an iterable of them)")
    return out


def _collect_params(params) -> list[Tensor]:
    if isinstance(params, Tensor):
        params = [params]
    out: list[Tensor] = []
    seen: set[int] = set()
    for i, item in enumerate(params):
        group = item["params"] if isinstance(item, Mapping) else [item]
        if isinstance(group, Tensor):
            group = [group]
        for p in group:
            if not isinstance(p, Tensor):
                raise TypeError(f"StochasticGradientSurgery: params[{i}] is {type(p).__name__}, expected a Tensor")
            if not p.requires_grad or id(p) in seen:
                continue   # frozen parameters are left out; tied parameters counted once
            if not p.is_leaf:
                raise ValueError(f"StochasticGradientSurgery: params[{i}] (shape {tuple(p.shape)}) is not a "
                                 "leaf tensor, so it has no .grad to operate on")
            seen.add(id(p))
            out.append(p)
    if not out:
        raise ValueError("StochasticGradientSurgery: no parameter requires grad")
    return out


class StochasticGradientSurgery:
    """Stochastic gradient surgery on the ``.grad`` of ``params``.

    Args:
        params: parameters (or optimizer-style param groups). Parameters with
            ``requires_grad=False`` are left out; a parameter whose ``.grad`` is None counts as a
            zero gradient (it is only materialised if a projection gives it a non-zero value).
        alpha: probability of running the oracle pass and surgery at a step (paper: 1 for
            NER/POS, 0.1 for TyDiQA/XNLI). ``alpha=0`` is exactly naive-mix-train.
        mode: ``"stochastic"`` (the paper: one language drawn uniformly per step),
            ``"pcgrad"`` (project against every target language in random order, Yu et al. 2020)
            or ``"off"`` (naive-mix-train: same draws, no surgery).
        seed: seed of the surgery's private ``torch.Generator``; the global RNG is not touched.
        eps: floor on ‖g_oracle‖² in the projection coefficient.
        grad_scaler: a ``torch.amp.GradScaler`` whose scale is applied to oracle losses.
        distributed: ``None`` = on when ``torch.distributed`` is initialised with more than one
            rank in ``process_group``; ``False`` forces single-process behaviour.
        process_group: the data-parallel group (default: the world, or ``ddp_module``'s).
        ddp_module: the ``DistributedDataParallel`` wrapper; oracle forwards run in its
            ``no_sync()`` and the surgery averages the oracle gradient itself.
        sharded: ``.grad`` holds this rank's disjoint slice (FSDP / ZeRO); the three scalars
            are all-reduced, the oracle gradient is not (the framework reduces it). Pass every
            trainable parameter in this mode (see module docs).
        observe: in ``mode="off"``, still run the oracle pass (when ``p < alpha``) to record
            cosines and conflicts, without changing the gradient.
    """

    def __init__(self, params, alpha: float = 1.0, mode: str = "stochastic", seed: int = 0, *,
                 eps: float = 1e-12, grad_scaler=None, distributed: bool | None = None,
                 process_group=None, ddp_module: torch.nn.Module | None = None,
                 sharded: bool = False, observe: bool = False):
        if mode not in MODES:
            raise ValueError(f"StochasticGradientSurgery: mode must be one of {MODES}, got {mode!r}")
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"StochasticGradientSurgery: alpha must be in [0, 1], got {alpha}")
        if not float(eps) > 0:
            raise ValueError(f"StochasticGradientSurgery: eps must be > 0, got {eps}")
        if ddp_module is not None and not hasattr(ddp_module, "no_sync"):
            raise TypeError("StochasticGradientSurgery: ddp_module must be a DistributedDataParallel "
                            f"(something with .no_sync()), got {type(ddp_module).__name__}")
        self.params = _collect_params(params)
        self.alpha = alpha
        self.mode = mode
        self.seed = int(seed)
        self.eps = float(eps)
        self.grad_scaler = grad_scaler
        self.ddp_module = ddp_module
        if process_group is None and ddp_module is not None:
            process_group = getattr(ddp_module, "process_group", None)
        self.process_group = process_group
        self._distributed = distributed
        self.sharded = bool(sharded)
        self.observe = bool(observe)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        self.counters: dict[str, LanguageCounters] = {}
        self.num_steps = 0
        self._buffer: _OracleBuffer | None = None
        self._fills: dict[int, Tensor] = {}       # zero stand-ins for params whose g_train is None
        self._checked_languages: tuple[str, ...] | None = None

    # ------------------------------------------------------------------ public API
    def step(self, closures: Mapping[str, Closure]) -> SurgeryStats:
        """Draw a language and ``p``; if ``p < alpha``, run its oracle pass and the surgery.

        ``closures`` maps each target language to a zero-argument callable returning the oracle
        loss on that language's shots (a scalar tensor; or an iterable of scalar losses for
        chunked oracle sets, which are back-propagated one by one and summed). Closures must not
        call ``backward`` themselves.
        """
        languages = self._languages(closures)
        # A step that raises (a closure's error, Ctrl-C) leaves no trace: the generator, the step
        # count, the counters and every .grad are as before it.
        saved = (self.generator.get_state(), self.num_steps,
                 {lang: LanguageCounters(**asdict(c)) for lang, c in self.counters.items()})
        try:
            return self._step(languages, closures)
        except BaseException:
            state, self.num_steps, self.counters = saved
            self.generator.set_state(state)
            raise

    def _step(self, languages: list[str], closures: Mapping[str, Closure]) -> SurgeryStats:
        order, p = self._draw(len(languages))
        self.num_steps += 1
        chosen = [languages[i] for i in order]
        for lang in chosen:
            self.counters.setdefault(lang, LanguageCounters()).steps += 1
        label = None if self.mode == "pcgrad" else chosen[0]
        if not (p < self.alpha and (self.mode != "off" or self.observe)):
            return SurgeryStats(step=self.num_steps, language=label, p=p, oracle_ran=False)

        project = self.mode != "off"
        per_language = []
        stashed = [q.grad for q in self.params]
        train = self._train_tensors(stashed)
        # pcgrad projects in place before its later closures run: keep the values to put back
        # if one of them raises (one gradient's worth of memory, for the length of the step).
        backup = [t.clone() for t in train] if project and len(chosen) > 1 else None
        materialised = False
        try:
            for lang in chosen:
                oracle = self._oracle_gradient(lang, closures[lang])
                stats = self._surgery(train, oracle, project)
                s = oracle_run_stats(stats, step=self.num_steps, language=lang, p=p, project=project,
                                     eps=self.eps, scale=self._oracle_scale())
                self.counters.setdefault(lang, LanguageCounters()).add(s)
                per_language.append(s)
                materialised |= s.projected
        except BaseException:
            if backup is not None:
                with torch.no_grad():
                    for t, b in zip(train, backup):
                        t.copy_(b)
            raise
        finally:
            for q, g in zip(self.params, stashed):
                q.grad = g
        if materialised:   # params without g_train that the projection gave a gradient
            for i, g in enumerate(stashed):
                if g is None and self.params[i].requires_grad:
                    self.params[i].grad = train[i]
        if self.mode != "pcgrad":
            return per_language[0]
        return SurgeryStats(
            step=self.num_steps, language=None, p=p, oracle_ran=True,
            conflict=any(s.conflict for s in per_language),
            projected=materialised,
            nonfinite=any(s.nonfinite for s in per_language),
            train_norm=per_language[0].train_norm,
            train_norm_after=per_language[-1].train_norm_after,
            per_language=tuple(per_language),
        )

    @contextlib.contextmanager
    def micro_batch(self) -> Iterator[None]:
        """Isolate one micro-batch's gradient in ``.grad`` (per-micro-batch surgery).

        On entry the accumulated gradients are set aside and ``.grad`` is cleared; on exit the
        (possibly projected) micro-batch gradient is added to them in place.
        """
        saved = [q.grad for q in self.params]
        for q in self.params:
            q.grad = None
        try:
            yield
        finally:
            with torch.no_grad():
                for q, acc in zip(self.params, saved):
                    if acc is None:
                        continue
                    if q.grad is not None:
                        acc.add_(q.grad)
                    q.grad = acc

    def clip_grad_norm_(self, max_norm: float, norm_type: float = 2.0) -> Tensor:
        """Clip the (projected) gradients; call after :meth:`step`, before ``optimizer.step()``.

        With ``sharded=True`` the norm spans all ranks' shards. Returns the pre-clip total norm.
        """
        if self.sharded:
            return _dist.sharded_clip_grad_norm_(self.params, max_norm, norm_type, self.process_group)
        return torch.nn.utils.clip_grad_norm_(self.params, max_norm, norm_type)

    def log_dict(self, prefix: str = "surgery") -> dict[str, float]:
        """Flat counters for a logger: ``{prefix}/{lang}/{conflict_rate,mean_cos,...}``."""
        out: dict[str, float] = {}
        for lang, c in sorted(self.counters.items()):
            base = f"{prefix}/{lang}"
            out[f"{base}/steps"] = c.steps
            out[f"{base}/oracle_runs"] = c.oracle_runs
            out[f"{base}/conflicts"] = c.conflicts
            out[f"{base}/projections"] = c.projections
            out[f"{base}/nonfinite"] = c.nonfinite
            out[f"{base}/conflict_rate"] = c.conflict_rate
            out[f"{base}/mean_cos"] = c.mean_cos
        return out

    def state_dict(self) -> dict:
        """Generator state and counters, so a resumed run draws what the original would have."""
        return {
            "generator": self.generator.get_state(),
            "num_steps": self.num_steps,
            "counters": {lang: asdict(c) for lang, c in self.counters.items()},
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.generator.set_state(state["generator"])
        self.num_steps = int(state["num_steps"])
        self.counters = {lang: LanguageCounters(**c) for lang, c in state["counters"].items()}

    def __repr__(self) -> str:
        n = sum(q.numel() for q in self.params)
        return (f"StochasticGradientSurgery(mode={self.mode!r}, alpha={self.alpha}, seed={self.seed}, "
                f"params={len(self.params)} tensors/{n} elements, sharded={self.sharded})")

    # ------------------------------------------------------------------ internals
    def _is_distributed(self) -> bool:
        if self._distributed is False:
            return False
        active = _dist.is_active(self.process_group)
        if self._distributed and not active:
            raise RuntimeError("StochasticGradientSurgery(distributed=True) but torch.distributed is not "
                               "initialised with more than one rank")
        return active

    def _languages(self, closures: Mapping[str, Closure]) -> list[str]:
        if not isinstance(closures, Mapping) or not closures:
            raise ValueError("StochasticGradientSurgery.step: pass a non-empty dict {language: closure}")
        for lang, fn in closures.items():
            if not isinstance(lang, str):
                raise TypeError(f"StochasticGradientSurgery.step: language keys must be str, got {lang!r}")
            if not callable(fn):
                raise TypeError(f"StochasticGradientSurgery.step: closure for {lang!r} is not callable")
        languages = sorted(closures)   # order-independent, so every rank and run agrees
        if self._is_distributed() and tuple(languages) != self._checked_languages:
            _dist.check_same_languages(languages, self.process_group)
            self._checked_languages = tuple(languages)
        return languages

    def _draw(self, n: int) -> tuple[list[int], float]:
        if self.mode == "pcgrad":
            order = torch.randperm(n, generator=self.generator).tolist()
        else:
            order = [int(torch.randint(n, (1,), generator=self.generator))]
        p = float(torch.rand((), generator=self.generator, dtype=torch.float64))
        if self._is_distributed():
            values = _dist.broadcast_draw(order + [p], self.process_group, self.params[0].device)
            order, p = [int(v) for v in values[:-1]], float(values[-1])
        return order, p

    def _train_tensors(self, stashed: list[Tensor | None]) -> list[Tensor]:
        train = []
        for i, (q, g) in enumerate(zip(self.params, stashed)):
            if g is None:
                fill = self._fills.get(i)
                if fill is None or fill.shape != q.shape or fill.dtype != q.dtype or fill.device != q.device:
                    fill = self._fills[i] = torch.zeros_like(q, memory_format=torch.contiguous_format)
                else:
                    fill.zero_()
                g = fill
            elif g.is_sparse:
                raise ValueError(f"StochasticGradientSurgery: parameter {i} (shape {tuple(q.shape)}) has a "
                                 "sparse gradient, which the surgery does not support")
            train.append(g)
        return train

    def _oracle_gradient(self, lang: str, closure: Closure) -> list[Tensor]:
        """Run ``lang``'s oracle pass into the persistent buffer; return the oracle gradient tensors."""
        if self._buffer is None or not self._buffer.matches(self.params):
            self._buffer = _OracleBuffer(self.params)   # once (again only if params moved/changed)
        buf = self._buffer
        buf.zero_()
        for q, view in zip(self.params, buf.views):
            q.grad = view
        inputs = [q for q in self.params if q.requires_grad]   # params outside never see g_oracle
        no_sync = self.ddp_module.no_sync() if self.ddp_module is not None else contextlib.nullcontext()
        with no_sync:
            n = 0
            for loss in _losses(lang, closure()):
                if not isinstance(loss, Tensor) or loss.numel() != 1:
                    raise TypeError(f"StochasticGradientSurgery: the closure for {lang!r} must return a scalar "
                                    f"loss tensor (or an iterable of them), got {_describe(loss)}")
                if not loss.requires_grad:
                    raise ValueError(f"StochasticGradientSurgery: the oracle loss of {lang!r} does not require grad "
                                     "(was the closure run under torch.no_grad()?)")
                if self.grad_scaler is not None and self.grad_scaler.is_enabled():
                    loss = self.grad_scaler.scale(loss)
                if self.sharded:
                    # FSDP's autograd leaves are its unsharded parameters, not self.params
                    torch.autograd.backward(loss.reshape(()))
                else:
                    torch.autograd.backward(loss.reshape(()), inputs=inputs)
                n += 1
            if n == 0:
                raise ValueError(f"StochasticGradientSurgery: the closure for {lang!r} returned no loss")
        oracle = []
        foreign = []   # oracle grads that a framework put somewhere other than our buffer
        for q, view in zip(self.params, buf.views):
            g = q.grad
            if g is None:
                g = view
            elif g is not view and not buf.owns(g):
                foreign.append(g)
            oracle.append(g)
        if self._is_distributed() and not self.sharded:
            _dist.all_reduce_mean_(list(buf.flats.values()) + foreign, self.process_group)
        return oracle

    @torch.no_grad()
    def _surgery(self, train: list[Tensor], oracle: list[Tensor], project: bool) -> list[float]:
        """dot_norm (+ project_) grouped by device; returns [dot, ‖o‖², ‖t‖²] as floats."""
        if self.sharded:
            train = [_dist.local_tensor(t) for t in train]
            oracle = [_dist.local_tensor(o) for o in oracle]
        stats = _dist.surgery_by_device_(train, oracle, self.eps, project=project,
                                         reduce=self.sharded and self._is_distributed(), group=self.process_group)
        return stats.double().tolist()

    def _oracle_scale(self) -> float:
        """The scale the oracle losses were multiplied by (1 without an enabled GradScaler)."""
        if self.grad_scaler is not None and self.grad_scaler.is_enabled():
            return float(self.grad_scaler.get_scale())
        return 1.0
