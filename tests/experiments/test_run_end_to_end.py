"""End to end on the real XTREME data: ``run.py`` with every method on XNLI, two target
languages (Arabic, Hindi: K shots per class from dev, evaluation on test, ord-FS+dev
selecting on the rest of dev), a few steps.

The model is a tiny randomly initialised XLM-R with a word-level tokenizer built from the
data's own words, so the test needs no download and runs in seconds; the real offline
model is exercised by the demo run (see the harness report).

Why XNLI: the surgery must be seen to project. On tagging tasks the first gradients of
every language share the tag prior (cosines 0.3-0.9 in the first steps, so conflicts are
rare in a short run); for a randomly initialised sentence classifier the mixed-batch and
oracle gradients are nearly orthogonal (|cos| < 0.25 in the first steps), so with alpha 1
about every other step conflicts (with this seed and lr 1e-3, 9 of the 16 steps do).
"""
import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import harness_helpers as H  # noqa: E402

RUN_PY = Path(__file__).resolve().parents[2] / "experiments" / "run.py"
METHODS = ("zero-shot", "ord-fs-dev", "ord-fs", "mix-ft", "naive-mix-train", "gradient-mix-train")
TARGETS = ("ar", "hi")


@pytest.fixture(autouse=True)
def _one_thread():
    yield from H.single_thread()


