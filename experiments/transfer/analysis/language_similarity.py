"""Transfer against language similarity (after Lauscher et al. 2020, "From Zero to Hero").

Per target language, two quantities from ``results.jsonl`` (primary metric):

- ``zero-shot``: the zero-shot score (mean over seeds);
- ``gain <method> K=<k>``: the method's score minus zero-shot, paired by seed (a
  seed's zero-shot model is the source model its target-adapting methods start from),
  mean over seeds; one quantity per method and K in the run.

The features of a language, as Lauscher et al. use them:

- its similarity to the source language under five lang2vec views of URIEL: the cosine
  similarity of the ``syntax_knn``, ``phonology_knn``, ``inventory_knn``, ``fam``
  (family-tree membership) and ``geo`` (distances to fixed points on the globe) vectors;
- ``size`` (their SIZE, the strongest predictor for high-level tasks): ln of the size in
  GiB of the language's part of the encoder's pretraining corpus, CC-100 for XLM-R
  (Conneau et al. 2020, Table 6; see ``cc100``). A language not in that table (Yoruba,
  Wolof) has no value and is left out of the fits, which say so.

Each quantity is correlated with each feature (``scipy.stats.pearsonr`` and
``spearmanr``, two-sided p-values). A leave-one-out linear meta-regression (least
squares with an intercept; each language predicted from a fit on all the others) then
predicts each quantity from features chosen by greedy forward selection, as Lauscher et
al. choose theirs: starting from the intercept alone, add the feature that lowers the
leave-one-out RMSE most, and stop when none lowers it. A fit of p features needs n > p + 2
languages (each leave-one-out fit keeps a residual degree of freedom): the selection
adds no more than that allows, and the fit of all features together is refused, with a
message naming n and p, when there are too few. The selected model's error is reported
beside that of predicting the mean of the others.

The URIEL vectors are read straight from the data files that the ``lang2vec`` package
(PyPI ``lang2vec==1.1.2``) installs; its own module is not imported, since it needs
``pkg_resources``, which recent setuptools no longer ship. Without lang2vec, give a
table of similarities with ``similarity_csv`` (columns ``language`` and any of the
feature names; ``size`` comes from the CC-100 table unless the table has it), or use
only ``size``.
"""
from __future__ import annotations

import csv
import importlib.metadata
import json
import logging
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..results import atomic_write_json, atomic_write_text
from ..run_dir import RESULTS_FILE
from . import cc100
from .common import csv_text, mean, primary_metric, pyplot, save_figure, scores_by_seed
from .families import family_of, order_languages

logger = logging.getLogger(__name__)

#: feature name -> (lang2vec file, source, feature-name prefix): lang2vec's FEATURE_SETS_DICT entries
LANG2VEC_SETS = {
    "syntax": ("feature_predictions.npz", "predicted", "S_"),       # syntax_knn
    "phonology": ("feature_predictions.npz", "predicted", "P_"),    # phonology_knn
    "inventory": ("feature_predictions.npz", "predicted", "INV_"),  # inventory_knn
    "family": ("family_features.npz", "FAM", ""),                   # fam
    "geography": ("geocoord_features.npz", "GEOCOORDS", ""),        # geo
}
#: the lang2vec similarities, then SIZE (ln of the target's CC-100 GiB)
FEATURES = (*LANG2VEC_SETS, "size")
SIZE_SOURCE = ("ln of the target language's CC-100 size in GiB (Conneau et al. 2020, "
               "'Unsupervised Cross-lingual Representation Learning at Scale', Appendix A, Table 6)")


# ----------------------------------------------------------------------------- lang2vec / URIEL


