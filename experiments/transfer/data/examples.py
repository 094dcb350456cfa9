"""The example types every reader returns, and the error they raise on bad input.

Every example has a ``uid`` that is unique across task, language and split, of the form
``<task dir>/<lang>/<split>/<position>`` (for instance ``udpos/hi/dev/17``, the 18th
sentence of the Hindi UD dev file); examples loaded from the Hugging Face hub get the
prefix ``hub:``. The position is used rather than a file's own ids because some files
reuse ids (TyDiQA's ``train.json`` numbers questions per article, so ``"0"`` occurs
hundreds of times); a question's own id is kept in ``QAExample.qid``.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class DataFormatError(ValueError):
    """A data file (or directory) is malformed or missing; the message says where."""


def _not_utf8(path, line_no: int, column: int, byte: int) -> DataFormatError:
    return DataFormatError(f"{path}:{line_no}: not valid UTF-8 (byte {byte:#04x} at column {column})")


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file; bytes that are not UTF-8 are an error naming
    file, line and column (not a bare UnicodeDecodeError at a byte offset)."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _not_utf8(path, line_no, err.start + 1, raw[err.start]) from None


def read_text(path: str | Path) -> str:
    """A whole UTF-8 file, with the same error as :func:`text_lines` for bad bytes."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        raise _not_utf8(path, data.count(b"\n", 0, err.start) + 1, err.start - line_start + 1,
                        data[err.start]) from None


def make_uid(task_dir: str, lang: str, split: str, position: int, *, hub: bool = False) -> str:
    """The uid of the ``position``-th (0-based) example of a split."""
    uid = f"{task_dir}/{lang}/{split}/{position}"
    return f"hub:{uid}" if hub else uid


@dataclass(frozen=True)
class TaggingExample:
    """One sentence of a tagging task (PAN-X NER or UD POS): words and one tag per word."""

    uid: str
    lang: str
    tokens: tuple[str, ...]
    tags: tuple[str, ...]

    def __post_init__(self):
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{self.uid}: {len(self.tokens)} tokens but {len(self.tags)} tags")


@dataclass(frozen=True)
class NLIExample:
    """One XNLI premise/hypothesis pair with its label (entailment/neutral/contradiction)."""

    uid: str
    lang: str
    premise: str
    hypothesis: str
    label: str


@dataclass(frozen=True)
class Answer:
    """A gold answer span: its text and the character offset where it starts in the context."""

    text: str
    start: int


@dataclass(frozen=True)
class QAExample:
    """One extractive-QA question (TyDiQA-GoldP, SQuAD v1.1 layout).

    ``answers`` is empty when the file holds no gold answer for the question (the
    placeholder ``{"text": "", "answer_start": 0}`` that unlabelled files carry);
    ``has_gold`` says whether it can be trained or scored on.
    """

    uid: str
    lang: str
    qid: str
    question: str
    context: str
    answers: tuple[Answer, ...] = field(default=())
    title: str = ""

    @property
    def has_gold(self) -> bool:
        return len(self.answers) > 0


#: Any of the example types above.
Example = TaggingExample | NLIExample | QAExample


def content_key(example: Example) -> tuple:
    """What makes two examples the same item whatever their uids: a sentence's words, an NLI
    pair's two sentences, a question with its passage. WikiANN (PAN-X) repeats sentences
    across its splits, so a shot drawn from ``train`` can reappear in ``test``."""
    if isinstance(example, TaggingExample):
        return ("tagging", example.tokens)
    if isinstance(example, NLIExample):
        return ("nli", example.premise, example.hypothesis)
    if isinstance(example, QAExample):
        return ("qa", example.context, example.question)
    raise TypeError(f"content_key: not an example: {type(example).__name__}")
