"""Finding and loading the models that the gradient-similarity and interpolation analyses need.

A checkpoint is a directory in one of two formats:

- **Hugging Face** (``save_pretrained``): ``config.json`` plus the weights, with the
  task head. Loaded with ``task.build_model(path)``.
- **harness state**: only the parameters that were trained, as the runner saves its
  models (``run_dir.save_trained_state``). Loaded on top of
  ``task.build_model(<base model>)`` (``--model``, else the run's ``model`` setting,
  resolved with ``transfer.offline_model.resolve_model``), so parameters that were
  frozen (the word embedding with ``--freeze-embeddings``) come from the base model.

Where they are in a run's output directory: ``run_dir.source_model_dir`` (the source
model of a seed, always saved) and ``run_dir.cell_model_dir`` (the selected model of a
cell's job, when the run saved them), both in the harness-state format.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import run_dir as D
from .common import RunDir

logger = logging.getLogger(__name__)

_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model")


def checkpoint_format(path) -> str:
    """``"state"`` (harness state) or ``"pretrained"`` (Hugging Face); a clear error otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} is not a directory")
    if D.state_path(path).is_file():
        return "state"
    if (path / "config.json").is_file() and any((path / name).is_file() for name in _HF_WEIGHTS):
        return "pretrained"
    raise ValueError(f"{path} is not a checkpoint: it has neither {D.STATE_FILE} (a harness state) nor config.json "
                     f"with weights (a save_pretrained directory)")


def find_checkpoint(given, default: Path | None, what: str, flag: str) -> Path:
    """``given`` if set, else ``default`` (a place in the run dir), which must exist."""
    if given:
        checkpoint_format(given)
        return Path(given)
    if default is None:
        raise ValueError(f"{flag}: give the {what} checkpoint directory")
    if not default.is_dir():
        hint = ""
        if D.MODELS_DIR in default.parts:
            hint = (" (run.py keeps only the source models unless it saves every cell's selected model into "
                    f"{D.CELL_MODEL_PATTERN})")
        raise ValueError(f"{flag}: no {what} checkpoint at {default}{hint}; pass {flag} DIR")
    checkpoint_format(default)
    return default


def has_tokenizer(path) -> bool:
    return any((Path(path) / name).is_file() for name in _TOKENIZER_FILES)


@dataclass
class ModelSetup:
    """Everything needed to load a run's models and data for an analysis."""

    task: object  # transfer.tasks.Task
    tokenizer: object
    base_model: str | None
    data_dir: Path | None
    source: str
    targets: tuple[str, ...]
    max_seq_length: int
    freeze_embeddings: bool
    device: str
    manifest_path: Path | None

    def load(self, path, seed: int = 0) -> torch.nn.Module:
        """The model in ``path`` (either format), on ``self.device``, in eval mode."""
        return load_model(path, self.task, base_model=self.base_model, freeze_embeddings=self.freeze_embeddings,
                          seed=seed).to(self.device).eval()

    def pretrained(self, seed: int) -> torch.nn.Module:
        """θ_0 of ``seed``: the base model with the seed's initial task head, built exactly as
        ``Runner.pretrained_model(seed)`` builds the start of every model of that seed (on
        ``self.device``, in eval mode)."""
        from ..train import freeze_word_embeddings, set_seed

        if self.base_model is None:
            raise ValueError("--model: the plane's origin is the pretrained start of the models; name their base "
                             "model (or use a run dir whose run_config.json records it)")
        set_seed(seed)  # the task head's initialisation, as Runner.pretrained_model
        model = self.task.build_model(str(self.base_model))
        if self.freeze_embeddings:
            freeze_word_embeddings(model)
        return model.to(self.device).eval()


def cell_job(method_label: str, job: str | None, language: str | None, flag: str) -> str:
    """The job of a cell's saved model: ``job`` if given; else the target ``language`` for the
    per-language cells (``<stem>-single``, a language set of one model per target), else ``all``."""
    if job:
        return job
    if method_label.endswith("-single"):
        if not language:
            raise ValueError(f"{flag}: {method_label} has one model per target language: name it "
                             f"(--target-language, or {flag} LANG)")
        return language
    return "all"


def load_model(path, task, *, base_model: str | None = None, freeze_embeddings: bool = False,
               seed: int = 0) -> torch.nn.Module:
    """Load a checkpoint of ``task`` (see the module docstring for the formats)."""
    path = Path(path)
    fmt = checkpoint_format(path)
    torch.manual_seed(seed)  # a head the checkpoint does not hold gets a reproducible initialisation
    if fmt == "pretrained":
        model = task.build_model(str(path))
    else:
        if base_model is None:
            raise ValueError(f"{path} holds only the trained parameters ({D.STATE_FILE}): name the base model they "
                             f"were trained from with --model (or use a run dir whose {D.RUN_CONFIG_FILE} records it)")
        model = task.build_model(str(base_model))
        D.load_trained_state(model, path, base=str(base_model))
    if freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def make_setup(run: RunDir | None, *, task: str | None = None, model: str | None = None,
               model_cache_dir: str | None = None, data_dir: str | None = None, source: str | None = None,
               targets: tuple[str, ...] | None = None, max_seq_length: int | None = None,
               freeze_embeddings: bool | None = None, device: str = "cpu",
               checkpoints: tuple = ()) -> ModelSetup:
    """Resolve an analysis' settings: explicit arguments first, then the run's
    ``run_config.json``, then defaults. The data dir: ``data_dir``, else the one the run read
    (its ``data_files.json``), else ``transfer.config.default_data_dir()``; the files of the
    analysed languages must have the content the run recorded (a ValueError naming a changed one).

    The tokenizer comes from the base model if there is one, else from the first of
    ``checkpoints`` that holds tokenizer files.
    """
    from transformers import AutoTokenizer

    from ..config import default_data_dir
    from ..tasks import get_task

    recorded = run.config if run is not None else {}
    task_name = run.task(task) if run is not None else task
    if not task_name:
        raise ValueError("--task: name the task (or give --run-dir)")
    task_obj = get_task(task_name)

    base = model or recorded.get("model")
    if base is not None:
        from ..offline_model import resolve_model

        base = str(resolve_model(base, cache_dir=model_cache_dir))
    tokenizer_from = base
    if tokenizer_from is None:
        local = [c for c in checkpoints if c is not None and has_tokenizer(c)]
        if not local:
            raise ValueError("no tokenizer: give the base model with --model, or checkpoints saved with "
                             "their tokenizer")
        tokenizer_from = str(local[0])
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)

    targets = targets or tuple(recorded.get("targets") or ())
    if not targets:
        raise ValueError("--languages: name the target languages (the run dir does not record them)")
    data = Path(data_dir) if data_dir else (run.data_dir() if run is not None else None) or default_data_dir()
    if data is None or not data.is_dir():
        raise ValueError(f"--data-dir: no data directory ({data}); give the XTREME data dir")
    source = source or recorded.get("source") or "en"
    if run is not None:
        run.check_data(data, [f for lang in (source, *targets) for f in task_obj.data_files(lang, data)])
    freeze = freeze_embeddings if freeze_embeddings is not None else bool(recorded.get("freeze_embeddings", False))
    return ModelSetup(
        task=task_obj, tokenizer=tokenizer, base_model=base, data_dir=data,
        source=source, targets=tuple(targets),
        max_seq_length=int(max_seq_length or recorded.get("max_seq_length") or task_obj.default_max_seq_length),
        freeze_embeddings=freeze, device=device, manifest_path=run.manifest_path() if run is not None else None,
    )
