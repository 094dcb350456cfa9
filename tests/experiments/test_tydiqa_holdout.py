"""TyDiQA's hold-out fallback for dev files whose answers are placeholders."""
import json
import logging

import pytest

from transfer.data import DataFormatError
from transfer.tasks import get_task


def squad_file(path, lang, n, gold=True):
    qas = []
    for i in range(n):
        context = f"Paragraph {i} of {lang} says the answer is word{i} here."
        start = context.index(f"word{i}")
        answers = [{"text": f"word{i}", "answer_start": start}] if gold else [{"text": "", "answer_start": 0}]
        qas.append({"question": f"What is {i}?", "id": f"{lang}-{i}", "answers": answers, "context": context})
    data = {"data": [{"title": lang, "paragraphs": [{"context": q["context"], "qas": [
        {k: v for k, v in q.items() if k != "context"}]} for q in qas]}], "version": "1.1"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "xtreme"
    squad_file(root / "tydiqa/sw/train.json", "sw", 200)
    squad_file(root / "tydiqa/sw/dev.json", "sw", 30, gold=False)
    squad_file(root / "tydiqa/ar/dev.json", "ar", 30, gold=False)
    squad_file(root / "tydiqa/fi/dev.json", "fi", 40)
    return root


def uids(examples):
    return {ex.uid for ex in examples}


def test_placeholder_dev_falls_back_to_a_disjoint_hold_out_of_train(data_dir, caplog):
    task = get_task("tydiqa")
    with caplog.at_level(logging.WARNING):
        select = task.target_dev("sw", data_dir)
    evaluation = task.eval_set("sw", data_dir)
    split, pool = task.shot_pool("sw", data_dir)
    train_all = task.read_split("sw", "train", data_dir)
    assert split == "train"
    assert uids(select) | uids(evaluation) | uids(pool) == uids(train_all)
    assert not (uids(select) & uids(evaluation)) and not (uids(pool) & (uids(select) | uids(evaluation)))
    assert 20 <= len(evaluation) <= 60 and 20 <= len(select) <= 60  # about 20% each of 200
    assert all(ex.has_gold for ex in select + evaluation + pool)
    assert uids(task.source_train("sw", data_dir)) == uids(pool)
    assert uids(task.source_dev("sw", data_dir)) == uids(select)
    assert "no gold answers" in caplog.text and "tydiqa/sw" in caplog.text
    # fixed: another call (another seed, another run) gives the same parts
    assert uids(get_task("tydiqa").eval_set("sw", data_dir)) == uids(evaluation)


def test_labelled_dev_is_used_as_usual(data_dir):
    task = get_task("tydiqa")
    assert task.holdout("fi", data_dir) is None
    assert uids(task.eval_set("fi", data_dir)) <= uids(task.read_split("fi", "dev", data_dir))


def test_no_labelled_file_at_all_is_a_clear_error(data_dir):
    task = get_task("tydiqa")
    with pytest.raises(DataFormatError, match="empty placeholders"):
        task.eval_set("ar", data_dir)


@pytest.mark.realdata
def test_real_tydiqa_languages_with_train_json_are_evaluable(xtreme_dir):
    task = get_task("tydiqa")
    for lang in ("en", "ko", "sw"):
        evaluation = task.eval_set(lang, xtreme_dir)
        assert len(evaluation) > 200 and all(ex.has_gold for ex in evaluation)
    with pytest.raises(DataFormatError, match="no gold answer"):
        task.eval_set("ar", xtreme_dir)
