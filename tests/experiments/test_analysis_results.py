"""The analyses over a run's records: ``analyze.py gains``, ``overfitting`` and
``similarity``, on hand-made results.jsonl / runs.jsonl records in the harness's format,
checked against numbers computed by hand (and, for the statistics, against scipy)."""
import csv
import json
import math

import numpy as np
import pytest
import scipy.stats

import analyze
from transfer.analysis import language_similarity as S
from transfer.analysis.families import family_of, order_languages
from transfer.results import write_jsonl


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def score_records(table, task="pos"):
    """results.jsonl records from {(method, k, seed): {lang: f1}}; accuracy is f1 + 1 unless given."""
    out = []
    for (method, k, seed), langs in table.items():
        for lang, value in langs.items():
            f1, accuracy = value if isinstance(value, tuple) else (value, value + 1.0)
            for metric, v in (("f1", f1), ("accuracy", accuracy)):
                out.append({"task": task, "method": method, "k": k, "seed": seed, "job": "all", "language": lang,
                            "metric": metric, "value": v, "n_eval": 10})
    return out


def make_run(tmp_path, results=(), runs=()):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"task": "pos", "source": "en", "targets": ["ar", "hi"]}))
    if results:
        write_jsonl(run / "results.jsonl", results)
    if runs:
        write_jsonl(run / "runs.jsonl", runs)
    return run


# ----------------------------------------------------------------------------- gains

GAIN_SCORES = {
    ("gradient-mix-train", 5, 1): {"ar": 60.0, "hi": 70.0, "zh": 50.0, "sw": 40.0, "ur": 65.0},
    ("gradient-mix-train", 5, 2): {"ar": 62.0, "hi": 72.0, "zh": 54.0, "sw": 38.0, "ur": 61.0},
    ("gradient-mix-train", 5, 3): {"ar": 100.0},  # no ord-fs seed 3: not paired, ignored
    # ar's accuracy would rank it last: the primary metric (f1) must be used
    ("ord-fs", 5, 1): {"ar": (50.0, 90.0), "hi": 71.0, "zh": 45.0, "sw": 45.0, "ur": 60.0},
    ("ord-fs", 5, 2): {"ar": (54.0, 90.0), "hi": 69.0, "zh": 45.0, "sw": 41.0, "ur": 62.0},
    ("gradient-mix-train", 10, 1): {"ar": 70.0},  # K=10 has no baseline
}
# per-seed differences: ar 10, 8; hi -1, 3; zh 5, 9; sw -5, -3; ur 5, -1
EXPECTED_GAINS = {"ar": 9.0, "zh": 7.0, "ur": 2.0, "hi": 1.0, "sw": -4.0}


def test_gains_rank_languages_by_paired_mean_difference(tmp_path, capsys):
    run = make_run(tmp_path, score_records(GAIN_SCORES))
    assert analyze.main(["gains", "--run-dir", str(run), "--top", "2"]) == 0
    out = run / "analysis"
    assert str(out / "language_gains.png") in capsys.readouterr().out
    assert (out / "language_gains.png").read_bytes().startswith(b"\x89PNG")

    rows = read_csv(out / "language_gains.csv")
    assert [r["language"] for r in rows] == list(EXPECTED_GAINS)  # ranked, largest gain first
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    assert {r["language"]: float(r["gain_mean"]) for r in rows} == pytest.approx(EXPECTED_GAINS)
    assert {r["k"] for r in rows} == {"5"} and {r["metric"] for r in rows} == {"f1"}
    ar = rows[0]
    assert float(ar["gain_sd"]) == pytest.approx(math.sqrt(2))  # stdev(10, 8)
    assert (float(ar["method_mean"]), float(ar["baseline_mean"]), int(ar["n_seeds"])) == (61.0, 52.0, 2)
    assert [r["group"] for r in rows] == ["top", "top", "", "bottom", "bottom"]
    assert ar["family"] == "Afro-Asiatic"

    (group,) = json.loads((out / "language_gains.json").read_text())["groups"]
    assert (group["task"], group["k"], group["top"], group["bottom"]) == ("pos", 5, ["ar", "zh"], ["sw", "hi"])


