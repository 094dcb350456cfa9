"""Reports: Table-1 averages (over languages, then mean ± sd over seeds), per-language
tables, surgery statistics from the counters, curves (CSV + PNG)."""
import csv
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
    assert lines[0] == "| K | method | pos f1 | pos accuracy |"
    assert lines[2].startswith("| 0 | zero-shot | 46.00 ± 1.41 (n=2) | 56.00 ± 1.41 (n=2) |")
    assert "| 5 | gradient-mix-train | 69.50 ± 3.54 (n=2) |" in text
    assert "(ar, hi)" in text


def test_single_seed_has_no_sd():
    one = [r for r in results() if r["seed"] == 1]
    assert "| 5 | naive-mix-train | 65.00 (n=1) |" in P.summary_markdown(one)


def test_per_language_table():
    rows = {(r["method"], r["metric"], r["language"]): r for r in P.per_language(results())}
    assert rows[("naive-mix-train", "f1", "hi")]["mean"] == pytest.approx(72.0)
    assert rows[("naive-mix-train", "f1", "hi")]["sd"] == pytest.approx(statistics.stdev([70, 74]))
    text = P.per_language_markdown(results())
    assert "## pos f1" in text and "| K | method | ar | hi | avg |" in text
    assert "| 5 | naive-mix-train | 62.00 ± 2.83 | 72.00 ± 2.83 | 67.00 |" in text


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
    assert {(r["method"], r["metric"], r["mean"]) for r in summary} >= {("gradient-mix-train", "f1", "69.5000")}
    with open(tmp_path / "curves.csv") as handle:
        curves = list(csv.DictReader(handle))
    assert len(curves) == 4 + 1 + 1
    assert {"source", "gradient-mix-train", "naive-mix-train"} == {r["method"] for r in curves}
    # reports are rebuilt from the records: a second call gives the same files
    before = (tmp_path / "summary.md").read_text()
    P.write_reports(tmp_path)
    assert (tmp_path / "summary.md").read_text() == before
