"""Reports from a run's records: Table-1-style summary, per-language table, surgery
statistics, training curves. Everything is recomputed from ``results.jsonl``,
``runs.jsonl`` and the source models' ``train_result.json``, so a report can be
rebuilt at any time (``run.py --report-only``) and always matches the records.

Files written (atomically) into the output dir:

- ``summary.md`` / ``summary.csv``: per task, metric, method and K, the mean ± sd
  over seeds of the score averaged over the target languages (Table 1 of the paper);
  summary.md also names the languages ``--targets all`` skipped (``data_files.json``);
- ``per_language.md`` / ``per_language.csv``: mean ± sd over seeds per language;
- ``surgery_stats.md`` / ``surgery_stats.csv``: per method, K and oracle language,
  how often the oracle ran, how often the gradients conflicted (negative dot
  product), how often the gradient was projected, the mean cosine between the
  step's gradient and the oracle gradient before surgery;
- ``curves.csv`` and ``curves_<task>.png``: training loss, dev score and (with
  surgery) the gradient cosine against the optimizer step.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

from . import run_dir as D
from .config import METHODS
from .results import ResultStore, atomic_path, atomic_write_text, read_data_record, read_json, role_of, select_records
from .tables import csv_text, markdown_table, mean_sd, pyplot

#: row order of the tables: K, then the paper's method order (variants after their method)
_METHOD_ORDER = {name: i for i, name in enumerate(METHODS)}


def method_rank(method: str) -> tuple:
    if method in _METHOD_ORDER:
        return (_METHOD_ORDER[method], method)
    stem = "gradient-mix-train" if method.startswith("gradient") else "naive-mix-train"
    return (_METHOD_ORDER.get(stem, len(METHODS)) + 0.5, method)


def fmt(mean: float, sd: float | None) -> str:
    return f"{mean:.2f}" if sd is None else f"{mean:.2f} ± {sd:.2f}"


# ----------------------------------------------------------------------------- score tables

#: The two language averages of Table 1. The paper's averages include the source language
#: (its K = 0 row: NER 64.56 is the mean over all 48 languages with English; the targets
#: alone give 64.13); the targets-only average is what a user of the targets sees.
AVERAGES = (("incl. source (paper)", ("target", "source")), ("targets only", ("target",)))

#: The comparisons that matter, as (method, baseline): each reported as the per-seed paired
#: difference of the averaged score.
PAIRS = (("gradient-mix-train", "naive-mix-train"), ("gradient-mix-train", "ord-fs"),
         ("naive-mix-train", "ord-fs"))

#: Detecting a true paired difference of DETECT points with a two-sided 5% test at 80% power
#: needs about ((z_0.975 + z_0.8) * sd / DETECT)^2 seeds (normal approximation).
DETECT = 1.0
_Z_SUM = 1.959964 + 0.841621


def seed_averages(results: list[dict], roles: tuple[str, ...], checkpoint: str = "selected") -> dict:
    """``{(task, metric, method, k): {seed: (average over languages, n_languages)}}``.

    A seed enters an average that includes the source only if it has a source score."""
    by_cell = defaultdict(dict)  # (task, metric, method, k) -> seed -> {lang: value}
    has_source = set()
    for r in select_records(results, checkpoint=checkpoint, roles=roles):
        key = (r["task"], r["metric"], r["method"], int(r["k"]))
        by_cell[key].setdefault(int(r["seed"]), {})[r["language"]] = r["value"]
        if role_of(r) == "source":
            has_source.add((*key, int(r["seed"])))
    out = {}
    for key, seeds in by_cell.items():
        kept = {seed: (statistics.fmean(langs.values()), len(langs)) for seed, langs in sorted(seeds.items())
                if "source" not in roles or (*key, seed) in has_source}
        if kept:
            out[key] = kept
    return out


def summarize(results: list[dict], roles: tuple[str, ...] = ("target",), checkpoint: str = "selected") -> list[dict]:
    """Table 1: per (task, metric, method, K) the mean ± sd over seeds of the language average.

    A seed's value is the mean over the languages of ``roles`` it has scores for;
    ``n_languages`` is the number of languages in the average (the smallest over seeds).
    """
    rows = []
    for (task, metric, method, k), seeds in seed_averages(results, roles, checkpoint).items():
        per_seed = [avg for avg, _ in seeds.values()]
        mean, sd = mean_sd(per_seed)
        rows.append({"task": task, "metric": metric, "method": method, "k": k, "mean": mean, "sd": sd,
                     "n_seeds": len(per_seed), "n_languages": min(n for _, n in seeds.values())})
    rows.sort(key=lambda r: (r["task"], r["metric"], r["k"], method_rank(r["method"])))
    return rows


def t_quantile_975(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def paired_differences(results: list[dict], roles: tuple[str, ...] = ("target",),
                       pairs=PAIRS, checkpoint: str = "selected") -> list[dict]:
    """Per (task, metric, K, pair): the per-seed differences method − baseline of the
    language-averaged score, over the seeds both have; mean, sd, 95% t-interval, and the
    seeds a +DETECT difference would need (from this sd)."""
    averages = seed_averages(results, roles, checkpoint)
    rows = []
    cells = sorted({(t, m, k) for t, m, _, k in averages})
    for task, metric, k in cells:
        for method, baseline in pairs:
            a, b = averages.get((task, metric, method, k)), averages.get((task, metric, baseline, k))
            if not a or not b:
                continue
            seeds = sorted(set(a) & set(b))
            if not seeds:
                continue
            rows.append({"task": task, "metric": metric, "k": k, "method": method, "baseline": baseline,
                         **paired_stats([a[s][0] - b[s][0] for s in seeds], seeds)})
    return rows


def paired_stats(diffs: list[float], seeds: list[int]) -> dict:
    """Mean, sd, 95% t-interval of per-seed differences, and the seeds a +DETECT one would need."""
    mean, sd = mean_sd(diffs)
    half = t_quantile_975(len(diffs) - 1) * sd / math.sqrt(len(diffs)) if sd is not None else None
    return {"mean": mean, "sd": sd, "n_seeds": len(diffs), "diffs": diffs, "seeds": seeds,
            "ci_low": None if half is None else mean - half, "ci_high": None if half is None else mean + half,
            "seeds_to_detect": None if not sd else max(2, math.ceil((_Z_SUM * sd / DETECT) ** 2))}


def reading(r: dict) -> str:
    """What a paired difference's interval says."""
    if r["ci_low"] is None:
        return "–"
    if r["ci_low"] <= 0 <= r["ci_high"]:
        return "inside the noise"
    return "method better" if r["ci_low"] > 0 else "baseline better"


