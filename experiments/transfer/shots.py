"""K-shot sampling, the shot manifest, and the fixed samples that cap the other sets (:func:`cap`).

Sampling is deterministic in ``(seed, key)``: a ``random.Random`` seeded with the string
``"<key>:<seed>"`` (string seeds are hashed with SHA-512, so the draw does not depend on
``PYTHONHASHSEED``, the platform or the Python version) shuffles the pool's indices, and
the first K are the shots. Consequences worth knowing:

- the shots for K=1 are among those for K=5, which are among those for K=10 (same seed);
- the key is ``"<task>/<lang>"``, so languages get independent draws even when their
  pools are parallel translations (XNLI's dev sets are row-aligned across languages: a
  shared key would pick the translations of the same pairs in every language);
- ``sample_k_per_class`` shuffles each class's indices separately (classes in sorted
  order) and takes K of each, as the paper does for XNLI.

The manifest records, per (task, lang, K, seed), which split the shots came from and their
uids, so every method of a run trains on exactly the same shots and a later run can
reproduce them. It is JSON, written atomically (temporary file + ``os.replace``).
"""
from __future__ import annotations

import json
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .data.examples import DataFormatError, content_key
from .results import atomic_write_text

MANIFEST_FORMAT = "sgs-ext shot manifest"
MANIFEST_VERSION = 1


def _rng(seed: int, key: str) -> random.Random:
    return random.Random(f"{key}:{int(seed)}")


def sample_k(n: int, k: int, seed: int, key: str = "") -> list[int]:
    """K distinct indices of ``range(n)``, sorted; deterministic in ``(seed, key)`` and nested in K."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k > n:
        raise ValueError(f"cannot draw {k} shots from a pool of {n}")
    order = list(range(n))
    _rng(seed, key).shuffle(order)
    return sorted(order[:k])


def sample_k_per_class(labels: Sequence[Hashable], k: int, seed: int, key: str = "") -> list[int]:
    """K indices per distinct label (K x #classes in all), sorted; deterministic and nested in K."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    by_class: dict = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    short = {c: len(ix) for c, ix in by_class.items() if len(ix) < k}
    if short:
        raise ValueError(f"cannot draw {k} shots per class: too few examples of {short}")
    rng = _rng(seed, key)
    chosen: list[int] = []
    for label in sorted(by_class, key=str):
        indices = list(by_class[label])
        rng.shuffle(indices)
        chosen.extend(indices[:k])
    return sorted(chosen)


def cap(examples: list, n: int | None, seed: int = 0) -> list:
    """At most ``n`` of ``examples``: a fixed random sample, kept in file order. The runner caps
    the English training, dev and evaluation sets with it (``seed`` 0: the same sample for
    every run seed), and the analyses their dev sets, so both see the same examples."""
    if n is None or len(examples) <= n:
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def without_shot_content(examples: list, shots: Sequence, what: str) -> tuple[list, int]:
    """``examples`` without those whose content equals a shot's (``data.content_key``), and how
    many that removed: a repeated sentence is an example the model was trained on, whatever
    its uid. An evaluation set left empty is an error naming ``what``."""
    if not shots:
        return list(examples), 0
    seen = {content_key(ex) for ex in shots}
    kept = [ex for ex in examples if content_key(ex) not in seen]
    if not kept:
        raise DataFormatError(f"the {what} is empty after removing the examples equal to a shot")
    return kept, len(examples) - len(kept)


def pool_key(task_name: str, pool: Sequence) -> str:
    """The sampling key ``"<task>/<lang>"`` of a pool (all its examples must share a language)."""
    if not pool:
        raise ValueError("the shot pool is empty")
    langs = {ex.lang for ex in pool}
    if len(langs) != 1:
        raise ValueError(f"a shot pool must hold one language, found {sorted(langs)}")
    return f"{task_name}/{langs.pop()}"


# --- the manifest ------------------------------------------------------------------------

@dataclass(frozen=True)
class ShotRecord:
    """The shots of one (task, lang, K, seed): the split they came from and their uids.

    ``unit`` is ``"examples"`` unless the shots were counted otherwise (TyDiQA's
    paper-code option counts features; see ``TyDiQATask.sample_shots``).
    """

    task: str
    lang: str
    k: int
    seed: int
    split: str
    uids: tuple[str, ...]
    unit: str = "examples"

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.task, self.lang, self.k, self.seed)

    def to_json(self) -> dict:
        return {"task": self.task, "lang": self.lang, "k": self.k, "seed": self.seed,
                "split": self.split, "unit": self.unit, "uids": list(self.uids)}

    @classmethod
    def from_json(cls, obj: dict, where: str) -> ShotRecord:
        try:
            return cls(task=str(obj["task"]), lang=str(obj["lang"]), k=int(obj["k"]), seed=int(obj["seed"]),
                       split=str(obj["split"]), uids=tuple(str(u) for u in obj["uids"]),
                       unit=str(obj.get("unit", "examples")))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: malformed shot record ({err!r}): {obj!r}") from None


