"""Overfitting of target-adapting (Xu & Murray 2022, Figure 3): the target dev score
per epoch of ord-FS+dev, and which languages peak at the first epoch.

ord-FS+dev fine-tunes a copy of the source model per target language on its K shots
and evaluates on that language's dev set once per epoch (``runs.jsonl``: one record per
language, ``job`` = the language, its ``curve`` holding ``{"kind": "dev", "step",
"value"}`` points). An epoch is ``step / steps_per_epoch``, where ``steps_per_epoch``
is the step of the job's first dev point (the runner evaluates every epoch).

Per task, K and language, the curve is averaged over seeds; a language *peaks at the
first epoch* when its averaged curve is highest at epoch 1 (the earliest epoch wins
ties). The per-seed peaks are counted too.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..results import atomic_write_json, atomic_write_text
from ..run_dir import RUNS_FILE
from .common import csv_text, mean, pyplot, save_figure, sd
from .families import order_languages


def dev_curves(runs: list[dict], method: str = "ord-fs-dev") -> list[dict]:
    """Rows ``{task, k, seed, language, epoch, step, score}`` of every dev point of ``method``'s jobs."""
    rows = []
    for run in runs:
        if run.get("method") != method:
            continue
        points = sorted((p for p in run.get("curve") or [] if p.get("kind") == "dev" and p.get("value") is not None),
                        key=lambda p: p["step"])
        if not points:
            continue
        per_epoch = int(points[0]["step"])
        if per_epoch < 1:
            raise ValueError(f"{RUNS_FILE} {run['task']}/{method}/k{run['k']}/seed{run['seed']}/{run.get('job')}: "
                             f"a dev point at step {per_epoch}")
        lang = run.get("job")
        for p in points:
            rows.append({"task": run["task"], "k": int(run["k"]), "seed": int(run["seed"]), "language": lang,
                         "epoch": p["step"] / per_epoch, "step": int(p["step"]), "score": float(p["value"])})
    if not rows:
        raise ValueError(f"{RUNS_FILE} has no dev curve of {method} (run it with --methods {method})")
    return rows


def _peak(curve: dict[float, float]) -> float:
    """The epoch of the highest score (the earliest on ties)."""
    best = max(curve.values())
    return min(epoch for epoch, score in curve.items() if score == best)


def summarize(rows: list[dict]) -> list[dict]:
    """Per (task, K, language): the mean curve over seeds, its peak epoch and the per-seed peaks."""
    by_seed = defaultdict(lambda: defaultdict(dict))  # (task, k, lang) -> seed -> epoch -> score
    for r in rows:
        by_seed[(r["task"], r["k"], r["language"])][r["seed"]][r["epoch"]] = r["score"]
    out = []
    for (task, k, lang), seeds in by_seed.items():
        epochs = sorted({e for curve in seeds.values() for e in curve})
        mean_curve = {e: mean([c[e] for c in seeds.values() if e in c]) for e in epochs}
        seed_peaks = {seed: _peak(curve) for seed, curve in seeds.items()}
        peak = _peak(mean_curve)
        first = epochs[0]
        out.append({
            "task": task, "k": k, "language": lang, "n_seeds": len(seeds),
            "epochs": epochs, "mean_curve": [mean_curve[e] for e in epochs],
            "sd_curve": [sd([c[e] for c in seeds.values() if e in c]) for e in epochs],
            "peak_epoch": peak, "peak_score": mean_curve[peak],
            "first_epoch_score": mean_curve[first], "last_epoch_score": mean_curve[epochs[-1]],
            "peaks_at_first_epoch": peak == first,
            "seeds_peaking_at_first_epoch": sum(1 for p in seed_peaks.values() if p == first),
            "seed_peak_epochs": {str(seed): p for seed, p in sorted(seed_peaks.items())},
        })
    ordered = []
    for task, k in sorted({(r["task"], r["k"]) for r in out}):
        group = {r["language"]: r for r in out if (r["task"], r["k"]) == (task, k)}
        ordered += [group[lang] for lang in order_languages(group)]
    return ordered


def plot(summary: list[dict], path: Path, method: str) -> Path:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    groups = sorted({(r["task"], r["k"]) for r in summary})
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.2), squeeze=False)
    for ax, (task, k) in zip(axes[0], groups):
        rows = [r for r in summary if (r["task"], r["k"]) == (task, k)]
        colours = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20")
        for i, r in enumerate(rows):
            style = "-" if r["peaks_at_first_epoch"] else "--"
            label = r["language"] + (" (peaks at epoch 1)" if r["peaks_at_first_epoch"] else "")
            ax.plot(r["epochs"], r["mean_curve"], style, color=colours(i % colours.N), marker="o", markersize=3,
                    linewidth=1.2, label=label)
            ax.plot([r["peak_epoch"]], [r["peak_score"]], marker="*", markersize=10, color=colours(i % colours.N))
        n_first = sum(r["peaks_at_first_epoch"] for r in rows)
        ax.set_title(f"{task}, K={k}: {n_first} of {len(rows)} languages peak at epoch 1")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("target dev score (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2 if len(rows) > 10 else 1)
    fig.suptitle(f"{method}: target dev score per epoch (star: peak)")
    fig.tight_layout()
    return save_figure(fig, path)


def run(runs: list[dict], out_dir: Path, *, method: str = "ord-fs-dev") -> dict[str, Path]:
    """Write ``overfitting.png``, ``overfitting.csv`` (every dev point) and ``overfitting.json`` (summary)."""
    rows = dev_curves(runs, method)
    summary = summarize(rows)
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / "overfitting.csv", "json": out_dir / "overfitting.json", "png": out_dir / "overfitting.png"}
    rows.sort(key=lambda r: (r["task"], r["k"], r["language"], r["seed"], r["epoch"]))
    atomic_write_text(paths["csv"], csv_text(["task", "k", "seed", "language", "epoch", "step", "score"],
                                             [[r[c] for c in ("task", "k", "seed", "language", "epoch", "step", "score")]
                                              for r in rows]))
    peaks = defaultdict(dict)
    for r in summary:
        peaks[r["task"]].setdefault(str(r["k"]), [])
        if r["peaks_at_first_epoch"]:
            peaks[r["task"]][str(r["k"])].append(r["language"])
    atomic_write_json(paths["json"], {"method": method, "peaks_at_first_epoch": peaks, "languages": summary})
    plot(summary, paths["png"], method)
    return paths