def lang2vec_data_dir() -> Path:
    # Found through the installed distribution, not find_spec("lang2vec"): the wheel also
    # installs a script bin/lang2vec.py, which shadows the package wherever bin/ is on sys.path
    # (as under the `pytest` entry point).
    try:
        files = importlib.metadata.files("lang2vec") or []
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError("lang2vec is not installed: `pip install lang2vec==1.1.2` (it ships the URIEL "
                                  "data), or give your own similarity table with --similarity-csv") from None
    marker = next((f for f in files if f.parts[-3:] == ("lang2vec", "data", "letter_codes.json")), None)
    folder = Path(marker.locate()).parent if marker is not None else None
    if folder is None or not (folder / "letter_codes.json").is_file():
        raise FileNotFoundError(f"{folder}: lang2vec's data files are missing (reinstall lang2vec==1.1.2)")
    return folder


@lru_cache(maxsize=1)
def _letter_codes() -> dict[str, str]:
    return json.loads((lang2vec_data_dir() / "letter_codes.json").read_text(encoding="utf-8"))


def iso639_3(lang: str) -> str:
    """lang2vec's code of ``lang`` (an ISO 639-1 code maps through its letter_codes.json)."""
    return _letter_codes().get(lang, lang)


def uriel_vectors(langs, feature: str) -> dict[str, np.ndarray]:
    """The URIEL vectors of ``langs`` for one of ``LANG2VEC_SETS`` (-1 marks a missing value).

    Reads the lang2vec data file once (the family file is large: keep calls few).
    """
    filename, source, prefix = LANG2VEC_SETS[feature]
    with np.load(lang2vec_data_dir() / filename) as db:
        codes = list(db["langs"])
        names = db["feats"]
        columns = [i for i, name in enumerate(names) if str(name).startswith(prefix)]
        source_index = int(np.flatnonzero(db["sources"] == source)[0])
        rows = {}
        for lang in langs:
            code = iso639_3(lang)
            if code not in codes:
                raise ValueError(f"language {lang!r} ({code}) is not in lang2vec's {filename}; give its "
                                 f"similarities with --similarity-csv")
            rows[lang] = codes.index(code)
        data = db["data"]
    return {lang: data[row, columns, source_index].astype(np.float64) for lang, row in rows.items()}


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    """Cosine over the entries both vectors have (URIEL marks missing ones with -1)."""
    keep = (u != -1) & (v != -1)
    u, v = u[keep], v[keep]
    norm = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(u @ v) / norm if norm > 0 else math.nan


def lang2vec_similarities(langs, source: str = "en", features=tuple(LANG2VEC_SETS)) -> dict[str, dict[str, float]]:
    """``{lang: {feature: cosine similarity to source}}`` from the URIEL vectors."""
    langs = list(langs)
    out = {lang: {} for lang in langs}
    for f in features:
        vectors = uriel_vectors([*langs, source], f)
        for lang in langs:
            out[lang][f] = cosine(vectors[lang], vectors[source])
    return out