def shots_from_record(record: ShotRecord, pool: Sequence) -> list:
    """The pool's examples whose uids the record lists, in the record's order."""
    by_uid = {ex.uid: ex for ex in pool}
    missing = [u for u in record.uids if u not in by_uid]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {record.task}/{record.lang} K={record.k} seed={record.seed} shots are not in "
            f"the pool (e.g. {missing[0]!r}); the data changed since the manifest was written"
        )
    return [by_uid[u] for u in record.uids]


def draw_shots(task, lang: str, k: int, seed: int, data_dir, hub: bool = False, **sample_kwargs):
    """Draw one language's shots with ``task``: returns ``(ShotRecord, examples)``.

    ``sample_kwargs`` go to ``task.sample_shots`` (e.g. TyDiQA's ``unit="features"`` with
    its tokenizer).
    """
    split, pool = task.shot_pool(lang, data_dir, hub=hub)
    try:
        indices = task.sample_shots(pool, k, seed, **sample_kwargs)
    except ValueError as err:
        raise ValueError(f"--k {k}: {task.name}/{lang}: {err} (its {split} split)") from None
    record = ShotRecord(task.name, lang, int(k), int(seed), split, tuple(pool[i].uid for i in indices),
                        sample_kwargs.get("unit", "examples"))
    return record, [pool[i] for i in indices]


def _collect(records: Iterable[ShotRecord], into: dict | None = None) -> dict:
    out = dict(into or {})
    for record in records:
        old = out.get(record.key)
        if old is not None and old != record:
            raise ValueError(
                f"conflicting shots for task={record.task} lang={record.lang} K={record.k} seed={record.seed}: "
                f"{old.split}/{old.unit} {list(old.uids)[:3]}... vs {record.split}/{record.unit} {list(record.uids)[:3]}..."
            )
        out[record.key] = record
    return out


def write_manifest(path: str | Path, records: Iterable[ShotRecord]) -> None:
    """Write the records (replacing the file) atomically; the same key twice with different shots is an error."""
    by_key = _collect(records)
    payload = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "shots": [by_key[key].to_json() for key in sorted(by_key)],
    }
    atomic_write_text(Path(path), json.dumps(payload, ensure_ascii=False, indent=1) + "\n")


def read_manifest(path: str | Path) -> dict[tuple[str, str, int, int], ShotRecord]:
    """The records of a manifest, keyed by ``(task, lang, k, seed)``."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from None
    if not isinstance(payload, dict) or payload.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a shot manifest (no \"format\": {MANIFEST_FORMAT!r})")
    if payload.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: manifest version {payload.get('version')!r}, expected {MANIFEST_VERSION}")
    shots = payload.get("shots")
    if not isinstance(shots, list):
        raise ValueError(f"{path}: \"shots\" should be a list")
    return _collect(ShotRecord.from_json(obj, f"{path}: shots[{i}]") for i, obj in enumerate(shots))


def update_manifest(path: str | Path, records: Iterable[ShotRecord]) -> dict[tuple[str, str, int, int], ShotRecord]:
    """Add records to a manifest (created if missing); re-adding identical records is a no-op,
    different shots under an existing key an error. Returns the merged records."""
    path = Path(path)
    existing = read_manifest(path) if path.exists() else {}
    merged = _collect(records, into=existing)
    write_manifest(path, merged.values())
    return merged
