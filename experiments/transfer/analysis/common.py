"""What the analyses share: reading a run's output directory, its shots and evaluation
data, and writing figures and tables atomically.

A run's output directory (``experiments/run.py --output-dir``; its layout is
``transfer.run_dir``'s) holds the settings that change results (task, model, source,
targets, max_seq_length, freeze_embeddings, ...), the scores (one per line: task, method,
k, seed, job, language, metric, value), the training records (one per job, with its
``curve`` and ``surgery_counters``), the shot manifest and the source models. Analyses
write into its ``analysis/`` unless told otherwise.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from .. import run_dir as D
from ..results import ResultStore, atomic_path, read_data_record, read_json, select_records, verify_data_files
from ..tables import csv_text, mean, parse_list, pyplot, sd  # noqa: F401  (the analyses import them from here)

logger = logging.getLogger(__name__)

#: the fields the analyses read from every results and runs record
RESULT_FIELDS = ("task", "method", "k", "seed", "language", "metric", "value")
RUN_FIELDS = ("task", "method", "k", "seed")


class RunDir:
    """Read-only view of one run's output directory."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"--run-dir: {self.path} is not a directory")
        config_path = D.run_config_path(self.path)
        self.config: dict = read_json(config_path) if config_path.exists() else {}
        self.store = ResultStore(self.path)

    def setting(self, name: str, default=None):
        """A setting from ``run_config.json`` (``default`` if the run did not record it)."""
        value = self.config.get(name)
        return default if value is None else value

    def _checked(self, records: list[dict], path: Path, fields: tuple[str, ...]) -> list[dict]:
        """``records``, each holding ``fields``: one lacking one (written by an older harness, or
        by hand) is a ValueError naming the file, the record and the field, not a KeyError later."""
        for i, record in enumerate(records, start=1):
            missing = [name for name in fields if name not in record]
            if missing:
                raise ValueError(
                    f"{path}: record {i} has no {', '.join(map(repr, missing))} field (written by an older harness?). "
                    f"Regenerate the records: move {D.RESULTS_FILE} and {D.RUNS_FILE} out of {self.path} and run run.py "
                    f"again with --output-dir {self.path} and the run's settings")
        return records

    def all_results(self) -> list[dict]:
        """Every record of ``results.jsonl`` (any role, any checkpoint)."""
        return self._checked(self.store.results(), self.store.results_path, RESULT_FIELDS)

    def results(self) -> list[dict]:
        """The target-language scores of the selected checkpoints (what the analyses compare)."""
        records = select_records(self.all_results())
        if not records:
            raise ValueError(f"{self.store.results_path}: no results (has the run finished a cell?)")
        return records

    def runs(self) -> list[dict]:
        records = self._checked(self.store.runs(), self.store.runs_path, RUN_FIELDS)
        if not records:
            raise ValueError(f"{self.store.runs_path}: no training records")
        return records

    def data_dir(self) -> Path | None:
        """The data directory the run read (``data_files.json``; None for a run made before it)."""
        record = read_data_record(self.path)
        return Path(record["data_dir"]) if record else None

    def check_data(self, data_dir, files) -> None:
        """``files`` under ``data_dir`` must be what the run read (see ``results.verify_data_files``)."""
        verify_data_files(self.path, data_dir, files)

    def task(self, requested: str | None = None) -> str:
        """The run's task (``requested`` must match it if the run recorded one)."""
        recorded = self.config.get("task")
        if requested and recorded and requested != recorded:
            raise ValueError(f"--task {requested}: {self.path} is a {recorded} run")
        task = requested or recorded
        if not task:
            raise ValueError(f"{self.path} has no {D.RUN_CONFIG_FILE} naming its task: pass --task")
        return task

    def manifest_path(self) -> Path:
        return D.manifest_path(self.path)

    def output_dir(self, override=None) -> Path:
        return Path(override) if override else D.analysis_dir(self.path)


# ----------------------------------------------------------------------------- results helpers


def primary_metric(results: list[dict], task: str) -> str:
    """The first metric the run recorded for ``task`` (the runner writes ``task.metrics`` in order)."""
    for record in results:
        if record["task"] == task:
            return record["metric"]
    raise ValueError(f"no results for task {task!r}")


def scores_by_seed(results: list[dict], *, task: str, metric: str, method: str, k: int) -> dict[str, dict[int, float]]:
    """``{language: {seed: value}}`` of one method and K (one record per language and seed)."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for r in results:
        if r["task"] == task and r["metric"] == metric and r["method"] == method and int(r["k"]) == k:
            seed = int(r["seed"])
            if seed in out[r["language"]]:
                raise ValueError(f"{D.RESULTS_FILE}: two {task}/{method}/k{k}/seed{seed} {metric} scores for "
                                 f"{r['language']}")
            out[r["language"]][seed] = float(r["value"])
    return dict(out)


def parse_languages(text: str | None, what: str) -> tuple[str, ...] | None:
    return None if text is None else parse_list(text, what)


# ----------------------------------------------------------------------------- data of a run


def load_shots(task, lang: str, k: int, seed: int, data_dir, manifest_path: Path | None = None) -> list:
    """The K shots of ``lang`` for ``seed``: from the run's shot manifest if it lists them,
    else drawn the way the runner draws them (``transfer.shots.draw_shots``, deterministic)."""
    from ..shots import draw_shots, read_manifest, shots_from_record

    if manifest_path is not None and manifest_path.exists():
        record = read_manifest(manifest_path).get((task.name, lang, k, seed))
        if record is not None:
            split, pool = task.shot_pool(lang, data_dir)
            if record.split != split:
                raise ValueError(f"{manifest_path}: the {lang} shots came from {record.split!r} but the data's "
                                 f"shot pool is now {split!r}")
            return shots_from_record(record, pool)
        logger.warning("%s lists no %s/%s K=%d seed %d shots: drawing them the runner's way", manifest_path,
                       task.name, lang, k, seed)
    return draw_shots(task, lang, k, seed, data_dir)[1]


def manifest_uids(manifest_path: Path | None, task_name: str, lang: str) -> frozenset:
    """Every uid the run used as a shot of ``lang`` (any K, any seed)."""
    from ..shots import read_manifest

    if manifest_path is None or not manifest_path.exists():
        return frozenset()
    return frozenset(uid for (task, lang_, _, _), record in read_manifest(manifest_path).items()
                     if task == task_name and lang_ == lang for uid in record.uids)


# ----------------------------------------------------------------------------- writing


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    plt = pyplot()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def pick_one(values, flag: str, what: str):
    """The single value in ``values``; an error asking for ``flag`` when there are several or none."""
    values = sorted(set(values))
    if len(values) == 1:
        return values[0]
    if not values:
        raise ValueError(f"{flag}: the run has no {what}; give it explicitly")
    raise ValueError(f"{flag}: the run has several {what} ({', '.join(map(str, values))}); choose one")
