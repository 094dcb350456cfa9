"""A run's output directory (``experiments/run.py --output-dir``): every path in it, and the
saved model states.

This module is the one place that names them; the runner, the reports and the analyses
build their paths here::

    run_config.json     the settings that change results (``results.check_run_config``)
    data_files.json     the data dir, a fingerprint of every file read, the skipped targets
    results.jsonl       one score per line; runs.jsonl: one training record per job
    .lock               held while a writer commits a cell's records, updates the shot manifest,
                        checks or writes the settings and data records, or saves a source model
    run.log             the log of every run.py call on the directory
    shots/manifest.json the shots of every target language, K and seed (``shots.update_manifest``)
    source_models/<task>/seed<S>/                  the source model of a seed (always saved)
    models/<task>/<method>/k<K>/seed<S>/<job>/     a job's selected model (``--save-models``)
    analysis/           what ``experiments/analyze.py`` writes (unless told otherwise)

plus the report files (``summary.md``, ``curves.csv``, ...), which ``report.write_reports``
names beside their content. A model directory holds ``trained_state.safetensors`` (the
parameters that were trained, nothing frozen) and ``train_result.json`` (the training
record); :func:`save_trained_state` writes both, :func:`load_trained_state` is the one
reader of the state.

Only the standard library is imported here: ``results`` builds its files' paths from
these names, so this module imports its writers when it writes.
"""
from __future__ import annotations

from pathlib import Path

RUN_CONFIG_FILE = "run_config.json"
DATA_FILES_FILE = "data_files.json"
RESULTS_FILE = "results.jsonl"
RUNS_FILE = "runs.jsonl"
LOCK_FILE = ".lock"
LOG_FILE = "run.log"
SHOTS_DIR = "shots"
MANIFEST_FILE = "manifest.json"
SOURCE_MODELS_DIR = "source_models"
MODELS_DIR = "models"
ANALYSIS_DIR = "analysis"
STATE_FILE = "trained_state.safetensors"  # in a model directory: the trained parameters
INFO_FILE = "train_result.json"  # in a model directory: its training record

#: how the help and error messages spell the two kinds of model directory
SOURCE_MODEL_PATTERN = f"{SOURCE_MODELS_DIR}/<task>/seed<S>/"
CELL_MODEL_PATTERN = f"{MODELS_DIR}/<task>/<method>/k<K>/seed<S>/<job>/"


def _seed(seed) -> str:
    return f"seed{seed}"


def run_config_path(run_dir) -> Path:
    return Path(run_dir) / RUN_CONFIG_FILE


def data_files_path(run_dir) -> Path:
    return Path(run_dir) / DATA_FILES_FILE


def results_path(run_dir) -> Path:
    return Path(run_dir) / RESULTS_FILE


def runs_path(run_dir) -> Path:
    return Path(run_dir) / RUNS_FILE


def lock_path(run_dir) -> Path:
    return Path(run_dir) / LOCK_FILE


def log_path(run_dir) -> Path:
    return Path(run_dir) / LOG_FILE


def manifest_path(run_dir) -> Path:
    return Path(run_dir) / SHOTS_DIR / MANIFEST_FILE


def analysis_dir(run_dir) -> Path:
    return Path(run_dir) / ANALYSIS_DIR


def source_model_dir(run_dir, task: str, seed: int) -> Path:
    """The source model of ``seed``: trained once per seed, shared by the methods that start from it."""
    return Path(run_dir) / SOURCE_MODELS_DIR / task / _seed(seed)


def cell_model_dir(run_dir, task: str, method: str, k: int, seed: int, job: str = "all") -> Path:
    """The selected model of a cell's job (``job``: ``all`` for the one-model methods, the target
    language for the per-language ones), when the run saved it."""
    return Path(run_dir) / MODELS_DIR / task / method / f"k{k}" / _seed(seed) / job


def source_info_paths(run_dir) -> list[Path]:
    """The training record of every source model in ``run_dir``, in path order."""
    return sorted(Path(run_dir).glob(f"{SOURCE_MODELS_DIR}/*/{_seed('*')}/{INFO_FILE}"))


def state_path(model_dir) -> Path:
    return Path(model_dir) / STATE_FILE


def info_path(model_dir) -> Path:
    return Path(model_dir) / INFO_FILE


def save_trained_state(model_dir, model, info: dict) -> None:
    """``model``'s trainable parameters (safetensors) and ``info`` (JSON) into ``model_dir``,
    each written atomically."""
    from safetensors.torch import save_file

    from .results import atomic_path, atomic_write_json

    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    with atomic_path(state_path(model_dir), suffix=".safetensors") as tmp:
        save_file(state, str(tmp))
    atomic_write_json(info_path(model_dir), info)


def load_trained_state(model, model_dir, *, base: str) -> None:
    """Load the state saved in ``model_dir`` into ``model`` (built from the base model ``base``);
    the parameters it does not hold (frozen ones) keep the base model's values.

    A state that does not fit the model is a ValueError naming its tensors: one the model
    does not have, or one whose shape differs (another base model, another task head).
    """
    from safetensors.torch import load_file

    path = state_path(model_dir)
    state = load_file(str(path))
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{path} does not fit the model {base}: unknown tensors {', '.join(unknown[:5])}")
    wrong = [f"{name} {tuple(t.shape)} vs {tuple(own[name].shape)}" for name, t in state.items()
             if tuple(t.shape) != tuple(own[name].shape)]
    if wrong:
        raise ValueError(f"{path} does not fit the model {base}: shapes differ: {'; '.join(wrong[:3])}")
    model.load_state_dict(state, strict=False)


def is_saved(model_dir) -> bool:
    """Whether ``model_dir`` holds a complete :func:`save_trained_state` (state and info)."""
    return state_path(model_dir).exists() and info_path(model_dir).exists()


def load_saved(model, model_dir, *, base: str) -> dict:
    """:func:`load_trained_state` into ``model``, and return the saved info."""
    from .results import read_json

    load_trained_state(model, model_dir, base=base)
    return read_json(info_path(model_dir))