def read_similarity_csv(path) -> dict[str, dict[str, float]]:
    """A user's table: a ``language`` column and one column per feature (numbers)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "language" not in reader.fieldnames:
            raise ValueError(f"{path}: line 1: the header needs a 'language' column (got {reader.fieldnames})")
        features = [f for f in reader.fieldnames if f != "language"]
        if not features:
            raise ValueError(f"{path}: line 1: no feature columns beside 'language'")
        out = {}
        for lineno, row in enumerate(reader, start=2):
            lang = (row.get("language") or "").strip()
            if not lang:
                raise ValueError(f"{path}: line {lineno}: empty language")
            values = {}
            for f in features:
                text = (row.get(f) or "").strip()
                try:
                    values[f] = float(text) if text else math.nan
                except ValueError:
                    raise ValueError(f"{path}: line {lineno}: {f} = {text!r} is not a number") from None
            out[lang] = values
    return out


# ----------------------------------------------------------------------------- statistics

#: what the forward selection minimises
CRITERION = "leave-one-out RMSE"


def _correlation(test, x, y) -> tuple[float, float]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or len(y) != len(x) or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan  # undefined (scipy would warn and give NaN)
    result = test(x, y)
    statistic, p = float(result.statistic), float(result.pvalue)
    return statistic, (p if len(x) >= 3 else math.nan)  # two points always lie on a line: no test


def pearson(x, y) -> tuple[float, float]:
    """``scipy.stats.pearsonr``: r and its two-sided p-value; NaN where undefined (constant
    input, fewer than two points) and a NaN p-value for two points."""
    from scipy.stats import pearsonr

    return _correlation(pearsonr, x, y)


def spearman(x, y) -> tuple[float, float]:
    """``scipy.stats.spearmanr``: rho (ties get average ranks) and its two-sided p-value
    (t distribution, n − 2 degrees of freedom); NaN where undefined, as ``pearson``."""
    from scipy.stats import spearmanr

    return _correlation(spearmanr, x, y)


def max_features(n: int) -> int:
    """The most features a leave-one-out fit with an intercept on ``n`` languages may have:
    n > p + 2, so each fit on n − 1 of them keeps at least one residual degree of freedom."""
    return n - 3


def check_enough(n: int, p: int) -> None:
    """Refuse (naming n and p) a leave-one-out fit of ``p`` features on ``n`` languages beyond
    :func:`max_features`."""
    if p > max_features(n):
        raise ValueError(f"too few languages for the features: n = {n} languages, p = {p} feature"
                         f"{'' if p == 1 else 's'}; a leave-one-out fit needs n > p + 2 (n ≥ {p + 3})")


def loo_regression(X: np.ndarray, y: np.ndarray) -> dict:
    """Leave-one-out least squares with an intercept: each row predicted from a fit on the others.

    Refuses (ValueError naming n and p) when n ≤ p + 2. ``X`` may have no columns (the
    intercept alone: each row predicted by the mean of the others). Returns the
    predictions, the mean-of-the-others baseline, their MAE/RMSE, the Pearson r of
    prediction against truth, and the coefficients of a fit on all rows.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    X = np.asarray(X, dtype=np.float64).reshape(n, -1)
    check_enough(n, X.shape[1])
    design = np.hstack([np.ones((n, 1)), X])
    predicted, baseline = np.empty(n), np.empty(n)
    for i in range(n):
        rest = np.arange(n) != i
        coef, *_ = np.linalg.lstsq(design[rest], y[rest], rcond=None)
        predicted[i] = design[i] @ coef
        baseline[i] = y[rest].mean()
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return {
        "predicted": predicted.tolist(), "mean_baseline": baseline.tolist(),
        "mae": float(np.abs(predicted - y).mean()), "rmse": float(np.sqrt(((predicted - y) ** 2).mean())),
        "baseline_mae": float(np.abs(baseline - y).mean()),
        "baseline_rmse": float(np.sqrt(((baseline - y) ** 2).mean())),
        "pearson_r": pearson(predicted, y)[0],
        "intercept": float(coef[0]), "coefficients": coef[1:].tolist(),
    }


