"""Realistic gradient lists: the parameter shapes of transformer encoders.

A gradient list is one tensor per parameter, so a benchmark over "100M
parameters" must use the shapes a real model has: one huge embedding matrix,
many square attention matrices, and hundreds of small bias and LayerNorm
vectors.  Every size here is a RoBERTa/XLM-R encoder (the model family of the
paper) built from its config, parameter by parameter, in the order
``transformers.XLMRobertaModel(config).named_parameters()`` yields them;
``tests/test_benchmark_variants.py`` checks the XLM-R shapes against
transformers itself.

    >>> shapes = model_shapes("xlmr-base")
    >>> shapes[0], num_params(shapes)
    (('embeddings.word_embeddings.weight', (250002, 768)), 278043648)
"""
from dataclasses import dataclass
from math import prod
from typing import Dict, List, Sequence, Tuple

Shape = Tuple[int, ...]
NamedShape = Tuple[str, Shape]


@dataclass(frozen=True)
class EncoderConfig:
    """The fields of a RoBERTa-style config that decide the parameter shapes."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    pooler: bool = True


# XLM-R base and large as in their published config.json files (the hub is not
# needed: these numbers are all that decide the shapes).  The two synthetic
# sizes are smaller encoders of the same structure.
CONFIGS: Dict[str, EncoderConfig] = {
    "1M": EncoderConfig(vocab_size=4000, hidden_size=128, num_hidden_layers=2, intermediate_size=512),
    "10M": EncoderConfig(vocab_size=20000, hidden_size=256, num_hidden_layers=6, intermediate_size=1024),
    "100M": EncoderConfig(vocab_size=20000, hidden_size=768, num_hidden_layers=12, intermediate_size=3072),
    "xlmr-base": EncoderConfig(vocab_size=250002, hidden_size=768, num_hidden_layers=12, intermediate_size=3072),
    "xlmr-large": EncoderConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, intermediate_size=4096),
}

# Which sizes a run covers unless --sizes says otherwise.
QUICK_SIZES = ["1M", "10M"]
FULL_SIZES = ["10M", "100M", "xlmr-base", "xlmr-large"]


def encoder_shapes(cfg: EncoderConfig) -> List[NamedShape]:
    """(name, shape) of every parameter of an XLMRobertaModel with this config."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    shapes: List[NamedShape] = [
        ("embeddings.word_embeddings.weight", (cfg.vocab_size, h)),
        ("embeddings.token_type_embeddings.weight", (cfg.type_vocab_size, h)),
        ("embeddings.LayerNorm.weight", (h,)),
        ("embeddings.LayerNorm.bias", (h,)),
        ("embeddings.position_embeddings.weight", (cfg.max_position_embeddings, h)),
    ]
    for layer in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{layer}."
        for proj in ("query", "key", "value"):
            shapes += [(f"{p}attention.self.{proj}.weight", (h, h)), (f"{p}attention.self.{proj}.bias", (h,))]
        shapes += [
            (f"{p}attention.output.dense.weight", (h, h)),
            (f"{p}attention.output.dense.bias", (h,)),
            (f"{p}attention.output.LayerNorm.weight", (h,)),
            (f"{p}attention.output.LayerNorm.bias", (h,)),
            (f"{p}intermediate.dense.weight", (i, h)),
            (f"{p}intermediate.dense.bias", (i,)),
            (f"{p}output.dense.weight", (h, i)),
            (f"{p}output.dense.bias", (h,)),
            (f"{p}output.LayerNorm.weight", (h,)),
            (f"{p}output.LayerNorm.bias", (h,)),
        ]
    if cfg.pooler:
        shapes += [("pooler.dense.weight", (h, h)), ("pooler.dense.bias", (h,))]
    return shapes


def model_shapes(size: str) -> List[NamedShape]:
    """The named parameter shapes of one of the sizes in ``CONFIGS``."""
    if size not in CONFIGS:
        raise ValueError(f"unknown benchmark size {size!r}; choose from {', '.join(CONFIGS)}")
    return encoder_shapes(CONFIGS[size])


def num_params(shapes: Sequence[NamedShape]) -> int:
    return sum(prod(shape) for _, shape in shapes)


def parse_sizes(text: str) -> List[str]:
    """``"10M,xlmr-base"`` -> ``["10M", "xlmr-base"]``, rejecting unknown names."""
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    if not sizes:
        raise ValueError("no sizes given; choose from " + ", ".join(CONFIGS))
    for s in sizes:
        model_shapes(s)
    return sizes
