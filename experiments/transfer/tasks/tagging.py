"""What NER and POS share: word-level tagging with a token-classification head.

Encoding (``encode``): sentences are tokenized through the tokenizer's
``is_split_into_words=True`` path; only the first sub-word of each word carries the
word's label, the other sub-words (and special tokens) get -100. A word the tokenizer
maps to no sub-word at all (e.g. a lone zero-width character) is replaced by the unknown
token, as XTREME's preprocessing does, so every word gets a prediction.

Long sentences (more sub-words than ``max_seq_length`` minus the special tokens):

- ``long_sentences="split"`` (default; what the paper's code does in preprocessing):
  the sentence is cut at word boundaries into consecutive chunks that each fit, and every
  chunk becomes its own feature, so every word is trained on and evaluated. A single
  word longer than the whole budget is truncated within its chunk (its first sub-word,
  which carries the label, is kept).
- ``long_sentences="truncate"``: only the first chunk is kept. Evaluation then scores
  the words of the kept part only (gold and prediction cut alike), which is what
  evaluating on truncated inputs amounts to.

Evaluation maps each word's first-sub-word prediction back to the word and scores the
word sequences of every example (see ``transfer.metrics``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data import DataFormatError, TaggingExample, read_tagging_tsv
from .base import Task, label_maps
from .encoded import EncodedSet, predict_batches

LONG_SENTENCE_MODES = ("split", "truncate")


class TaggingTask(Task):
    """A word-tagging task over ``token<TAB>tag`` files."""

    ext = "tsv"

    def read_file(self, path, lang: str, split: str) -> list[TaggingExample]:
        return read_tagging_tsv(path, task_dir=self.task_dir, lang=lang, split=split, labels=self.labels)

    def build_model(self, model_name_or_path: str):
        from transformers import AutoModelForTokenClassification

        id2label, label2id = label_maps(self.labels)
        return AutoModelForTokenClassification.from_pretrained(
            model_name_or_path, num_labels=len(self.labels), id2label=id2label, label2id=label2id
        )

    # --- encoding ----------------------------------------------------------------------------

    def encode(self, examples: Sequence[TaggingExample], tokenizer, max_seq_length: int, doc_stride: int = 128,
               *, long_sentences: str = "split") -> EncodedSet:
        """Features for ``model(**batch)``; ``doc_stride`` is unused (QA only).

        ``meta[i]`` of feature ``i`` holds ``word_offset`` (index in the sentence of the
        chunk's first word) and ``first_positions`` (token position of each chunk word's
        first sub-word).
        """
        if long_sentences not in LONG_SENTENCE_MODES:
            raise ValueError(f"long_sentences must be one of {LONG_SENTENCE_MODES}, got {long_sentences!r}")
        budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
        if budget < 1:
            raise ValueError(f"max_seq_length={max_seq_length} leaves no room for tokens")
        label2id = {label: i for i, label in enumerate(self.labels)}
        words = [list(ex.tokens) for ex in examples]
        features: list[tuple[int, int, dict, list[int]]] = []  # (example, word offset, tensors, first positions)

        def add(e: int, start: int, n_words: int, input_ids, attention_mask, word_ids) -> int:
            first_positions = _first_positions(word_ids, n_words)
            if not first_positions:
                raise DataFormatError(f"{examples[e].uid}: word {start} does not fit in max_seq_length={max_seq_length}")
            labels = [-100] * len(input_ids)
            for w, pos in enumerate(first_positions):
                labels[pos] = label2id[examples[e].tags[start + w]]
            features.append((e, start, {
                "input_ids": torch.tensor(input_ids, dtype=torch.long),
                "attention_mask": torch.tensor(attention_mask, dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long),
            }, first_positions))
            return len(first_positions)

        # Pass 1: whole sentences. Those that fit (and have no word without sub-words) are done;
        # the others are planned into chunks from each word's sub-word count.
        pending: list[tuple[int, int, int]] = []  # (example, first word, end word)
        if words:
            enc = tokenizer(words, is_split_into_words=True, return_token_type_ids=False)
            for e, sentence in enumerate(words):
                word_ids = enc.word_ids(e)
                per_word = [0] * len(sentence)
                for w in word_ids:
                    if w is not None:
                        per_word[w] += 1
                if 0 not in per_word and sum(per_word) <= budget:
                    add(e, 0, len(sentence), enc.input_ids[e], enc.attention_mask[e], word_ids)
                    continue
                for w, n in enumerate(per_word):
                    if n == 0:  # replace a word without sub-words by the unknown token, as XTREME does
                        if tokenizer.unk_token is None:
                            raise DataFormatError(f"{examples[e].uid}: word {w} ({sentence[w]!r}) has no sub-word "
                                                  f"and the tokenizer has no unknown token")
                        sentence[w], per_word[w] = tokenizer.unk_token, 1
                spans = _chunk_spans(per_word, budget)
                pending.extend((e, a, b) for a, b in (spans[:1] if long_sentences == "truncate" else spans))

        # Pass 2: tokenize the chunks; if the tokenizer disagrees with the plan (a chunk's
        # last words cut off), carry the rest over to a new chunk.
        while pending:
            enc = tokenizer([words[e][a:b] for e, a, b in pending], is_split_into_words=True, truncation=True,
                            max_length=max_seq_length, return_token_type_ids=False)
            retry = []
            for j, (e, a, b) in enumerate(pending):
                kept = add(e, a, b - a, enc.input_ids[j], enc.attention_mask[j], enc.word_ids(j))
                if kept < b - a and long_sentences == "split":
                    retry.append((e, a + kept, b))
            pending = retry

        features.sort(key=lambda item: (item[0], item[1]))
        return EncodedSet([f for _, _, f, _ in features], [e for e, _, _, _ in features], tokenizer.pad_token_id,
                          [{"word_offset": a, "first_positions": p} for _, a, _, p in features])

    # --- evaluation ----------------------------------------------------------------------------

    def predict_words(self, model, examples: Sequence[TaggingExample], tokenizer, *, max_seq_length: int,
                      batch_size: int, device, progress: bool | None = None, long_sentences: str = "split"
                      ) -> tuple[list[list[str]], list[list[str]]]:
        """``(gold, predicted)`` tag sequences over the words each example's features cover."""
        encoded = self.encode(examples, tokenizer, max_seq_length, long_sentences=long_sentences)
        predicted: list[dict[int, str]] = [{} for _ in examples]
        for indices, outputs in predict_batches(model, encoded, batch_size=batch_size, device=device,
                                                progress=progress, desc=f"eval {self.name}"):
            best = outputs.logits.argmax(dim=-1).cpu()
            for row, f in enumerate(indices):
                info = encoded.meta[f]
                words = predicted[encoded.example_index[f]]
                for w, pos in enumerate(info["first_positions"]):
                    words[info["word_offset"] + w] = self.labels[int(best[row, pos])]
        gold, pred = [], []
        for ex, words in zip(examples, predicted):
            covered = sorted(words)
            gold.append([ex.tags[w] for w in covered])
            pred.append([words[w] for w in covered])
        return gold, pred

    def score(self, gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
        """The task's metrics from word-level tag sequences (in percent)."""
        raise NotImplementedError

    def evaluate(self, model, examples: Sequence[TaggingExample], tokenizer, *, max_seq_length: int,
                 batch_size: int, device, progress: bool | None = None,
                 long_sentences: str = "split") -> dict[str, float]:
        if not examples:
            raise ValueError(f"{self.name}: no examples to evaluate")
        gold, pred = self.predict_words(model, examples, tokenizer, max_seq_length=max_seq_length,
                                        batch_size=batch_size, device=device, progress=progress,
                                        long_sentences=long_sentences)
        return self.score(gold, pred)


def _chunk_spans(per_word: list[int], budget: int) -> list[tuple[int, int]]:
    """Greedy word spans whose sub-word totals fit ``budget`` (an oversized word stands alone)."""
    spans, start, used = [], 0, 0
    for w, n in enumerate(per_word):
        if used and used + n > budget:
            spans.append((start, w))
            start, used = w, 0
        used += n
    spans.append((start, len(per_word)))
    return spans


def _first_positions(word_ids: list[int | None], n_words: int) -> list[int]:
    """Token position of each word's first sub-word, for the leading words that are present."""
    first = {}
    for pos, w in enumerate(word_ids):
        if w is not None and w not in first:
            first[w] = pos
    out = []
    for w in range(n_words):
        if w not in first:
            break
        out.append(first[w])
    return out