def forward_selection(X: np.ndarray, y: np.ndarray, features) -> dict:
    """Greedy forward selection of columns of ``X`` (named ``features``), as Lauscher et al. do.

    Starts from the intercept alone; at each step adds the feature whose model has the
    lowest leave-one-out RMSE (``CRITERION``), if that is lower than the current model's;
    stops when no feature lowers it, when every feature is in, or when one more feature
    would leave too few languages (n ≤ p + 2). Ties go to the feature listed first.

    Returns ``{"criterion", "selected" (in the order added), "steps", "stopped", "fit"}``.
    Step 0 is the intercept alone; each later step holds the ``candidates`` tried
    (feature -> criterion of the current model plus it), the feature ``added`` (None on a
    last step that added nothing), the model's ``features`` after it and their
    ``loo_rmse``. ``fit`` is ``loo_regression`` of the selected model.
    """
    y = np.asarray(y, dtype=np.float64)
    n, features = len(y), list(features)
    X = np.asarray(X, dtype=np.float64).reshape(n, len(features))
    check_enough(n, 0)
    columns = {f: X[:, j] for j, f in enumerate(features)}

    def fit(chosen):
        return loo_regression(np.column_stack([columns[f] for f in chosen]) if chosen else np.empty((n, 0)), y)

    selected, current = [], fit([])
    steps = [{"step": 0, "added": None, "features": [], "loo_rmse": current["rmse"], "candidates": {}}]
    # below this the criterion only differs by rounding (an exact law is already fitted)
    tolerance = 1e-9 * max(float(np.abs(y - y.mean()).max()), np.finfo(np.float64).tiny)
    stopped = "every feature is in the model"
    while len(selected) < len(features):
        if len(selected) + 1 > max_features(n):
            stopped = (f"no room for another feature: n = {n} languages allow at most p = {max_features(n)} "
                       f"(a leave-one-out fit needs n > p + 2)")
            break
        remaining = [f for f in features if f not in selected]
        trials = {f: fit([*selected, f]) for f in remaining}
        candidates = {f: trials[f]["rmse"] for f in remaining}
        best = min(remaining, key=lambda f: candidates[f])  # min keeps the first of equals
        step = {"step": len(steps), "added": None, "features": list(selected), "loo_rmse": current["rmse"],
                "candidates": candidates}
        if not candidates[best] < current["rmse"] - tolerance:
            steps.append(step)
            stopped = f"no feature lowers the {CRITERION} below {current['rmse']:.6g}"
            break
        selected.append(best)
        current = trials[best]
        steps.append({**step, "added": best, "features": list(selected), "loo_rmse": current["rmse"]})
    return {"criterion": CRITERION, "selected": selected, "steps": steps, "stopped": stopped, "fit": current}


# ----------------------------------------------------------------------------- quantities


def quantities(results: list[dict], *, task: str, metric: str, methods=None, ks=None) -> dict[str, dict[str, float]]:
    """``{quantity name: {language: value}}``: zero-shot score and per-method, per-K gains over it."""
    zero = scores_by_seed(results, task=task, metric=metric, method="zero-shot", k=0)
    if not zero:
        raise ValueError(f"{RESULTS_FILE} has no zero-shot {task} scores (run with --methods zero-shot,...)")
    out = {"zero-shot": {lang: mean(seeds.values()) for lang, seeds in zero.items()}}
    pairs = sorted({(r["method"], int(r["k"])) for r in results if r["task"] == task and r["method"] != "zero-shot"})
    for method, k in pairs:
        if (methods is not None and method not in methods) or (ks is not None and k not in ks):
            continue
        scores = scores_by_seed(results, task=task, metric=metric, method=method, k=k)
        gains = {}
        for lang, seeds in scores.items():
            paired = [seeds[s] - zero[lang][s] for s in seeds if s in zero.get(lang, {})]
            if paired:
                gains[lang] = mean(paired)
        if gains:
            out[f"gain {method} K={k}"] = gains
    return out


def correlate(quants: dict[str, dict[str, float]], sims: dict[str, dict[str, float]], features) -> list[dict]:
    rows = []
    for name, values in quants.items():
        for f in features:
            langs = [lang for lang in values if lang in sims and math.isfinite(sims[lang].get(f, math.nan))]
            x = [sims[lang][f] for lang in langs]
            y = [values[lang] for lang in langs]
            r, p = pearson(x, y)
            rho, p_rho = spearman(x, y)
            rows.append({"quantity": name, "feature": f, "n": len(langs), "pearson_r": r, "pearson_p": p,
                         "spearman_rho": rho, "spearman_p": p_rho, "languages": langs})
    return rows


