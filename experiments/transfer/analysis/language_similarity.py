"""Transfer against language similarity (after Lauscher et al. 2020, "From Zero to Hero").

Per target language, two quantities from ``results.jsonl`` (primary metric):

- ``zero-shot``: the zero-shot score (mean over seeds);
- ``gain <method> K=<k>``: the method's score minus zero-shot, paired by seed (a
  seed's zero-shot model is the source model its target-adapting methods start from),
  mean over seeds; one quantity per method and K in the run.

Each is correlated (Pearson and Spearman, with two-sided p-values from the t
distribution with n − 2 degrees of freedom) with the language's similarity to the
source language under five lang2vec views of URIEL, as Lauscher et al. do: the
cosine similarity of the ``syntax_knn``, ``phonology_knn``, ``inventory_knn``, ``fam``
(family-tree membership) and ``geo`` (distances to fixed points on the globe) vectors.
A leave-one-out linear meta-regression predicts each quantity from the five
similarities together (least squares with an intercept, the minimum-norm solution when
there are fewer languages than features): each language is predicted from a fit on all
the others. Its error is reported beside that of predicting the mean of the others.

The URIEL vectors are read straight from the data files that the ``lang2vec`` package
(PyPI ``lang2vec==1.1.2``) installs; its own module is not imported, since it needs
``pkg_resources``, which recent setuptools no longer ship. Without lang2vec, give a
table of similarities with ``similarity_csv`` (columns ``language`` and any of the
feature names).
"""
from __future__ import annotations

import csv
import importlib.metadata
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..results import atomic_write_json, atomic_write_text
from ..run_dir import RESULTS_FILE
from .common import csv_text, mean, primary_metric, pyplot, save_figure, scores_by_seed
from .families import family_of, order_languages

#: feature name -> (lang2vec file, source, feature-name prefix): lang2vec's FEATURE_SETS_DICT entries
LANG2VEC_SETS = {
    "syntax": ("feature_predictions.npz", "predicted", "S_"),       # syntax_knn
    "phonology": ("feature_predictions.npz", "predicted", "P_"),    # phonology_knn
    "inventory": ("feature_predictions.npz", "predicted", "INV_"),  # inventory_knn
    "family": ("family_features.npz", "FAM", ""),                   # fam
    "geography": ("geocoord_features.npz", "GEOCOORDS", ""),        # geo
}
FEATURES = tuple(LANG2VEC_SETS)


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
    """The URIEL vectors of ``langs`` for one of ``FEATURES`` (-1 marks a missing value).

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


def lang2vec_similarities(langs, source: str = "en", features=FEATURES) -> dict[str, dict[str, float]]:
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


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x, y) -> tuple[float, float]:
    """Pearson's r and its two-sided p-value (t test, n − 2 degrees of freedom); NaN if undefined."""
    from scipy.stats import t as student_t

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    if n < 2 or len(y) != n:
        return math.nan, math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    if denominator == 0:
        return math.nan, math.nan
    r = max(-1.0, min(1.0, float(dx @ dy) / denominator))
    if n < 3:
        return r, math.nan
    if abs(r) == 1.0:
        return r, 0.0
    t = r * math.sqrt((n - 2) / (1 - r * r))
    return r, float(2 * student_t.sf(abs(t), n - 2))


def spearman(x, y) -> tuple[float, float]:
    """Spearman's rho (Pearson on average ranks) and its t-test p-value."""
    return pearson(rankdata(x), rankdata(y))


def loo_regression(X: np.ndarray, y: np.ndarray) -> dict:
    """Leave-one-out least squares with an intercept: each row predicted from a fit on the others.

    Returns the predictions, the mean-of-the-others baseline, their MAE/RMSE, the
    Pearson r of prediction against truth, and the coefficients of a fit on all rows.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 3:
        raise ValueError(f"leave-one-out regression needs at least 3 languages, got {n}")
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
        "underdetermined": bool(n - 1 < design.shape[1]),
    }


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
    out = []
    for name, values in quants.items():
        langs = [lang for lang in values if lang in sims
                 and all(math.isfinite(sims[lang].get(f, math.nan)) for f in features)]
        if len(langs) < 3:
            continue
        X = np.array([[sims[lang][f] for f in features] for lang in langs])
        y = np.array([values[lang] for lang in langs])
        out.append({"quantity": name, "features": list(features), "languages": langs, "actual": y.tolist(),
                    **loo_regression(X, y)})
    return out


# ----------------------------------------------------------------------------- outputs


def plot(quants, sims, correlations, features, path: Path, task: str) -> Path:
    plt = pyplot()
    names = list(quants)
    fig, axes = plt.subplots(len(names), len(features), figsize=(3.2 * len(features), 2.8 * len(names)),
                             squeeze=False)
    stats = {(c["quantity"], c["feature"]): c for c in correlations}
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
                ax.set_xlabel(f"{f} similarity to source", fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    fig.suptitle(f"{task}: transfer against similarity to the source language (lang2vec / URIEL)")
    fig.tight_layout()
    return save_figure(fig, path)


def run(results: list[dict], out_dir: Path, *, source: str = "en", task: str | None = None, metric: str | None = None,
        methods=None, ks=None, features=FEATURES, similarity_csv=None) -> dict[str, Path]:
    """Write ``language_similarity_<task>.{csv,json,png}`` plus the similarity table and the regression rows."""
    tasks = sorted({r["task"] for r in results})
    task = task or (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise ValueError(f"--task: {RESULTS_FILE} holds several tasks ({', '.join(tasks)}); choose one")
    metric = metric or primary_metric(results, task)
    quants = quantities(results, task=task, metric=metric, methods=methods, ks=ks)
    langs = order_languages({lang for values in quants.values() for lang in values})
    if similarity_csv:
        table = read_similarity_csv(similarity_csv)
        missing = [f for f in features if not any(f in row for row in table.values())]
        if missing:
            raise ValueError(f"{similarity_csv}: no column for {', '.join(missing)}")
        sims = table
        origin = str(similarity_csv)
    else:
        sims = lang2vec_similarities(langs, source=source, features=features)
        origin = "lang2vec 1.1.2 URIEL vectors (cosine similarity to the source)"
    correlations = correlate(quants, sims, features)
    regression = regress(quants, sims, features)

    out_dir = Path(out_dir)
    stem = f"language_similarity_{task}"
    paths = {"csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.json", "png": out_dir / f"{stem}.png",
             "features": out_dir / f"{stem}_features.csv", "regression": out_dir / f"{stem}_regression.csv"}
    header = ["quantity", "feature", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p"]
    atomic_write_text(paths["csv"], csv_text(header, [[c[h] for h in header] for c in correlations]))
    atomic_write_text(paths["features"], csv_text(
        ["language", "family_name", *features],
        [[lang, family_of(lang).family, *[sims.get(lang, {}).get(f) for f in features]] for lang in langs]))
    atomic_write_text(paths["regression"], csv_text(
        ["quantity", "language", "actual", "predicted_loo", "mean_of_others"],
        [[g["quantity"], lang, a, p, b] for g in regression
         for lang, a, p, b in zip(g["languages"], g["actual"], g["predicted"], g["mean_baseline"])]))
    atomic_write_json(paths["json"], {
        "task": task, "metric": metric, "source": source, "similarity": origin, "features": list(features),
        "quantities": quants, "similarities": {lang: sims.get(lang) for lang in langs},
        "correlations": correlations, "regression": regression,
        "note": "p-values from the t distribution; with few languages they mean little",
    })
    plot(quants, sims, correlations, features, paths["png"], task)
    return paths
