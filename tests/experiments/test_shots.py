"""K-shot sampling (deterministic, nested, per class) and the atomic shot manifest."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from transfer import shots
from transfer.data import NLIExample, TaggingExample
from transfer.tasks import get_task

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_sample_k_is_deterministic_and_differs_by_seed():
    draws = {seed: shots.sample_k(1000, 10, seed, key="ner/hi") for seed in range(1, 6)}
    assert all(shots.sample_k(1000, 10, seed, key="ner/hi") == draw for seed, draw in draws.items())
    assert len({tuple(d) for d in draws.values()}) == 5
    for draw in draws.values():
        assert len(set(draw)) == 10 and all(0 <= i < 1000 for i in draw) and draw == sorted(draw)


def test_sample_k_is_nested_in_k():
    for seed in (1, 2, 3):
        one, five, ten = (set(shots.sample_k(500, k, seed, key="pos/ta")) for k in (1, 5, 10))
        assert one <= five <= ten


def test_sample_k_depends_on_key():
    assert shots.sample_k(1000, 10, 1, key="xnli/hi") != shots.sample_k(1000, 10, 1, key="xnli/ur")


def test_sample_k_is_stable_across_processes_and_hash_seeds():
    code = "from transfer import shots; print(shots.sample_k(10000, 8, 3, key='ner/sw'))"
    outputs = set()
    for hash_seed in ("0", "123"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(EXPERIMENTS)}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.add(result.stdout.strip())
    assert outputs == {str(shots.sample_k(10000, 8, 3, key="ner/sw"))}


def test_sample_k_edge_cases():
    assert shots.sample_k(5, 0, 1) == []
    assert shots.sample_k(5, 5, 1) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="cannot draw 6 shots from a pool of 5"):
        shots.sample_k(5, 6, 1)
    with pytest.raises(ValueError):
        shots.sample_k(5, -1, 1)


def test_sample_k_per_class_takes_k_of_each_class():
    labels = ["entailment", "neutral", "contradiction"] * 40 + ["neutral"] * 30
    for k in (1, 5, 10):
        chosen = shots.sample_k_per_class(labels, k, seed=2, key="xnli/sw")
        assert Counter(labels[i] for i in chosen) == {"entailment": k, "neutral": k, "contradiction": k}
        assert chosen == shots.sample_k_per_class(labels, k, seed=2, key="xnli/sw")
    small, large = (set(shots.sample_k_per_class(labels, k, 2, key="xnli/sw")) for k in (5, 10))
    assert small <= large
    assert shots.sample_k_per_class(labels, 5, 3, key="xnli/sw") != shots.sample_k_per_class(labels, 5, 2, key="xnli/sw")


def test_sample_k_per_class_rejects_small_classes():
    with pytest.raises(ValueError, match="too few examples"):
        shots.sample_k_per_class(["a", "a", "b"], 2, seed=1)


def _nli(lang, i, label):
    return NLIExample(f"xnli/{lang}/dev/{i}", lang, f"p{i}", f"h{i}", label)


def test_xnli_task_samples_k_per_class_and_languages_draw_independently():
    labels = ["entailment", "neutral", "contradiction"] * 20
    task = get_task("xnli")
    pools = {lang: [_nli(lang, i, label) for i, label in enumerate(labels)] for lang in ("hi", "ur")}
    picks = {lang: task.sample_shots(pool, 5, seed=1) for lang, pool in pools.items()}
    for lang, pick in picks.items():
        assert Counter(pools[lang][i].label for i in pick) == {"entailment": 5, "neutral": 5, "contradiction": 5}
    # row-aligned (parallel) pools must not get the same rows in every language
    assert picks["hi"] != picks["ur"]


def test_pool_key_requires_one_language():
    mixed = [TaggingExample("a", "hi", ("x",), ("O",)), TaggingExample("b", "ur", ("y",), ("O",))]
    with pytest.raises(ValueError, match="one language"):
        shots.pool_key("ner", mixed)
    with pytest.raises(ValueError, match="empty"):
        shots.pool_key("ner", [])


# --- the manifest --------------------------------------------------------------------------------

def _record(lang="hi", k=5, seed=1, uids=("ner/hi/train/3", "ner/hi/train/9")):
    return shots.ShotRecord("ner", lang, k, seed, "train", tuple(uids))


def test_manifest_round_trip(tmp_path):
    records = [_record(), _record(lang="ur", uids=("u1",)),
               shots.ShotRecord("tydiqa", "ko", 5, 2, "train", ("a", "b"), unit="features")]
    path = tmp_path / "sub" / "shots.json"
    shots.write_manifest(path, records)
    loaded = shots.read_manifest(path)
    assert loaded == {r.key: r for r in records}
    assert json.loads(path.read_text())["format"] == shots.MANIFEST_FORMAT
    assert [p.name for p in path.parent.iterdir()] == ["shots.json"]  # no temporary left behind


def test_manifest_rejects_conflicting_shots(tmp_path):
    with pytest.raises(ValueError, match="conflicting shots for task=ner lang=hi K=5 seed=1"):
        shots.write_manifest(tmp_path / "m.json", [_record(), _record(uids=("other",))])


def test_update_manifest_merges_and_keeps_identical(tmp_path):
    path = tmp_path / "m.json"
    shots.update_manifest(path, [_record()])
    merged = shots.update_manifest(path, [_record(), _record(seed=2, uids=("z",))])
    assert set(merged) == {("ner", "hi", 5, 1), ("ner", "hi", 5, 2)}
    assert shots.read_manifest(path) == merged
    with pytest.raises(ValueError, match="conflicting"):
        shots.update_manifest(path, [_record(uids=("changed",))])
    assert shots.read_manifest(path) == merged  # the failed update changed nothing


def test_failed_write_leaves_the_old_manifest(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    shots.write_manifest(path, [_record()])
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        shots.write_manifest(path, [_record(seed=7)])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    ('{"format": "something else"}', "not a shot manifest"),
    (json.dumps({"format": shots.MANIFEST_FORMAT, "version": 1, "shots": [{"task": "ner"}]}), r"shots\[0\]"),
])
def test_read_manifest_reports_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        shots.read_manifest(path)


def _write_panx(root, lang, split, n):
    folder = root / "panx" / lang
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(f"w{i}a\tB-PER\nw{i}b\tO\n\n" for i in range(n))
    (folder / f"{split}.tsv").write_text(text, encoding="utf-8")


def test_draw_shots_and_resolve_them_from_the_record(tmp_path):
    _write_panx(tmp_path, "hi", "train", 30)
    _write_panx(tmp_path, "hi", "dev", 10)
    task = get_task("ner")
    record, examples = shots.draw_shots(task, "hi", 5, 3, tmp_path)
    assert record.key == ("ner", "hi", 5, 3) and record.split == "train"
    assert [ex.uid for ex in examples] == list(record.uids) and len(set(record.uids)) == 5
    _, pool = task.shot_pool("hi", tmp_path)
    assert shots.shots_from_record(record, pool) == examples
    assert shots.draw_shots(task, "hi", 5, 3, tmp_path)[0] == record
    with pytest.raises(ValueError, match="not in the pool"):
        shots.shots_from_record(shots.ShotRecord("ner", "hi", 1, 1, "train", ("panx/hi/train/999",)), pool)
