"""The reproductions committed under experiments/results/ regenerate from their records:
every report file there is what ``run.py --report-only`` writes from the folder's
results.jsonl, runs.jsonl and source-model train_result.json files."""
import shutil
from pathlib import Path

import pytest

from transfer.report import write_reports

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"
FOLDERS = sorted(p.parent for p in RESULTS.glob("*/results.jsonl"))
#: the generated text files (the PNG depends on matplotlib's version, so it is not compared)
REPORTS = ("summary.md", "summary.csv", "per_language.md", "per_language.csv", "surgery_stats.md",
           "surgery_stats.csv", "curves.csv")


@pytest.mark.skipif(not FOLDERS, reason="no committed reproduction under experiments/results/")
@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_committed_reports_regenerate_from_the_records(folder, tmp_path):
    for name in ("results.jsonl", "runs.jsonl", "run_config.json"):
        shutil.copy(folder / name, tmp_path / name)
    for info in folder.glob("source_models/*/seed*/train_result.json"):
        target = tmp_path / info.relative_to(folder)
        target.parent.mkdir(parents=True)
        shutil.copy(info, target)
    write_reports(tmp_path)
    for name in REPORTS:
        assert (folder / name).exists(), f"{folder.name}/{name} is not committed"
        assert (tmp_path / name).read_text() == (folder / name).read_text(), f"{folder.name}/{name} is stale"
