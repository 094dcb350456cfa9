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


# --- the cut is by passage: a shot's passage never reaches the selection or evaluation set ----------

def shared_passage_file(path, lang, n_passages, reverse=False):
    """A labelled train.json whose passages carry 1 to 5 questions each, as the real files do:
    mostly one ``paragraphs`` entry per question with the passage repeated, some passages with
    several questions in one entry; question ids repeat across passages."""
    paragraphs = []
    for p in range(n_passages):
        context = f"Passage {p} of {lang}: the first answer is alpha{p}, the second is beta{p}."
        questions = []
        for q in range(1 + p % 5):
            text = f"alpha{p}" if q % 2 == 0 else f"beta{p}"
            questions.append({"question": f"Question {q} on passage {p}?", "id": str(q),
                              "answers": [{"text": text, "answer_start": context.index(text)}]})
        if p % 7 == 0:
            paragraphs.append({"context": context, "qas": questions})
        else:
            paragraphs.extend({"context": context, "qas": [qa]} for qa in questions)
    if reverse:
        paragraphs.reverse()
    data = {"data": [{"paragraphs": [paragraph]} for paragraph in paragraphs], "version": "1.1"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def shared_passage_dir(root, n_passages=150, reverse=False):
    shared_passage_file(root / "tydiqa/sw/train.json", "sw", n_passages, reverse=reverse)
    squad_file(root / "tydiqa/sw/dev.json", "sw", 30, gold=False)
    return root


def roles_by_passage(task, lang, data_dir):
    """``{context: {role, ...}}`` over the selection set, the evaluation set and the shot pool."""
    split, pool = task.shot_pool(lang, data_dir)
    assert split == "train"
    found: dict[str, set[str]] = {}
    for role, examples in (("select", task.target_dev(lang, data_dir)), ("eval", task.eval_set(lang, data_dir)),
                           ("train", pool)):
        for ex in examples:
            found.setdefault(ex.context, set()).add(role)
    return found


def roles_by_question(task, lang, data_dir):
    """``{(context, question): role}``: what identifies a question whatever its uid (file position)."""
    parts = task.holdout(lang, data_dir)
    return {(ex.context, ex.question): role for role, examples in parts.items() for ex in examples}


def test_hold_out_keeps_every_passage_in_one_part(tmp_path):
    data_dir = shared_passage_dir(tmp_path / "xtreme")
    task = get_task("tydiqa")
    train = task.read_split("sw", "train", data_dir)
    assert len(train) == 450 and len({ex.context for ex in train}) == 150
    found = roles_by_passage(task, "sw", data_dir)
    assert set(found) == {ex.context for ex in train}
    shared = {context: roles for context, roles in found.items() if len(roles) > 1}
    assert not shared, f"{len(shared)} passages in several parts, e.g. {next(iter(shared.items()))}"
    parts = task.holdout("sw", data_dir)
    assert sorted(ex.uid for part in parts.values() for ex in part) == sorted(ex.uid for ex in train)
    sizes = {role: len(part) for role, part in parts.items()}
    assert abs(sizes["select"] - 90) <= 3 and abs(sizes["eval"] - 90) <= 3  # 20% each, to within a passage
    assert all(len({ex.context for ex in part}) >= 20 for part in parts.values())


def test_hold_out_by_passage_is_deterministic_and_independent_of_file_order(tmp_path):
    data_dir = shared_passage_dir(tmp_path / "a")
    first = roles_by_question(get_task("tydiqa"), "sw", data_dir)
    assert roles_by_question(get_task("tydiqa"), "sw", data_dir) == first  # another task, another run
    # the same questions in the opposite order (so with other uids) land in the same parts
    reversed_dir = shared_passage_dir(tmp_path / "b", reverse=True)
    assert roles_by_question(get_task("tydiqa"), "sw", reversed_dir) == first


def test_too_few_passages_for_the_parts_is_an_error_naming_the_language(tmp_path):
    data_dir = shared_passage_dir(tmp_path / "xtreme", n_passages=2)  # 1 + 2 questions on 2 passages
    with pytest.raises(DataFormatError, match=r"tydiqa/sw: .*3 questions sit on 2 passages"):
        get_task("tydiqa").holdout("sw", data_dir)


@pytest.mark.realdata
def test_real_hold_out_keeps_every_passage_in_one_part(xtreme_dir):
    task = get_task("tydiqa")
    langs = [lang for lang in task.languages(xtreme_dir) if task.holdout(lang, xtreme_dir) is not None]
    assert {"en", "ko", "sw"} <= set(langs)
    for lang in langs:
        train = task.read_split(lang, "train", xtreme_dir)
        assert len({ex.context for ex in train}) < len(train)  # questions do share passages here
        found = roles_by_passage(task, lang, xtreme_dir)
        shared = [context for context, roles in found.items() if len(roles) > 1]
        assert not shared, f"tydiqa/{lang}: {len(shared)} passages in several parts"
        parts = task.holdout(lang, xtreme_dir)
        for role, share in (("select", 0.2), ("eval", 0.2), ("train", 0.6)):
            assert abs(len(parts[role]) / len(train) - share) < 0.01, (lang, role, len(parts[role]))
        assert roles_by_question(get_task("tydiqa"), lang, xtreme_dir) == roles_by_question(task, lang, xtreme_dir)