#: the checkpoint ``--selection average`` scores beside the average (and "last"), for the
#: methods whose rule selects on the English dev set
RULE_CHECKPOINT = "source-dev"


def checkpoint_differences(results: list[dict], other: str, roles: tuple[str, ...] = ("target",)) -> list[dict]:
    """Per (task, metric, method, K): the per-seed paired difference selected − ``other``
    checkpoint (the same trainings scored twice), as :func:`paired_differences`."""
    selected, alternative = seed_averages(results, roles), seed_averages(results, roles, other)
    rows = []
    for key in sorted(set(selected) & set(alternative), key=lambda c: (c[0], c[1], c[3], method_rank(c[2]))):
        seeds = sorted(set(selected[key]) & set(alternative[key]))
        if seeds:
            task, metric, method, k = key
            rows.append({"task": task, "metric": metric, "k": k, "method": method, "checkpoint": other,
                         **paired_stats([selected[key][s][0] - alternative[key][s][0] for s in seeds], seeds)})
    return rows


def _fmt_opt(value, spec=".2f") -> str:
    return "–" if value is None else format(value, spec)


def _difference_cells(r: dict) -> list[str]:
    """A paired difference's mean, sd, 95% CI, number of seeds and per-seed values, as table cells."""
    return [f"{r['mean']:+.2f}", _fmt_opt(r["sd"]),
            "–" if r["ci_low"] is None else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
            str(r["n_seeds"]), ", ".join(f"{d:+.2f}" for d in r["diffs"])]


def paired_markdown(results: list[dict]) -> str:
    """The paired differences for both averages, one row per task, metric, K and pair."""
    table = []
    for label, roles in AVERAGES:
        for r in paired_differences(results, roles):
            table.append([r["task"], r["metric"], label, str(r["k"]), f"{r['method']} − {r['baseline']}",
                          *_difference_cells(r), _fmt_opt(r["seeds_to_detect"], "d"), reading(r)])
    if not table:
        return "(no pair of compared methods with common seeds)\n"
    header = ["task", "metric", "average", "K", "difference", "mean", "sd", "95% CI", "seeds", "per seed",
              f"seeds for +{DETECT:g} (80% power)", "reading"]
    return (markdown_table(header, table) + "\nPaired over seeds (the same shots and seed for both methods): "
            "per seed, the method's language-averaged score minus the baseline's. 95% CI: mean ± "
            "t(0.975, n−1)·sd/√n. The seeds column for a +1 point effect is ((1.96 + 0.84)·sd / 1)², "
            "from this run's sd.\n")


