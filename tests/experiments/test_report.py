"""Reports: Table-1 averages (over languages, then mean ± sd over seeds), per-language
tables, surgery statistics from the counters, curves (CSV + PNG)."""
import csv
import math
import statistics

import pytest

from transfer import report as P
from transfer.results import CellKey, ResultStore, atomic_write_json

SCORES = {  # (method, k, seed) -> {lang: f1}
    ("zero-shot", 0, 1): {"ar": 40.0, "hi": 50.0},
    ("zero-shot", 0, 2): {"ar": 42.0, "hi": 52.0},
    ("naive-mix-train", 5, 1): {"ar": 60.0, "hi": 70.0},
    ("naive-mix-train", 5, 2): {"ar": 64.0, "hi": 74.0},
    ("gradient-mix-train", 5, 1): {"ar": 61.0, "hi": 73.0},
    ("gradient-mix-train", 5, 2): {"ar": 66.0, "hi": 78.0},
}


def results():
    out = []
    for (method, k, seed), langs in SCORES.items():
        for lang, value in langs.items():
            for metric, v in (("f1", value), ("accuracy", value + 10)):
                out.append({"task": "pos", "method": method, "k": k, "seed": seed, "language": lang,
                            "metric": metric, "value": v})
    return out


def counters(steps, runs, conflicts, cos_sum):
    return {"steps": steps, "oracle_runs": runs, "conflicts": conflicts, "projections": conflicts,
            "nonfinite": 0, "cos_sum": cos_sum, "cos_count": runs}


def runs():
    return [
        {"task": "pos", "method": "gradient-mix-train", "k": 5, "seed": 1, "job": "all",
         "surgery_counters": {"ar": counters(6, 6, 1, 1.2), "hi": counters(4, 4, 2, -0.4)},
         "curve": [{"step": 1, "kind": "loss", "value": 2.0}, {"step": 2, "kind": "loss", "value": 1.5},
                   {"step": 2, "kind": "dev", "value": 30.0}, {"step": 1, "kind": "cos", "value": 0.3}]},
        {"task": "pos", "method": "gradient-mix-train", "k": 5, "seed": 2, "job": "all",
         "surgery_counters": {"ar": counters(5, 5, 0, 1.3), "hi": counters(5, 5, 5, -1.0)}, "curve": []},
        {"task": "pos", "method": "naive-mix-train", "k": 5, "seed": 1, "job": "all", "surgery_counters": None,
         "curve": [{"step": 1, "kind": "loss", "value": 2.1}]},
    ]


def test_summary_averages_languages_then_seeds():
    rows = {(r["method"], r["metric"]): r for r in P.summarize(results())}
    g = rows[("gradient-mix-train", "f1")]
    per_seed = [(61 + 73) / 2, (66 + 78) / 2]
    assert g["mean"] == pytest.approx(statistics.fmean(per_seed))
    assert g["sd"] == pytest.approx(statistics.stdev(per_seed))
    assert (g["n_seeds"], g["n_languages"], g["k"]) == (2, 2, 5)
    assert rows[("zero-shot", "accuracy")]["mean"] == pytest.approx(56.0)
    # Table 1 order: K, then the paper's method order
    order = [(r["k"], r["method"]) for r in P.summarize(results()) if r["metric"] == "f1"]
    assert order == [(0, "zero-shot"), (5, "naive-mix-train"), (5, "gradient-mix-train")]


def test_summary_markdown_layout():
    text = P.summary_markdown(results())
    lines = text.splitlines()
    assert lines[0] == ("| K | method | pos f1, incl. source (paper) | pos f1, targets only "
                        "| pos accuracy, incl. source (paper) | pos accuracy, targets only |")
    # no source scores in these records: the paper's average is missing, the targets' is there
    assert lines[2].startswith("| 0 | zero-shot | – | 46.00 ± 1.41 (n=2) | – | 56.00 ± 1.41 (n=2) |")
    assert "| 5 | gradient-mix-train | – | 69.50 ± 3.54 (n=2) |" in text
    assert "Targets: ar, hi." in text


