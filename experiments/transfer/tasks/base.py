"""``Task``: what every task shares — where its data is, which split plays which role, shots.

Roles of the splits, for a language ``lang``:

- ``source_train``: the ``train`` split; ``source_dev``: the selection set of ``lang``
  (see below), used for model selection of the one-step methods.
- ``shot_pool``: ``train`` if the language has one, else ``dev`` (UD Hindi, TyDiQA
  languages without ``train.json``). XNLI overrides this: its shots always come from ``dev``.
- ``target_dev`` (selection for ord-FS+dev) and ``eval_set`` (the test examples):
  * if the language has a labelled ``test`` split: ``target_dev`` is ``dev`` and ``eval_set``
    is ``test`` (UD POS, XNLI; PAN-X from the hub);
  * otherwise (PAN-X and TyDiQA here) the ``dev`` file is split deterministically by a
    hash of each example's uid: an example goes to the *selection* part when
    ``int(sha256(uid)[:8], 16) % 1000 < 1000 * DEV_SELECT_FRACTION`` (fraction 0.5), else
    to the *evaluation* part. The split does not depend on seeds, K or the run, so no
    method ever evaluates on examples it selected on.
  In both cases examples whose uid is in ``exclude`` (the shots, when they were drawn from
  ``dev``) are removed.

Reads are cached per file (path, size, mtime), so calling these repeatedly is cheap.
"""
from __future__ import annotations

import abc
import hashlib
from collections.abc import Collection, Sequence
from pathlib import Path

from .. import shots as shot_sampling
from ..config import PAPER_SETTINGS
from ..data import (
    DataFormatError, available_languages, available_splits, has_split, split_exists, split_file, split_path,
)
from ..data.hub import hub_has_split, load_hub_split

#: Share of a dev file that goes to the selection part when there is no test split.
DEV_SELECT_FRACTION = 0.5

_FILE_CACHE: dict[tuple, list] = {}


def release_file_cache() -> int:
    """Forget the parsed local files (the hub's splits stay cached); returns how many were dropped.

    A later read parses the file again, to the same examples (uids are file positions). The
    runner calls this before its long trainings: the whole train and dev files behind a
    capped English training set and the shot pools (PAN-X: 20,000 sentences each, ~150 MB
    for the demo's five languages) need not stay in memory while a model trains.
    """
    local = [key for key in _FILE_CACHE if key[0] != "hub"]
    for key in local:
        del _FILE_CACHE[key]
    return len(local)


def in_selection_part(uid: str, fraction: float = DEV_SELECT_FRACTION) -> bool:
    """Whether a dev example belongs to the selection part (else to the evaluation part)."""
    bucket = int(hashlib.sha256(uid.encode("utf-8")).hexdigest()[:8], 16) % 1000
    return bucket < round(1000 * fraction)