def last_checkpoint_markdown(results: list[dict]) -> str:
    """Selected against last checkpoint, for the methods that select (targets only)."""
    selected = {(r["task"], r["metric"], r["method"], r["k"]): r for r in summarize(results)}
    table = []
    for r in summarize(results, checkpoint="last"):
        s = selected.get((r["task"], r["metric"], r["method"], r["k"]))
        if s is None:
            continue
        table.append([r["task"], r["metric"], str(r["k"]), r["method"], fmt(s["mean"], s["sd"]),
                      fmt(r["mean"], r["sd"]), f"{s['mean'] - r['mean']:+.2f}"])
    if not table:
        return "(no method selected a checkpoint)\n"
    return markdown_table(["task", "metric", "K", "method", "selected", "last", "selected − last"], table)


def averaging_markdown(results: list[dict]) -> str:
    """``--selection average``: the averaged model against the rule's checkpoint (selected on
    the English dev set) and the last one, paired over seeds, both averages; empty without it."""
    averaged = {(r["task"], r["method"], int(r["k"])) for r in results if r.get("selection") == "average"}
    table = []
    for label, roles in AVERAGES:
        for other in (RULE_CHECKPOINT, "last"):
            for r in checkpoint_differences(results, other, roles):
                if (r["task"], r["method"], r["k"]) not in averaged:
                    continue
                table.append([r["task"], r["metric"], label, str(r["k"]), r["method"], f"average − {other}",
                              *_difference_cells(r), reading(r).replace("method", "average").replace("baseline", other)])
        for r in paired_differences(results, roles, checkpoint=RULE_CHECKPOINT):  # the methods, as without it
            if (r["task"], r["method"], r["k"]) in averaged and (r["task"], r["baseline"], r["k"]) in averaged:
                table.append([r["task"], r["metric"], label, str(r["k"]), f"{r['method']} − {r['baseline']}",
                              f"at {RULE_CHECKPOINT}", *_difference_cells(r), reading(r)])
    if not table:
        return ""
    header = ["task", "metric", "average", "K", "method", "difference", "mean", "sd", "95% CI", "seeds",
              "per seed", "reading"]
    return ("\n## Checkpoint averaging (--selection average)\n\n" + markdown_table(header, table)
            + "\nThe same trainings scored at two checkpoints: the average of the parameters over the last "
            "half of the steps (the selected model of this run) minus the checkpoint the method's rule "
            f"keeps ({RULE_CHECKPOINT}: the best on the English dev set) or the last one; paired over seeds, "
            "95% t-interval as above. The rows \"at source-dev\" compare two methods at the rule's checkpoint: "
            "the paired differences above as a run without --selection average reports them.\n")


def summary_csv(results: list[dict]) -> str:
    """summary.csv: one row per score average (kind "score", per checkpoint and average) and per paired
    difference (kind "difference", method − baseline)."""
    header = ["kind", "task", "metric", "average", "checkpoint", "k", "method", "baseline", "mean", "sd",
              "n_seeds", "n_languages", "ci_low", "ci_high", "seeds_to_detect"]
    num = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    rows = []
    for label, roles in AVERAGES:
        for checkpoint in ("selected", "last", RULE_CHECKPOINT):
            for r in summarize(results, roles, checkpoint):
                rows.append(["score", r["task"], r["metric"], label, checkpoint, r["k"], r["method"], "",
                             num(r["mean"]), num(r["sd"]), r["n_seeds"], r["n_languages"], "", "", ""])
        for r in paired_differences(results, roles):
            rows.append(["difference", r["task"], r["metric"], label, "selected", r["k"], r["method"], r["baseline"],
                         num(r["mean"]), num(r["sd"]), r["n_seeds"], "", num(r["ci_low"]), num(r["ci_high"]),
                         "" if r["seeds_to_detect"] is None else r["seeds_to_detect"]])
    return csv_text(header, rows)


