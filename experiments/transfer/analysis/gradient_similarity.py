"""Gradient similarity between languages (Xu & Murray 2022, Figure 1).

For each checkpoint (by default the naive-mix-train and gradient-mix-train models of
one K, for every seed the run has), the gradient of the task loss is computed for

- the source language (English): the average of the gradients of ``source_batches``
  batches of ``batch_size`` training examples (a fixed sample drawn with the seed),
- every target language: one batch of its K shots (the run's shots for that K and
  seed, as the surgery's oracle uses them),

over every trainable parameter (the whole model, as the surgery's dot product; with
``--freeze-embeddings`` the word embedding is left out, as in training). The pairwise
dot products of all these gradients come from one call to ``sgs_ext.gram``; the cosine
of languages i and j is ``G[i, j] / sqrt(G[i, i] G[j, j])``.

As the paper averages over its seeds' checkpoints, each seed's checkpoint is measured
with that seed's batches and the cosine matrices are averaged over the seeds (the CSV
and JSON keep each seed's too). The paper averages 100 English batches; the number is
``n_source_batches`` (``analyze.py heatmap --source-batches``), shown in the title with the seeds.

The figure shows one heatmap per checkpoint, side by side on a shared colour scale,
languages ordered by family (the source first); cells with a negative cosine (the
conflicts the surgery removes) are hatched. The gradients are taken in eval mode
(dropout off) unless ``train_mode`` is set.
"""
from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import torch

from ..results import atomic_write_json, atomic_write_text
from .checkpoints import ModelSetup
from .common import csv_text, load_shots, pyplot, save_figure
from .families import family_of, order_languages

logger = logging.getLogger(__name__)


def source_batches(setup: ModelSetup, *, n_batches: int, batch_size: int, seed: int) -> list[dict]:
    """``n_batches`` batches of ``batch_size`` source training features (a fixed sample drawn with ``seed``)."""
    if n_batches < 1 or batch_size < 1:
        raise ValueError(f"need at least one source batch of at least one example (got {n_batches} x {batch_size})")
    examples = setup.task.source_train(setup.source, setup.data_dir)
    wanted = n_batches * batch_size
    if len(examples) > wanted:
        keep = sorted(random.Random(f"gradient-similarity:{seed}").sample(range(len(examples)), wanted))
        examples = [examples[i] for i in keep]
    encoded = setup.task.encode(examples, setup.tokenizer, setup.max_seq_length)
    features = [encoded[i] for i in range(min(len(encoded), wanted))]
    return [encoded.collate(features[start:start + batch_size]) for start in range(0, len(features), batch_size)]


def shot_batch(setup: ModelSetup, lang: str, *, k: int, seed: int) -> dict:
    """The K shots of ``lang`` as one batch (the surgery's oracle batch)."""
    shots = load_shots(setup.task, lang, k, seed, setup.data_dir, setup.manifest_path)
    encoded = setup.task.encode(shots, setup.tokenizer, setup.max_seq_length)
    return encoded.collate([encoded[i] for i in range(len(encoded))])


def language_batches(setup: ModelSetup, languages, *, k: int, seed: int, n_source_batches: int,
                     batch_size: int) -> dict[str, list[dict]]:
    """Per language, the batches whose average gradient represents it (source: sampled
    training batches; targets: their K shots)."""
    out = {}
    for lang in languages:
        if lang == setup.source:
            out[lang] = source_batches(setup, n_batches=n_source_batches, batch_size=batch_size, seed=seed)
        else:
            out[lang] = [shot_batch(setup, lang, k=k, seed=seed)]
    return out


def average_gradient(model: torch.nn.Module, batches: list[dict], params: list[torch.nn.Parameter],
                     device="cpu") -> list[torch.Tensor]:
    """The mean over ``batches`` of the gradient of each batch's loss, one tensor per parameter."""
    if not batches:
        raise ValueError("no batches to take a gradient of")
    model.zero_grad(set_to_none=True)
    for batch in batches:
        loss = model(**{key: value.to(device) for key, value in batch.items()}).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss.item()}")
        (loss / len(batches)).backward()
    grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    model.zero_grad(set_to_none=True)
    return grads


