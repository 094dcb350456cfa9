"""Where the local data files live: ``<data_dir>/<task dir>/<lang>/<split>.<ext>``.

Missing directories, languages or splits raise ``DataFormatError`` listing what *is*
available, so a typo in a language code or a wrong ``--data-dir`` is obvious.
"""
from __future__ import annotations

from pathlib import Path

from .examples import DataFormatError


def task_root(data_dir: str | Path, task_dir: str) -> Path:
    """``data_dir/task_dir``, which must exist and hold at least one language folder."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataFormatError(f"data directory {data_dir} does not exist")
    root = data_dir / task_dir
    if not root.is_dir():
        found = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
        raise DataFormatError(
            f"{data_dir} has no {task_dir!r} folder (found: {', '.join(found) or 'nothing'})"
        )
    return root


def available_languages(data_dir: str | Path, task_dir: str, ext: str) -> list[str]:
    """Language folders under ``data_dir/task_dir`` holding at least one non-empty ``*.ext`` file."""
    root = task_root(data_dir, task_dir)
    return sorted(
        p.name for p in root.iterdir()
        if p.is_dir() and any(f.stat().st_size > 0 for f in p.glob(f"*.{ext}"))
    )


def available_splits(data_dir: str | Path, task_dir: str, lang: str, ext: str) -> list[str]:
    """The splits (file stems) present for one language, e.g. ``["dev", "test", "train"]``."""
    folder = task_root(data_dir, task_dir) / lang
    if not folder.is_dir():
        return []
    return sorted(f.stem for f in folder.glob(f"*.{ext}"))


def split_file(data_dir: str | Path, task_dir: str, lang: str, split: str, ext: str) -> Path:
    """The path of one split's file; a clear error if the language or split is missing."""
    root = task_root(data_dir, task_dir)
    langs = available_languages(data_dir, task_dir, ext)
    if lang not in langs:
        raise DataFormatError(
            f"no {task_dir} data for language {lang!r} in {root} "
            f"(languages with data: {', '.join(langs) or 'none'})"
        )
    path = split_path(data_dir, task_dir, lang, split, ext)
    if not path.is_file():
        splits = available_splits(data_dir, task_dir, lang, ext)
        raise DataFormatError(
            f"no {split!r} split for {task_dir}/{lang}: {path} does not exist "
            f"(splits for {lang}: {', '.join(splits) or 'none'})"
        )
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty")
    return path


def split_path(data_dir: str | Path, task_dir: str, lang: str, split: str, ext: str) -> Path:
    """Where one split's file is (whether or not it exists)."""
    return Path(data_dir) / task_dir / lang / f"{split}.{ext}"


def has_split(data_dir: str | Path, task_dir: str, lang: str, split: str, ext: str) -> bool:
    """Whether ``split_file`` would find a non-empty file."""
    path = split_path(data_dir, task_dir, lang, split, ext)
    return path.is_file() and path.stat().st_size > 0


def split_exists(data_dir: str | Path, task_dir: str, lang: str, split: str, ext: str) -> bool:
    """Whether the split's file is there at all (an empty one counts: reading it is an error)."""
    return split_path(data_dir, task_dir, lang, split, ext).is_file()
