"""One optimizer step of mixed training on a small transformer, with and without surgery.

The model is a token tagger (embeddings, a few ``nn.TransformerEncoderLayer``,
a linear head), the shape of the POS/NER models of the paper at a size that
trains on two CPU cores.  A step of each kind:

    plain          zero_grad; forward/backward on the mixed batch; optimizer step
    oracle_only    + forward/backward on the oracle batch (K shots of one
                   language) first, its gradients copied aside; no surgery
    surgery_<v>    oracle_only + surgery with variant <v> before the step

The surgery steps always project (the statistics' dot product is forced
negative), the most expensive case; the step with alpha < 1 or without a
conflict costs less.  Whole steps vary by a few percent from one to the next,
more than a fused surgery costs, so each step also times its surgery call
alone (``step.surgery_seconds``); the surgery's share of a step is that time
over the step's time.
"""
import time
from dataclasses import dataclass
from typing import Callable, Dict

import torch
from torch import nn

from benchmarks.variants import SURGERY_VARIANTS


@dataclass(frozen=True)
class StepConfig:
    vocab_size: int = 8000
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    ffn: int = 1024
    num_labels: int = 17
    seq_len: int = 64
    batch: int = 32  # the paper's batch size
    oracle_batch: int = 5  # K = 5 shots of one target language


QUICK_STEP = StepConfig(vocab_size=2000, hidden=128, layers=2, heads=2, ffn=512, seq_len=32, batch=8, oracle_batch=5)
FULL_STEP = StepConfig()


class Tagger(nn.Module):
    def __init__(self, cfg: StepConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position = nn.Embedding(cfg.seq_len, cfg.hidden)
        layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, cfg.ffn, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Linear(cfg.hidden, cfg.num_labels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.head(self.encoder(self.embed(tokens) + self.position(positions)))


STEP_KINDS = ["plain", "oracle_only"] + [f"surgery_{v}" for v in SURGERY_VARIANTS]


def make_step(kind: str, cfg: StepConfig, device: str = "cpu", seed: int = 0) -> Callable[[], None]:
    """A closure running one training step of ``kind`` (see the module docstring)."""
    if kind not in STEP_KINDS:
        raise ValueError(f"unknown step kind {kind!r}; choose from {STEP_KINDS}")
    torch.manual_seed(seed)
    model = Tagger(cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-5)
    gen = torch.Generator(device=device).manual_seed(seed)

    def batch(n):
        tokens = torch.randint(cfg.vocab_size, (n, cfg.seq_len), generator=gen, device=device)
        labels = torch.randint(cfg.num_labels, (n, cfg.seq_len), generator=gen, device=device)
        return tokens, labels

    train_batch, oracle_batch = batch(cfg.batch), batch(cfg.oracle_batch)
    loss_fn = nn.CrossEntropyLoss()
    oracle_grads = [torch.zeros_like(p) for p in params]
    variant = SURGERY_VARIANTS[kind[len("surgery_"):]] if kind.startswith("surgery_") else None

    def backward(tokens, labels):
        loss_fn(model(tokens).flatten(0, 1), labels.flatten()).backward()

    def step():
        optimizer.zero_grad(set_to_none=False)
        if kind != "plain":
            backward(*oracle_batch)
            torch._foreach_copy_(oracle_grads, [p.grad for p in params])
            optimizer.zero_grad(set_to_none=False)
        backward(*train_batch)
        if variant is not None:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            grads = [p.grad for p in params]
            stats = variant.dot_norm(grads, oracle_grads)
            forced = torch.stack([-stats[0].abs() - 1e-6, stats[1], stats[2]])  # always conflict
            variant.project_(grads, oracle_grads, forced)
            if device == "cuda":
                torch.cuda.synchronize()
            step.surgery_seconds.append(time.perf_counter() - start)
        optimizer.step()

    step.num_params = sum(p.numel() for p in params)
    step.surgery_seconds = []
    return step


def num_params(cfg: StepConfig) -> int:
    return sum(p.numel() for p in Tagger(cfg).parameters())


STEP_CONFIGS: Dict[str, StepConfig] = {"quick": QUICK_STEP, "full": FULL_STEP}
