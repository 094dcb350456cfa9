"""Reader for SQuAD v1.1 JSON files (TyDiQA-GoldP as XTREME ships it).

Layout: ``{"data": [{"title"?, "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}]}]}]}]}``. Errors name the file and the JSON path
of the offending item (``data[3].paragraphs[0].qas[2]``), since these files are a single
line and a line number would not help.

An answer whose text is empty is an *unlabelled placeholder* (XTREME's test-side files
carry ``{"text": "", "answer_start": 0}`` in place of gold answers); it is dropped, so
such a question has ``answers == ()`` and ``has_gold == False``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .examples import Answer, DataFormatError, QAExample, make_uid, read_text


def _require(obj, key: str, kind: type | tuple[type, ...], path: Path, where: str):
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: {where} should be a JSON object, found {type(obj).__name__}")
    if key not in obj:
        raise DataFormatError(f"{path}: {where} has no {key!r} (keys: {', '.join(sorted(obj)) or 'none'})")
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataFormatError(f"{path}: {where}.{key} should be {names}, found {type(value).__name__}")
    return value


def read_squad_json(path: str | Path, *, lang: str, split: str, task_dir: str = "tydiqa") -> list[QAExample]:
    """Read one SQuAD v1.1 file into questions (one ``QAExample`` per question).

    Raises:
        DataFormatError: for invalid JSON (with line and column), a missing or mistyped
            field (with its JSON path), an answer that does not occur in the context at
            ``answer_start``, or a file without questions.
    """
    path = Path(path)
    try:
        root = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    articles = _require(root, "data", list, path, "the top level")
    examples: list[QAExample] = []
    for a, article in enumerate(articles):
        where_a = f"data[{a}]"
        paragraphs = _require(article, "paragraphs", list, path, where_a)
        title = article.get("title", "") if isinstance(article.get("title", ""), str) else ""
        for p, paragraph in enumerate(paragraphs):
            where_p = f"{where_a}.paragraphs[{p}]"
            context = _require(paragraph, "context", str, path, where_p)
            qas = _require(paragraph, "qas", list, path, where_p)
            for q, qa in enumerate(qas):
                where_q = f"{where_p}.qas[{q}]"
                qid = _require(qa, "id", (str, int), path, where_q)
                question = _require(qa, "question", str, path, where_q)
                raw_answers = _require(qa, "answers", list, path, where_q)
                answers = []
                for n, raw in enumerate(raw_answers):
                    where_n = f"{where_q}.answers[{n}] (question id {qid!r})"
                    text = _require(raw, "text", str, path, where_n)
                    start = _require(raw, "answer_start", int, path, where_n)
                    if text == "":
                        continue  # unlabelled placeholder
                    if context[start:start + len(text)] != text:
                        raise DataFormatError(
                            f"{path}: {where_n}: answer {text[:40]!r} is not found at answer_start={start} "
                            f"of the context (found {context[start:start + len(text)][:40]!r})"
                        )
                    answers.append(Answer(text, start))
                uid = make_uid(task_dir, lang, split, len(examples))
                examples.append(QAExample(uid, lang, str(qid), question, context, tuple(answers), title))
    if not examples:
        raise DataFormatError(f"{path}: no questions in the file")
    return examples
