"""Build a directory exactly once and make it appear atomically.

The directory is built under a temporary name next to the target and renamed
into place when complete, so the target path either does not exist or holds a
finished build. A lock file serialises concurrent builders (the second one
waits, then reuses the result); temporary directories left by an interrupted
build are removed by the next build.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

DEFAULT_CACHE_ROOT = Path("~/.cache/sgs-ext/models")


def default_cache_root() -> Path:
    """``$SGS_CACHE_DIR`` if set, else ``~/.cache/sgs-ext/models``."""
    env = os.environ.get("SGS_CACHE_DIR")
    return Path(env).expanduser() if env else DEFAULT_CACHE_ROOT.expanduser()


def _chmod_like_umask(directory: Path) -> None:
    """mkdtemp makes a private (0700) directory; give it and its files the usual umask permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def build_atomically(
    target: str | Path,
    build: Callable[[Path], None],
    *,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda msg: None,
) -> Path:
    """Run ``build(tmp_dir)`` and rename ``tmp_dir`` to ``target``, unless ``target`` already exists.

    With ``overwrite`` an existing target is replaced (only after the new build succeeded).
    """
    target = Path(target).expanduser().absolute()
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with open(parent / f".{target.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process building {target} ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and not overwrite:
            return target
        for stale in parent.glob(f".{target.name}.tmp-*"):
            log(f"removing {stale} left by an interrupted build")
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        try:
            build(tmp)
            _chmod_like_umask(tmp)
            if target.exists():  # overwrite: swap the old build out only now
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-old-", dir=parent))
                os.rename(target, old / "previous")
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target
