"""POS tagging on Universal Dependencies v2.5 (XTREME's udpos), the 17 UPOS tags.

Scored two ways: XTREME's seqeval F1 on the raw UPOS tags (the number the paper reports;
see ``transfer.metrics`` for why it is not accuracy) and token accuracy. UD has real
``test`` splits, which ``eval_set`` uses; ``target_dev`` is ``dev``. Languages without
``train`` (Hindi here) draw their shots from ``dev``; pass the shots' uids as ``exclude``
to ``target_dev``. Languages with only ``test`` (th, yo) can be evaluated zero-shot but
have no shot pool.
"""
from __future__ import annotations

from ..metrics import pos_scores
from .tagging import TaggingTask

UPOS_LABELS = [
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
]


class POSTask(TaggingTask):
    name = "pos"
    task_dir = "udpos"
    metrics = ("f1", "accuracy")
    labels = UPOS_LABELS

    def score(self, gold, pred):
        return pos_scores(gold, pred)
