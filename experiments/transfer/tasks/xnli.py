"""XNLI: premise/hypothesis pairs classified as entailment/neutral/contradiction.

Sequence classification (the head reads the first token, ``<s>``), pairs truncated
longest-first to ``max_seq_length``. Source: ``en/train.tsv`` (8,999 MultiNLI pairs here),
source dev ``en/dev.tsv``. Target shots: K *per class* from the target ``dev`` split
(``shot_pool`` always returns ``dev``), the selection set is the rest of ``dev`` (pass the
shots as ``exclude``), evaluation on ``test``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import shots as shot_sampling
from ..data import DataFormatError, NLIExample, XNLI_LABELS, read_xnli_tsv
from ..metrics import accuracy
from .base import Task, label_maps
from .encoded import EncodedSet, predict_batches


class XNLITask(Task):
    name = "xnli"
    task_dir = "xnli"
    ext = "tsv"
    metrics = ("accuracy",)
    labels = list(XNLI_LABELS)

    def read_file(self, path, lang: str, split: str) -> list[NLIExample]:
        return read_xnli_tsv(path, lang=lang, split=split, task_dir=self.task_dir)

    def shot_pool(self, lang: str, data_dir, hub: bool = False) -> tuple[str, list[NLIExample]]:
        """Always the ``dev`` split, as in the paper."""
        if not self.has_split(lang, "dev", data_dir, hub):
            raise DataFormatError(self._missing_message(lang, data_dir, hub, "no dev split to draw shots from"))
        return "dev", self.read_split(lang, "dev", data_dir, hub)

    def sample_shots(self, pool: Sequence[NLIExample], k: int, seed: int) -> list[int]:
        """K examples of *each* label (3K in all), deterministic in ``seed``."""
        return shot_sampling.sample_k_per_class([ex.label for ex in pool], k, seed,
                                                key=shot_sampling.pool_key(self.name, pool))

    def build_model(self, model_name_or_path: str):
        from transformers import AutoModelForSequenceClassification

        id2label, label2id = label_maps(self.labels)
        return AutoModelForSequenceClassification.from_pretrained(
            model_name_or_path, num_labels=len(self.labels), id2label=id2label, label2id=label2id
        )

    def encode(self, examples: Sequence[NLIExample], tokenizer, max_seq_length: int,
               doc_stride: int = 128) -> EncodedSet:
        """One feature per pair; ``doc_stride`` is unused (QA only)."""
        label2id = {label: i for i, label in enumerate(self.labels)}
        if not examples:
            return EncodedSet([], [], tokenizer.pad_token_id)
        enc = tokenizer([ex.premise for ex in examples], [ex.hypothesis for ex in examples], truncation=True,
                        max_length=max_seq_length, return_token_type_ids=False)
        features = [
            {
                "input_ids": torch.tensor(ids, dtype=torch.long),
                "attention_mask": torch.tensor(mask, dtype=torch.long),
                "labels": torch.tensor(label2id[ex.label], dtype=torch.long),
            }
            for ids, mask, ex in zip(enc.input_ids, enc.attention_mask, examples)
        ]
        return EncodedSet(features, list(range(len(examples))), tokenizer.pad_token_id)

    def predict(self, model, examples: Sequence[NLIExample], tokenizer, *, max_seq_length: int, batch_size: int,
                device, progress: bool | None = None) -> list[str]:
        """The predicted label of every example."""
        encoded = self.encode(examples, tokenizer, max_seq_length)
        predicted: list[str | None] = [None] * len(examples)
        for indices, outputs in predict_batches(model, encoded, batch_size=batch_size, device=device,
                                                progress=progress, desc="eval xnli"):
            best = outputs.logits.argmax(dim=-1).cpu().tolist()
            for f, label_id in zip(indices, best):
                predicted[encoded.example_index[f]] = self.labels[label_id]
        return predicted

    def evaluate(self, model, examples: Sequence[NLIExample], tokenizer, *, max_seq_length: int, batch_size: int,
                 device, progress: bool | None = None) -> dict[str, float]:
        if not examples:
            raise ValueError("xnli: no examples to evaluate")
        predicted = self.predict(model, examples, tokenizer, max_seq_length=max_seq_length,
                                 batch_size=batch_size, device=device, progress=progress)
        return {"accuracy": accuracy([ex.label for ex in examples], predicted)}
