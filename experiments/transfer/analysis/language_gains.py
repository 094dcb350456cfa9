"""Which languages gain most and least from mixed training (Xu & Murray 2022, Tables 2 and 8).

Per task and K, the gain of a language is ``method - baseline`` (default
gradient-mix-train minus ord-FS) on the primary metric, paired by seed: the mean over
the seeds that both methods have of the per-seed difference (its sample sd beside it).
Languages are ranked by mean gain; the top ``top`` and bottom ``top`` are reported
(with fewer than ``2 * top`` languages the two lists overlap).
"""
from __future__ import annotations

from pathlib import Path

from ..results import atomic_write_json, atomic_write_text
from ..run_dir import RESULTS_FILE
from .common import csv_text, mean, primary_metric, pyplot, save_figure, scores_by_seed, sd
from .families import family_of


def gains(results: list[dict], *, task: str, k: int, method: str, baseline: str, metric: str) -> list[dict]:
    """Per language the paired gain of ``method`` over ``baseline``, ranked from largest to smallest."""
    ours = scores_by_seed(results, task=task, metric=metric, method=method, k=k)
    base = scores_by_seed(results, task=task, metric=metric, method=baseline, k=k)
    rows = []
    for lang in sorted(set(ours) & set(base)):
        seeds = sorted(set(ours[lang]) & set(base[lang]))
        if not seeds:
            continue
        diffs = [ours[lang][s] - base[lang][s] for s in seeds]
        rows.append({"task": task, "metric": metric, "k": k, "language": lang, "family": family_of(lang).family,
                     "method_mean": mean(ours[lang][s] for s in seeds),
                     "baseline_mean": mean(base[lang][s] for s in seeds),
                     "gain_mean": mean(diffs), "gain_sd": sd(diffs), "n_seeds": len(seeds), "seeds": seeds})
    rows.sort(key=lambda r: (-r["gain_mean"], r["language"]))
    for rank, r in enumerate(rows, start=1):
        r["rank"] = rank
    return rows


def ks_with_both(results: list[dict], task: str, method: str, baseline: str) -> list[int]:
    have = lambda m: {int(r["k"]) for r in results if r["task"] == task and r["method"] == m}  # noqa: E731
    return sorted(have(method) & have(baseline))


def plot(groups: dict[tuple[str, int], list[dict]], top: int, path: Path, method: str, baseline: str) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 0.28 * max(len(g) for g in groups.values()) + 2),
                             squeeze=False)
    for ax, ((task, k), rows) in zip(axes[0], sorted(groups.items())):
        rows = list(reversed(rows))  # largest gain on top
        n = len(rows)
        colours = []
        for r in rows:
            if r["rank"] <= top:
                colours.append("tab:green")
            elif r["rank"] > n - top:
                colours.append("tab:red")
            else:
                colours.append("tab:gray")
        ax.barh(range(n), [r["gain_mean"] for r in rows], color=colours,
                xerr=[r["gain_sd"] or 0.0 for r in rows], error_kw={"elinewidth": 0.7})
        ax.set_yticks(range(n), [r["language"] for r in rows], fontsize=7)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(f"{task}, K={k} ({rows[0]['metric']})")
        ax.set_xlabel(f"{method} - {baseline}")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Gain per language (green: top {top}, red: bottom {top}; error bar: sd over seeds)")
    fig.tight_layout()
    return save_figure(fig, path)


def run(results: list[dict], out_dir: Path, *, method: str = "gradient-mix-train", baseline: str = "ord-fs",
        top: int = 5, metric: str | None = None, ks=None) -> dict[str, Path]:
    """Write ``language_gains.{csv,json,png}``: every language's gain per task and K, and the top/bottom lists."""
    if top < 1:
        raise ValueError(f"--top must be >= 1, got {top}")
    groups = {}
    for task in sorted({r["task"] for r in results}):
        task_metric = metric or primary_metric(results, task)
        for k in ks_with_both(results, task, method, baseline):
            if ks is not None and k not in ks:
                continue
            rows = gains(results, task=task, k=k, method=method, baseline=baseline, metric=task_metric)
            if rows:
                groups[(task, k)] = rows
    if not groups:
        methods = sorted({r["method"] for r in results})
        raise ValueError(f"no task and K with scores of both {method} and {baseline} "
                         f"(methods in {RESULTS_FILE}: {', '.join(methods)})")
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / "language_gains.csv", "json": out_dir / "language_gains.json",
             "png": out_dir / "language_gains.png"}
    header = ["task", "metric", "k", "rank", "language", "family", "method_mean", "baseline_mean", "gain_mean",
              "gain_sd", "n_seeds", "group"]
    csv_rows = []
    for (task, k), rows in sorted(groups.items()):
        n = len(rows)
        for r in rows:
            group = "top" if r["rank"] <= top else ("bottom" if r["rank"] > n - top else "")
            csv_rows.append([r[c] for c in header[:-1]] + [group])
    atomic_write_text(paths["csv"], csv_text(header, csv_rows))
    atomic_write_json(paths["json"], {
        "method": method, "baseline": baseline, "top": top,
        "groups": [{"task": task, "k": k, "metric": rows[0]["metric"],
                    "top": [r["language"] for r in rows[:top]],
                    "bottom": [r["language"] for r in reversed(rows[-top:])],
                    "languages": rows}
                   for (task, k), rows in sorted(groups.items())],
    })
    plot(groups, top, paths["png"], method, baseline)
    return paths
