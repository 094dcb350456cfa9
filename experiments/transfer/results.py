"""Where a run keeps what it has done: atomic file writes, the jsonl stores, resume.

Every file a run writes goes through :func:`atomic_write_text` (or one of its
siblings): the content is written to a temporary file in the same directory and
moved over the target with ``os.replace``, so a file is either the old version or
the new one, never half written, even if the run is killed.

A run's unit of work is a *cell*: one task x method x K x seed. A cell's records
are committed together (``ResultStore.record_cell``): first its training records
(curves, surgery counters, timings) into ``runs.jsonl``, then its scores into
``results.jsonl``. A cell is finished exactly when ``results.jsonl`` holds it, so
an interrupted run that starts again skips the finished cells and redoes only the
cell it was in (whose partial ``runs.jsonl`` records, if any, are replaced).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from . import run_dir as D


class CellKey(NamedTuple):
    """One unit of work: a task, a method (with its language-set variant), K and a seed."""

    task: str
    method: str
    k: int
    seed: int

    def label(self) -> str:
        return f"{self.task}/{self.method}/k{self.k}/seed{self.seed}"


def cell_key_of(record: dict) -> CellKey:
    """The cell a results or runs record belongs to."""
    try:
        return CellKey(str(record["task"]), str(record["method"]), int(record["k"]), int(record["seed"]))
    except KeyError as err:
        raise ValueError(f"record has no {err.args[0]!r} field: {record!r}") from None


# ----------------------------------------------------------------------------- what a score record is

#: A results record scores one model on one language: ``role`` says whether the language
#: is the run's source or one of its targets, ``checkpoint`` whether the model is the
#: selected checkpoint (the one a method reports) or the last one (scored beside it for
#: methods that select). Records written before these fields existed are target scores of
#: the selected checkpoint.
ROLES = ("target", "source")
CHECKPOINTS = ("selected", "last")


def role_of(record: dict) -> str:
    return record.get("role", "target")


def checkpoint_of(record: dict) -> str:
    return record.get("checkpoint", "selected")


def select_records(records: Iterable[dict], *, checkpoint: str = "selected",
                   roles: tuple[str, ...] = ("target",)) -> list[dict]:
    """The records of one checkpoint kind whose language plays one of ``roles``."""
    return [r for r in records if checkpoint_of(r) == checkpoint and role_of(r) in roles]


# ----------------------------------------------------------------------------- atomic writes


def _new_temp_file(path: Path, suffix: str) -> Path:
    """A new empty file ``.<name>.<random><suffix>`` beside ``path``, created as ``open()``
    creates files: mode 0666 less the umask (``tempfile.mkstemp`` makes 0600 files, and a
    results file must be as readable as any other file its owner writes)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix or '.tmp'}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # another writer's temporary file: draw another name
            continue


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it over ``path``.

    For writers that want a file name (``matplotlib.savefig``, ``safetensors``). On
    an exception the temporary file is removed and ``path`` is left untouched. The
    file gets the permissions ``open()`` would give it (the umask's).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_temp_file(path, suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(value):
    # numpy scalars, Paths, sets: everything else is a bug worth an error
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def to_json(obj, *, indent: int | None = None) -> str:
    """JSON text; NaN/inf become null (JSON has no NaN), numpy scalars plain numbers."""
    return json.dumps(_finite(obj), indent=indent, default=_json_default, ensure_ascii=False, allow_nan=False)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, to_json(obj, indent=2) + "\n")


def read_json(path: str | os.PathLike):
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None


# ----------------------------------------------------------------------------- jsonl


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All records of a jsonl file ([] if it does not exist); bad lines name file and line."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {lineno}: not valid JSON ({err.msg}). The harness writes "
                                 "this file atomically, so it was changed by something else: restore it, or "
                                 f"delete line {lineno} (that cell is then run again)") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {lineno}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(to_json(r) + "\n" for r in records))


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block; waits for
    another holder. Released by the kernel if the process dies, so no stale lock remains."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")  # who holds it, for a person looking
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ResultStore:
    """``results.jsonl`` (scores) and ``runs.jsonl`` (training records) of one output dir.

    Several processes may write into one directory (two runs, or the workers of a sharded
    grid): each commit reads, changes and rewrites the files under an exclusive lock on
    ``.lock``, so no writer's cell is lost, and a cell committed twice keeps one copy.
    """

    def __init__(self, output_dir: str | os.PathLike):
        self.output_dir = Path(output_dir)
        self.results_path = D.results_path(self.output_dir)
        self.runs_path = D.runs_path(self.output_dir)

    def results(self) -> list[dict]:
        return read_jsonl(self.results_path)

    def runs(self) -> list[dict]:
        return read_jsonl(self.runs_path)

    def finished_cells(self) -> set[CellKey]:
        """Cells whose scores are in ``results.jsonl``: a resumed run skips them."""
        return {cell_key_of(r) for r in self.results()}

    def record_cell(self, key: CellKey, results: list[dict], runs: list[dict]) -> None:
        """Commit one finished cell: replace any older records of ``key`` in both files.

        ``runs.jsonl`` is written first, so a crash between the two writes leaves the
        cell unfinished (and its runs records are replaced when it is redone).
        """
        if not results:
            raise ValueError(f"cell {key.label()} has no results to record")
        for record in [*results, *runs]:
            if cell_key_of(record) != key:
                raise ValueError(f"record {record!r} does not belong to cell {key.label()}")
        with exclusive_lock(D.lock_path(self.output_dir)):
            kept_runs = [r for r in self.runs() if cell_key_of(r) != key]
            write_jsonl(self.runs_path, [*kept_runs, *runs])
            kept_results = [r for r in self.results() if cell_key_of(r) != key]
            write_jsonl(self.results_path, [*kept_results, *results])


