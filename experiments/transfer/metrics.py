"""The tasks' metrics, as XTREME computes them. Every score is in percent (0-100).

- NER: seqeval's (conlleval-style, non-strict) micro F1 over BIO entities.
- POS: XTREME scores POS with the same seqeval F1 on the *raw* UPOS tags. seqeval reads a
  tag's first letter as a chunk prefix and the rest as its type (``NOUN`` is prefix ``N``,
  type ``OUN``), so consecutive equal tags merge into one chunk, ``S``-initial tags
  (``SCONJ``, ``SYM``) are single-token chunks, a chunk of ``CCONJ`` directly followed
  by ``SCONJ`` (both of type ``CONJ``) is swallowed, and an ``X`` chunk (empty type, read
  as ``_`` like the sentence-end sentinel) that ends a sentence is never counted. It is not
  token accuracy; report it to compare with the paper, and token accuracy
  (``token_accuracy``) beside it.
- TyDiQA: the official SQuAD v1.1 exact match and F1 (answer normalisation: lower case,
  drop punctuation and the articles a/an/the, collapse white space), max over gold answers.
- XNLI: accuracy.
"""
from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

from seqeval.metrics import f1_score as _seqeval_f1


def _check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sequences but {len(pred)} predicted")
    if not gold:
        raise ValueError("no sequences to score")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: {len(g)} gold tags but {len(p)} predicted")


def seqeval_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """seqeval's default-mode micro F1 (as XTREME's ``run_tag.py``), in percent.

    Chunks never cross sentence boundaries. Tags that are not BIO (raw UPOS) are accepted
    and read as described in the module docstring; seqeval's warning about them is silenced.
    """
    _check_aligned(gold, pred)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*seems not to be NE tag")
        return 100.0 * float(_seqeval_f1([list(g) for g in gold], [list(p) for p in pred]))


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """The share of words whose predicted tag equals the gold tag, in percent."""
    _check_aligned(gold, pred)
    total = sum(len(g) for g in gold)
    if total == 0:
        raise ValueError("no tokens to score")
    correct = sum(gt == pt for g, p in zip(gold, pred) for gt, pt in zip(g, p))
    return 100.0 * correct / total


def ner_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """``{"f1"}`` for NER."""
    return {"f1": seqeval_f1(gold, pred)}


def pos_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """``{"f1", "accuracy"}`` for POS: XTREME's seqeval F1 on raw UPOS tags, and token accuracy."""
    return {"f1": seqeval_f1(gold, pred), "accuracy": token_accuracy(gold, pred)}


def accuracy(gold: Sequence, pred: Sequence) -> float:
    """Classification accuracy in percent."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predicted")
    if not gold:
        raise ValueError("no labels to score")
    return 100.0 * sum(g == p for g, p in zip(gold, pred)) / len(gold)


# --- SQuAD v1.1 (the official evaluate-v1.1.py, restated) -------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, remove punctuation, remove articles a/an/the, and collapse white space."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def squad_exact_match(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def squad_f1(prediction: str, ground_truth: str) -> float:
    """Token-overlap F1 (0-1) between normalised answers, split on white space."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` in percent, each the max over a question's gold answers.

    ``references`` maps question id to its gold answer texts; every id must have a
    prediction (a missing one is an error, not a silent zero) and at least one answer.
    """
    if not references:
        raise ValueError("no questions to score")
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction (e.g. {missing[0]!r})")
    em = f1 = 0.0
    for qid, golds in references.items():
        if not golds:
            raise ValueError(f"question {qid!r} has no gold answer")
        pred = predictions[qid]
        em += max(float(squad_exact_match(pred, g)) for g in golds)
        f1 += max(squad_f1(pred, g) for g in golds)
    n = len(references)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}
