"""NER on PAN-X (WikiANN): BIO tags over PER/ORG/LOC, scored by seqeval entity F1.

PAN-X has no labelled test split here (XTREME's preprocessing removes its labels), so the
task splits each language's ``dev.tsv`` into a selection part and an evaluation part by a
hash of the uid (see ``transfer.tasks.base``). Loaded from the hub, PAN-X does have test
labels, and ``eval_set`` then uses ``test``.
"""
from __future__ import annotations

from ..metrics import ner_scores
from .tagging import TaggingTask

PANX_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


class NERTask(TaggingTask):
    name = "ner"
    task_dir = "panx"
    metrics = ("f1",)
    labels = PANX_LABELS

    def score(self, gold, pred):
        return ner_scores(gold, pred)