# ----------------------------------------------------------------------------- resume safety


def check_run_config(output_dir: str | os.PathLike, settings: dict) -> None:
    """Refuse to resume into ``output_dir`` if it was made with different settings.

    ``settings`` are the run settings that change results (model, learning rate,
    data caps, target languages, ...). The first run writes them to
    ``run_config.json``; a later run with the same output dir must match them
    (adding methods, K values or seeds is allowed: those only add cells).

    A setting added to the harness after the run started is not in its file: it matches
    when it is off now (False or None), which is what the older harness did.
    """
    path = D.run_config_path(output_dir)
    current = json.loads(to_json(settings))
    if path.exists():
        previous = read_json(path)
        diffs = [
            f"  {name}: was {previous.get(name)!r}, now {current.get(name)!r}"
            for name in sorted(set(previous) | set(current))
            if previous.get(name) != current.get(name)
            and not (name not in previous and current.get(name) in (False, None))
        ]
        if diffs:
            raise SystemExit(
                f"{output_dir} holds results made with different settings:\n"
                + "\n".join(diffs)
                + "\nUse another --output-dir, or the same settings to resume."
            )
        return
    atomic_write_json(path, current)


def fingerprint(path: str | os.PathLike) -> dict:
    """``{"bytes": size, "sha256": hex}`` of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def read_data_record(output_dir: str | os.PathLike) -> dict | None:
    """The run's ``data_files.json`` (its data directory, the fingerprint of every file it read,
    the targets it skipped), or None for a run made before the record existed."""
    path = D.data_files_path(output_dir)
    return read_json(path) if path.exists() else None


def _data_changes(output_dir, data_dir, files) -> tuple[dict, dict, list[str]]:
    """(the run's record, the fingerprints of ``files`` now, one line per recorded file whose
    content differs). A file is named relative to ``data_dir``, as the record names it."""
    data_dir = Path(data_dir)
    current = {Path(f).relative_to(data_dir).as_posix(): fingerprint(f) for f in files}
    previous = read_data_record(output_dir) or {"data_dir": str(data_dir), "files": {}}
    changed = [f"{name}: was {old['bytes']} bytes sha256 {old['sha256'][:12]}, now {current[name]['bytes']} "
               f"bytes sha256 {current[name]['sha256'][:12]}"
               for name, old in sorted(previous["files"].items()) if name in current and current[name] != old]
    return previous, current, changed


def check_data_files(output_dir: str | os.PathLike, data_dir: str | os.PathLike, files,
                     skipped_targets: dict[str, str] | None = None) -> None:
    """Refuse to resume into ``output_dir`` if a data file it read has changed since.

    ``files`` are the paths (under ``data_dir``) a run reads. The first run records the data
    directory and each file's size and SHA-256 in ``data_files.json``; a later run must find
    the same content for every file both read (under any data directory: the content is the
    identity), and adds the files it reads that are new. A run made before this record
    existed starts its record on its next resume. ``skipped_targets`` (language -> why) are
    the languages ``--targets all`` left out for their data; the record keeps them for the
    reports.
    """
    previous, current, changed = _data_changes(output_dir, data_dir, files)
    if changed:
        raise SystemExit(
            f"{output_dir} holds results made from other data (recorded from {previous['data_dir']}; "
            f"now reading {data_dir}):\n" + "\n".join(f"  {line}" for line in changed)
            + "\nRestore the files, or use another --output-dir for this data."
        )
    record = {"data_dir": previous["data_dir"], "files": {**previous["files"], **current}}
    if skipped_targets:
        record["skipped_targets"] = dict(sorted(skipped_targets.items()))
    if record != previous or not D.data_files_path(output_dir).exists():
        atomic_write_json(D.data_files_path(output_dir), record)


def verify_data_files(output_dir: str | os.PathLike, data_dir: str | os.PathLike, files) -> None:
    """For a reader of a finished run (the analyses): ``files`` under ``data_dir`` must have the
    content the run recorded for them; a ValueError naming every file that differs. Files
    the run did not record (or a run without a record) are not checked."""
    if read_data_record(output_dir) is None:
        return
    previous, _, changed = _data_changes(output_dir, data_dir, files)
    if changed:
        raise ValueError(f"data dir {data_dir}: not the data the run in {output_dir} read (recorded from "
                         f"{previous['data_dir']}): {'; '.join(changed)}. Restore the files, or give --data-dir "
                         "with the run's data")