class Task(abc.ABC):
    """Base class of the four tasks; subclasses set the class attributes and the model code."""

    name: str
    task_dir: str                       # folder under the data dir: panx | udpos | xnli | tydiqa
    ext: str                            # file extension of its splits: tsv | json
    metrics: tuple[str, ...]            # primary first
    labels: list[str] | None = None

    @property
    def default_max_seq_length(self) -> int:
        """The paper's maximum sequence length for this task (``config.PAPER_SETTINGS``, where
        every paper setting lives)."""
        return PAPER_SETTINGS[self.name].max_seq_length

    # --- reading -----------------------------------------------------------------------

    @abc.abstractmethod
    def read_file(self, path: Path, lang: str, split: str) -> list:
        """Parse one local split file into examples (raises DataFormatError on bad input)."""

    def languages(self, data_dir) -> list[str]:
        """Languages with any data for this task under ``data_dir``."""
        return available_languages(data_dir, self.task_dir, self.ext)

    def data_files(self, lang: str, data_dir) -> list[Path]:
        """Every split file of ``lang`` a run may read (local data)."""
        return [split_path(data_dir, self.task_dir, lang, split, self.ext)
                for split in available_splits(data_dir, self.task_dir, lang, self.ext)]

    def has_split(self, lang: str, split: str, data_dir, hub: bool = False) -> bool:
        if hub:
            return hub_has_split(self.task_dir, lang, split)
        return has_split(data_dir, self.task_dir, lang, split, self.ext)

    def read_split(self, lang: str, split: str, data_dir, hub: bool = False) -> list:
        """All examples of one split (a fresh list; the examples themselves are immutable)."""
        if hub:
            key = ("hub", self.task_dir, lang, split)
            if key not in _FILE_CACHE:
                _FILE_CACHE[key] = load_hub_split(self.task_dir, lang, split)
            return list(_FILE_CACHE[key])
        path = split_file(data_dir, self.task_dir, lang, split, self.ext)
        stat = path.stat()
        key = (type(self).__name__, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _FILE_CACHE:
            _FILE_CACHE[key] = self.read_file(path, lang, split)
        return list(_FILE_CACHE[key])

    # --- the roles of the splits ---------------------------------------------------------

    def source_train(self, lang: str, data_dir, hub: bool = False) -> list:
        return self.read_split(lang, "train", data_dir, hub)

    def source_dev(self, lang: str, data_dir, hub: bool = False) -> list:
        return self.target_dev(lang, data_dir, hub)

    SHOT_POOL_SPLITS = ("train", "dev")

    def _pool_split(self, lang: str, data_dir, hub: bool) -> str | None:
        """The split shots come from: train if its file is there, else dev, else None. An empty
        train file counts as there (reading it is an error), so a truncated file can never
        silently move the shots to dev."""
        for split in self.SHOT_POOL_SPLITS:
            there = hub_has_split(self.task_dir, lang, split) if hub else split_exists(
                data_dir, self.task_dir, lang, split, self.ext)
            if there:
                return split
        return None

    def has_shot_pool(self, lang: str, data_dir, hub: bool = False) -> bool:
        """Whether the language has a split to draw shots from (without reading it)."""
        return self._pool_split(lang, data_dir, hub) is not None

    def shot_pool(self, lang: str, data_dir, hub: bool = False) -> tuple[str, list]:
        """``("train", examples)``, or ``("dev", examples)`` when the language has no train split.
        A malformed or empty file is an error naming it (DataFormatError), never a fallback."""
        split = self._pool_split(lang, data_dir, hub)
        if split is None:
            raise DataFormatError(self._missing_message(lang, data_dir, hub, "neither a train nor a dev split"))
        return split, self.read_split(lang, split, data_dir, hub)

    def sample_shots(self, pool: Sequence, k: int, seed: int) -> list[int]:
        """K indices into ``pool``, deterministic in ``seed`` (see ``transfer.shots``)."""
        return shot_sampling.sample_k(len(pool), k, seed, key=shot_sampling.pool_key(self.name, pool))

    def target_dev(self, lang: str, data_dir, hub: bool = False, exclude: Collection[str] = frozenset()) -> list:
        """The selection set of ``lang`` (for ord-FS+dev), without the uids in ``exclude``."""
        if not self.has_split(lang, "dev", data_dir, hub):
            raise DataFormatError(self._missing_message(lang, data_dir, hub, "no dev split to select on"))
        dev = self.read_split(lang, "dev", data_dir, hub)
        if not self.has_split(lang, "test", data_dir, hub):
            dev = [ex for ex in dev if in_selection_part(ex.uid)]
        return self._without(dev, exclude, f"{self.name}/{lang} selection set")

    def eval_set(self, lang: str, data_dir, hub: bool = False, exclude: Collection[str] = frozenset()) -> list:
        """The test examples of ``lang``, never any uid in ``exclude``."""
        if self.has_split(lang, "test", data_dir, hub):
            examples = self.read_split(lang, "test", data_dir, hub)
        elif self.has_split(lang, "dev", data_dir, hub):
            examples = [ex for ex in self.read_split(lang, "dev", data_dir, hub) if not in_selection_part(ex.uid)]
        else:
            raise DataFormatError(self._missing_message(lang, data_dir, hub, "neither a test nor a dev split"))
        return self._without(examples, exclude, f"{self.name}/{lang} evaluation set")

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _without(examples: list, exclude: Collection[str], what: str) -> list:
        exclude = frozenset(exclude)
        kept = [ex for ex in examples if ex.uid not in exclude] if exclude else examples
        if not kept:
            raise DataFormatError(f"the {what} is empty after removing {len(exclude)} excluded uids")
        return kept

    def _missing_message(self, lang: str, data_dir, hub: bool, what: str) -> str:
        if hub:
            return f"{self.name}: the hub has {what} for {lang!r}"
        langs = self.languages(data_dir)
        if lang not in langs:
            return (f"{self.name}: no data for language {lang!r} under {Path(data_dir) / self.task_dir} "
                    f"(languages with data: {', '.join(langs) or 'none'})")
        splits = sorted(p.stem for p in (Path(data_dir) / self.task_dir / lang).glob(f"*.{self.ext}"))
        return f"{self.name}/{lang}: {what} (splits present: {', '.join(splits)})"

    # --- model side (per task) -------------------------------------------------------------

    @abc.abstractmethod
    def build_model(self, model_name_or_path: str):
        """A pretrained encoder with this task's head (the head freshly initialised)."""

    @abc.abstractmethod
    def encode(self, examples: Sequence, tokenizer, max_seq_length: int, doc_stride: int = 128):
        """Tokenize ``examples`` into an ``EncodedSet``."""

    @abc.abstractmethod
    def evaluate(self, model, examples: Sequence, tokenizer, *, max_seq_length: int, batch_size: int,
                 device, progress: bool | None = None) -> dict[str, float]:
        """Scores in percent, keys ``self.metrics``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def label_maps(labels: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    """``(id2label, label2id)`` for a label list."""
    return dict(enumerate(labels)), {label: i for i, label in enumerate(labels)}

