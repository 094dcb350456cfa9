"""The results store: atomic writes, jsonl with file-and-line errors, cells, resume checks."""
import contextlib
import json
import os
import stat
from pathlib import Path

import pytest

from transfer import results as R


def rec(method="ord-fs", k=5, seed=1, lang="hi", value=50.0, **extra):
    return {"task": "pos", "method": method, "k": k, "seed": seed, "language": lang, "metric": "f1", "value": value,
            **extra}


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    R.atomic_write_text(path, "one")
    R.atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["a.txt"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    R.atomic_write_json(path, {"x": 1})
    with pytest.raises(TypeError, match="cannot write object"):
        R.atomic_write_json(path, {"x": object()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]
    with pytest.raises(RuntimeError):
        with R.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]


@contextlib.contextmanager
def umask(mask):
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask_as_open_does(tmp_path, mask, mode):
    """Results were written 0600 (mkstemp's mode) whatever the umask; now as open() writes them.
    The benchmarks' report writer uses the same helper, so it writes files the same way."""
    import sys

    repo = Path(__file__).resolve().parents[2]
    if str(repo) not in sys.path:  # for `benchmarks`; appended so the installed sgs_ext still wins
        sys.path.append(str(repo))
    from benchmarks import report

    with umask(mask):
        R.atomic_write_text(tmp_path / "results.jsonl", "{}\n")
        with R.atomic_path(tmp_path / "figure.png", suffix=".png") as tmp:
            tmp.write_bytes(b"png")
        R.atomic_write_text(tmp_path / "results.jsonl", "{}\n{}\n")  # replacing a file: the same
        report.write_json({"x": 1}, tmp_path / "bench.json")
    for name in ("results.jsonl", "figure.png", "bench.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(os.listdir(tmp_path)) == ["bench.json", "figure.png", "results.jsonl"]


def test_json_has_no_nan(tmp_path):
    assert R.to_json({"a": float("nan"), "b": [float("inf"), 1.5]}) == '{"a": null, "b": [null, 1.5]}'


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(ValueError, match=r"results.jsonl: line 3: not valid JSON"):
        R.read_jsonl(path)
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"line 2: expected a JSON object"):
        R.read_jsonl(path)
    assert R.read_jsonl(tmp_path / "missing.jsonl") == []


def test_record_cell_commits_and_replaces(tmp_path):
    store = R.ResultStore(tmp_path)
    key = R.CellKey("pos", "ord-fs", 5, 1)
    store.record_cell(key, [rec(lang="hi"), rec(lang="ar")], [rec(job="hi") | {"curve": []}])
    other = R.CellKey("pos", "ord-fs", 5, 2)
    store.record_cell(other, [rec(seed=2)], [])
    assert store.finished_cells() == {key, other}
    # redoing a cell replaces its records in both files
    store.record_cell(key, [rec(lang="hi", value=60.0)], [rec(job="hi", curve=[1])])
    results = store.results()
    assert sorted((r["seed"], r["language"], r["value"]) for r in results) == [(1, "hi", 60.0), (2, "hi", 50.0)]
    assert [r["curve"] for r in store.runs()] == [[1]]


def test_record_cell_rejects_foreign_or_empty_records(tmp_path):
    store = R.ResultStore(tmp_path)
    key = R.CellKey("pos", "ord-fs", 5, 1)
    with pytest.raises(ValueError, match="does not belong to cell pos/ord-fs/k5/seed1"):
        store.record_cell(key, [rec(seed=2)], [])
    with pytest.raises(ValueError, match="no results"):
        store.record_cell(key, [], [])
    with pytest.raises(ValueError, match="no 'seed' field"):
        R.cell_key_of({"task": "pos", "method": "x", "k": 1})
    assert not store.results_path.exists()


def test_run_config_must_match_to_resume(tmp_path):
    R.check_run_config(tmp_path, {"lr": 2e-4, "targets": ["ar", "hi"]})
    R.check_run_config(tmp_path, {"lr": 2e-4, "targets": ["ar", "hi"]})  # same: fine
    with pytest.raises(SystemExit, match=r"lr: was 0.0002, now 2e-05"):
        R.check_run_config(tmp_path, {"lr": 2e-5, "targets": ["ar", "hi"]})


def test_a_setting_added_since_the_run_started_matches_only_when_off(tmp_path):
    R.check_run_config(tmp_path, {"lr": 2e-4})  # written by an older harness
    R.check_run_config(tmp_path, {"lr": 2e-4, "published_code": False, "new_cap": None})  # off: what it did
    with pytest.raises(SystemExit, match="published_code: was None, now True"):
        R.check_run_config(tmp_path, {"lr": 2e-4, "published_code": True})


def _write_cells(out_dir, worker, n):
    store = R.ResultStore(out_dir)
    for seed in range(n):
        key = R.CellKey("ner", f"method-{worker}", 5, seed)
        record = {"task": "ner", "method": key.method, "k": 5, "seed": seed, "language": "ar", "score": 1.0}
        store.record_cell(key, [record], [dict(record, kind="run")])


def test_two_writers_into_one_directory_keep_every_record_once(tmp_path):
    """Two processes commit 60 cells each into one directory at the same time: all 120 cells
    are there, once each, in both files (without the lock a read-modify-write lost ~25%)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_write_cells, args=(tmp_path, w, 60)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = R.ResultStore(tmp_path)
    for records in (store.results(), store.runs()):
        keys = [R.cell_key_of(r) for r in records]
        assert len(keys) == 120 and len(set(keys)) == 120
