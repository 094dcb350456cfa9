"""TyDiQA-GoldP: extractive QA scored with SQuAD v1.1 exact match and F1.

Encoding follows Hugging Face's ``run_qa.py``: question (left-stripped, and cut to
``max_query_length=64`` tokens as XTREME does) and context are tokenized as a pair with
``truncation="only_second"``, ``max_length=max_seq_length`` (384) and
``stride=doc_stride`` (128), so a long context becomes several *features*, consecutive
ones overlapping by ``doc_stride`` tokens (note: in XTREME's older SQuAD code
``doc_stride`` was the step between windows, here it is the overlap, as in ``run_qa.py``).
Training labels are the token positions of the first gold answer, or the first token
(``<s>``) when the answer is not inside the window. Prediction takes, over all features of
an example, the best-scoring span among the ``n_best=20`` top start and end logits, with
at most ``max_answer_length=30`` tokens, inside the context.

Splits: the source is ``en/train.json``; each language's ``dev.json`` is its test set (as in
XTREME), split by uid hash into a selection part and an evaluation part (see
``transfer.tasks.base``). Shots come from ``train.json`` when the language has one, else
from ``dev.json`` — then pass the shots' uids as ``exclude`` so evaluation never sees them.

Questions without a gold answer (files whose answers are empty placeholders) cannot be
trained or scored on: every role that needs gold answers raises ``DataFormatError`` for them.

Hold-out fallback (local data only): some public copies of TyDiQA-GoldP, among them the
one in ``../shared/data/xtreme``, ship the dev files with every answer replaced by an empty
placeholder. For a language whose ``dev.json`` has no gold answer at all but whose
``train.json`` is labelled (en, ko, sw there), the roles come from ``train.json`` instead:
a selection set (``source_dev`` / ``target_dev``, 20% of the questions), an evaluation set
(``eval_set``, 20%) and a training part (``source_train`` and the shot pool, 60%). The cut is
by *passage*, not by question: several questions often share one passage (in that copy each
question is its own ``paragraphs`` entry, the passage repeated, and question ids are not
unique, so the context text is what identifies a passage; en: 3696 questions on 3429
passages, ko: 1625 on 1269, sw: 2755 on 1687), and a shot whose passage also sits in the
evaluation set would leak it. All questions of one passage land in the same part: passages
are ordered by a hash of their text (sha256 of ``"tydiqa-holdout:" + context``, ties by the
text), and each takes the part in which the midpoint of its questions falls on the running
question count (first 20% selection, next 20% evaluation, the rest training). The parts are
thus fixed (independent of seeds, K, the run and the order of the file) and hold 20/20/60%
of the questions to within one passage. A file with so few passages that this leaves a part
empty is an error (a cut by question would share passages between the parts). A warning says
once per language that the hold-out is in use. Scores on such a
hold-out are not comparable with the paper's dev-set numbers; languages with neither
labelled file (ar, bn, fi, id, te there) need the hub (``--hub``) or a labelled copy.

Paper-code option: ``sample_shots(..., unit="features")`` counts K *features* (windows)
as the paper's code does: it encodes the pool, draws K features with the seed, and returns
the examples they belong to. Training on those examples uses all their features, so this
gives at least K features (exactly K when no drawn example has several windows, which is
the common case for GoldP passages at 384 tokens), and at most K examples.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import torch

from .. import shots as shot_sampling
from ..data import DataFormatError, QAExample, read_squad_json
from ..metrics import squad_scores
from .base import Task
from .encoded import EncodedSet, predict_batches

SHOT_UNITS = ("examples", "features")

logger = logging.getLogger(__name__)

#: Hold-out fallback: shares of train.json's questions per role, in thousandths of the running
#: question count over hash-ordered passages.
HOLDOUT_SELECT = 200    # [0, 200): selection set
HOLDOUT_EVAL = 400      # [200, 400): evaluation set; the rest: training part
HOLDOUT_ROLES = ("select", "eval", "train")


def _holdout_hash(key: str) -> str:
    return hashlib.sha256(f"tydiqa-holdout:{key}".encode("utf-8")).hexdigest()



def holdout_roles(examples: Sequence[QAExample]) -> list[str] | None:
    """``"select"``, ``"eval"`` or ``"train"`` for each question of a train.json in the hold-out
    fallback, cut by passage (see the module docs): questions with the same context always get the
    same role. None when the file has too few passages to give every role at least one."""
    sizes: dict[str, int] = {}
    for ex in examples:
        sizes[ex.context] = sizes.get(ex.context, 0) + 1
    total = len(examples)
    role_of: dict[str, str] = {}
    done = 0
    for context in sorted(sizes, key=lambda c: (_holdout_hash(c), c)):
        n = sizes[context]
        midpoint = (2 * done + n) * 1000  # 2 * 1000 * (questions before + half of this passage's)
        role_of[context] = ("select" if midpoint < 2 * total * HOLDOUT_SELECT
                            else "eval" if midpoint < 2 * total * HOLDOUT_EVAL else "train")
        done += n
    if set(role_of.values()) != set(HOLDOUT_ROLES):
        return None
    return [role_of[ex.context] for ex in examples]


class TyDiQATask(Task):
    name = "tydiqa"
    task_dir = "tydiqa"
    ext = "json"
    metrics = ("f1", "exact_match")
    labels = None

    max_query_length = 64
    n_best = 20
    max_answer_length = 30

    def __init__(self):
        self._feature_map_cache: dict[tuple, list[int]] = {}
        self._warned_holdout: set[str] = set()

    def read_file(self, path, lang: str, split: str) -> list[QAExample]:
        return read_squad_json(path, lang=lang, split=split, task_dir=self.task_dir)

    # --- splits that need gold answers --------------------------------------------------------

    @staticmethod
    def require_gold(examples: Sequence[QAExample], what: str) -> list[QAExample]:
        missing = [ex for ex in examples if not ex.has_gold]
        if missing:
            raise DataFormatError(
                f"{what}: {len(missing)} of {len(examples)} questions have no gold answer "
                f"(e.g. {missing[0].uid}, id {missing[0].qid!r}): the file's answers are empty placeholders, "
                f"so it cannot be trained or scored on"
            )
        return list(examples)

    def holdout(self, lang, data_dir, hub=False) -> dict[str, list[QAExample]] | None:
        """The hold-out fallback's parts of ``train.json`` (see the module docs), or None when
        the language's dev file has gold answers (or there is no labelled train file to use)."""
        if hub or not self.has_split(lang, "dev", data_dir) or not self.has_split(lang, "train", data_dir):
            return None
        if any(ex.has_gold for ex in self.read_split(lang, "dev", data_dir)):
            return None
        train = self.read_split(lang, "train", data_dir)
        if not all(ex.has_gold for ex in train):
            return None
        roles = holdout_roles(train)
        if roles is None:
            raise DataFormatError(
                f"tydiqa/{lang}: train.json stands in for the unlabelled dev.json, but its {len(train)} questions "
                f"sit on {len({ex.context for ex in train})} passages: too few to give the selection, evaluation "
                "and training parts a passage each (a cut by question would put one passage in several parts)")
        parts: dict[str, list[QAExample]] = {role: [] for role in HOLDOUT_ROLES}
        for ex, role in zip(train, roles):
            parts[role].append(ex)
        if lang not in self._warned_holdout:
            self._warned_holdout.add(lang)
            passages = {role: len({ex.context for ex in part}) for role, part in parts.items()}
            logger.warning(
                "tydiqa/%s: dev.json has no gold answers (placeholders only); using a fixed hold-out of "
                "train.json instead, cut by passage: %d questions (%d passages) to select on, %d (%d) to "
                "evaluate on, %d (%d) to train / draw shots from",
                lang, len(parts["select"]), passages["select"], len(parts["eval"]), passages["eval"],
                len(parts["train"]), passages["train"])
        return parts

    def source_train(self, lang, data_dir, hub=False):
        parts = self.holdout(lang, data_dir, hub)
        if parts is not None:
            return list(parts["train"])
        return self.require_gold(super().source_train(lang, data_dir, hub), f"tydiqa/{lang}/train")

    def source_dev(self, lang, data_dir, hub=False):
        return self.target_dev(lang, data_dir, hub)

    def shot_pool(self, lang, data_dir, hub=False):
        parts = self.holdout(lang, data_dir, hub)
        if parts is not None:
            return "train", list(parts["train"])
        split, pool = super().shot_pool(lang, data_dir, hub)
        return split, self.require_gold(pool, f"tydiqa/{lang}/{split} (shot pool)")

    def target_dev(self, lang, data_dir, hub=False, exclude=frozenset()):
        parts = self.holdout(lang, data_dir, hub)
        if parts is not None:
            return self._without(parts["select"], exclude, f"tydiqa/{lang} selection set (train.json hold-out)")
        return self.require_gold(super().target_dev(lang, data_dir, hub, exclude), f"tydiqa/{lang} selection set")

    def eval_set(self, lang, data_dir, hub=False, exclude=frozenset()):
        parts = self.holdout(lang, data_dir, hub)
        if parts is not None:
            return self._without(parts["eval"], exclude, f"tydiqa/{lang} evaluation set (train.json hold-out)")
        return self.require_gold(super().eval_set(lang, data_dir, hub, exclude), f"tydiqa/{lang} evaluation set")

    # --- shots ------------------------------------------------------------------------------------

    def sample_shots(self, pool: Sequence[QAExample], k: int, seed: int, *, unit: str = "examples",
                     tokenizer=None, max_seq_length: int | None = None, doc_stride: int = 128) -> list[int]:
        """K examples (default, the paper's text), or the examples of K features (``unit="features"``,
        the paper's code; needs the ``tokenizer``). Deterministic in ``seed``."""
        if unit not in SHOT_UNITS:
            raise ValueError(f"unit must be one of {SHOT_UNITS}, got {unit!r}")
        key = shot_sampling.pool_key(self.name, pool)
        if unit == "examples":
            return shot_sampling.sample_k(len(pool), k, seed, key=key)
        if tokenizer is None:
            raise ValueError("sample_shots(unit='features') needs the tokenizer to count features")
        feature_to_example = self._feature_map(pool, tokenizer, max_seq_length or self.default_max_seq_length,
                                               doc_stride)
        chosen = shot_sampling.sample_k(len(feature_to_example), k, seed, key=key + "/features")
        return sorted({feature_to_example[f] for f in chosen})

    def _feature_map(self, pool, tokenizer, max_seq_length, doc_stride) -> list[int]:
        cache_key = (getattr(tokenizer, "name_or_path", ""), len(tokenizer), max_seq_length, doc_stride,
                     len(pool), pool[0].uid, pool[-1].uid)
        if cache_key not in self._feature_map_cache:
            encoded = self.encode(pool, tokenizer, max_seq_length, doc_stride)
            self._feature_map_cache[cache_key] = list(encoded.example_index)
        return self._feature_map_cache[cache_key]

    # --- model ------------------------------------------------------------------------------------

    def build_model(self, model_name_or_path: str):
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering.from_pretrained(model_name_or_path)

    def encode(self, examples: Sequence[QAExample], tokenizer, max_seq_length: int, doc_stride: int = 128,
               *, require_answers: bool = True) -> EncodedSet:
        """Doc-stride features; ``meta[i]["offsets"]`` maps feature ``i``'s tokens to context
        characters (``None`` outside the context), as ``run_qa.py``'s validation features do."""
        if tokenizer.padding_side != "right":
            raise ValueError("TyDiQA encoding assumes a tokenizer that pads on the right (question first)")
        if require_answers:
            self.require_gold(examples, "tydiqa.encode")
        if not examples:
            return EncodedSet([], [], tokenizer.pad_token_id)
        questions = self._cut_questions([ex.question.lstrip() for ex in examples], tokenizer, max_seq_length,
                                        doc_stride)
        enc = tokenizer(questions, [ex.context for ex in examples], truncation="only_second",
                        max_length=max_seq_length, stride=doc_stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, return_token_type_ids=False)
        sample_map = enc["overflow_to_sample_mapping"]
        features, example_index, meta = [], [], []
        for i, offsets in enumerate(enc["offset_mapping"]):
            input_ids = enc["input_ids"][i]
            sequence_ids = enc.sequence_ids(i)
            example = examples[sample_map[i]]
            cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
            start, end = _answer_positions(example, offsets, sequence_ids, cls_index)
            features.append({
                "input_ids": torch.tensor(input_ids, dtype=torch.long),
                "attention_mask": torch.tensor(enc["attention_mask"][i], dtype=torch.long),
                "start_positions": torch.tensor(start, dtype=torch.long),
                "end_positions": torch.tensor(end, dtype=torch.long),
            })
            example_index.append(sample_map[i])
            meta.append({"offsets": [tuple(o) if s == 1 else None for o, s in zip(offsets, sequence_ids)]})
        return EncodedSet(features, example_index, tokenizer.pad_token_id, meta)

    def _cut_questions(self, questions: list[str], tokenizer, max_seq_length: int, doc_stride: int) -> list[str]:
        """Cut questions longer than ``max_query_length`` tokens at that token's end, and check that
        every window leaves room for more than ``doc_stride`` context tokens."""
        enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True,
                        return_token_type_ids=False)
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        out = []
        for q, offsets in zip(questions, enc["offset_mapping"]):
            if len(offsets) > self.max_query_length:
                q = q[: offsets[self.max_query_length - 1][1]]
            room = max_seq_length - min(len(offsets), self.max_query_length) - specials
            if doc_stride >= room:
                raise ValueError(
                    f"doc_stride={doc_stride} must be smaller than the context room of a window "
                    f"({room} tokens = max_seq_length {max_seq_length} - question - {specials} special tokens)"
                )
            out.append(q)
        return out

    # --- prediction and evaluation ----------------------------------------------------------------

    def predict(self, model, examples: Sequence[QAExample], tokenizer, *, max_seq_length: int, batch_size: int,
                device, doc_stride: int = 128, progress: bool | None = None) -> dict[str, str]:
        """The predicted answer text of every example, keyed by uid."""
        encoded = self.encode(examples, tokenizer, max_seq_length, doc_stride, require_answers=False)
        best: list[tuple[float, str] | None] = [None] * len(examples)
        for indices, outputs in predict_batches(model, encoded, batch_size=batch_size, device=device,
                                                progress=progress, desc="eval tydiqa"):
            start_logits = outputs.start_logits.float().cpu().numpy()
            end_logits = outputs.end_logits.float().cpu().numpy()
            for row, f in enumerate(indices):
                e = encoded.example_index[f]
                candidate = self._best_span(start_logits[row], end_logits[row], encoded.meta[f]["offsets"],
                                            examples[e].context)
                if candidate is not None and (best[e] is None or candidate[0] > best[e][0]):
                    best[e] = candidate
        return {ex.uid: (b[1] if b is not None else "") for ex, b in zip(examples, best)}

    def _best_span(self, start_logits: np.ndarray, end_logits: np.ndarray, offsets: list, context: str):
        """``(score, text)`` of the best valid span of one feature, or None."""
        n = len(offsets)
        start_indexes = np.argsort(start_logits[:n])[::-1][: self.n_best]
        end_indexes = np.argsort(end_logits[:n])[::-1][: self.n_best]
        best = None
        for s in start_indexes:
            if offsets[s] is None:
                continue
            for e in end_indexes:
                if offsets[e] is None or e < s or e - s + 1 > self.max_answer_length:
                    continue
                score = float(start_logits[s] + end_logits[e])
                if best is None or score > best[0]:
                    best = (score, context[offsets[s][0]: offsets[e][1]])
        return best

    def evaluate(self, model, examples: Sequence[QAExample], tokenizer, *, max_seq_length: int, batch_size: int,
                 device, doc_stride: int = 128, progress: bool | None = None) -> dict[str, float]:
        if not examples:
            raise ValueError("tydiqa: no examples to evaluate")
        self.require_gold(examples, "tydiqa.evaluate")
        predictions = self.predict(model, examples, tokenizer, max_seq_length=max_seq_length,
                                   batch_size=batch_size, device=device, doc_stride=doc_stride, progress=progress)
        references = {ex.uid: [a.text for a in ex.answers] for ex in examples}
        return squad_scores(predictions, references)


def _answer_positions(example: QAExample, offsets, sequence_ids, cls_index: int) -> tuple[int, int]:
    """Token start/end of the first gold answer in one feature, or (cls, cls) if it is not inside."""
    if not example.answers:
        return cls_index, cls_index
    answer = example.answers[0]
    start_char, end_char = answer.start, answer.start + len(answer.text)
    token_start = 0
    while sequence_ids[token_start] != 1:
        token_start += 1
    token_end = len(sequence_ids) - 1
    while sequence_ids[token_end] != 1:
        token_end -= 1
    if not (offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char):
        return cls_index, cls_index
    # As run_qa.py, but both scans stay inside the context: run_qa's start scan can run on
    # into the trailing special tokens (offsets (0, 0)) when the answer starts inside the
    # last context token, giving start > end on a special token.
    first, last = token_start, token_end
    while token_start <= last and offsets[token_start][0] <= start_char:
        token_start += 1
    while token_end >= first and offsets[token_end][1] >= end_char:
        token_end -= 1
    return token_start - 1, token_end + 1