def test_gains_other_metric_method_and_errors(tmp_path, capsys):
    run = make_run(tmp_path, score_records(GAIN_SCORES))
    assert analyze.main(["gains", "--run-dir", str(run), "--metric", "accuracy", "--top", "1",
                         "--output-dir", str(tmp_path / "acc")]) == 0
    rows = read_csv(tmp_path / "acc" / "language_gains.csv")
    assert rows[-1]["language"] == "ar"
    assert float(rows[-1]["gain_mean"]) == pytest.approx((61.0 + 1.0) - 90.0)

    with pytest.raises(SystemExit) as err:
        analyze.main(["gains", "--run-dir", str(run), "--baseline", "mix-ft"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "gradient-mix-train and mix-ft" in message and "gradient-mix-train, ord-fs" in message

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        analyze.main(["gains", "--run-dir", str(empty)])
    assert "results.jsonl: no results" in capsys.readouterr().err


@pytest.mark.parametrize("command, file, field", [
    ("gains", "results.jsonl", "language"), ("similarity", "results.jsonl", "value"),
    ("overfitting", "runs.jsonl", "seed"), ("heatmap", "results.jsonl", "k")])
def test_a_record_lacking_a_field_is_one_line_naming_file_and_field(tmp_path, capsys, command, file, field):
    """Records written before a field existed (or edited by hand) used to raise a bare KeyError."""
    results = score_records(GAIN_SCORES)
    runs = [dev_run("ord-fs-dev", seed, lang, 2, [50.0, 48.0]) for seed in (1, 2) for lang in ("ar", "hi")]
    for record in (results if file == "results.jsonl" else runs)[3:4]:
        del record[field]
    run = make_run(tmp_path, results, runs)
    argv = [command, "--run-dir", str(run)] + (["--similarity-csv", str(tmp_path / "none.csv")]
                                                if command == "similarity" else [])
    with pytest.raises(SystemExit) as err:
        analyze.main(argv)
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert f"{run / file}: record 4 has no '{field}' field" in lines[0]
    assert f"run run.py again with --output-dir {run}" in lines[0]


# ----------------------------------------------------------------------------- overfitting


def dev_run(method, seed, lang, per_epoch, scores):
    curve = []
    for epoch, value in enumerate(scores, start=1):
        step = epoch * per_epoch
        curve.append({"step": step - 1, "kind": "loss", "value": 1.0 / epoch})
        curve.append({"step": step, "kind": "dev", "value": value, "set": f"{lang}-dev"})
    return {"task": "pos", "method": method, "k": 5, "seed": seed, "job": lang, "steps": len(scores) * per_epoch,
            "selected_step": per_epoch, "curve": curve, "surgery_counters": None}


def test_overfitting_curves_per_epoch_and_first_epoch_peaks(tmp_path):
    runs = [
        dev_run("ord-fs-dev", 1, "ar", 2, [50.0, 48.0, 47.0]),   # peaks at 1
        dev_run("ord-fs-dev", 2, "ar", 2, [52.0, 53.0, 51.0]),   # peaks at 2; mean 51, 50.5, 49 -> 1
        dev_run("ord-fs-dev", 1, "hi", 3, [30.0, 35.0, 36.0]),   # peaks at 3
        dev_run("ord-fs-dev", 2, "hi", 3, [31.0, 36.0, 36.0]),   # tie: the earliest (2); mean -> 3
        dev_run("ord-fs", 1, "ar", 2, [99.0, 0.0, 0.0]),         # another method: ignored
    ]
    run = make_run(tmp_path, runs=runs)
    assert analyze.main(["overfitting", "--run-dir", str(run)]) == 0
    out = run / "analysis"
    assert (out / "overfitting.png").read_bytes().startswith(b"\x89PNG")

    rows = read_csv(out / "overfitting.csv")
    assert len(rows) == 12
    assert {(r["language"], r["seed"], float(r["epoch"]), int(r["step"]), float(r["score"])) for r in rows} >= {
        ("ar", "1", 2.0, 4, 48.0), ("hi", "2", 3.0, 9, 36.0), ("hi", "1", 1.0, 3, 30.0)}

    data = json.loads((out / "overfitting.json").read_text())
    assert data["peaks_at_first_epoch"] == {"pos": {"5": ["ar"]}}
    by_lang = {r["language"]: r for r in data["languages"]}
    assert by_lang["ar"]["mean_curve"] == pytest.approx([51.0, 50.5, 49.0])
    assert (by_lang["ar"]["peak_epoch"], by_lang["ar"]["seeds_peaking_at_first_epoch"]) == (1.0, 1)
    assert by_lang["hi"]["peak_epoch"] == 3.0 and not by_lang["hi"]["peaks_at_first_epoch"]
    assert by_lang["hi"]["seed_peak_epochs"] == {"1": 3.0, "2": 2.0}


def test_overfitting_without_dev_curves_says_which_method(tmp_path, capsys):
    run = make_run(tmp_path, runs=[dev_run("ord-fs", 1, "ar", 2, [1.0])])
    with pytest.raises(SystemExit):
        analyze.main(["overfitting", "--run-dir", str(run)])
    assert "no dev curve of ord-fs-dev" in capsys.readouterr().err


# ----------------------------------------------------------------------------- similarity

SIM_SCORES = {
    ("zero-shot", 0, 1): {"ar": 40.0, "hi": 55.0, "zh": 35.0, "sw": 50.0, "ur": 52.0, "te": 44.0},
    ("zero-shot", 0, 2): {"ar": 42.0, "hi": 57.0, "zh": 31.0, "sw": 48.0, "ur": 50.0, "te": 46.0},
    ("gradient-mix-train", 5, 1): {"ar": 60.0, "hi": 60.0, "zh": 50.0, "sw": 52.0, "ur": 58.0, "te": 50.0},
    ("gradient-mix-train", 5, 2): {"ar": 58.0, "hi": 62.0, "zh": 49.0, "sw": 54.0, "ur": 57.0, "te": 52.0},
}
SIMILARITY = {  # a hand table; syntax has a tie (average ranks)
    "ar": (0.60, 0.0), "hi": (0.70, 0.4), "zh": (0.50, 0.0), "sw": (0.60, 0.1), "ur": (0.72, 0.4), "te": (0.55, 0.2),
}


def write_similarity_csv(path):
    path.write_text("language,syntax,family\n" + "".join(f"{lang},{s},{f}\n" for lang, (s, f) in SIMILARITY.items()))
    return path


def test_similarity_correlations_match_scipy(tmp_path):
    run = make_run(tmp_path, score_records(SIM_SCORES))
    table = write_similarity_csv(tmp_path / "sim.csv")
    assert analyze.main(["similarity", "--run-dir", str(run), "--similarity-csv", str(table),
                         "--features", "syntax,family"]) == 0
    out = run / "analysis"
    assert (out / "language_similarity_pos.png").read_bytes().startswith(b"\x89PNG")
    data = json.loads((out / "language_similarity_pos.json").read_text())
    langs = sorted(SIMILARITY)
    zero = {lang: (SIM_SCORES[("zero-shot", 0, 1)][lang] + SIM_SCORES[("zero-shot", 0, 2)][lang]) / 2 for lang in langs}
    gain = {lang: ((SIM_SCORES[("gradient-mix-train", 5, 1)][lang] - SIM_SCORES[("zero-shot", 0, 1)][lang])
                   + (SIM_SCORES[("gradient-mix-train", 5, 2)][lang] - SIM_SCORES[("zero-shot", 0, 2)][lang])) / 2
            for lang in langs}
    assert data["quantities"]["zero-shot"] == pytest.approx(zero)
    assert data["quantities"]["gain gradient-mix-train K=5"] == pytest.approx(gain)

    rows = read_csv(out / "language_similarity_pos.csv")
    assert len(rows) == 2 * 2
    for row in rows:
        values = zero if row["quantity"] == "zero-shot" else gain
        column = 0 if row["feature"] == "syntax" else 1
        x = [SIMILARITY[lang][column] for lang in langs]
        y = [values[lang] for lang in langs]
        pearson, spearman = scipy.stats.pearsonr(x, y), scipy.stats.spearmanr(x, y)
        assert int(row["n"]) == 6
        assert float(row["pearson_r"]) == pytest.approx(pearson[0], abs=1e-12)
        assert float(row["pearson_p"]) == pytest.approx(pearson[1], rel=1e-6)
        assert float(row["spearman_rho"]) == pytest.approx(spearman[0], abs=1e-12)
        assert float(row["spearman_p"]) == pytest.approx(spearman[1], rel=1e-6)

    regression = read_csv(out / "language_similarity_pos_regression.csv")
    assert len(regression) == 2 * 6
    for row in regression:  # the mean-of-the-others baseline, by hand
        values = zero if row["quantity"] == "zero-shot" else gain
        others = [values[lang] for lang in langs if lang != row["language"]]
        assert float(row["mean_of_others"]) == pytest.approx(sum(others) / 5)


def test_leave_one_out_regression_single_feature_matches_linregress():
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.6, 0.2])
    y = np.array([3.0, 5.5, 4.0, 9.0, 6.5, 3.5])
    result = S.loo_regression(x[:, None], y)
    for i in range(len(x)):
        rest = np.arange(len(x)) != i
        fit = scipy.stats.linregress(x[rest], y[rest])
        assert result["predicted"][i] == pytest.approx(fit.intercept + fit.slope * x[i])
    full = scipy.stats.linregress(x, y)
    assert (result["intercept"], result["coefficients"][0]) == pytest.approx((full.intercept, full.slope))
    assert result["mae"] == pytest.approx(np.abs(np.array(result["predicted"]) - y).mean())


