"""Executing a run: cells (task x method x K x seed) -> jobs -> the training loop -> records.

:class:`Runner` owns the models, the cells and the records. For every cell not yet in
``results.jsonl`` it plans the method's jobs (``methods.plan_jobs``), trains each with
``train.train`` on the run's data (:class:`run_data.RunData`: the same shots, English
sets and evaluation sets for every method), scores it on its languages and commits the
cell's records (``results.ResultStore``). The source model of a seed is trained once
(English only, selected on English dev) and cached in the run directory
(``run_dir.source_model_dir``); zero-shot, ord-FS, ord-FS+dev and mix-FT start from it.
The analysis methods ``target-only`` and ``target-only-full`` (``methods.ANALYSIS_METHOD_TABLE``)
start from the pretrained encoder as the one-step methods do; ``target-only-full`` trains on
a target's train split (``RunData.target_train_set``), for the targets that have one
(``RunData.train_split_targets``), with the source model's budget and selection rule.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from . import distributed_run as R
from . import methods as M
from . import run_dir as D
from .config import RunConfig
from .results import CellKey, ResultStore, cell_key_of, check_data_files, check_run_config, exclusive_lock
from .run_data import RunData
from .shards import shard_cells
from .tasks.base import release_file_cache
from .train import (MixedSet, OptimSettings, Selector, SurgerySettings, count_steps, freeze_word_embeddings,
                    set_seed, train)

logger = logging.getLogger(__name__)

#: transformers' model types whose position ids start after the padding index (the RoBERTa family)
POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer")


def max_input_length(model_path: str) -> tuple[int | None, str]:
    """The most tokens ``model_path`` can embed (None: no absolute positions), and why, from its
    config.json. XLM-R-like models number positions from ``pad_token_id + 1``, so they have
    ``max_position_embeddings - pad_token_id - 1`` (me5-small, XLM-R: 514 - 1 - 1 = 512)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    n = getattr(config, "max_position_embeddings", None)
    if n is None:
        return None, "no max_position_embeddings"
    if config.model_type in POSITIONS_AFTER_PADDING:
        pad = config.pad_token_id
        return n - pad - 1, f"max_position_embeddings {n} - pad_token_id {pad} - 1: positions start after padding"
    return n, f"max_position_embeddings {n}"


#: the fields that name a record's cell and job, first in every record
RECORD_KEY = ("task", "method", "k", "seed", "job")
#: the fields a results record copies from its job's runs record
RECORD_RUN_FIELDS = ("selected_step", "steps", "selection", "train_seconds", "eval_seconds")


def run_record(key: CellKey, job: str, info: dict, selection: str, **fields) -> dict:
    """A ``runs.jsonl`` record: the cell and job, the training's steps (``info``: a training's
    ``to_dict()`` or a source model's info), how its checkpoint was chosen, and ``fields``."""
    return {"task": key.task, "method": key.method, "k": key.k, "seed": key.seed, "job": job,
            "steps": info["steps"], "selected_step": info["selected_step"], "selection": selection, **fields}