def cosine_from_gram(gram: torch.Tensor) -> torch.Tensor:
    """Cosines from a Gram matrix of dot products (NaN where a gradient is zero)."""
    gram = gram.double()
    norms = gram.diagonal().clamp_min(0).sqrt()
    denominator = torch.outer(norms, norms)
    return torch.where(denominator > 0, gram / denominator, torch.full_like(gram, math.nan))


def gradient_similarity(model: torch.nn.Module, batches: dict[str, list[dict]], *, device="cpu",
                        train_mode: bool = False, seed: int = 0) -> dict:
    """Gram matrix and cosines of the languages' gradients (in the order of ``batches``).

    Returns ``{"languages", "gram", "cosine", "norm"}`` (tensors in float64).
    """
    import sgs_ext

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    model.train(train_mode)
    torch.manual_seed(seed)  # dropout masks, if train_mode
    sets = [average_gradient(model, batches[lang], params, device) for lang in batches]
    model.eval()
    gram = sgs_ext.gram(sets).double().cpu()
    return {"languages": list(batches), "gram": gram, "cosine": cosine_from_gram(gram),
            "norm": gram.diagonal().clamp_min(0).sqrt()}


# ----------------------------------------------------------------------------- figure and files


def plot_heatmaps(panels: dict[str, torch.Tensor], languages: list[str], path: Path, title: str) -> Path:
    """One heatmap per checkpoint, shared colour scale, the diagonal greyed, negative cells hatched."""
    plt = pyplot()
    from matplotlib.patches import Rectangle

    n = len(languages)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    finite = [c[off_diagonal & torch.isfinite(c)].abs() for c in panels.values()]
    scale = max([float(v.max()) for v in finite if v.numel()] + [1e-6])
    size = max(3.5, 0.45 * n + 1.5)
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 1.0, size), squeeze=False)
    cmap = plt.get_cmap("RdBu_r")
    cmap = cmap.with_extremes(bad="#d9d9d9")
    image = None
    for ax, (name, cos) in zip(axes[0], panels.items()):
        shown = cos.clone()
        shown[~off_diagonal] = math.nan
        image = ax.imshow(shown.numpy(), cmap=cmap, vmin=-scale, vmax=scale)
        for i in range(n):
            for j in range(n):
                value = float(cos[i, j])
                if i != j and value < 0:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="0.35",
                                           linewidth=1.2))
                if n <= 16 and math.isfinite(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if i != j and abs(value) > 0.6 * scale else "black",
                            fontweight="bold" if value < 0 and i != j else "normal")
        ax.set_xticks(range(n), languages, fontsize=7, rotation=90 if n > 12 else 0)
        if ax is axes[0][0]:  # the family beside the language, once
            ax.set_yticks(range(n), [f"{lang} ({family_of(lang).family})" for lang in languages], fontsize=7)
        else:
            ax.set_yticks(range(n), languages, fontsize=7)
        ax.set_title(name)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="cosine of gradients (hatched: negative)")
    fig.suptitle(title, y=1.02)
    with plt.rc_context({"hatch.linewidth": 0.4}):
        return save_figure(fig, path)


