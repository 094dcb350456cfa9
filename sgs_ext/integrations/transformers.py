"""Gradient-mix-train with the Hugging Face ``Trainer``.

::

    from sgs_ext.integrations.transformers import GradientSurgeryTrainer

    trainer = GradientSurgeryTrainer(
        model=model, args=training_args,
        train_dataset=mixed_train,                       # source data + every target's K shots
        oracle_datasets={"hi": hi_shots, "ar": ar_shots},  # each target's K shots
        surgery_alpha=1.0,                               # paper: 1 for NER/POS, 0.1 TyDiQA/XNLI
    )
    trainer.train()

At every optimizer step (after the last micro-batch's backward, so on the accumulated and, under
DDP, synchronised gradient) the trainer calls :meth:`StochasticGradientSurgery.step` with one
closure per target language; the Trainer's own gradient clipping and optimizer step follow. The
oracle loss of a language is the mean loss over all its examples (in chunks of
``oracle_batch_size`` if given), computed by ``compute_loss`` under the Trainer's autocast, in
train mode. Under DDP every rank computes the oracle on the full oracle set and the surgery
averages the gradients (which differ by dropout), so all ranks apply the same surgery. fp16 is
handled through the accelerator's GradScaler. Per-language counters are added to the training
logs (``surgery/<lang>/conflict_rate`` etc.), and the surgery's generator and counters are saved
with each checkpoint and restored on resume.

DeepSpeed and FSDP are not supported by this class (use ``StochasticGradientSurgery(...,
sharded=True)`` in a custom loop).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping

import torch
from transformers import Trainer

from ..surgery import MODES, StochasticGradientSurgery, SurgeryStats

SURGERY_STATE_NAME = "surgery_state.pt"


class GradientSurgeryTrainer(Trainer):
    """A :class:`transformers.Trainer` that trains with stochastic gradient surgery.

    Args (in addition to the Trainer's):
        oracle_datasets: ``{language: dataset}``, each that language's K shots, with the same
            item format as ``train_dataset``. ``None`` or empty: a plain Trainer.
        surgery_alpha: probability of surgery at an optimizer step.
        surgery_mode: ``"stochastic"``, ``"pcgrad"`` or ``"off"`` (naive-mix-train).
        surgery_seed: seed of the surgery's generator (default: ``args.seed``).
        oracle_batch_size: chunk size of an oracle pass (default: the whole oracle set at once).
        oracle_collator: collate function for the oracle sets (default: ``data_collator``).
    """

    def __init__(self, *args, oracle_datasets: Mapping | None = None, surgery_alpha: float = 1.0,
                 surgery_mode: str = "stochastic", surgery_seed: int | None = None,
                 oracle_batch_size: int | None = None, oracle_collator: Callable | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if surgery_mode not in MODES:
            raise ValueError(f"GradientSurgeryTrainer: surgery_mode must be one of {MODES}, got {surgery_mode!r}")
        if not 0.0 <= float(surgery_alpha) <= 1.0:
            raise ValueError(f"GradientSurgeryTrainer: surgery_alpha must be in [0, 1], got {surgery_alpha}")
        if oracle_batch_size is not None and oracle_batch_size < 1:
            raise ValueError(f"GradientSurgeryTrainer: oracle_batch_size must be >= 1, got {oracle_batch_size}")
        self.oracle_datasets = dict(oracle_datasets or {})
        for lang, ds in self.oracle_datasets.items():
            if len(ds) == 0:
                raise ValueError(f"GradientSurgeryTrainer: oracle dataset for {lang!r} is empty")
        self.surgery_alpha = float(surgery_alpha)
        self.surgery_mode = surgery_mode
        self.surgery_seed = self.args.seed if surgery_seed is None else int(surgery_seed)
        self.oracle_batch_size = oracle_batch_size
        self.oracle_collator = oracle_collator
        self.surgery: StochasticGradientSurgery | None = None
        self.last_surgery_stats: SurgeryStats | None = None
        self._oracle_batches: dict[str, list] | None = None
        self._pending_surgery_state: dict | None = None

    # ------------------------------------------------------------------ the hook
    def training_step(self, model, inputs, *args, **kwargs):
        loss = super().training_step(model, inputs, *args, **kwargs)
        if self.oracle_datasets and self.accelerator.sync_gradients:
            surgery = self._get_surgery(model)
            closures = {lang: functools.partial(self._oracle_losses, model, lang) for lang in self.oracle_datasets}
            self.last_surgery_stats = surgery.step(closures)
        return loss

    def _get_surgery(self, model) -> StochasticGradientSurgery:
        if self.surgery is None:
            kind = str(getattr(self.accelerator, "distributed_type", "")).upper()
            if "DEEPSPEED" in kind or "FSDP" in kind:
                raise NotImplementedError(
                    f"GradientSurgeryTrainer does not support {kind}; use "
                    "sgs_ext.StochasticGradientSurgery(..., sharded=True) in a custom training loop")
            ddp = model if isinstance(model, torch.nn.parallel.DistributedDataParallel) else None
            self.surgery = StochasticGradientSurgery(
                self.model.parameters(), alpha=self.surgery_alpha, mode=self.surgery_mode,
                seed=self.surgery_seed, grad_scaler=getattr(self.accelerator, "scaler", None),
                ddp_module=ddp)
            if self._pending_surgery_state is not None:
                self.surgery.load_state_dict(self._pending_surgery_state)
                self._pending_surgery_state = None
        return self.surgery

    # ------------------------------------------------------------------ oracle passes
    def _build_oracle_batches(self) -> dict[str, list]:
        collate = self.oracle_collator or self.data_collator
        batches = {}
        for lang, ds in self.oracle_datasets.items():
            try:
                import datasets

                if isinstance(ds, datasets.Dataset):
                    ds = self._remove_unused_columns(ds, description=f"oracle[{lang}]")
            except ImportError:
                pass
            n = len(ds)
            size = self.oracle_batch_size or n
            chunks = []
            for start in range(0, n, size):
                items = [ds[i] for i in range(start, min(start + size, n))]
                chunks.append((collate(items), len(items)))
            batches[lang] = chunks
        return batches

    def _oracle_losses(self, model, lang: str):
        """Yield the oracle loss of ``lang`` chunk by chunk, weighted to a mean over all examples."""
        if self._oracle_batches is None:
            self._oracle_batches = self._build_oracle_batches()
        chunks = self._oracle_batches[lang]
        total = sum(n for _, n in chunks)
        for batch, n in chunks:
            inputs = self._prepare_inputs(batch)
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs)
            if self.args.n_gpu > 1:
                loss = loss.mean()
            yield loss * (n / total)

    # ------------------------------------------------------------------ logging and checkpoints
    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self.surgery is not None and "loss" in logs:
            logs = {**logs, **self.surgery.log_dict()}
        super().log(logs, *args, **kwargs)

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        if self.surgery is not None and self.args.should_save:
            torch.save(self.surgery.state_dict(), os.path.join(output_dir, SURGERY_STATE_NAME))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        super()._load_rng_state(checkpoint)
        path = os.path.join(checkpoint, SURGERY_STATE_NAME) if checkpoint else None
        if path and os.path.isfile(path):
            state = torch.load(path, weights_only=False)
            if self.surgery is None:
                self._pending_surgery_state = state
            else:
                self.surgery.load_state_dict(state)