def regress(quants: dict[str, dict[str, float]], sims: dict[str, dict[str, float]], features) -> list[dict]:
    """Per quantity, the greedy forward selection over ``features`` and the fit of all of them.

    A language missing any of the features is left out of that quantity's fits (the
    criterion of different feature sets must be taken on the same languages), and the
    record names it (``dropped``: language -> its missing features); a warning says so. When
    there are too few languages (n ≤ p + 2) the fit of all features is replaced by the
    refusal's message (``all_features``: ``{"refused": ...}``), and with fewer than three
    languages the whole record is (``refused``).
    """
    features = list(features)
    out = []
    for name, values in quants.items():
        dropped = {lang: [f for f in features if not math.isfinite(sims.get(lang, {}).get(f, math.nan))]
                   for lang in values}
        dropped = {lang: missing for lang, missing in dropped.items() if missing}
        langs = [lang for lang in values if lang not in dropped]
        record = {"quantity": name, "features": features, "languages": langs, "dropped": dropped,
                  "actual": [values[lang] for lang in langs]}
        if dropped:
            logger.warning("%s: regression without %s (%s)", name, ", ".join(dropped),
                           "; ".join(f"{lang} has no {', '.join(m)}" for lang, m in dropped.items()))
        X = np.array([[sims[lang][f] for f in features] for lang in langs]).reshape(len(langs), len(features))
        y = np.array(record["actual"])
        try:
            selection = forward_selection(X, y, features)
        except ValueError as err:
            logger.warning("%s: no regression: %s", name, err)
            out.append({**record, "refused": str(err)})
            continue
        try:
            full = loo_regression(X, y)
        except ValueError as err:
            full = {"refused": f"all {len(features)} features together: {err}"}
        fit = selection.pop("fit")
        out.append({**record, "selection": selection, "selected": selection["selected"], **fit,
                    "all_features": full})
    return out


# ----------------------------------------------------------------------------- outputs


def axis_label(feature: str) -> str:
    return "ln CC-100 size of the target (GiB)" if feature == "size" else f"{feature} similarity to source"


