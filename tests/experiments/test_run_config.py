"""run.py's flags and their resolution into a RunConfig (flag > model > task paper > preset)."""
import importlib.util
from pathlib import Path

import pytest

from transfer import config as C

RUN_PY = Path(__file__).resolve().parents[2] / "experiments" / "run.py"


@pytest.fixture(scope="module")
def run_module():
    spec = importlib.util.spec_from_file_location("run_script", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve(run_module, *argv, data_dir=None):
    args = list(argv)
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    return C.resolve_config(run_module.build_parser().parse_args(args))


def test_no_arguments_is_the_cpu_demo(run_module, tmp_path):
    c = resolve(run_module, data_dir=tmp_path)
    assert (c.task, c.model, c.preset) == ("pos", "me5-small", "demo")
    assert c.methods == ("ord-fs", "naive-mix-train", "gradient-mix-train")
    assert (c.ks, c.seeds, c.source, c.targets) == ((5,), (1,), "en", ("ar", "hi", "zh"))
    # the model's settings (me5-small: lr 2e-4, frozen word embedding) over the paper's
    assert (c.lr, c.freeze_embeddings) == (2e-4, True)
    # the task's paper settings
    assert (c.batch_size, c.grad_accum_steps, c.max_seq_length, c.alpha, c.adam_eps, c.max_grad_norm) == (
        32, 1, 128, 1.0, 1e-8, 1.0)
    assert (c.weight_decay, c.warmup_steps, c.adapt_epochs) == (0.0, 0, 10.0)
    # the demo's caps
    assert (c.max_source_examples, c.max_dev_examples, c.max_eval_examples, c.epochs, c.eval_every) == (
        1000, 200, 300, 3.0, 20)
    assert c.language_set == "all"
    assert not (c.oracle_includes_source or c.surgery_per_micro_batch or c.tydiqa_shots_in_features)


def test_paper_preset_with_xlmr_uses_the_paper_settings(run_module, tmp_path):
    c = resolve(run_module, "--preset", "paper", "--task", "ner", "--model", "xlm-roberta-large", data_dir=tmp_path)
    assert c.methods == C.METHODS and c.ks == (1, 5, 10) and c.seeds == (1, 2, 3, 4, 5)
    assert c.targets is None  # every language with data
    assert (c.lr, c.batch_size, c.grad_accum_steps, c.micro_batch_size, c.epochs, c.eval_every) == (
        2e-5, 32, 2, 16, 10.0, 100)
    assert c.freeze_embeddings is False
    assert c.max_source_examples is None and c.max_eval_examples is None
    t = resolve(run_module, "--preset", "paper", "--task", "tydiqa", "--model", "xlm-roberta-base", data_dir=tmp_path)
    assert (t.lr, t.micro_batch_size, t.grad_accum_steps, t.epochs, t.max_seq_length, t.alpha, t.warmup_steps,
            t.weight_decay) == (3e-5, 8, 4, 60.0, 384, 0.1, 500, 1e-4)
    assert t.source_selection == "last"  # the paper keeps TyDiQA's final model
    assert c.source_selection == "source-dev"
    x = resolve(run_module, "--preset", "paper", "--task", "xnli", "--model", "xlm-roberta-base", data_dir=tmp_path)
    assert x.alpha == 0.1


def test_flags_override_everything(run_module, tmp_path):
    c = resolve(run_module, "--task", "xnli", "--methods", "zero-shot,mix-ft", "--k", "1,10", "--seeds", "3,4",
                "--targets", "hi,ar", "--lr", "1e-4", "--alpha", "0.5", "--epochs", "2", "--batch-size", "16",
                "--grad-accum-steps", "4", "--no-freeze-embeddings", "--max-source-examples", "0",
                "--language-set", "ar", "--oracle-includes-source", "--surgery-per-micro-batch",
                "--eval-every", "7", "--max-steps", "3", "--output-dir", str(tmp_path / "o"), data_dir=tmp_path)
    assert c.methods == ("zero-shot", "mix-ft") and c.ks == (1, 10) and c.seeds == (3, 4)
    assert c.targets == ("hi", "ar") and c.language_set == ("ar",)
    assert (c.lr, c.alpha, c.epochs, c.adapt_epochs, c.batch_size, c.micro_batch_size) == (1e-4, 0.5, 2.0, 2.0, 16, 4)
    assert c.freeze_embeddings is False and c.max_source_examples is None
    assert c.oracle_includes_source and c.surgery_per_micro_batch
    assert (c.eval_every, c.max_steps, c.output_dir) == (7, 3, tmp_path / "o")


def test_targets_all_means_every_language(run_module, tmp_path):
    assert resolve(run_module, "--targets", "all", data_dir=tmp_path).targets is None


@pytest.mark.parametrize("argv, message", [
    (["--methods", "ord-fs,best-method"], "--methods: unknown method"),
    (["--k", "0"], "--k: K must be >= 1"),
    (["--k", "5,x"], "--k: '5,x' is not a comma-separated list of int"),
    (["--k", "5,5"], "--k: repeated item"),
    (["--targets", "hi,en"], "source language 'en' cannot also be a target"),
    (["--targets", "hi,,ar"], "--targets: empty item"),
    (["--alpha", "1.5"], "--alpha must be in"),
    (["--batch-size", "30", "--grad-accum-steps", "4"], "must be a positive multiple"),
    (["--language-set", "sw"], "--language-set: sw not among --targets"),
    (["--device", "tpu"], "--device: expected cpu or cuda"),
    (["--eval-every", "0"], "--eval-every must be >= 1"),
    (["--lr", "-1"], "--lr must be positive"),
])
def test_bad_values_are_named(run_module, tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        resolve(run_module, *argv, data_dir=tmp_path)


def test_missing_data_dir_is_an_error(run_module, tmp_path):
    with pytest.raises(ValueError, match="--data-dir: .* is not a directory"):
        resolve(run_module, data_dir=tmp_path / "nope")


def test_data_dir_default_from_environment(run_module, tmp_path, monkeypatch):
    monkeypatch.setenv("SGS_DATA_DIR", str(tmp_path))
    assert resolve(run_module).data_dir == tmp_path


def test_result_settings_leave_out_what_only_adds_cells(run_module, tmp_path):
    a = resolve(run_module, "--k", "1", "--seeds", "1", data_dir=tmp_path).result_settings()
    b = resolve(run_module, "--k", "1,5", "--seeds", "1,2", "--methods", "zero-shot", data_dir=tmp_path).result_settings()
    assert a == b
    assert a != resolve(run_module, "--lr", "1e-3", data_dir=tmp_path).result_settings()


def test_help_documents_every_flag_and_the_paper_vs_code_defaults(run_module, capsys):
    with pytest.raises(SystemExit):
        run_module.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--task", "--methods", "--k", "--seeds", "--source", "--targets", "--data-dir", "--model",
                 "--output-dir", "--alpha", "--epochs", "--max-source-examples", "--max-seq-length", "--lr",
                 "--batch-size", "--eval-every", "--freeze-embeddings", "--language-set", "--device",
                 "--oracle-includes-source", "--surgery-per-micro-batch", "--tydiqa-shots-in-features"):
        assert flag in text
    assert "the default is the paper's text" in text
    assert "me5-small" in text and "2e-4" in text


def test_cli_reports_bad_flags_as_usage_errors(run_module, capsys):
    with pytest.raises(SystemExit) as err:
        run_module.main(["--k", "0", "--report-only"])
    assert err.value.code == 2
    assert "--k: K must be >= 1" in capsys.readouterr().err


def test_report_only_rebuilds_reports_without_running(run_module, tmp_path, capsys):
    from transfer.results import CellKey, ResultStore

    out = tmp_path / "out"
    ResultStore(out).record_cell(CellKey("pos", "ord-fs", 5, 1), [
        {"task": "pos", "method": "ord-fs", "k": 5, "seed": 1, "language": "hi", "metric": "f1", "value": 70.0}], [])
    assert run_module.main(["--report-only", "--output-dir", str(out), "--data-dir", str(tmp_path)]) == 0
    assert "| 5 | ord-fs | 70.00 (n=1) |" in capsys.readouterr().out
    assert (out / "summary.md").exists() and not (out / "source_models").exists()
