"""Tiny fixtures for the harness tests: a word-level tokenizer, a randomly initialised
XLM-R of a few thousand parameters, and XTREME-layout POS files for made-up languages.

The made-up languages share a grammar: every word of every language has one fixed
UPOS tag (word i of language L is tagged TAGS[i % len(TAGS)]), so a tiny model can
learn English in a few dozen steps and the shots of a target language teach it that
language's words.
"""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

TAGS = ("NOUN", "VERB", "ADJ", "DET", "ADP", "PRON")
WORDS_PER_LANGUAGE = 24
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def word(lang: str, i: int) -> str:
    return f"{lang}w{i}"


def tag_of(i: int) -> str:
    return TAGS[i % len(TAGS)]


def sentences(lang: str, n: int, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(f"{lang}:{seed}")
    out = []
    for _ in range(n):
        ids = [rng.randrange(WORDS_PER_LANGUAGE) for _ in range(rng.randint(3, 7))]
        out.append([(word(lang, i), tag_of(i)) for i in ids])
    return out


def write_tsv(path: Path, sents) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("".join(f"{w}\t{t}\n" for w, t in s) + "\n" for s in sents), encoding="utf-8")


#: language -> split -> number of sentences; "hh" has no train split (shots from dev, like UD Hindi)
POS_LAYOUT = {
    "en": {"train": 96, "dev": 24, "test": 16},
    "xx": {"train": 20, "dev": 16, "test": 16},
    "yy": {"train": 20, "dev": 16, "test": 16},
    "hh": {"dev": 24, "test": 16},
}


def write_pos_data(root: Path, layout=POS_LAYOUT) -> Path:
    """XTREME-layout UD POS files under ``root/udpos``; returns ``root``."""
    for lang, splits in layout.items():
        for seed, (split, n) in enumerate(sorted(splits.items())):
            write_tsv(root / "udpos" / lang / f"{split}.tsv", sentences(lang, n, seed))
    return root


def make_tokenizer(langs=("en", "xx", "yy", "hh", "zz")):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for lang in langs:
        for i in range(WORDS_PER_LANGUAGE):
            vocab[word(lang, i)] = len(vocab)
    vocab["<mask>"] = len(vocab)
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    backend.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>")


def tiny_config(vocab_size: int, **overrides):
    from transformers import XLMRobertaConfig

    settings = dict(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=80, pad_token_id=1, bos_token_id=0,
                    eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    settings.update(overrides)
    return XLMRobertaConfig(**settings)


def write_tiny_model(path: Path, seed: int = 0, **overrides) -> Path:
    """A randomly initialised tiny XLM-R encoder plus its tokenizer, saved to ``path``."""
    import torch
    from transformers import XLMRobertaModel

    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    model = XLMRobertaModel(tiny_config(len(tokenizer), **overrides), add_pooling_layer=False)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def single_thread():
    """A generator for an autouse fixture: tiny models run faster on one thread,
    especially on a shared, busy machine (OpenMP threads spin against each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: The harness's command-line entry point.
RUN_PY = Path(__file__).resolve().parents[2] / "experiments" / "run.py"


def load_run_script():
    """``experiments/run.py`` imported as a module (its ``main``, ``build_parser``, ...)."""
    spec = importlib.util.spec_from_file_location("run_script", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

