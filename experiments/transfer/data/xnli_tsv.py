"""Reader for the XNLI files: ``premise<TAB>hypothesis<TAB>label`` per line, no header.

Labels are ``entailment``, ``neutral`` and ``contradiction``; the MultiNLI spelling
``contradictory`` (used by XTREME's English training file) is read as ``contradiction``.
"""
from __future__ import annotations

from pathlib import Path

from .examples import DataFormatError, NLIExample, make_uid, text_lines

XNLI_LABELS = ("entailment", "neutral", "contradiction")
_ALIASES = {"contradictory": "contradiction"}


def read_xnli_tsv(path: str | Path, *, lang: str, split: str, task_dir: str = "xnli") -> list[NLIExample]:
    """Read one XNLI file.

    Raises:
        DataFormatError: naming the file and line, for a line without exactly three
            tab-separated fields, an empty premise or hypothesis, an unknown label, or a
            file with no rows.
    """
    path = Path(path)
    examples: list[NLIExample] = []
    for line_no, line in text_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataFormatError(
                f"{path}:{line_no}: expected 'premise<TAB>hypothesis<TAB>label' (3 fields), "
                f"found {len(parts)}: {line[:80]!r}"
            )
        premise, hypothesis, label = parts[0].strip(), parts[1].strip(), parts[2].strip()
        label = _ALIASES.get(label, label)
        if label not in XNLI_LABELS:
            raise DataFormatError(
                f"{path}:{line_no}: unknown label {parts[2]!r} (allowed: {', '.join(XNLI_LABELS)})"
            )
        if not premise or not hypothesis:
            field_name = "premise" if not premise else "hypothesis"
            raise DataFormatError(f"{path}:{line_no}: empty {field_name}")
        uid = make_uid(task_dir, lang, split, len(examples))
        examples.append(NLIExample(uid, lang, premise, hypothesis, label))
    if not examples:
        raise DataFormatError(f"{path}: no examples in the file (it is empty or only blank lines)")
    return examples