class Runner:
    """Runs every cell of ``config`` that ``output_dir/results.jsonl`` does not hold yet."""

    def __init__(self, config: RunConfig, *, task=None, model_path: str | None = None, tokenizer=None):
        from transformers import AutoTokenizer

        from .tasks import get_task

        self.config = config
        self.task = task if task is not None else get_task(config.task)
        if model_path is None:
            from .offline_model import resolve_model

            model_path = resolve_model(config.model, cache_dir=config.model_cache_dir)
        self.model_path = str(model_path)
        self._check_max_seq_length()
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(self.model_path)
        self.out = Path(config.output_dir)
        self.store = ResultStore(self.out)
        self.data = RunData(config, self.task, self.tokenizer)
        self._source_scores: dict = {}  # seed -> source_model_scores(seed)

    def _check_max_seq_length(self) -> None:
        """A --max-seq-length beyond the model's positions would fail in the first long batch
        (an index error, possibly after hours of training): refuse it now."""
        limit, why = max_input_length(self.model_path)
        if limit is not None and self.config.max_seq_length > limit:
            raise ValueError(f"--max-seq-length {self.config.max_seq_length}: the model {self.model_path} takes at "
                             f"most {limit} tokens ({why})")

    # ------------------------------------------------------------------ models

    def evaluate(self, model, examples) -> dict[str, float]:
        return self.task.evaluate(model, examples, self.tokenizer, max_seq_length=self.config.max_seq_length,
                                  batch_size=self.config.eval_batch_size, device=self.config.device)

    def primary_score(self, model, examples) -> float:
        return float(self.evaluate(model, examples)[self.task.metrics[0]])

    def pretrained_model(self, seed: int):
        set_seed(seed)  # the task head's initialisation
        model = self.task.build_model(self.model_path)
        if self.config.freeze_embeddings:
            freeze_word_embeddings(model)
        return model

    def optim_settings(self, *, batch: str, k: int | None) -> OptimSettings:
        c = self.config
        if batch == "k":  # target-adapting: batch K, no accumulation, the adapting epochs
            return OptimSettings(lr=c.lr, epochs=c.adapt_epochs, micro_batch_size=k, grad_accum_steps=1,
                                 warmup_steps=0, weight_decay=c.weight_decay, adam_eps=c.adam_eps,
                                 max_grad_norm=c.max_grad_norm, max_steps=c.max_steps)
        return OptimSettings(lr=c.lr, epochs=c.epochs, micro_batch_size=c.micro_batch_size,
                             grad_accum_steps=c.grad_accum_steps, warmup_steps=c.warmup_steps,
                             weight_decay=c.weight_decay, adam_eps=c.adam_eps, max_grad_norm=c.max_grad_norm,
                             max_steps=c.max_steps)

    def source_dev_selector(self) -> Selector | None:
        """Selection of source-trained and one-step models: best on the English dev set every
        ``--eval-every`` steps, or None (the last checkpoint) with ``--source-selection last``."""
        return self.dev_selector(self.data.source_dev(), self.config.source)

    def dev_selector(self, dev: list, lang: str) -> Selector | None:
        """The source model's rule on ``lang``'s dev set ``dev`` (target-only-full selects on its
        target's as the source model does on English's)."""
        if self.config.source_selection == "last":
            return None
        return Selector(lambda m: self.primary_score(m, dev), every=self.config.eval_every, name=f"{lang}-dev")

    def source_model(self, seed: int):
        """A fresh copy of the seed's source model, trained now if it is not cached yet."""
        folder = D.source_model_dir(self.out, self.config.task, seed)
        model = self.pretrained_model(seed)
        # several processes (torchrun): rank 0 reads and writes the cache, the others get its model
        if R.on_main(D.is_saved, folder):
            logger.info("source model for seed %d: reusing %s", seed, folder)
            info = R.on_main(D.load_saved, model, folder, base=self.model_path)
            R.broadcast_module_state(model)
            return model, info
        logger.info("source model for seed %d: training on %s", seed, self.config.source)
        selector = self.source_dev_selector()
        dataset = MixedSet([self.data.source_train_set()])
        release_file_cache()  # the parsed files behind the (encoded, cached) sets: not needed while training
        result = train(model, dataset, self.optim_settings(batch="config", k=None),
                       seed=seed, device=self.config.device, selector=selector, progress=self.config.progress,
                       desc=f"source seed{seed}")
        info = {"task": self.config.task, "seed": seed, "model": self.config.model, **result.to_dict()}
        info = R.on_main(lambda info=info: self._commit_source_model(folder, model, info, seed)[1])
        R.broadcast_module_state(model)  # rank 0's, in case it loaded another worker's
        return model, info

    def _commit_source_model(self, folder: Path, model, info: dict, seed: int):
        """Save a source model just trained, unless another process on this output dir (another
        shard's worker) saved this seed's first while it trained: then that one is loaded into
        ``model`` instead. The check and the save hold the directory's lock, so exactly one model
        is ever saved, the first to finish training, and every cell of the directory starts from it."""
        with exclusive_lock(D.lock_path(self.out)):
            if D.is_saved(folder):
                logger.info("source model for seed %d: another worker saved %s first; using that one", seed, folder)
                return model, D.load_saved(model, folder, base=self.model_path)
            D.save_trained_state(folder, model, info)
        return model, info

    # ------------------------------------------------------------------ cells

    def plan_cells(self) -> list[tuple[CellKey, str, int]]:
        """Every cell of the run as (key, method, K); zero-shot (and target-only-full, which trains
        on no shots either: ``methods.cell_k``) is one K=0 cell per seed."""
        c = self.config
        cells = []
        for seed in c.seeds:
            for method in c.methods:
                if M.k_independent(method):
                    cells.append((CellKey(c.task, method, 0, seed), method, 0))
            for k in c.ks:
                for method in c.methods:
                    if M.k_independent(method):
                        continue
                    label = M.method_label(method, c.language_set)
                    cells.append((CellKey(c.task, label, k, seed), method, k))
        return cells

    def run(self, shard: tuple[int, int] | None = None) -> list[CellKey]:
        """Run every unfinished cell (of shard ``(I, N)`` only: ``shards.shard_cells``); returns the cells run now."""
        c, data = self.config, self.data

        def check_run_dir():  # several processes (torchrun): rank 0 only; a failed check stops every rank
            with exclusive_lock(D.lock_path(self.out)):  # the workers of a sharded grid check and record these at once
                check_run_config(self.out, {**c.result_settings(), "targets": list(data.targets)})
                if not data.hub:  # the hub's files are versioned by the hub, not here
                    check_data_files(self.out, c.data_dir, data.data_files(), skipped_targets=data.skipped_targets)

        R.on_main(check_run_dir)
        cells = self.plan_cells()
        planned = cells if shard is None else shard_cells(cells, c, data.targets, *shard)
        if shard is not None:
            logger.info("shard %d/%d: %d of the %d cells", *shard, len(planned), len(cells))
        done = R.on_main(self.store.finished_cells)  # every rank runs the cells rank 0 finds unfinished
        todo = [cell for cell in planned if cell[0] not in done]
        skipped = len(planned) - len(todo)
        if skipped:
            logger.info("resuming: %d finished cell(s) in %s skipped", skipped, self.store.results_path)
        for key, method, k in todo:
            start = time.perf_counter()
            logger.info("cell %s: starting", key.label())
            results, runs = self.run_cell(key, method, k)
            if R.is_main():  # several processes: every rank computed the cell, rank 0 records it
                self.store.record_cell(key, results, runs)
            logger.info("cell %s: done in %.0f s", key.label(), time.perf_counter() - start)
        return [key for key, _, _ in todo]

    def source_model_scores(self, seed: int) -> tuple[dict[str, float], int, float, dict]:
        """The seed's source model on the source language's evaluation set: (scores, n, seconds, info).

        Target-adapting methods (ord-FS, ord-FS+dev, mix-FT) never change the model the
        source language is served by, so the paper counts the source model's score in
        their K-shot rows; this is that score, computed once per seed."""
        if seed not in self._source_scores:
            model, info = self.source_model(seed)
            model.to(self.config.device)
            examples, _ = self.data.eval_set(self.config.source)
            start = time.perf_counter()
            scores = self.evaluate(model, examples)
            self._source_scores[seed] = scores, len(examples), time.perf_counter() - start, info
        return self._source_scores[seed]

    def run_cell(self, key: CellKey, method: str, k: int) -> tuple[list[dict], list[dict]]:
        """The records of one cell: ``results.jsonl``'s (one per job, language, metric and
        checkpoint) and ``runs.jsonl``'s (one per job)."""
        c, m = self.config, M.get_method(method)
        if k and R.is_main():
            self.data.write_shot_manifest(self.out, k, key.seed)
        results, runs = [], []
        targets = self.data.train_split_targets if m.shots == "target-train" else self.data.targets
        for job in M.plan_jobs(method, targets, source=c.source, language_set=c.language_set,
                               oracle_includes_source=c.oracle_includes_source):
            run, job_results = self.run_job(key, job, k, alpha=c.alpha if m.surgery else None)
            runs.append(run)
            results += job_results
        if m.init == M.SOURCE_MODEL and m.shots != "none":
            # target-adapting: the source language keeps the source model (see source_model_scores)
            scores, n_eval, seconds, info = self.source_model_scores(key.seed)
            run = run_record(key, "source-model", info, "source model", train_seconds=0.0, eval_seconds=0.0,
                             source_train_seconds=info.get("train_seconds"))
            results += self.result_records(run, c.source, scores, checkpoint="selected", n_eval=n_eval,
                                           n_excluded=0, test_seconds=seconds, k=k, alpha=None)
        return results, runs

    def run_job(self, key: CellKey, job: M.Job, k: int, *, alpha) -> tuple[dict, list[dict]]:
        """Train (or take) one job's model and score it at each of its checkpoints: the selected
        one; beside it the last, and with ``--selection average`` the rule's (source-dev) one."""
        c, seed = self.config, key.seed
        if job.init == M.SOURCE_MODEL:
            model, source_info = self.source_model(seed)
        else:
            model, source_info = self.pretrained_model(seed), None
        model.to(c.device)
        source_seconds = source_info.get("train_seconds") if source_info else None
        if not job.trains:  # zero-shot: the source model as it is (its cost in source_train_seconds)
            run = run_record(key, job.name, source_info, "source model", curve=[], surgery_counters=None,
                             train_seconds=0.0, eval_seconds=0.0, shot_languages=[], oracle_languages=[],
                             source_train_seconds=source_seconds)
            return run, self.score(model, run, job.eval_languages, "selected", run["selected_step"], k, alpha)
        outcome = self.train_job(model, job, k, seed, desc=f"{key.method} k{k} s{seed} {job.name}")
        rule = self.rule_selection(job)
        selection = M.SELECT_AVERAGE if self.averages(job) else rule
        info = outcome.to_dict()
        trained_on = {"target_train_languages": list(job.target_train_languages)} if job.target_train_languages else {}
        run = run_record(key, job.name, info, selection, shot_languages=list(job.shot_languages),
                         oracle_languages=list(job.oracle_languages), source_train_seconds=source_seconds, **trained_on,
                         **{name: info[name] for name in info if name not in ("steps", "selected_step")})
        if c.save_models and R.is_main():
            D.save_trained_state(D.cell_model_dir(self.out, key.task, key.method, k, seed, job.name), model,
                                 {"task": key.task, "method": key.method, "k": k, "seed": seed, "job": job.name,
                                  "model": c.model, **info})
        # (checkpoint, its trainable state: None = the model as loaded now, its step)
        checkpoints = [("selected", None, outcome.selected_step)]
        if selection != M.SELECT_LAST:
            checkpoints.append(("last", outcome.last_state, outcome.steps))
            if selection == M.SELECT_AVERAGE and rule == M.SELECT_SOURCE_DEV:
                checkpoints.append((M.SELECT_SOURCE_DEV, outcome.rule_state, outcome.rule_step))
        results, previous = [], []
        for checkpoint, state, step in checkpoints:
            if state is None and previous:  # the model as loaded now: the same scores
                scored = [{**r, "checkpoint": checkpoint, "selected_step": step} for r in previous]
            else:
                if state is not None:
                    model.load_state_dict(state, strict=False)
                scored = self.score(model, run, job.eval_languages, checkpoint, step, k, alpha,
                                    trained_on_train=job.target_train_languages)
            results += scored
            previous = scored
        return run, results

    def score(self, model, run: dict, languages, checkpoint: str, step: int, k: int, alpha,
              trained_on_train=()) -> list[dict]:
        """``model`` (``run``'s, at ``checkpoint``, trained to ``step``) on each of ``languages``;
        a language in ``trained_on_train`` (target-only-full) is scored without any example equal
        to one of its training set, as a shot-trained model is scored without its shots."""
        c, seed, out = self.config, run["seed"], []
        for lang in languages:
            shots = self.data.shots(lang, k, seed) if k and lang != c.source else ()
            if lang in trained_on_train:
                shots = self.data.target_train(lang)
            examples, n_excluded = self.data.eval_set(lang, shots)
            start = time.perf_counter()
            scores = self.evaluate(model, examples)
            seconds = time.perf_counter() - start
            logger.info("%s %s (%s checkpoint): %s%s", cell_key_of(run).label(), lang, checkpoint,
                        ", ".join(f"{name} {value:.2f}" for name, value in scores.items()),
                        f" ({n_excluded} evaluation examples equal to a shot removed)" if n_excluded else "")
            out += self.result_records({**run, "selected_step": step}, lang, scores, checkpoint=checkpoint,
                                       n_eval=len(examples), n_excluded=n_excluded, test_seconds=seconds, k=k,
                                       alpha=alpha)
        return out

    def result_records(self, run: dict, lang: str, scores: dict, *, checkpoint: str, n_eval: int,
                       n_excluded: int, test_seconds: float, k: int, alpha) -> list[dict]:
        """One results record per metric of one evaluation (see the README's Outputs)."""
        c = self.config
        role = "source" if lang == c.source else "target"
        n_shots = len(self.data.shots(lang, k, run["seed"])) if k and role == "target" else 0
        return [{
            **{name: run[name] for name in RECORD_KEY}, "language": lang, "role": role, "metric": metric,
            "value": float(scores[metric]), "checkpoint": checkpoint,
            **{name: run.get(name) for name in RECORD_RUN_FIELDS},
            "test_seconds": test_seconds, "n_eval": n_eval, "n_excluded": n_excluded, "n_shots": n_shots,
            "source_train_seconds": run.get("source_train_seconds"), "model": c.model, "alpha": alpha,
        } for metric in self.task.metrics]

    def train_job(self, model, job: M.Job, k: int, seed: int, *, desc: str):
        c = self.config
        sets = [self.data.source_train_set()] if job.with_source_data else []
        sets += [self.data.shot_set(lang, k, seed) for lang in job.shot_languages]
        sets += [self.data.target_train_set(lang) for lang in job.target_train_languages]
        dataset = MixedSet(sets)
        settings = self.optim_settings(batch=job.batch, k=k)
        selector = None
        if job.selection == M.SELECT_SOURCE_DEV:
            selector = self.source_dev_selector()
        elif job.selection == M.SELECT_TARGET_DEV and job.batch == "config":  # target-only-full: the source rule
            lang = job.selection_language
            selector = self.dev_selector(self.data.target_dev(lang, self.data.shots(lang, k, seed) if k else ()), lang)
        elif job.selection == M.SELECT_TARGET_DEV:
            lang = job.selection_language
            dev = self.data.target_dev(lang, self.data.shots(lang, k, seed))
            per_epoch, _ = count_steps(len(dataset), settings)  # few steps: select once per epoch
            selector = Selector(lambda mdl: self.primary_score(mdl, dev), every=per_epoch, name=f"{lang}-dev")
        oracle_batches, surgery = None, None
        if job.oracle_languages:
            oracle_batches = {lang: self.data.oracle_batch(lang, k, seed) for lang in job.oracle_languages}
            observe = job.surgery_mode == "observe"
            surgery = SurgerySettings(alpha=c.alpha, per_micro_batch=c.surgery_per_micro_batch,
                                      mode="off" if observe else "stochastic", observe=observe)
        if job.with_source_data or job.target_train_languages:  # a long training: the parsed files can go
            release_file_cache()
        average = self.averages(job)
        return train(model, dataset, settings, seed=seed, device=c.device, selector=selector,
                     oracle_batches=oracle_batches, surgery=surgery, progress=c.progress, desc=desc,
                     keep_last=selector is not None or average, average=average)

    def rule_selection(self, job: M.Job) -> str:
        """The checkpoint ``job``'s method keeps: its own rule, ``--source-selection last`` applied
        (to the one-step methods' English dev and target-only-full's target dev selection)."""
        dev_every_eval = job.selection == M.SELECT_SOURCE_DEV or (job.selection == M.SELECT_TARGET_DEV
                                                                  and job.batch == "config")
        if dev_every_eval and self.config.source_selection == "last":
            return M.SELECT_LAST
        return job.selection

    def averages(self, job: M.Job) -> bool:
        """``--selection average`` applies to ``job``: a one-step or target-adapting training that
        selects on the English dev set or keeps its last checkpoint (ord-FS+dev keeps its rule)."""
        return self.config.selection == M.SELECT_AVERAGE and job.trains and job.selection != M.SELECT_TARGET_DEV