def per_language(results: list[dict]) -> list[dict]:
    """Per (task, metric, method, K, language): mean ± sd over seeds (selected checkpoints;
    the source language too, with ``role`` "source")."""
    groups = defaultdict(list)
    for r in select_records(results, roles=("target", "source")):
        groups[(r["task"], r["metric"], r["method"], int(r["k"]), r["language"], role_of(r))].append(r["value"])
    rows = []
    for (task, metric, method, k, lang, role), values in groups.items():
        mean, sd = mean_sd(values)
        rows.append({"task": task, "metric": metric, "method": method, "k": k, "language": lang, "role": role,
                     "mean": mean, "sd": sd, "n_seeds": len(values)})
    rows.sort(key=lambda r: (r["task"], r["metric"], r["k"], method_rank(r["method"]), r["language"]))
    return rows


def _metric_order(results, task):
    seen = []
    for r in results:
        if r["task"] == task and r["metric"] not in seen:
            seen.append(r["metric"])
    return seen


def summary_markdown(results: list[dict]) -> str:
    """Table 1 as Markdown: one row per K and method, one column per task, metric and average."""
    by_average = {label: {(r["task"], r["metric"], r["method"], r["k"]): r for r in summarize(results, roles)}
                  for label, roles in AVERAGES}
    rows = summarize(results)
    if not rows:
        return "(no results yet)\n"
    columns = [(t, m, label) for t in sorted({r["task"] for r in rows}) for m in _metric_order(results, t)
               for label, _ in AVERAGES]
    keys = sorted({(r["k"], r["method"]) for r in rows}, key=lambda km: (km[0], method_rank(km[1])))
    table = []
    for k, method in keys:
        line = [str(k), method]
        for task, metric, label in columns:
            r = by_average[label].get((task, metric, method, k))
            line.append(fmt(r["mean"], r["sd"]) + f" (n={r['n_seeds']})" if r else "–")
        table.append(line)
    header = ["K", "method"] + [f"{t} {m}, {label}" for t, m, label in columns]
    targets = sorted({r["language"] for r in select_records(results)})
    sources = sorted({r["language"] for r in select_records(results, roles=("source",))})
    note = (f"Mean ± sd over seeds (n = number of seeds) of the score averaged over the languages; scores in "
            f"percent. Targets: {', '.join(targets)}. \"incl. source (paper)\" also averages the source language "
            f"({', '.join(sources) or 'not evaluated in this run'}), as the paper's Table 1 does; the target-adapting "
            "methods count the source model's score there.\n")
    return markdown_table(header, table) + "\n" + note


def skipped_markdown(output_dir: str | Path) -> str:
    """``Skipped: th, yo (why)`` per reason, for the languages ``--targets all`` left out (as the
    run recorded them in ``data_files.json``); empty when it skipped none."""
    record = read_data_record(output_dir) or {}
    by_reason = defaultdict(list)
    for lang, reason in (record.get("skipped_targets") or {}).items():
        by_reason[reason].append(lang)
    return "".join(f"Skipped: {', '.join(sorted(langs))} ({reason}).\n" for reason, langs in sorted(by_reason.items()))


def per_language_markdown(results: list[dict]) -> str:
    rows = per_language(results)
    if not rows:
        return "(no results yet)\n"
    out = []
    for task in sorted({r["task"] for r in rows}):
        for metric in _metric_order(results, task):
            sub = [r for r in rows if r["task"] == task and r["metric"] == metric]
            targets = sorted({r["language"] for r in sub if r["role"] == "target"})
            sources = sorted({r["language"] for r in sub if r["role"] == "source"})
            keys = sorted({(r["k"], r["method"]) for r in sub}, key=lambda km: (km[0], method_rank(km[1])))
            cell = {(r["k"], r["method"], r["language"]): r for r in sub}
            table = []
            for k, method in keys:
                values = [cell.get((k, method, lang)) for lang in targets]
                present = [v["mean"] for v in values if v]
                table.append([str(k), method] + [fmt(v["mean"], v["sd"]) if v else "–" for v in values]
                             + [f"{statistics.fmean(present):.2f}" if present else "–"]
                             + [fmt(v["mean"], v["sd"]) if v else "–"
                                for v in (cell.get((k, method, lang)) for lang in sources)])
            header = ["K", "method", *targets, "targets avg", *(f"{lang} (source)" for lang in sources)]
            out.append(f"## {task} {metric}\n\n" + markdown_table(header, table))
    return "\n".join(out)