def plot(quants, sims, correlations, features, path: Path, task: str, regression=()) -> Path:
    plt = pyplot()
    names = list(quants)
    fig, axes = plt.subplots(len(names), len(features), figsize=(3.2 * len(features), 2.8 * len(names)),
                             squeeze=False)
    stats = {(c["quantity"], c["feature"]): c for c in correlations}
    chosen = {g["quantity"]: g.get("selected") for g in regression}
    for row, name in enumerate(names):
        for col, f in enumerate(features):
            ax = axes[row][col]
            c = stats[(name, f)]
            xs = [sims[lang][f] for lang in c["languages"]]
            ys = [quants[name][lang] for lang in c["languages"]]
            ax.scatter(xs, ys, s=14)
            for x, y, lang in zip(xs, ys, c["languages"]):
                ax.annotate(lang, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            ax.set_title(f"r={c['pearson_r']:.2f}  rho={c['spearman_rho']:.2f}  n={c['n']}", fontsize=8)
            if row == len(names) - 1:
                ax.set_xlabel(axis_label(f), fontsize=8)
            if col == 0:
                selected = chosen.get(name)
                picked = ("" if selected is None else
                          f"\nselected: {', '.join(selected) if selected else '(none: the mean)'}")
                ax.set_ylabel(name + picked, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    fig.suptitle(f"{task}: transfer against similarity to the source language and pretraining size\n"
                 f"(selected: greedy forward selection on the {CRITERION})")
    fig.tight_layout()
    return save_figure(fig, path)


def language_features(langs, *, source: str, features, similarity_csv=None) -> tuple[dict, str]:
    """``({language: {feature: value}}, where they come from)``: the lang2vec similarities (or
    the user's table) and ``size``, ln of the CC-100 size in GiB (``cc100``), unless the
    table has a ``size`` column. A language the CC-100 table lacks gets NaN (missing)."""
    features = list(features)
    if similarity_csv:
        table = read_similarity_csv(similarity_csv)
        missing = [f for f in features if f != "size" and not any(f in row for row in table.values())]
        if missing:
            raise ValueError(f"{similarity_csv}: no column for {', '.join(missing)}")
        sims = {lang: dict(row) for lang, row in table.items()}
        origin = str(similarity_csv)
        own_size = any("size" in row for row in table.values())
    else:
        uriel = [f for f in features if f in LANG2VEC_SETS]
        sims = lang2vec_similarities(langs, source=source, features=uriel) if uriel else {lang: {} for lang in langs}
        origin = "lang2vec 1.1.2 URIEL vectors (cosine similarity to the source)" if uriel else ""
        own_size = False
    if "size" in features and not own_size:
        for lang in langs:
            sims.setdefault(lang, {})["size"] = cc100.log_size(lang)
        origin = "; ".join(filter(None, [origin, f"size: {SIZE_SOURCE}"]))
    return sims, origin


def run(results: list[dict], out_dir: Path, *, source: str = "en", task: str | None = None, metric: str | None = None,
        methods=None, ks=None, features=FEATURES, similarity_csv=None) -> dict[str, Path]:
    """Write ``language_similarity_<task>.{csv,json,png}`` plus the feature table, the
    regression rows and the forward selection's steps."""
    tasks = sorted({r["task"] for r in results})
    task = task or (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise ValueError(f"--task: {RESULTS_FILE} holds several tasks ({', '.join(tasks)}); choose one")
    metric = metric or primary_metric(results, task)
    features = list(features)
    quants = quantities(results, task=task, metric=metric, methods=methods, ks=ks)
    langs = order_languages({lang for values in quants.values() for lang in values})
    sims, origin = language_features(langs, source=source, features=features, similarity_csv=similarity_csv)
    correlations = correlate(quants, sims, features)
    regression = regress(quants, sims, features)

    out_dir = Path(out_dir)
    stem = f"language_similarity_{task}"
    paths = {"csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.json", "png": out_dir / f"{stem}.png",
             "features": out_dir / f"{stem}_features.csv", "regression": out_dir / f"{stem}_regression.csv",
             "selection": out_dir / f"{stem}_selection.csv"}
    header = ["quantity", "feature", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p"]
    atomic_write_text(paths["csv"], csv_text(header, [[c[h] for h in header] for c in correlations]))
    corpus = ["cc100_tokens_millions", "cc100_gib"] if "size" in features else []
    atomic_write_text(paths["features"], csv_text(
        ["language", "family_name", *features, *corpus],
        [[lang, family_of(lang).family, *[sims.get(lang, {}).get(f) for f in features],
          *([cc100.cc100_tokens_millions(lang), cc100.cc100_gib(lang)] if corpus else [])] for lang in langs]))
    fitted = [g for g in regression if "refused" not in g]
    atomic_write_text(paths["regression"], csv_text(
        ["quantity", "language", "actual", "predicted_loo", "mean_of_others", "selected_features"],
        [[g["quantity"], lang, a, p, b, "+".join(g["selected"])] for g in fitted
         for lang, a, p, b in zip(g["languages"], g["actual"], g["predicted"], g["mean_baseline"])]))
    atomic_write_text(paths["selection"], csv_text(
        ["quantity", "n", "step", "candidate", "model_features", "loo_rmse", "added"],
        [row for g in fitted for row in selection_rows(g)]))
    atomic_write_json(paths["json"], {
        "task": task, "metric": metric, "source": source, "similarity": origin, "features": features,
        "criterion": CRITERION,
        "quantities": quants, "similarities": {lang: sims.get(lang) for lang in langs},
        "correlations": correlations, "regression": regression,
        "note": "p-values from scipy.stats.pearsonr / spearmanr; with few languages they mean little",
    })
    plot(quants, sims, correlations, features, paths["png"], task, regression)
    return paths


def selection_rows(g: dict) -> list[list]:
    """One row per model the forward selection tried: step 0 the intercept alone, then
    every candidate of every step (``added`` marks the one taken)."""
    n = len(g["languages"])
    steps = g["selection"]["steps"]
    rows = [[g["quantity"], n, 0, "", "", steps[0]["loo_rmse"], False]]
    for step in steps[1:]:
        before = [f for f in step["features"] if f != step["added"]]
        for candidate, value in step["candidates"].items():
            rows.append([g["quantity"], n, step["step"], candidate, "+".join([*before, candidate]), value,
                         candidate == step["added"]])
    return rows
