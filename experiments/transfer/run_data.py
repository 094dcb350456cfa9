"""A run's inputs: which target languages, and every set a cell trains, selects or is scored on.

:class:`RunData` resolves the target languages (``--targets``, or every language with a
shot pool), reads every file the run will need before its first step (a malformed file
fails with its file and line before anything trains), and builds, once each (cached):

- the English training set (``--max-source-examples``, a fixed sample shared by every seed)
  and the English dev set that one-step methods select on;
- the shots: K per target language per seed from ``task.sample_shots``, the same for every
  method, recorded in the run's shot manifest (``shots/manifest.json``);
- the evaluation and target-dev sets: the task's set without the shots' uids, capped to
  ``--max-eval-examples`` / ``--max-dev-examples`` by a fixed (seed-independent) sample,
  then without any example whose content equals a shot's (WikiANN repeats sentences across
  its splits; the records' ``n_excluded`` counts them);
- what the surgery's oracle pass for a language runs on (:meth:`RunData.oracle_batch`);
- for the analysis method ``target-only-full``: the targets that have a ``train`` split
  (:attr:`RunData.train_split_targets`) and each one's training set, its ``train`` split
  capped to ``--max-source-examples`` by the English set's fixed-sample rule
  (:meth:`RunData.target_train_set`).
"""
from __future__ import annotations

import logging
from pathlib import Path

from . import run_dir as D
from .config import RunConfig
from .results import exclusive_lock
from .shots import cap, draw_shots, update_manifest, without_shot_content
from .train import RandomOracleBatch

logger = logging.getLogger(__name__)

#: the analysis method that trains on a target's whole train split (methods.ANALYSIS_METHOD_TABLE)
TRAIN_SPLIT_METHOD = "target-only-full"


class RunData:
    """The data one run shares between its cells; see the module docstring."""

    def __init__(self, config: RunConfig, task, tokenizer):
        self.config = config
        self.task = task
        self.tokenizer = tokenizer
        self.hub = config.data_dir is None
        self.targets, self.skipped_targets = self._resolve_targets()
        self.train_split_targets = self._resolve_train_split_targets()
        self._cache: dict = {}
        self._read_inputs()

    def data_files(self) -> list[Path]:
        """Every local file the run may read (fingerprinted in ``data_files.json``); none from the hub."""
        if self.hub:
            return []
        return [f for lang in (self.config.source, *self.targets)
                for f in self.task.data_files(lang, self.config.data_dir)]

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
        if TRAIN_SPLIT_METHOD in c.methods:
            for lang in self.train_split_targets:
                self.task.source_train(lang, d)
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

    def _resolve_train_split_targets(self) -> tuple[str, ...]:
        """The targets ``target-only-full`` trains a model for: those with a ``train`` split. A
        target named in ``--targets`` without one is an error; with ``--targets all`` it is left
        out of that method only (logged). Empty when the run does not train that method."""
        c = self.config
        if TRAIN_SPLIT_METHOD not in c.methods:
            return ()
        without = [lang for lang in self.targets
                   if not self.task.has_split(lang, "train", self._data_dir(), hub=self.hub)]
        what = f"no {c.task} train split to train {TRAIN_SPLIT_METHOD} on (its shots come from dev)"
        if without and c.targets is not None:
            raise ValueError(f"--methods {TRAIN_SPLIT_METHOD}: {', '.join(without)} ha"
                             f"{'s' if len(without) == 1 else 've'} {what}; leave "
                             f"{'it' if len(without) == 1 else 'them'} out of --targets or the method out of --methods")
        if without:
            logger.warning("%s: leaving out %s: %s", TRAIN_SPLIT_METHOD, ", ".join(without), what)
        kept = tuple(lang for lang in self.targets if lang not in without)
        if not kept:
            raise ValueError(f"--methods {TRAIN_SPLIT_METHOD}: no target language has a {c.task} train split")
        return kept

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def encode(self, examples):
        return self.task.encode(examples, self.tokenizer, self.config.max_seq_length)

    def _train_split(self, lang: str) -> list:
        """``lang``'s training examples (``task.source_train``: the ``train`` split, or its hold-out
        part) capped to ``--max-source-examples`` by the fixed sample. Not cached here: English's
        are kept only encoded, so that an uncapped set's examples can be freed while training."""
        examples = cap(self.task.source_train(lang, self._data_dir(), **self._data_kwargs()),
                       self.config.max_source_examples)
        logger.info("%s training set: %d examples", "English" if lang == self.config.source else lang, len(examples))
        return examples

    def source_train_set(self):
        """The encoded English training set."""
        return self._cached("source_train", lambda: self.encode(self._train_split(self.config.source)))

    def target_train(self, lang: str) -> list:
        """``lang``'s training set, as English's (:meth:`_train_split`): target-only-full's data,
        the source model's budget."""
        if lang not in self.train_split_targets:
            raise ValueError(f"{lang}: not a target with a train split in this run ({TRAIN_SPLIT_METHOD} targets: "
                             f"{', '.join(self.train_split_targets) or 'none'})")
        return self._cached(("target_train", lang), lambda: self._train_split(lang))

    def target_train_set(self, lang: str):
        """The encoded :meth:`target_train` of ``lang``."""
        return self._cached(("target_train_set", lang), lambda: self.encode(self.target_train(lang)))

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
        return self._held_out("eval_set", lang, shots, self.config.max_eval_examples, "evaluation set")

    def target_dev(self, lang: str, shots) -> list:
        """The selection set of ``lang`` (ord-FS+dev) without ``shots``, as :meth:`eval_set`."""
        return self._held_out("target_dev", lang, shots, self.config.max_dev_examples, "selection set")[0]

    def _held_out(self, role: str, lang: str, shots, limit: int | None, what: str) -> tuple[list, int]:
        """``task.<role>(lang)`` without the shots' uids, capped to ``limit``, then without the
        examples equal to a shot by content; and how many those were (cached)."""
        exclude = frozenset(ex.uid for ex in shots)
        return self._cached((role, lang, exclude), lambda: without_shot_content(cap(
            getattr(self.task, role)(lang, self._data_dir(), exclude=exclude, **self._data_kwargs()), limit),
            shots, f"{self.task.name}/{lang} {what}"))

    def write_shot_manifest(self, run_dir, k: int, seed: int) -> Path:
        """Add this K and seed's shots of every target to ``run_dir``'s shot manifest."""
        langs = list(self.targets)  # English oracles are fresh random batches: no shots to record
        path = D.manifest_path(run_dir)
        records = [self.shot_draw(lang, k, seed)[0] for lang in langs]
        with exclusive_lock(D.lock_path(run_dir)):  # a read-change-write: other shards' workers add theirs too
            update_manifest(path, records)
        return path

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