# ----------------------------------------------------------------------------- surgery statistics


_COUNTER_FIELDS = ("steps", "oracle_runs", "conflicts", "projections", "cos_sum", "cos_count")


def _counter_fields(counter: dict, where: str) -> dict:
    """One language's counters as written by ``train.counters_to_dict`` from
    ``sgs_ext.surgery.LanguageCounters`` (steps, oracle_runs, conflicts, projections,
    cos_sum, cos_count)."""
    missing = [name for name in _COUNTER_FIELDS if name not in counter]
    if missing:
        raise ValueError(f"{where}: surgery counters lack {', '.join(missing)}: {counter!r}")
    return {name: float(counter[name]) for name in _COUNTER_FIELDS}


def surgery_stats(runs: list[dict]) -> list[dict]:
    """Per (task, method, K, oracle language): counters summed over seeds and jobs."""
    groups = defaultdict(lambda: {**{name: 0.0 for name in _COUNTER_FIELDS}, "seeds": set()})
    for run in runs:
        counters = run.get("surgery_counters")
        if not counters:
            continue
        for lang, counter in counters.items():
            if not isinstance(counter, dict):
                continue
            g = groups[(run["task"], run["method"], int(run["k"]), lang)]
            where = f"{D.RUNS_FILE} {run['task']}/{run['method']}/k{run['k']}/seed{run['seed']}/{run.get('job')} {lang}"
            for name, value in _counter_fields(counter, where).items():
                g[name] += value
            g["seeds"].add(int(run["seed"]))
    rows = []
    for (task, method, k, lang), g in groups.items():
        runs_ = g["oracle_runs"]
        rows.append({
            "task": task, "method": method, "k": k, "language": lang, "n_seeds": len(g["seeds"]),
            "steps": int(g["steps"]), "oracle_runs": int(runs_), "conflicts": int(g["conflicts"]),
            "projections": int(g["projections"]),
            "conflict_rate": g["conflicts"] / runs_ if runs_ else math.nan,
            "mean_cos": g["cos_sum"] / g["cos_count"] if g["cos_count"] else math.nan,
        })
    rows.sort(key=lambda r: (r["task"], r["k"], method_rank(r["method"]), r["language"]))
    return rows


def surgery_markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no run with gradient surgery)\n"
    table = [[r["task"], str(r["k"]), r["method"], r["language"], str(r["n_seeds"]), str(r["oracle_runs"]),
              str(r["conflicts"]), str(r["projections"]),
              "–" if math.isnan(r["conflict_rate"]) else f"{100 * r['conflict_rate']:.1f}%",
              "–" if math.isnan(r["mean_cos"]) else f"{r['mean_cos']:.3f}"] for r in rows]
    header = ["task", "K", "method", "oracle language", "seeds", "oracle runs", "conflicts", "projections",
              "conflict rate", "mean cos(g_train, g_oracle)"]
    return (markdown_table(header, table) + "\nSummed over seeds. A conflict is a negative dot product "
            "between the step's gradient and the oracle's; with alpha < 1 a conflict is projected only "
            "when the alpha draw says so.\n")


# ----------------------------------------------------------------------------- curves


def curve_rows(runs: list[dict], source_results: list[dict]) -> list[dict]:
    rows = []
    for info in source_results:
        for point in info.get("curve", []):
            rows.append({"task": info["task"], "method": "source", "k": 0, "seed": info["seed"], "job": "source",
                         "step": point["step"], "kind": point["kind"], "value": point["value"], "language": ""})
    for run in runs:
        for point in run.get("curve", []):
            rows.append({"task": run["task"], "method": run["method"], "k": run["k"], "seed": run["seed"],
                         "job": run["job"], "step": point["step"], "kind": point["kind"], "value": point["value"],
                         "language": point.get("language") or ""})  # the oracle language of a "cos" point
    return rows