def test_leave_one_out_regression_recovers_an_exact_linear_law():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(7, 2))
    y = 2.0 + 3.0 * X[:, 0] - 1.5 * X[:, 1]
    result = S.loo_regression(X, y)
    assert result["predicted"] == pytest.approx(y.tolist())
    assert result["mae"] < 1e-9 < result["baseline_mae"]
    assert result["coefficients"] == pytest.approx([3.0, -1.5])


@pytest.mark.parametrize("n, p", [(2, 0), (3, 1), (4, 2), (5, 3), (6, 4)])
def test_a_fit_with_n_at_most_p_plus_2_is_refused_naming_n_and_p(n, p):
    rng = np.random.default_rng(n)
    X, y = rng.uniform(size=(n, p)), rng.uniform(size=n)
    with pytest.raises(ValueError, match=rf"too few languages for the features: n = {n} languages, p = {p} "):
        S.loo_regression(X, y)
    S.loo_regression(np.vstack([X, rng.uniform(size=(1, p))]), np.append(y, 0.5))  # one more language: fitted


def test_greedy_selection_finds_the_features_of_a_known_law():
    """y = 1 + 4 b + 1.5 d exactly; a, c and e play no part. The selection adds b (alone it
    leaves the smaller error), then d (the law is then exact), then stops: nothing can lower
    the leave-one-out RMSE further. Each step's criterion is the leave-one-out RMSE of its model."""
    rng = np.random.default_rng(3)
    n = 14
    X = rng.uniform(size=(n, 5))
    y = 1.0 + 4.0 * X[:, 1] + 1.5 * X[:, 3]
    names = ["a", "b", "c", "d", "e"]
    result = S.forward_selection(X, y, names)
    assert result["criterion"] == "leave-one-out RMSE"
    assert result["selected"] == ["b", "d"]
    steps = result["steps"]
    assert [s["added"] for s in steps] == [None, "b", "d", None]  # the last step tried the rest, added none
    assert steps[0]["loo_rmse"] == pytest.approx(S.loo_regression(np.empty((n, 0)), y)["rmse"])
    assert steps[1]["candidates"] == pytest.approx({f: S.loo_regression(X[:, [j]], y)["rmse"]
                                                    for j, f in enumerate(names)})
    assert steps[2]["loo_rmse"] == pytest.approx(S.loo_regression(X[:, [1, 3]], y)["rmse"])
    assert steps[2]["loo_rmse"] < 1e-9 and set(steps[3]["candidates"]) == {"a", "c", "e"}
    assert result["fit"]["coefficients"] == pytest.approx([4.0, 1.5])
    assert result["fit"]["predicted"] == pytest.approx(y.tolist())
    assert "no feature lowers" in result["stopped"]
    # four features of falling weight, six languages: it stops at the most p that n > p + 2 allows
    few = X[:6, :4]
    capped = S.forward_selection(few, 100 * few[:, 0] + 10 * few[:, 1] + few[:, 2] + 0.1 * few[:, 3], names[:4])
    assert capped["selected"] == ["a", "b", "c"] and "n = 6 languages allow at most p = 3" in capped["stopped"]
    # a constant quantity: no feature helps, the model is the intercept (the mean of the others)
    flat = S.forward_selection(X, np.full(n, 3.0), names)
    assert flat["selected"] == [] and flat["fit"]["predicted"] == pytest.approx(flat["fit"]["mean_baseline"])


