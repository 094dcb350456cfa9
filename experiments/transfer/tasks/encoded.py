"""``EncodedSet``: model-ready features of a list of examples, and batched inference over them."""
from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset

#: Padding value per key; keys not listed pad with 0.
_PAD_VALUES = {"labels": -100}


class EncodedSet(Dataset):
    """Features ready for ``model(**batch)``, one or more per example.

    Each item is a dict of tensors: 1-D ``input_ids``/``attention_mask`` (and 1-D
    token ``labels`` for tagging), 0-D ``labels`` for XNLI and 0-D
    ``start_positions``/``end_positions`` for QA. ``collate(items)`` pads the 1-D ones to
    the longest item (``input_ids`` with the tokenizer's pad id, ``labels`` with -100,
    the rest with 0) and stacks everything.

    ``example_index[i]`` is the position (in the encoded example list) of the example
    feature ``i`` came from; ``meta[i]`` holds what the task needs to map a feature's
    predictions back to its example (word positions for tagging, offsets for QA). It is
    never part of a batch.
    """

    def __init__(self, features: Sequence[dict[str, torch.Tensor]], example_index: Sequence[int],
                 pad_token_id: int, meta: Sequence[dict] | None = None):
        if len(features) != len(example_index):
            raise ValueError(f"{len(features)} features but {len(example_index)} example indices")
        if meta is not None and len(meta) != len(features):
            raise ValueError(f"{len(features)} features but {len(meta)} meta entries")
        self.features = list(features)
        self.example_index = list(example_index)
        self.pad_token_id = int(pad_token_id)
        self.meta = list(meta) if meta is not None else [{} for _ in self.features]

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.features[i]

    def lengths(self) -> list[int]:
        return [int(f["input_ids"].shape[0]) for f in self.features]

    def subset(self, indices: Sequence[int]) -> EncodedSet:
        """The features at ``indices`` (their ``example_index`` unchanged)."""
        return EncodedSet([self.features[i] for i in indices], [self.example_index[i] for i in indices],
                          self.pad_token_id, [self.meta[i] for i in indices])

    def collate(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        batch = {}
        for key in items[0]:
            values = [item[key] for item in items]
            if values[0].dim() == 0:
                batch[key] = torch.stack(values)
                continue
            pad = self.pad_token_id if key == "input_ids" else _PAD_VALUES.get(key, 0)
            width = max(v.shape[0] for v in values)
            out = torch.full((len(values), width), pad, dtype=values[0].dtype)
            for row, v in enumerate(values):
                out[row, : v.shape[0]] = v
            batch[key] = out
        return batch


def predict_batches(model: torch.nn.Module, encoded: EncodedSet, *, batch_size: int, device,
                    progress: bool | None = None, desc: str = "eval") -> Iterator[tuple[list[int], object]]:
    """Run ``model`` over ``encoded`` in eval mode under ``torch.no_grad()``.

    Features are batched in order of length (less padding); yields ``(feature indices,
    model outputs)`` per batch, outputs still on ``device``. The model must already be on
    ``device``; its train/eval mode is restored afterwards. ``progress=None`` shows a tqdm
    bar only when stderr is a terminal.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if progress is None:
        progress = sys.stderr.isatty()
    lengths = encoded.lengths()
    order = sorted(range(len(encoded)), key=lambda i: lengths[i])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            starts = range(0, len(order), batch_size)
            for start in tqdm(starts, desc=desc, disable=not progress, unit="batch"):
                indices = order[start:start + batch_size]
                batch = encoded.collate([encoded[i] for i in indices])
                batch = {k: v.to(device) for k, v in batch.items()}
                yield indices, model(**batch)
    finally:
        model.train(was_training)