def with_source(records, english):
    """``records`` plus an English (source) f1 score per (method, k, seed) from ``english``."""
    extra = [{"task": "pos", "method": m, "k": k, "seed": seed, "language": "en", "role": "source",
              "metric": "f1", "value": v} for (m, k, seed), v in english.items()]
    return records + extra


ENGLISH = {("zero-shot", 0, 1): 90.0, ("zero-shot", 0, 2): 92.0, ("naive-mix-train", 5, 1): 88.0,
           ("naive-mix-train", 5, 2): 91.0, ("gradient-mix-train", 5, 1): 89.0, ("gradient-mix-train", 5, 2): 90.0}


def test_the_papers_average_includes_the_source_language():
    records = with_source(results(), ENGLISH)
    paper = {(r["method"], r["metric"]): r for r in P.summarize(records, ("target", "source"))}
    targets = {(r["method"], r["metric"]): r for r in P.summarize(records)}
    per_seed = [(61 + 73 + 89) / 3, (66 + 78 + 90) / 3]
    assert paper[("gradient-mix-train", "f1")]["mean"] == pytest.approx(statistics.fmean(per_seed))
    assert paper[("gradient-mix-train", "f1")]["n_languages"] == 3
    assert targets[("gradient-mix-train", "f1")]["mean"] == pytest.approx(69.5)  # the source is left out
    # a seed without a source score does not enter the paper's average (accuracy has none here)
    assert ("gradient-mix-train", "accuracy") not in paper
    text = P.summary_markdown(records)
    assert f"| 5 | gradient-mix-train | {statistics.fmean(per_seed):.2f} ± " in text
    assert "source language (en)" in text


def test_last_checkpoint_records_stay_out_of_the_tables_and_get_their_own():
    last = [{**r, "checkpoint": "last", "value": r["value"] - 2.0} for r in results() if "mix" in r["method"]]
    records = results() + last
    assert P.summarize(records) == P.summarize(results())
    assert P.per_language(records) == P.per_language(results())
    text = P.last_checkpoint_markdown(records)
    assert "| pos | f1 | 5 | gradient-mix-train | 69.50 ± 3.54 | 67.50 ± 3.54 | +2.00 |" in text


def test_paired_differences_over_seeds():
    rows = {(r["method"], r["baseline"], r["metric"]): r for r in P.paired_differences(results())}
    r = rows[("gradient-mix-train", "naive-mix-train", "f1")]
    diffs = [(61 + 73) / 2 - (60 + 70) / 2, (66 + 78) / 2 - (64 + 74) / 2]  # 2.0, 3.0
    assert r["diffs"] == pytest.approx(diffs) and r["seeds"] == [1, 2]
    assert r["mean"] == pytest.approx(2.5) and r["sd"] == pytest.approx(statistics.stdev(diffs))
    half = 12.706204736 * statistics.stdev(diffs) / 2 ** 0.5  # t(0.975, 1) = 12.7062
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    assert r["seeds_to_detect"] == max(2, math.ceil((2.800585 * statistics.stdev(diffs)) ** 2))  # an sd needs 2
    # only pairs whose methods both ran: no ord-FS here
    assert {(m, b) for m, b, _ in rows} == {("gradient-mix-train", "naive-mix-train")}
    text = P.paired_markdown(results())
    assert "| pos | f1 | targets only | 5 | gradient-mix-train − naive-mix-train | +2.50 | 0.71 |" in text
    assert "inside the noise" in text  # the interval [-3.85, +8.85] contains 0


def test_a_paired_difference_needs_common_seeds():
    one = [r for r in results() if not (r["method"] == "naive-mix-train" and r["seed"] == 2)]
    (r,) = [r for r in P.paired_differences(one) if r["metric"] == "f1"]
    assert r["n_seeds"] == 1 and r["sd"] is None and r["ci_low"] is None