def plot_curves(rows: list[dict], path: Path, title: str) -> None:
    """Loss, dev score and (if any) gradient cosine against the step; a line per run
    (for the cosine, a line per run and oracle language, coloured by language)."""
    plt = pyplot()
    kinds = [k for k in ("loss", "dev", "cos") if any(r["kind"] == k for r in rows)]
    labels = {"loss": "training loss (per step)", "dev": "dev score (selection set)",
              "cos": "cos(g_train, g_oracle) before surgery"}
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False)
    methods = sorted({r["method"] for r in rows}, key=method_rank)
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    languages = sorted({r["language"] for r in rows if r["kind"] == "cos"})
    lang_colours = {lang: plt.get_cmap("Dark2")(i % 8) for i, lang in enumerate(languages)}
    series = defaultdict(list)
    for r in rows:
        if r["value"] is not None:
            series[(r["kind"], r["method"], r["k"], r["seed"], r["job"], r["language"] if r["kind"] == "cos" else "")
                   ].append((r["step"], r["value"]))
    for ax, kind in zip(axes[0], kinds):
        labelled = set()
        for (k_, method, k, seed, job, lang), points in sorted(series.items(), key=lambda kv: str(kv[0])):
            if k_ != kind:
                continue
            points.sort()
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            if kind in ("loss", "cos") and len(ys) > 20:  # smooth noisy per-step values
                window = max(1, len(ys) // 20)
                ys = [statistics.fmean(ys[max(0, i - window + 1): i + 1]) for i in range(len(ys))]
            label = f"{method} (K={k})" if method != "source" else "source model"
            colour = colours[method]
            if kind == "cos":
                label, colour = f"{label}: {lang}", lang_colours[lang]
            ax.plot(xs, ys, color=colour, alpha=0.8, linewidth=1.2,
                    marker="o" if kind == "dev" else None, markersize=3,
                    label=None if label in labelled else label)
            labelled.add(label)
        ax.set_title(labels[kind])
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- everything


def load_source_results(output_dir: Path) -> list[dict]:
    return [read_json(p) for p in D.source_info_paths(output_dir)]


def write_reports(output_dir: str | Path) -> dict[str, Path]:
    """(Re)write every report file from the records in ``output_dir``; returns their paths."""
    out = Path(output_dir)
    store = ResultStore(out)
    results, runs = store.results(), store.runs()
    paths = {}

    def emit(name, text):
        atomic_write_text(out / name, text)
        paths[name] = out / name

    skipped = skipped_markdown(out)
    emit("summary.md", "# Summary (Table 1 layout)\n\n" + summary_markdown(results) + (skipped and "\n" + skipped)
         + "\n## Paired differences over seeds\n\n" + paired_markdown(results)
         + "\n## Selected against last checkpoint (targets only)\n\n" + last_checkpoint_markdown(results)
         + averaging_markdown(results))
    emit("summary.csv", summary_csv(results))
    langs = per_language(results)
    emit("per_language.md", "# Scores per target language (mean ± sd over seeds)\n\n" + per_language_markdown(results))
    emit("per_language.csv", csv_text(["task", "metric", "method", "k", "language", "role", "mean", "sd",
                                        "n_seeds"],
                                       [[r[c] for c in ("task", "metric", "method", "k", "language", "role")]
                                        + [f"{r['mean']:.4f}", "" if r["sd"] is None else f"{r['sd']:.4f}",
                                           r["n_seeds"]] for r in langs]))
    stats = surgery_stats(runs)
    emit("surgery_stats.md", "# Gradient surgery statistics per oracle language\n\n" + surgery_markdown(stats))
    emit("surgery_stats.csv", csv_text(
        ["task", "method", "k", "language", "n_seeds", "steps", "oracle_runs", "conflicts", "projections",
         "conflict_rate", "mean_cos"],
        [[r[c] for c in ("task", "method", "k", "language", "n_seeds", "steps", "oracle_runs", "conflicts",
                         "projections")] + ["" if math.isnan(r["conflict_rate"]) else f"{r['conflict_rate']:.4f}",
                                            "" if math.isnan(r["mean_cos"]) else f"{r['mean_cos']:.4f}"]
         for r in stats]))
    curves = curve_rows(runs, load_source_results(out))
    emit("curves.csv", csv_text(["task", "method", "k", "seed", "job", "step", "kind", "language", "value"],
                                 [[r[c] for c in ("task", "method", "k", "seed", "job", "step", "kind", "language")]
                                  + ["" if r["value"] is None else r["value"]] for r in curves]))
    for task in sorted({r["task"] for r in curves}):
        name = f"curves_{task}.png"
        plot_curves([r for r in curves if r["task"] == task], out / name, f"{task}: training curves")
        paths[name] = out / name
    return paths