def test_correlations_are_scipy_s():
    x, y = [0.1, 0.5, 0.5, 0.9, 0.3], [2.0, 1.0, 4.0, 3.0, 5.0]
    assert S.pearson(x, y) == pytest.approx(tuple(scipy.stats.pearsonr(x, y)))
    assert S.spearman(x, y) == pytest.approx(tuple(scipy.stats.spearmanr(x, y)))
    assert all(math.isnan(v) for v in S.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # constant input
    r, p = S.pearson([1.0, 2.0], [2.0, 1.0])
    assert r == pytest.approx(-1.0) and math.isnan(p)  # two points: no test


#: the languages of the XTREME data of this project (/work/shared/data/xtreme/*/) and their
#: CC-100 rows (Conneau et al. 2020, Table 6: tokens in millions, GiB); yo and wo are not in CC-100
DATA_LANGUAGES = ("ar", "bn", "en", "fi", "hi", "id", "ko", "mr", "sw", "ta", "te", "th", "ur", "wo", "yo", "zh")
CC100_ROWS = {"en": (55608, 300.8), "id": (22704, 148.3), "fi": (6730, 54.3), "ko": (5644, 54.2),
              "ar": (2869, 28.0), "th": (1834, 71.7), "hi": (1715, 20.2), "ur": (730, 5.7), "ta": (595, 12.2),
              "bn": (525, 8.4), "sw": (275, 1.6), "zh": (259, 46.9), "te": (249, 4.7), "mr": (175, 2.8)}


def test_size_is_ln_of_the_cc100_table_for_the_data_s_languages():
    from transfer.analysis import cc100

    for lang in DATA_LANGUAGES:
        if lang in CC100_ROWS:
            tokens, gib = CC100_ROWS[lang]
            assert cc100.CC100[lang][1:] == (tokens, gib)
            assert (cc100.cc100_tokens_millions(lang), cc100.cc100_gib(lang)) == (tokens, gib)
            assert cc100.log_size(lang) == pytest.approx(math.log(gib))
        else:  # not in CC-100: missing, not guessed
            assert lang not in cc100.CC100 and math.isnan(cc100.log_size(lang))
    assert set(CC100_ROWS) | {"wo", "yo"} == set(DATA_LANGUAGES)


def test_size_feature_in_the_analysis_and_a_language_without_it_is_dropped(tmp_path, caplog):
    from transfer.analysis import cc100

    scores = {key: {**langs, "yo": 30.0 + key[2]} for key, langs in SIM_SCORES.items()}
    run = make_run(tmp_path, score_records(scores))
    table = write_similarity_csv(tmp_path / "sim.csv")
    table.write_text(table.read_text() + "yo,0.4,0.0\n")  # yo has similarities but no CC-100 size
    assert analyze.main(["similarity", "--run-dir", str(run), "--similarity-csv", str(table),
                         "--features", "syntax,size"]) == 0
    out = run / "analysis"
    features = {r["language"]: r for r in read_csv(out / "language_similarity_pos_features.csv")}
    for lang in SIMILARITY:
        assert float(features[lang]["size"]) == pytest.approx(math.log(cc100.CC100[lang][2]))
        assert float(features[lang]["cc100_gib"]) == cc100.CC100[lang][2]
    assert features["yo"]["size"] == "nan" or math.isnan(float(features["yo"]["size"]))
    data = json.loads((out / "language_similarity_pos.json").read_text())
    assert "Table 6" in data["similarity"] and data["criterion"] == "leave-one-out RMSE"
    for g in data["regression"]:
        assert "yo" not in g["languages"] and g["dropped"] == {"yo": ["size"]}
        assert g["selection"]["steps"][0]["added"] is None
        assert g["selected"] == [s["added"] for s in g["selection"]["steps"] if s["added"]]
    assert "without yo" in caplog.text
    size_rows = [r for r in read_csv(out / "language_similarity_pos.csv") if r["feature"] == "size"]
    assert {int(r["n"]) for r in size_rows} == {6}  # yo has no size: not correlated
    selection = read_csv(out / "language_similarity_pos_selection.csv")
    assert {r["quantity"] for r in selection} == set(data["quantities"])
    for g in data["regression"]:
        rows = [r for r in selection if r["quantity"] == g["quantity"]]
        assert rows[0]["step"] == "0" and rows[0]["candidate"] == ""
        assert [r["candidate"] for r in rows if r["added"] == "True"] == g["selected"]
    # without lang2vec or a table: size alone
    assert analyze.main(["similarity", "--run-dir", str(run), "--features", "size",
                         "--output-dir", str(tmp_path / "size")]) == 0


def test_too_few_languages_for_all_features_is_refused_with_n_and_p(tmp_path):
    few = {key: {lang: v for lang, v in langs.items() if lang in ("ar", "hi", "zh", "sw")}
           for key, langs in SIM_SCORES.items()}
    run = make_run(tmp_path, score_records(few))
    assert analyze.main(["similarity", "--run-dir", str(run), "--similarity-csv",
                         str(write_similarity_csv(tmp_path / "sim.csv")), "--features", "syntax,family,size"]) == 0
    data = json.loads((run / "analysis" / "language_similarity_pos.json").read_text())
    for g in data["regression"]:
        assert g["all_features"]["refused"].endswith("n = 4 languages, p = 3 features; a leave-one-out fit needs "
                                                     "n > p + 2 (n ≥ 6)")
        stopped = g["selection"]["stopped"]
        assert len(g["selected"]) <= 1 and ("at most p = 1" in stopped or "no feature lowers" in stopped)


def test_similarity_csv_errors_name_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("language,syntax\nar,0.5\nhi,high\n")
    with pytest.raises(ValueError, match=r"bad.csv: line 3: syntax = 'high' is not a number"):
        S.read_similarity_csv(bad)
    no_language = tmp_path / "nolang.csv"
    no_language.write_text("lang,syntax\nar,0.5\n")
    with pytest.raises(ValueError, match=r"nolang.csv: line 1: .*'language' column"):
        S.read_similarity_csv(no_language)
    run = make_run(tmp_path, score_records({k: v for k, v in SIM_SCORES.items() if k[0] != "zero-shot"}))
    with pytest.raises(SystemExit):
        analyze.main(["similarity", "--run-dir", str(run), "--similarity-csv", str(write_similarity_csv(
            tmp_path / "s.csv")), "--features", "syntax"])
    assert "no zero-shot pos scores" in capsys.readouterr().err


def test_similarity_with_lang2vec(tmp_path):
    try:
        S.lang2vec_data_dir()
    except (ModuleNotFoundError, FileNotFoundError):
        pytest.skip("lang2vec is not installed")
    run = make_run(tmp_path, score_records(SIM_SCORES))
    assert analyze.main(["similarity", "--run-dir", str(run)]) == 0
    features = {r["language"]: r for r in read_csv(run / "analysis" / "language_similarity_pos_features.csv")}
    assert set(features) == set(SIMILARITY)
    # family: English has 9 ancestors in URIEL, Hindi and Urdu 7 (the same ones); Indo-European is shared
    assert float(features["hi"]["family"]) == pytest.approx(1 / math.sqrt(9 * 7))
    assert float(features["ur"]["family"]) == pytest.approx(float(features["hi"]["family"]))
    assert float(features["ar"]["family"]) == 0.0 and float(features["zh"]["family"]) == 0.0
    for lang, row in features.items():
        for f in S.LANG2VEC_SETS:
            assert 0.0 <= float(row[f]) <= 1.0 + 1e-9
    assert S.lang2vec_similarities(["en"])["en"] == pytest.approx({f: 1.0 for f in S.LANG2VEC_SETS})
    data = json.loads((run / "analysis" / "language_similarity_pos.json").read_text())
    assert len(data["correlations"]) == 2 * 6 and len(data["regression"]) == 2
    for g in data["regression"]:  # 6 languages: at most 3 features selected; all 6 together refused
        assert len(g["selected"]) <= 3 and "n = 6 languages, p = 6 features" in g["all_features"]["refused"]


# ----------------------------------------------------------------------------- families


def test_languages_are_ordered_by_family():
    langs = ["zh", "sw", "hi", "ar", "en", "de", "ur", "qq", "ta", "te", "fr", "ja"]
    ordered = order_languages(langs, first="en")
    assert ordered == ["en", "de", "fr", "hi", "ur", "ar", "sw", "ta", "te", "zh", "ja", "qq"]
    assert family_of("qq").family == "unknown" and family_of("te").genus == "Dravidian"
    assert order_languages(["hi", "ar"], first="en") == ["hi", "ar"]  # the first language need not be there