def test_single_seed_has_no_sd():
    one = [r for r in results() if r["seed"] == 1]
    assert "| 5 | naive-mix-train | – | 65.00 (n=1) |" in P.summary_markdown(one)


def test_per_language_table():
    rows = {(r["method"], r["metric"], r["language"]): r for r in P.per_language(results())}
    assert rows[("naive-mix-train", "f1", "hi")]["mean"] == pytest.approx(72.0)
    assert rows[("naive-mix-train", "f1", "hi")]["sd"] == pytest.approx(statistics.stdev([70, 74]))
    text = P.per_language_markdown(results())
    assert "## pos f1" in text and "| K | method | ar | hi | targets avg |" in text
    assert "| 5 | naive-mix-train | 62.00 ± 2.83 | 72.00 ± 2.83 | 67.00 |" in text
    # the source language gets its own column, outside the targets' average
    text = P.per_language_markdown(with_source(results(), ENGLISH))
    assert "| K | method | ar | hi | targets avg | en (source) |" in text
    assert "| 5 | naive-mix-train | 62.00 ± 2.83 | 72.00 ± 2.83 | 67.00 | 89.50 ± 2.12 |" in text


def test_surgery_stats_sum_counters_over_seeds():
    rows = {r["language"]: r for r in P.surgery_stats(runs())}
    assert set(rows) == {"ar", "hi"}
    assert (rows["hi"]["oracle_runs"], rows["hi"]["conflicts"], rows["hi"]["n_seeds"]) == (9, 7, 2)
    assert rows["hi"]["conflict_rate"] == pytest.approx(7 / 9)
    assert rows["hi"]["mean_cos"] == pytest.approx(-1.4 / 9)
    assert rows["ar"]["mean_cos"] == pytest.approx(2.5 / 11)
    assert "77.8%" in P.surgery_markdown(list(rows.values()))


def test_surgery_stats_reject_unknown_counter_layout():
    bad = [{"task": "pos", "method": "g", "k": 5, "seed": 1, "job": "all", "surgery_counters": {"hi": {"steps": 1}}}]
    with pytest.raises(ValueError, match="pos/g/k5/seed1/all hi: surgery counters lack oracle_runs"):
        P.surgery_stats(bad)


def test_write_reports_writes_every_file(tmp_path):
    store = ResultStore(tmp_path)
    res, rns = results(), runs()
    for key in {(r["method"], r["k"], r["seed"]) for r in res}:
        cell = CellKey("pos", *key)
        store.record_cell(cell, [r for r in res if (r["method"], r["k"], r["seed"]) == key],
                          [r for r in rns if (r["method"], r["k"], r["seed"]) == key])
    atomic_write_json(tmp_path / "source_models" / "pos" / "seed1" / "train_result.json",
                      {"task": "pos", "seed": 1, "curve": [{"step": 5, "kind": "dev", "value": 80.0}]})
    paths = P.write_reports(tmp_path)
    expected = {"summary.md", "summary.csv", "per_language.md", "per_language.csv", "surgery_stats.md",
                "surgery_stats.csv", "curves.csv", "curves_pos.png"}
    assert set(paths) == expected
    for name in expected:
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "curves_pos.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert {(r["kind"], r["method"], r["metric"], r["average"], r["mean"]) for r in summary} >= {
        ("score", "gradient-mix-train", "f1", "targets only", "69.5000"),
        ("difference", "gradient-mix-train", "f1", "targets only", "2.5000")}
    assert "## Paired differences over seeds" in (tmp_path / "summary.md").read_text()
    with open(tmp_path / "curves.csv") as handle:
        curves = list(csv.DictReader(handle))
    assert len(curves) == 4 + 1 + 1
    assert {"source", "gradient-mix-train", "naive-mix-train"} == {r["method"] for r in curves}
    # reports are rebuilt from the records: a second call gives the same files
    before = (tmp_path / "summary.md").read_text()
    P.write_reports(tmp_path)
    assert (tmp_path / "summary.md").read_text() == before