def data_tokenizer_model(xtreme_dir, path: Path, task_name: str = "pos", langs=("en", *TARGETS)) -> Path:
    """A tiny XLM-R whose word-level vocabulary is every word of the task's files for ``langs``."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast, XLMRobertaModel

    from transfer.tasks import get_task

    task = get_task(task_name)

    def text_of(ex):
        if hasattr(ex, "tokens"):
            return ex.tokens
        if hasattr(ex, "premise"):
            return (ex.premise + " " + ex.hypothesis).split()
        return (ex.question + " " + ex.context).split()

    words = set()
    for lang in langs:
        for split in ("train", "dev", "test"):
            if task.has_split(lang, split, xtreme_dir):
                words.update(w for ex in task.read_split(lang, split, xtreme_dir) for w in text_of(ex))
    vocab = {tok: i for i, tok in enumerate(H.SPECIALS)}
    for w in sorted(words):
        vocab.setdefault(w, len(vocab))
    vocab["<mask>"] = len(vocab)
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    backend.post_processor = TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>", cls_token="<s>", sep_token="</s>",
                                        mask_token="<mask>")
    import torch

    torch.manual_seed(0)
    XLMRobertaModel(H.tiny_config(len(vocab), hidden_size=32, max_position_embeddings=140),
                    add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.realdata
def test_run_py_end_to_end(xtreme_dir, tmp_path, capsys):
    model = data_tokenizer_model(xtreme_dir, tmp_path / "model", "xnli")
    out = tmp_path / "out"
    spec = importlib.util.spec_from_file_location("run_script", RUN_PY)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    argv = ["--task", "xnli", "--methods", ",".join(METHODS), "--k", "5", "--seeds", "1", "--source", "en",
            "--targets", ",".join(TARGETS), "--data-dir", str(xtreme_dir), "--model", str(model),
            "--output-dir", str(out), "--alpha", "1", "--lr", "1e-3", "--batch-size", "16", "--epochs", "2",
            "--adapt-epochs", "2", "--max-source-examples", "96", "--max-dev-examples", "40",
            "--max-eval-examples", "40", "--eval-every", "3", "--no-progress", "--save-models"]
    assert run.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| K | method | xnli accuracy, incl. source (paper) | xnli accuracy, targets only |" in printed
    assert "Paired differences over seeds:" in printed
    assert "| xnli | accuracy | targets only | 5 | gradient-mix-train − naive-mix-train |" in printed

    # results.jsonl: one record per method, language and metric, with the selected step and timings
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    keys = {(r["method"], r["k"], r["language"], r["metric"]) for r in results if r["checkpoint"] == "selected"}
    assert keys == {(m, 0 if m == "zero-shot" else 5, lang, metric) for m in METHODS for lang in (*TARGETS, "en")
                    for metric in ("accuracy",)}
    for r in results:
        assert 0 <= r["value"] <= 100 and r["seed"] == 1 and r["task"] == "xnli"
        assert r["selected_step"] >= 1 and r["train_seconds"] >= 0 and r["n_eval"] == 40
    one_step = [r for r in results if r["method"] in ("naive-mix-train", "gradient-mix-train")]
    assert {r["checkpoint"] for r in one_step} == {"selected", "last"}
    assert all(r["steps"] == 16 for r in one_step)  # (96 English + 2 x 3 x 5 shots) / 16 = 8 per epoch

    # the shots: K per class per target, from dev, in the manifest; never evaluated on
    manifest = json.loads((out / "shots" / "manifest.json").read_text())
    shots = {s["lang"]: s for s in manifest["shots"]}
    assert set(shots) == set(TARGETS) and all(len(s["uids"]) == 15 for s in shots.values())
    assert all(s["split"] == "dev" and all(u.startswith(f"xnli/{lang}/dev/") for u in s["uids"])
               for lang, s in shots.items())

    # surgery statistics: the oracle ran every step (alpha 1) and projected at least once
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    (grad,) = [r for r in runs if r["method"] == "gradient-mix-train"]
    (naive,) = [r for r in runs if r["method"] == "naive-mix-train"]
    # naive-mix-train observed the same oracle draws and projected nothing
    assert ({lang: c["oracle_runs"] for lang, c in naive["surgery_counters"].items()}
            == {lang: c["oracle_runs"] for lang, c in grad["surgery_counters"].items()})
    assert sum(c["projections"] for c in naive["surgery_counters"].values()) == 0
    counters = grad["surgery_counters"]
    assert set(counters) <= set(TARGETS)
    assert sum(c["oracle_runs"] for c in counters.values()) == grad["steps"] == 16
    assert sum(c["projections"] for c in counters.values()) >= 1
    with open(out / "surgery_stats.csv") as handle:
        stats = list(csv.DictReader(handle))
    assert sum(int(s["projections"]) for s in stats if s["method"] == "gradient-mix-train") == sum(
        c["projections"] for c in counters.values())

    # every report file, and the curves behind the PNG
    for name in ("summary.md", "summary.csv", "per_language.md", "per_language.csv", "surgery_stats.md",
                 "surgery_stats.csv", "curves.csv", "run_config.json", "run.log"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "curves_xnli.png").read_bytes()[:4] == b"\x89PNG"
    with open(out / "curves.csv") as handle:
        curves = list(csv.DictReader(handle))
    kinds = {(r["method"], r["kind"]) for r in curves}
    assert {("source", "loss"), ("source", "dev"), ("gradient-mix-train", "cos"), ("naive-mix-train", "dev")} <= kinds
    summary = (out / "summary.md").read_text()
    for method in METHODS:
        assert f"| {method} |" in summary
    assert list((out / "source_models" / "xnli" / "seed1").iterdir())

    # --save-models: every trained job's selected model, where the analyses look for it
    from transfer.analysis.checkpoints import checkpoint_format
    from transfer.run_dir import cell_model_dir

    trained = [("gradient-mix-train", "all"), ("naive-mix-train", "all"), ("mix-ft", "all")]
    trained += [(m, lang) for m in ("ord-fs", "ord-fs-dev") for lang in TARGETS]
    for method, job in trained:
        folder = cell_model_dir(out, "xnli", method, 5, 1, job)
        assert checkpoint_format(folder) == "state", folder
        assert json.loads((folder / "train_result.json").read_text())["method"] == method
    assert not (out / "models" / "xnli" / "zero-shot").exists()  # nothing trained: nothing saved
    assert not list(out.rglob(".*.tmp"))  # no temporary file left behind

    # a second run resumes: every cell is finished, nothing is trained again
    before = (out / "results.jsonl").read_text()
    assert run.main(argv) == 0
    assert (out / "results.jsonl").read_text() == before
    assert "resuming: 6 finished cell(s)" in (out / "run.log").read_text()