def mean_over_seeds(per_seed: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Per checkpoint name, the element-wise mean over seeds of the cosine matrices (what the
    figure shows, as the paper averages its seeds' checkpoints), of the Gram matrices and of
    the gradient norms, with each seed's own result under ``per_seed``."""
    seeds = list(per_seed)
    if not seeds:
        raise ValueError("no seeds to average over")
    names = list(per_seed[seeds[0]])
    out = {}
    for name in names:
        results = [per_seed[seed][name] for seed in seeds]
        out[name] = {key: torch.stack([r[key] for r in results]).mean(dim=0) for key in ("cosine", "gram", "norm")}
        out[name]["per_seed"] = {seed: per_seed[seed][name] for seed in seeds}
    return out


def caption(meta: dict) -> str:
    """The figure's title: task, K, the seeds averaged over and the source batches."""
    seeds = meta["seeds"]
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean over {len(seeds)} seeds ({', '.join(map(str, seeds))})"
    batches = f"mean of {meta['source_batches']} batches of {meta['batch_size']}"
    if meta["source_batches"] != meta["source_batches_requested"]:
        batches += f" (of {meta['source_batches_requested']} asked for: the training set is smaller)"
    return (f"{meta['task']}: cosine of gradients, K={meta['k']}, {which}\n"
            f"{meta['source']}: {batches} per seed; targets: their K shots")


def write_outputs(out_dir: Path, stem: str, result: dict[str, dict], languages: list[str], meta: dict) -> dict[str, Path]:
    """``<stem>.png``, ``<stem>.csv`` (one row per checkpoint and language pair: the mean over
    seeds, then each seed's cosine) and ``<stem>.json``. ``result``: ``mean_over_seeds``'s."""
    out_dir = Path(out_dir)
    seeds = list(meta["seeds"])
    rows, panels = [], {}
    for name, r in result.items():
        panels[name] = r["cosine"]
        for i, a in enumerate(languages):
            for j, b in enumerate(languages):
                rows.append([name, a, b, float(r["cosine"][i, j]), float(r["gram"][i, j]),
                             *[float(r["per_seed"][seed]["cosine"][i, j]) for seed in seeds]])
    paths = {"csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.json", "png": out_dir / f"{stem}.png"}
    title = caption(meta)
    atomic_write_text(paths["csv"], csv_text(["checkpoint", "language_a", "language_b", "cosine", "dot",
                                              *[f"cosine_seed{seed}" for seed in seeds]], rows))
    atomic_write_json(paths["json"], {
        **meta,
        "title": title,
        "averaging": "cosine, dot and gradient_norm: element-wise mean over the seeds' matrices",
        "languages": languages,
        "families": {lang: family_of(lang).family for lang in languages},
        "panels": {
            name: {
                "cosine": r["cosine"].tolist(),
                "dot": r["gram"].tolist(),
                "gradient_norm": r["norm"].tolist(),
                "negative_pairs": [[a, b] for i, a in enumerate(languages) for j, b in enumerate(languages)
                                   if i < j and float(r["cosine"][i, j]) < 0],
                "per_seed": {str(seed): {"cosine": one["cosine"].tolist(), "dot": one["gram"].tolist(),
                                         "gradient_norm": one["norm"].tolist()}
                             for seed, one in r["per_seed"].items()},
            }
            for name, r in result.items()
        },
    })
    plot_heatmaps(panels, languages, paths["png"], title)
    return paths


def run(setup: ModelSetup, checkpoints: dict[int, dict[str, Path]], *, k: int, out_dir: Path,
        languages=None, n_source_batches: int = 8, batch_size: int = 32, train_mode: bool = False) -> dict[str, Path]:
    """The whole analysis: for each seed (``checkpoints``: seed -> {name: checkpoint}, the
    same names for every seed), load each checkpoint and compute the similarities from
    that seed's batches (its source sample and its K shots); average the matrices over
    the seeds; write PNG/CSV/JSON."""
    if not checkpoints:
        raise ValueError("no checkpoints")
    seeds = sorted(checkpoints)
    names = list(checkpoints[seeds[0]])
    for seed in seeds:
        if list(checkpoints[seed]) != names:
            raise ValueError(f"seed {seed} has the checkpoints {list(checkpoints[seed])}, seed {seeds[0]} {names}")
    langs = order_languages(languages or (setup.source, *setup.targets), first=setup.source)
    if len(langs) < 2:
        raise ValueError(f"need at least two languages, got {langs}")
    per_seed, n_batches = {}, None
    for seed in seeds:
        batches = language_batches(setup, langs, k=k, seed=seed, n_source_batches=n_source_batches,
                                   batch_size=batch_size)
        n_batches = len(batches.get(setup.source, []))
        per_seed[seed] = {}
        for name, path in checkpoints[seed].items():
            logger.info("seed %d: gradients of %s (%s) for %s", seed, name, path, ", ".join(langs))
            model = setup.load(path, seed=seed)
            per_seed[seed][name] = gradient_similarity(model, batches, device=setup.device, train_mode=train_mode,
                                                       seed=seed)
            del model
    meta = {"task": setup.task.name, "k": k, "seeds": seeds, "source": setup.source,
            "source_batches": n_batches, "source_batches_requested": n_source_batches, "batch_size": batch_size,
            "mode": "train (dropout on)" if train_mode else "eval (dropout off)",
            "checkpoints": {name: {str(seed): str(checkpoints[seed][name]) for seed in seeds} for name in names}}
    tag = f"seed{seeds[0]}" if len(seeds) == 1 else "seeds" + "-".join(map(str, seeds))
    stem = f"gradient_similarity_{setup.task.name}_k{k}_{tag}"
    return write_outputs(out_dir, stem, mean_over_seeds(per_seed), langs, meta)
