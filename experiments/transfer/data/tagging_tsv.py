"""Reader for the XTREME tagging files (PAN-X NER and UD POS).

Format: one ``token<TAB>tag`` per line, a blank (or whitespace-only) line between
sentences. Lines may end in ``\\n`` or ``\\r\\n``.
"""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from .examples import DataFormatError, TaggingExample, make_uid, text_lines


def read_tagging_tsv(
    path: str | Path,
    *,
    task_dir: str,
    lang: str,
    split: str,
    labels: Collection[str] | None = None,
) -> list[TaggingExample]:
    """Read one ``token<TAB>tag`` file into sentences.

    Args:
        path: the file.
        task_dir, lang, split: name the examples (``uid = task_dir/lang/split/<i>``).
        labels: the allowed tags; a tag outside it is an error (None = accept any).

    Raises:
        DataFormatError: naming the file and line, for a line without exactly one tab,
            an empty token or tag, an unknown tag, or a file with no sentence at all.
    """
    path = Path(path)
    allowed = set(labels) if labels is not None else None
    examples: list[TaggingExample] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush():
        if tokens:
            uid = make_uid(task_dir, lang, split, len(examples))
            examples.append(TaggingExample(uid, lang, tuple(tokens), tuple(tags)))
            tokens.clear()
            tags.clear()

    for line_no, line in text_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            flush()
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            what = "no tab" if len(parts) == 1 else f"{len(parts) - 1} tabs"
            raise DataFormatError(
                f"{path}:{line_no}: expected 'token<TAB>tag', found {what}: {line[:80]!r}"
            )
        token, tag = parts[0], parts[1].strip()
        if not token.strip():
            raise DataFormatError(f"{path}:{line_no}: empty token in {line[:80]!r}")
        if not tag:
            raise DataFormatError(f"{path}:{line_no}: empty tag in {line[:80]!r}")
        if allowed is not None and tag not in allowed:
            raise DataFormatError(
                f"{path}:{line_no}: unknown tag {tag!r} (allowed: {', '.join(sorted(allowed))})"
            )
        tokens.append(token)
        tags.append(tag)
    flush()
    if not examples:
        raise DataFormatError(f"{path}: no sentences in the file (it is empty or only blank lines)")
    return examples
