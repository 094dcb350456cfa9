"""Map the tensors of an E5S1 file onto Hugging Face's ``XLMRobertaModel`` layout.

The E5S1 file holds a BERT-layout encoder (positions counted from 0, two
token-type rows). ``XLMRobertaModel`` counts positions from ``pad_token_id + 1``
(= 2), so the position table gets two leading rows (zeros: row 1 is the padding
row, row 0 is never used) and the stored rows go to 2..max_positions+1. XLM-R
has a single token-type row; every input uses type 0, so only the first stored
row is kept. With those two changes both layouts compute identical outputs.
"""
from __future__ import annotations

import re

import numpy as np

from .e5s1_format import E5S1File, E5S1FormatError, E5S1Header


def position_offset(h: E5S1Header) -> int:
    """XLM-R position ids start at padding_idx + 1 (see create_position_ids_from_input_ids)."""
    return h.pad + 1


_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_NAME = re.compile(r"^l(\d+)\.([a-z]+)\.([wb])$")


def e5s1_shapes(h: E5S1Header) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor an E5S1 file of this header must hold, by E5S1 name."""
    H, F = h.hidden, h.ffn
    shapes = {
        "emb.word": (h.vocab, H),
        "emb.pos": (h.max_positions, H),
        "emb.type": (h.type_vocab, H),
        "emb.ln.w": (H,),
        "emb.ln.b": (H,),
    }
    out_in = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "aln": (H,), "fi": (F, H), "fo": (H, F), "oln": (H,)}
    for i in range(h.layers):
        for part, shape in out_in.items():
            if len(shape) == 2:  # Linear: weight [out, in] and bias [out]
                shapes[f"l{i}.{part}.w"] = shape
                shapes[f"l{i}.{part}.b"] = (shape[0],)
            else:  # LayerNorm: weight and bias [H]
                shapes[f"l{i}.{part}.w"] = shape
                shapes[f"l{i}.{part}.b"] = shape
    return shapes


def hf_name(e5s1_name: str) -> str:
    """The ``XLMRobertaModel`` state-dict key for an E5S1 tensor name."""
    if e5s1_name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[e5s1_name]
    m = _LAYER_NAME.match(e5s1_name)
    if m is None or m.group(2) not in _LAYER_PARTS:
        raise E5S1FormatError(f"unknown tensor name {e5s1_name!r} in E5S1 file (no XLM-R equivalent)")
    layer, part, kind = m.groups()
    return f"encoder.layer.{int(layer)}.{_LAYER_PARTS[part]}.{'weight' if kind == 'w' else 'bias'}"


def check_tensor_names(model: E5S1File) -> None:
    """Fail if the directory has a tensor we cannot map or lacks one the encoder needs."""
    expected = e5s1_shapes(model.header)
    unknown = [n for n in model.tensors if n not in expected]
    if unknown:
        for name in unknown:
            hf_name(name)  # raises with the name if it has no XLM-R equivalent at all
        raise E5S1FormatError(f"{model.source}: unknown tensor name(s) {unknown} for a "
                              f"{model.header.layers}-layer model")
    missing = [n for n in expected if n not in model.tensors]
    if missing:
        raise E5S1FormatError(f"{model.source}: missing tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")


def xlmr_state_dict(model: E5S1File, dtype: str = "float32") -> dict[str, np.ndarray]:
    """Dequantize every tensor and return an ``XLMRobertaModel`` state dict of numpy arrays."""
    check_tensor_names(model)
    h = model.header
    out: dict[str, np.ndarray] = {}
    for name, shape in e5s1_shapes(h).items():
        w = model.tensor(name, shape)
        if name == "emb.pos":
            table = np.zeros((h.max_positions + position_offset(h), h.hidden), dtype=np.float32)
            table[position_offset(h):] = w
            w = table
        elif name == "emb.type":
            w = np.ascontiguousarray(w[:1])
        out[hf_name(name)] = w.astype(dtype, copy=False)
    return out


def xlmr_config(h: E5S1Header) -> dict:
    """``config.json`` for an ``XLMRobertaModel`` with the shape given by the E5S1 header.

    ``dtype`` stays float32 even for float16-stored weights, so that
    ``from_pretrained`` loads (upcasts) them as float32 by default, which is what
    training on a CPU needs; pass ``dtype=torch.float16`` to keep them in half precision.
    """
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions + position_offset(h),
        "type_vocab_size": 1,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{h.layer_norm_eps:.7g}"),  # stored as float32: 1e-12 -> 9.99999996e-13
        "pad_token_id": h.pad,
        "bos_token_id": h.bos,
        "eos_token_id": h.eos,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "dtype": "float32",
    }
