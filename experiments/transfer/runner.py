"""Executing a run: cells (task x method x K x seed) -> jobs -> the training loop -> records.

:class:`Runner` owns the data a run shares between cells (the encoded English
training set, dev and evaluation sets, the shots) and the source model cache. For
every cell not yet in ``results.jsonl`` it plans the method's jobs
(``methods.plan_jobs``), trains each with ``train.train``, evaluates it on its
target languages and commits the cell's records (``results.ResultStore``).

What every method shares, so comparisons are fair:
- the shots: K per target language per seed from ``task.sample_shots`` (a manifest
  per K and seed in ``shots/``), the same for every method;
- the evaluation sets: ``task.eval_set(lang, exclude=<the cell's shot uids>)``
  capped to ``--max-eval-examples`` by a fixed (seed-independent) sample, then without
  any example whose content equals a shot's (WikiANN repeats sentences across splits;
  the records' ``n_excluded`` counts them). Zero-shot trained on no shots, so it
  excludes none;
- the English training subset (``--max-source-examples``, a fixed sample shared by
  every seed) and the English dev set that one-step methods select on;
- the source model of a seed, trained once (English only, selected on English dev)
  and cached in ``source_models/<task>/seed<S>/``; zero-shot, ord-FS, ord-FS+dev and
  mix-FT all start from it.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from . import distributed_run as R
from . import methods as M
from . import run_dir as D
from .config import RunConfig
from .results import CellKey, ResultStore, check_data_files, check_run_config, exclusive_lock
from .shots import cap, draw_shots, update_manifest, without_shot_content
from .tasks.base import release_file_cache
from .train import MixedSet, OptimSettings, RandomOracleBatch, Selector, SurgerySettings, count_steps, freeze_word_embeddings, set_seed, train

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


#: The shard assignment's rough cost of a cell's work, in full trainings: a job that trains on the
#: English set (one-step methods) and a seed's source model count 1 each, any other job
#: (target-adapting on K shots, zero-shot's evaluation) counts SMALL_JOB_COST.
FULL_TRAINING_COST = 1.0
SMALL_JOB_COST = 0.02


def assign_shards(cells: list[CellKey], costs: list[float], needs_source: list[bool], count: int) -> list[int]:
    """The shard (0 .. count - 1) of every cell: a deterministic balance of the costs.

    The cells that start from one seed's source model go together, as one unit that also costs
    the source model (``FULL_TRAINING_COST``), so one worker trains it; a unit larger than an even
    share of the work (the total over ``count``, at least the largest cell and a source model) is
    cut, in plan order, into pieces of at most that share, and each piece's worker trains (or
    finds saved) the source model. Then the units, heaviest first (ties in plan order), each go to
    the least loaded shard (the lowest index among equals). The split depends only on the planned
    cells, not on which are finished, so every worker of a grid, and a worker started again,
    computes the same one.
    """
    if count < 1:
        raise ValueError(f"shard count must be >= 1, got {count}")
    groups: dict[tuple[str, int], list[int]] = {}
    for i, cell in enumerate(cells):
        if needs_source[i]:
            groups.setdefault((cell.task, cell.seed), []).append(i)
    total = sum(costs) + FULL_TRAINING_COST * len(groups)
    share = max(total / count, max(costs, default=0.0) + FULL_TRAINING_COST)
    units = [(costs[i], [i]) for i in range(len(cells)) if not needs_source[i]]
    for members in groups.values():
        cost, piece = FULL_TRAINING_COST, []
        for i in members:
            if piece and cost + costs[i] > share:
                units.append((cost, piece))
                cost, piece = FULL_TRAINING_COST, []
            piece.append(i)
            cost += costs[i]
        units.append((cost, piece))
    loads, shard = [0.0] * count, [0] * len(cells)
    for cost, members in sorted(units, key=lambda unit: (-unit[0], unit[1][0])):
        w = min(range(count), key=lambda w: (loads[w], w))
        loads[w] += cost
        for i in members:
            shard[i] = w
    return shard

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
        self.hub = config.data_dir is None
        self.targets, self.skipped_targets = self._resolve_targets()
        self._cache: dict = {}
        self._read_inputs()

    def _check_max_seq_length(self) -> None:
        """A --max-seq-length beyond the model's positions would fail in the first long batch
        (an index error, possibly after hours of training): refuse it now."""
        limit, why = max_input_length(self.model_path)
        if limit is not None and self.config.max_seq_length > limit:
            raise ValueError(f"--max-seq-length {self.config.max_seq_length}: the model {self.model_path} takes at "
                             f"most {limit} tokens ({why})")

    # ------------------------------------------------------------------ languages and data

    def _data_kwargs(self):
        return {"hub": True} if self.hub else {}

    def _data_dir(self):
        return None if self.hub else self.config.data_dir

    def _read_inputs(self) -> None:
        """Read, and so check, every data file the run will need before its first step: a
        malformed evaluation or selection file fails now with its file and line, not after
        the languages before it have trained. (The shot pools are read by _resolve_targets;
        files are cached, so this costs one parse each.)"""
        if self.hub:
            return
        c, d = self.config, self.config.data_dir
        self.task.source_train(c.source, d)
        self.task.source_dev(c.source, d)
        for lang in (c.source, *self.targets):
            self.task.eval_set(lang, d)
        if "ord-fs-dev" in c.methods:
            for lang in self.targets:
                self.task.target_dev(lang, d)
        if set(c.methods) != {"zero-shot"}:  # every draw, so a K beyond a pool fails now
            for lang in self.targets:
                for k in c.ks:
                    for seed in c.seeds:
                        self.shot_draw(lang, k, seed)

    def _resolve_targets(self) -> tuple[tuple[str, ...], dict[str, str]]:
        """The target languages: as given (each checked), or every language with data; and the
        languages skipped, each with the reason (recorded in ``data_files.json`` for summary.md).

        Few-shot methods need a shot pool (a train or dev split): with ``--targets all`` a
        language without one is skipped, as the paper skips them (POS: th, yo here); a
        language named explicitly without one is an error.
        """
        c = self.config
        if self.hub:
            if c.targets is None:
                raise ValueError("--targets: give the target languages explicitly when reading data from the hub")
            return c.targets, {}
        available = self.task.languages(c.data_dir)
        if c.source not in available:
            raise ValueError(f"--source: no {c.task} data for {c.source!r} in "
                             f"{c.data_dir} (languages with data: {', '.join(available)})")
        if c.targets is not None:
            missing = [lang for lang in c.targets if lang not in available]
            if missing:
                raise ValueError(f"--targets: no {c.task} data for {', '.join(missing)} in "
                                 f"{c.data_dir} (languages with data: {', '.join(available)})")
        candidates = c.targets if c.targets is not None else tuple(l for l in available if l != c.source)
        if set(c.methods) == {"zero-shot"}:
            return candidates, {}
        # Only a *missing* split skips a language; every pool is read now, so a malformed or
        # empty file stops the run here with its own message (file and line), before training.
        without_pool = [lang for lang in candidates if not self.task.has_shot_pool(lang, c.data_dir)]
        if without_pool and c.targets is not None:
            raise ValueError(f"--targets: {', '.join(without_pool)} ha{'s' if len(without_pool) == 1 else 've'} "
                             f"no split to draw {c.task} shots from (neither train nor dev)")
        reason = f"no {c.task} train or dev split to draw shots from"
        if without_pool:
            logger.warning("skipping %s: %s", ", ".join(without_pool), reason)
        targets = tuple(lang for lang in candidates if lang not in without_pool)
        for lang in targets:
            self.task.shot_pool(lang, c.data_dir)
        if not targets:
            raise ValueError(f"--targets: no {c.task} language besides {c.source} has data to draw shots from")
        return targets, {lang: reason for lang in without_pool}

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def encode(self, examples):
        return self.task.encode(examples, self.tokenizer, self.config.max_seq_length)

    def source_train_set(self):
        def make():
            examples = self.task.source_train(self.config.source, self._data_dir(), **self._data_kwargs())
            examples = cap(examples, self.config.max_source_examples)
            logger.info("English training set: %d examples", len(examples))
            return self.encode(examples)

        return self._cached("source_train", make)

    def source_dev(self) -> list:
        return self._cached("source_dev", lambda: cap(
            self.task.source_dev(self.config.source, self._data_dir(), **self._data_kwargs()),
            self.config.max_dev_examples))

    def _shot_kwargs(self) -> dict:
        if self.config.tydiqa_shots_in_features and self.config.task == "tydiqa":
            return {"unit": "features", "tokenizer": self.tokenizer, "max_seq_length": self.config.max_seq_length}
        return {}

    def shot_draw(self, lang: str, k: int, seed: int):
        """``(ShotRecord, examples)``: the K shots of ``lang`` for ``seed``, the same for every method."""
        return self._cached(("shots", lang, k, seed), lambda: draw_shots(
            self.task, lang, k, seed, self._data_dir(), hub=self.hub, **self._shot_kwargs()))

    def shots(self, lang: str, k: int, seed: int) -> list:
        return self.shot_draw(lang, k, seed)[1]

    def shot_set(self, lang: str, k: int, seed: int):
        """The encoded shots of ``lang``."""
        return self._cached(("shot_set", lang, k, seed), lambda: self.encode(self.shots(lang, k, seed)))

    def eval_set(self, lang: str, shots=()) -> tuple[list, int]:
        """The evaluation examples of ``lang`` for a model trained on ``shots``, and how many
        equal a shot by content (removed): the task's set without the shots' uids, capped
        to ``--max-eval-examples`` (the same sample for every cell), then without them."""
        exclude = frozenset(ex.uid for ex in shots)
        return self._cached(("eval", lang, exclude), lambda: without_shot_content(cap(
            self.task.eval_set(lang, self._data_dir(), exclude=exclude, **self._data_kwargs()),
            self.config.max_eval_examples), shots, f"{self.task.name}/{lang} evaluation set"))

    def target_dev(self, lang: str, shots) -> list:
        """The selection set of ``lang`` (ord-FS+dev) without ``shots``, as :meth:`eval_set`."""
        exclude = frozenset(ex.uid for ex in shots)
        return self._cached(("target_dev", lang, exclude), lambda: without_shot_content(cap(
            self.task.target_dev(lang, self._data_dir(), exclude=exclude, **self._data_kwargs()),
            self.config.max_dev_examples), shots, f"{self.task.name}/{lang} selection set")[0])

    def write_shot_manifest(self, k: int, seed: int) -> Path:
        """Add this K and seed's shots of every target to the run's shot manifest."""
        langs = list(self.targets)  # English oracles are fresh random batches: no shots to record
        path = D.manifest_path(self.out)
        records = [self.shot_draw(lang, k, seed)[0] for lang in langs]
        with exclusive_lock(D.lock_path(self.out)):  # a read-change-write: other shards' workers add theirs too
            update_manifest(path, records)
        return path

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
        if self.config.source_selection == "last":
            return None
        dev = self.source_dev()
        return Selector(lambda m: self.primary_score(m, dev), every=self.config.eval_every,
                        name=f"{self.config.source}-dev")

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
        dataset = MixedSet([self.source_train_set()])
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
        """Every cell of the run as (key, method, K); zero-shot is one K=0 cell per seed."""
        c = self.config
        cells = []
        for seed in c.seeds:
            if "zero-shot" in c.methods:
                cells.append((CellKey(c.task, "zero-shot", 0, seed), "zero-shot", 0))
            for k in c.ks:
                for method in c.methods:
                    if method == "zero-shot":
                        continue
                    label = M.method_label(method, c.language_set)
                    cells.append((CellKey(c.task, label, k, seed), method, k))
        return cells

    def cell_cost(self, method: str) -> tuple[float, bool]:
        """A cell's rough cost for :func:`assign_shards` (its jobs, in full trainings), and whether
        it starts from its seed's source model."""
        c = self.config
        jobs = M.plan_jobs(method, self.targets, source=c.source, language_set=c.language_set,
                           oracle_includes_source=c.oracle_includes_source)
        cost = sum(FULL_TRAINING_COST if job.with_source_data else SMALL_JOB_COST for job in jobs)
        return cost, M.get_method(method).init == M.SOURCE_MODEL

    def shard_cells(self, index: int, count: int, cells=None) -> list[tuple[CellKey, str, int]]:
        """The cells of shard ``index`` (1-based) of ``count``: disjoint, and all shards together are
        :meth:`plan_cells` (or ``cells``, its result), split by :func:`assign_shards`; in plan order."""
        if not 1 <= index <= count:
            raise ValueError(f"shard {index}/{count}: need 1 <= I <= N")
        cells = self.plan_cells() if cells is None else cells
        costs = [self.cell_cost(method) for _, method, _ in cells]
        shard = assign_shards([key for key, _, _ in cells], [c for c, _ in costs], [n for _, n in costs], count)
        return [cell for cell, s in zip(cells, shard) if s == index - 1]

    def run(self, shard: tuple[int, int] | None = None) -> list[CellKey]:
        """Run every unfinished cell (of shard ``(I, N)`` only: :meth:`shard_cells`); returns the cells run now."""
        def check_run_dir():  # several processes (torchrun): rank 0 only; a failed check stops every rank
            with exclusive_lock(D.lock_path(self.out)):  # the workers of a sharded grid check and record these at once
                check_run_config(self.out, {**self.config.result_settings(), "targets": list(self.targets)})
                if not self.hub:  # the hub's files are versioned by the hub, not here
                    check_data_files(self.out, self.config.data_dir,
                                     [f for lang in (self.config.source, *self.targets)
                                      for f in self.task.data_files(lang, self.config.data_dir)],
                                     skipped_targets=self.skipped_targets)

        R.on_main(check_run_dir)
        cells = self.plan_cells()
        planned = cells if shard is None else self.shard_cells(*shard, cells=cells)
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
        def make():
            model, info = self.source_model(seed)
            model.to(self.config.device)
            examples, _ = self.eval_set(self.config.source)
            start = time.perf_counter()
            scores = self.evaluate(model, examples)
            return scores, len(examples), time.perf_counter() - start, info

        return self._cached(("source_model_scores", seed), make)

    def run_cell(self, key: CellKey, method: str, k: int) -> tuple[list[dict], list[dict]]:
        c = self.config
        seed = key.seed
        m = M.get_method(method)
        jobs = M.plan_jobs(method, self.targets, source=c.source, language_set=c.language_set,
                           oracle_includes_source=c.oracle_includes_source)
        if k and R.is_main():
            self.write_shot_manifest(k, seed)
        results, runs = [], []

        def score_records(model, run, record_base, languages, checkpoint):
            for lang in languages:
                shots = self.shots(lang, k, seed) if k and lang != c.source else ()
                examples, n_excluded = self.eval_set(lang, shots)
                start = time.perf_counter()
                scores = self.evaluate(model, examples)
                test_seconds = time.perf_counter() - start
                logger.info("%s %s (%s checkpoint): %s%s", key.label(), lang, checkpoint,
                            ", ".join(f"{name} {value:.2f}" for name, value in scores.items()),
                            f" ({n_excluded} evaluation examples equal to a shot removed)" if n_excluded else "")
                results.extend(self.result_records(
                    record_base, run, lang, scores, checkpoint=checkpoint, n_eval=len(examples),
                    n_excluded=n_excluded, test_seconds=test_seconds, k=k, seed=seed,
                    alpha=c.alpha if m.surgery else None))

        for job in jobs:
            record_base = {"task": key.task, "method": key.method, "k": key.k, "seed": seed, "job": job.name}
            source_info = None
            if job.init == M.SOURCE_MODEL:
                model, source_info = self.source_model(seed)
            else:
                model = self.pretrained_model(seed)
            model.to(c.device)
            outcome = None
            if job.trains:
                outcome = self.train_job(model, job, k, seed, desc=f"{key.method} k{k} s{seed} {job.name}")
                rule = self.rule_selection(job)
                selection = M.SELECT_AVERAGE if self.averages(job) else rule
                run = {**record_base, **outcome.to_dict(), "shot_languages": list(job.shot_languages),
                       "oracle_languages": list(job.oracle_languages), "selection": selection}
                if c.save_models and R.is_main():
                    D.save_trained_state(D.cell_model_dir(self.out, key.task, key.method, k, seed, job.name), model,
                                         {**record_base, "model": c.model, **outcome.to_dict()})
            else:
                # zero-shot: the source model as it is (its steps and selection; its cost in source_train_seconds)
                run = {**record_base, "steps": source_info["steps"], "selected_step": source_info["selected_step"],
                       "curve": [],
                       "surgery_counters": None, "train_seconds": 0.0, "eval_seconds": 0.0,
                       "shot_languages": [], "oracle_languages": [], "selection": "source model"}
            run["source_train_seconds"] = source_info.get("train_seconds") if source_info else None
            runs.append(run)
            n_selected = len(results)
            score_records(model, run, record_base, job.eval_languages, "selected")
            if outcome is not None and run["selection"] != M.SELECT_LAST:
                # the last checkpoint too, beside the selected one
                n_last = len(results)
                if outcome.last_state is not None:
                    model.load_state_dict(outcome.last_state, strict=False)
                    score_records(model, {**run, "selected_step": run["steps"]}, record_base,
                                  job.eval_languages, "last")
                else:  # selection kept the last checkpoint: the same scores
                    results.extend({**r, "checkpoint": "last"} for r in results[n_selected:])
                if run["selection"] == M.SELECT_AVERAGE and rule == M.SELECT_SOURCE_DEV:
                    # and the rule's (source-dev) checkpoint: averaging against selecting, same training
                    if outcome.rule_state is not None:
                        model.load_state_dict(outcome.rule_state, strict=False)
                        score_records(model, {**run, "selected_step": outcome.rule_step}, record_base,
                                      job.eval_languages, M.SELECT_SOURCE_DEV)
                    else:  # the rule chose the last checkpoint
                        results.extend({**r, "checkpoint": M.SELECT_SOURCE_DEV} for r in results[n_last:])
            del model
        if m.init == M.SOURCE_MODEL and m.shots != "none":
            # target-adapting: the source language keeps the source model (see source_model_scores)
            scores, n_eval, seconds, info = self.source_model_scores(seed)
            record_base = {"task": key.task, "method": key.method, "k": key.k, "seed": seed, "job": "source-model"}
            run = {"steps": info["steps"], "selected_step": info["selected_step"], "selection": "source model",
                   "train_seconds": 0.0, "eval_seconds": 0.0, "source_train_seconds": info.get("train_seconds")}
            results.extend(self.result_records(record_base, run, c.source, scores, checkpoint="selected",
                                               n_eval=n_eval, n_excluded=0, test_seconds=seconds, k=k, seed=seed,
                                               alpha=None))
        return results, runs

    def result_records(self, record_base: dict, run: dict, lang: str, scores: dict, *, checkpoint: str,
                       n_eval: int, n_excluded: int, test_seconds: float, k: int, seed: int, alpha) -> list[dict]:
        """One results record per metric of one evaluation (see the README's Outputs)."""
        c = self.config
        role = "source" if lang == c.source else "target"
        n_shots = len(self.shots(lang, k, seed)) if k and role == "target" else 0
        return [{
            **record_base, "language": lang, "role": role, "metric": metric, "value": float(scores[metric]),
            "checkpoint": checkpoint,
            "selected_step": run["selected_step"], "steps": run["steps"], "selection": run["selection"],
            "train_seconds": run["train_seconds"], "eval_seconds": run["eval_seconds"],
            "test_seconds": test_seconds, "n_eval": n_eval, "n_excluded": n_excluded, "n_shots": n_shots,
            "source_train_seconds": run.get("source_train_seconds"), "model": c.model, "alpha": alpha,
        } for metric in self.task.metrics]

    def oracle_batch(self, lang: str, k: int, seed: int):
        """What the surgery's oracle pass for ``lang`` runs on.

        The paper's text: the language's K shots, one fixed batch. The published code
        (``--oracle-includes-source``): English's oracle is a fresh random batch of
        min(K, micro-batch) English training sentences at every pass; with
        ``--oracle-shot-subset`` (its XNLI) every oracle is a random min(K, micro-batch)
        subset of the language's shots. Samplers are seeded from the seed and language."""
        c = self.config
        size = min(k, c.micro_batch_size)
        stream = seed * 1_000_003 + sum(map(ord, lang))  # one private stream per seed and language
        if lang == c.source:
            return RandomOracleBatch(self.source_train_set(), size, stream)
        shot_set = self.shot_set(lang, k, seed)
        if c.oracle_shot_subset:
            return RandomOracleBatch(shot_set, size, stream)
        return shot_set.collate([shot_set[i] for i in range(len(shot_set))])

    def train_job(self, model, job: M.Job, k: int, seed: int, *, desc: str):
        c = self.config
        sets = [self.source_train_set()] if job.with_source_data else []
        sets += [self.shot_set(lang, k, seed) for lang in job.shot_languages]
        dataset = MixedSet(sets)
        settings = self.optim_settings(batch=job.batch, k=k)
        selector = None
        if job.selection == M.SELECT_SOURCE_DEV:
            selector = self.source_dev_selector()
        elif job.selection == M.SELECT_TARGET_DEV:
            lang = job.selection_language
            dev = self.target_dev(lang, self.shots(lang, k, seed))
            per_epoch, _ = count_steps(len(dataset), settings)  # few steps: select once per epoch
            selector = Selector(lambda mdl: self.primary_score(mdl, dev), every=per_epoch, name=f"{lang}-dev")
        oracle_batches, surgery = None, None
        if job.oracle_languages:
            oracle_batches = {lang: self.oracle_batch(lang, k, seed) for lang in job.oracle_languages}
            observe = job.surgery_mode == "observe"
            surgery = SurgerySettings(alpha=c.alpha, per_micro_batch=c.surgery_per_micro_batch,
                                      mode="off" if observe else "stochastic", observe=observe)
        if job.with_source_data:  # a long training: the parsed files behind its (cached) sets can go
            release_file_cache()
        average = self.averages(job)
        return train(model, dataset, settings, seed=seed, device=c.device, selector=selector,
                     oracle_batches=oracle_batches, surgery=surgery, progress=c.progress, desc=desc,
                     keep_last=selector is not None or average, average=average)

    def rule_selection(self, job: M.Job) -> str:
        """The checkpoint ``job``'s method keeps: its own rule, ``--source-selection last`` applied."""
        if job.selection == M.SELECT_SOURCE_DEV and self.config.source_selection == "last":
            return M.SELECT_LAST
        return job.selection

    def averages(self, job: M.Job) -> bool:
        """``--selection average`` applies to ``job``: a one-step or target-adapting training that
        selects on the English dev set or keeps its last checkpoint (ord-FS+dev keeps its rule)."""
        return self.config.selection == M.SELECT_AVERAGE and job.trains and job.selection != M.SELECT_TARGET_DEV

