"""run.py's flags and their resolution into a RunConfig (config.PRECEDENCE: flag > model > preset > paper)."""
import re
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import harness_helpers as H  # noqa: E402

from transfer import config as C  # noqa: E402


@pytest.fixture(scope="module")
def run_module():
    return H.load_run_script()


def resolve(run_module, *argv, data_dir=None):
    args = list(argv)
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    return C.resolve_config(run_module.build_parser().parse_args(args))


def test_no_arguments_is_the_cpu_demo(run_module, tmp_path):
    c = resolve(run_module, data_dir=tmp_path)
    assert (c.task, c.model, c.preset) == ("ner", "me5-small", "demo")
    assert c.methods == ("zero-shot", "ord-fs", "naive-mix-train", "gradient-mix-train")
    # the PAN-X languages with the paper's largest gradient - naive gains at K = 5
    assert (c.ks, c.seeds, c.source, c.targets) == ((5,), (1,), "en", ("ar", "sw", "ur", "zh"))
    # the model's settings (me5-small: lr 2e-4, frozen word embedding) over the paper's
    assert (c.lr, c.freeze_embeddings) == (2e-4, True)
    # the task's paper settings (NER: 32 as 16 x 2)
    assert (c.batch_size, c.grad_accum_steps, c.max_seq_length, c.alpha, c.adam_eps, c.max_grad_norm) == (
        32, 2, 128, 1.0, 1e-8, 1.0)
    assert (c.weight_decay, c.warmup_steps) == (0.0, 0)
    # the demo's caps; the paper's 10 epochs, so every method sees each shot 10 times as in the paper
    assert (c.max_source_examples, c.max_dev_examples, c.max_eval_examples, c.epochs, c.eval_every) == (
        400, 200, 300, 10.0, 14)
    assert c.adapt_epochs == c.epochs == C.PAPER_SETTINGS["ner"].epochs
    assert c.language_set == "all"
    assert not (c.oracle_includes_source or c.surgery_per_micro_batch or c.tydiqa_shots_in_features)
    # another task keeps the earlier demo's shape
    p = resolve(run_module, "--task", "pos", data_dir=tmp_path)
    assert (p.targets, p.max_source_examples, p.epochs, p.adapt_epochs, p.eval_every) == (
        ("ar", "hi", "zh"), 1000, 3.0, 3.0, 20)


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


def test_published_code_is_one_switch(run_module, tmp_path):
    # the scripts: NER and POS at per-device batch 2 x 16 accumulation, surgery after every
    # micro-batch, English among the oracles; XNLI's oracle a random subset of its 3K shots
    for task in ("ner", "pos"):
        c = resolve(run_module, "--task", task, "--published-code", "--model", "xlm-roberta-large", data_dir=tmp_path)
        assert (c.batch_size, c.grad_accum_steps, c.micro_batch_size) == (32, 16, 2)
        assert c.surgery_per_micro_batch and c.oracle_includes_source and c.published_code
        assert not c.oracle_shot_subset
    x = resolve(run_module, "--task", "xnli", "--published-code", "--model", "xlm-roberta-large", data_dir=tmp_path)
    assert x.oracle_shot_subset and x.oracle_includes_source and x.lr == 3e-5
    t = resolve(run_module, "--task", "tydiqa", "--published-code", "--preset", "paper", data_dir=tmp_path)
    assert t.tydiqa_shots_in_features and t.epochs == 30
    # without the switch: the paper's text (NER's 16 x 2 is the text's batch 32 as the harness
    # accumulates it; the surgery once per optimizer step)
    n = resolve(run_module, "--task", "ner", "--model", "xlm-roberta-large", data_dir=tmp_path)
    assert (n.micro_batch_size, n.grad_accum_steps, n.surgery_per_micro_batch, n.oracle_includes_source) == (
        16, 2, False, False)
    # a single flag still beats the switch, both ways; a model's lr beats the code's
    c = resolve(run_module, "--task", "ner", "--published-code", "--no-surgery-per-micro-batch",
                "--grad-accum-steps", "4", data_dir=tmp_path)
    assert (c.grad_accum_steps, c.surgery_per_micro_batch, c.oracle_includes_source) == (4, False, True)
    assert resolve(run_module, "--task", "xnli", "--published-code", data_dir=tmp_path).lr == 2e-4  # me5-small
    assert resolve(run_module, "--task", "ner", "--oracle-shot-subset", data_dir=tmp_path).oracle_shot_subset
    # the epilog lists the code's settings
    text = run_module.build_parser().format_help()
    assert "--published-code" in text and "ner --grad-accum-steps 16" in " ".join(text.split())


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
    (["--language-set", "hi"], "--language-set: hi not among --targets"),
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


def test_data_errors_found_before_training_are_one_usage_line(run_module, tmp_path, capsys):
    """A language or data problem the runner finds when it starts: exit 2, one line, no traceback."""
    (tmp_path / "panx" / "en").mkdir(parents=True)
    (tmp_path / "panx" / "en" / "train.tsv").write_text("a\tO\n\n")
    with pytest.raises(SystemExit) as err:
        run_module.main(["--data-dir", str(tmp_path), "--targets", "qq", "--output-dir", str(tmp_path / "out")])
    assert err.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: --targets: no ner data for qq" in message and "Traceback" not in message


def _usage_error(run_module, argv, capsys) -> str:
    with pytest.raises(SystemExit) as err:
        run_module.main(argv)
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in lines)
    return lines[-1]


def test_an_output_dir_that_is_a_file_is_a_usage_error(run_module, tmp_path, capsys):
    blocker = tmp_path / "out"
    blocker.write_text("not a directory")
    line = _usage_error(run_module, ["--output-dir", str(blocker), "--report-only"], capsys)
    assert f"--output-dir {blocker}: cannot write there" in line


def test_a_damaged_results_file_says_how_to_recover(run_module, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text('{"task": "ner", "method": "zero-shot", "k": 0, "seed": 1}\n{"task": "ne')
    line = _usage_error(run_module, ["--output-dir", str(out), "--report-only"], capsys)
    assert "results.jsonl: line 2: not valid JSON" in line and "delete line 2" in line


def test_a_max_seq_length_beyond_the_model_is_one_usage_line_before_training(run_module, tmp_path, capsys):
    """It used to fail with an index error in the first long batch, after training."""
    sys.path.insert(0, str(Path(__file__).parent))
    import harness_helpers as H

    data, model = H.write_pos_data(tmp_path / "data"), H.write_tiny_model(tmp_path / "model")
    out = tmp_path / "out"
    line = _usage_error(run_module, [
        "--task", "pos", "--data-dir", str(data), "--model", str(model), "--targets", "xx", "--methods", "zero-shot",
        "--max-seq-length", "79", "--max-steps", "1", "--max-source-examples", "16", "--no-progress",
        "--output-dir", str(out)], capsys)
    assert f"error: --max-seq-length 79: the model {model} takes at most 78 tokens" in line
    assert not (out / "results.jsonl").exists() and not (out / "source_models").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_device_cuda_without_cuda_is_named(run_module, tmp_path):
    with pytest.raises(ValueError, match="--device cuda: this torch .* sees no CUDA device"):
        resolve(run_module, "--device", "cuda", data_dir=tmp_path)


def test_num_threads_below_one_is_a_usage_error(run_module, capsys):
    with pytest.raises(SystemExit) as err:
        run_module.main(["--num-threads", "-1", "--report-only"])
    assert err.value.code == 2
    assert "--num-threads must be >= 1, got -1" in capsys.readouterr().err


def test_report_only_rebuilds_reports_without_running(run_module, tmp_path, capsys):
    from transfer.results import CellKey, ResultStore

    out = tmp_path / "out"
    ResultStore(out).record_cell(CellKey("pos", "ord-fs", 5, 1), [
        {"task": "pos", "method": "ord-fs", "k": 5, "seed": 1, "language": "hi", "metric": "f1", "value": 70.0}], [])
    assert run_module.main(["--report-only", "--output-dir", str(out), "--data-dir", str(tmp_path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 5 | ord-fs |")]
    assert rows and "70.00 (n=1)" in rows[0]  # whatever columns the summary has
    assert (out / "summary.md").exists() and not (out / "source_models").exists()


# ------------------------------------------------------------------ the precedence table


@pytest.mark.parametrize("preset", C.PRESETS)
@pytest.mark.parametrize("task", C.TASKS)
def test_target_adapting_trains_the_epochs_of_one_step_training(run_module, tmp_path, preset, task):
    # the paper: ord-FS and mix-FT train its epochs on the shots, as the one-step methods (which
    # mix the shots into each of their epochs); a preset that cuts the epochs cuts both
    c = resolve(run_module, "--preset", preset, "--task", task, data_dir=tmp_path)
    assert c.adapt_epochs == c.epochs
    demo = C.PRESET_SETTINGS["demo"]["epochs"][task]  # the demo's own epochs (NER: the paper's 10)
    assert c.epochs == (demo if preset == "demo" else C.PAPER_SETTINGS[task].epochs)


def test_demo_adapts_3_epochs_and_an_explicit_adapt_epochs_wins(run_module, tmp_path):
    pos = ("--task", "pos")  # the demo cuts POS to 3 epochs
    assert resolve(run_module, *pos, data_dir=tmp_path).adapt_epochs == 3.0  # the demo's epochs, not the paper's 10
    assert resolve(run_module, *pos, "--epochs", "2", data_dir=tmp_path).adapt_epochs == 2.0
    c = resolve(run_module, *pos, "--epochs", "2", "--adapt-epochs", "7", data_dir=tmp_path)
    assert (c.epochs, c.adapt_epochs) == (2.0, 7.0)
    assert resolve(run_module, *pos, "--adapt-epochs", "7", data_dir=tmp_path).epochs == 3.0


def epilog_table(epilog: str) -> dict[str, str]:
    """flag -> "source > source ..." as the epilog's precedence section says it."""
    section = epilog.split("the sources:")[0].splitlines()[1:]
    table, chain = {}, None
    for line in section:
        if not line.startswith("   "):  # a new group: its chain, then its flags
            chain, *rest = re.split(r"\s{2,}", line.strip())
            flags = " ".join(rest).split()
        else:
            flags = line.split()
        table.update({flag: chain for flag in flags})
    return table


def test_the_epilog_is_the_precedence_table(run_module):
    expected = {C.flag_of(name): " > ".join(sources) for name, sources in C.PRECEDENCE.items()}
    assert epilog_table(run_module.build_parser().epilog) == expected
    # the order the task asks for, for the settings that have the sources
    assert expected["--lr"] == expected["--epochs"] == "flag > model > preset > code > paper"
    assert expected["--adapt-epochs"] == "flag > epochs"
    assert expected["--alpha"].endswith("variant > paper")
    # every setting resolved from several sources is in the table
    for name in ("lr", "batch_size", "grad_accum_steps", "epochs", "adapt_epochs", "eval_every", "warmup_steps",
                 "weight_decay", "max_seq_length", "alpha", "max_source_examples", "max_dev_examples",
                 "max_eval_examples", "adam_eps", "max_grad_norm", "eval_batch_size", "freeze_embeddings",
                 "source_selection", "methods", "ks", "seeds", "targets"):
        assert len(C.PRECEDENCE[name]) > 1, name


def test_changing_the_table_changes_the_resolution_and_the_epilog(run_module, tmp_path, monkeypatch):
    monkeypatch.setitem(C.PRECEDENCE, "epochs", ("flag", "paper", "preset"))  # the paper over the preset
    assert epilog_table(run_module.build_parser().epilog)["--epochs"] == "flag > paper > preset"
    c = resolve(run_module, data_dir=tmp_path)  # the demo preset
    assert (c.epochs, c.adapt_epochs) == (10.0, 10.0)
    monkeypatch.setitem(C.PRECEDENCE, "adapt_epochs", ("flag", "preset"))
    assert epilog_table(run_module.build_parser().epilog)["--adapt-epochs"] == "flag > preset"


def test_a_flag_beats_the_model_beats_the_preset_beats_the_paper(run_module, tmp_path, monkeypatch):
    # lr has all four once the demo preset sets one (one edit: a key of the preset)
    monkeypatch.setitem(C.PRESET_SETTINGS, "demo", {**C.PRESET_SETTINGS["demo"], "lr": 3e-4})
    C.check_tables()
    assert "--lr 0.0003" in " ".join(run_module.build_parser().epilog.split())  # the presets' section shows it
    assert resolve(run_module, "--lr", "1e-3", data_dir=tmp_path).lr == 1e-3  # flag
    assert resolve(run_module, data_dir=tmp_path).lr == 2e-4  # me5-small's
    assert resolve(run_module, "--model", "xlm-roberta-large", data_dir=tmp_path).lr == 3e-4  # the preset's
    paper = resolve(run_module, "--preset", "paper", "--model", "xlm-roberta-large", data_dir=tmp_path)
    assert paper.lr == 2e-5  # the paper's
    # and with the real tables: the demo preset's epochs over the paper's, the model's
    # frozen embedding over the paper's full fine-tuning
    assert resolve(run_module, "--task", "pos", data_dir=tmp_path).epochs == 3.0
    assert resolve(run_module, "--task", "pos", "--preset", "paper", data_dir=tmp_path).epochs == 10.0
    assert resolve(run_module, data_dir=tmp_path).freeze_embeddings is True
    assert resolve(run_module, "--model", "xlm-roberta-base", data_dir=tmp_path).freeze_embeddings is False


def test_a_preset_setting_its_row_does_not_read_is_refused(monkeypatch):
    monkeypatch.setitem(C.PRESET_SETTINGS, "demo", {**C.PRESET_SETTINGS["demo"], "adapt_epochs": 5})
    with pytest.raises(ValueError, match=r"PRESET_SETTINGS\['demo'\]\['adapt_epochs'\].*no 'preset'"):
        C.check_tables()
    monkeypatch.setitem(C.PRECEDENCE, "adapt_epochs", ("flag", "eval_every"))  # resolved below it
    with pytest.raises(ValueError, match="unknown source 'eval_every'"):
        C.check_tables()


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be positive"),
    (["--adapt-epochs", "-1"], "--adapt-epochs must be positive"),
    (["--max-steps", "0"], "--max-steps must be >= 1"),
    (["--seeds", "1,1"], "--seeds: repeated item"),
    (["--language-set", "ar,,hi"], "--language-set: empty item"),
    (["--epochs", "nan"], "--epochs must be positive, got nan"),
    (["--lr", "inf"], "--lr must be positive, got inf"),
    (["--eval-batch-size", "0"], "--eval-batch-size must be >= 1"),
    (["--max-seq-length", "0"], "--max-seq-length must be >= 1"),
    (["--max-grad-norm", "-1"], "--max-grad-norm must be a finite number >= 0"),
    (["--weight-decay", "-0.1"], "--weight-decay must be a finite number >= 0"),
    (["--warmup-steps", "-3"], "--warmup-steps must be >= 0"),
    (["--adam-eps", "0"], "--adam-eps must be positive"),
    (["--methods", ""], "--methods: empty item"),
    (["--targets", ""], "--targets: empty item"),
])
def test_more_bad_values_are_named(run_module, tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        resolve(run_module, *argv, data_dir=tmp_path)


@pytest.mark.parametrize("name, value, message", [
    ("preset", "huge", "--preset: unknown preset 'huge'"),
    ("task", "qa", "--task: unknown task 'qa'"),
    ("source_selection", "best", "--source-selection: expected source-dev or last"),
])
def test_bad_values_past_argparse_are_named(tmp_path, name, value, message):
    with pytest.raises(ValueError, match=message):
        C.resolve_config(types.SimpleNamespace(data_dir=str(tmp_path), **{name: value}))


def test_a_bad_value_from_a_preset_names_its_flag(run_module, tmp_path, monkeypatch):
    monkeypatch.setitem(C.PRESET_SETTINGS, "demo", {**C.PRESET_SETTINGS["demo"], "epochs": 0, "eval_every": 0})
    with pytest.raises(ValueError, match="--epochs must be positive, got 0"):
        resolve(run_module, data_dir=tmp_path)
    assert resolve(run_module, "--epochs", "1", "--eval-every", "5", data_dir=tmp_path).epochs == 1.0


# ------------------------------------------------------------------ Figure 2's variants


def test_ner_variants_take_the_papers_alphas(run_module, tmp_path):
    ner = lambda *argv: resolve(run_module, "--task", "ner", *argv, data_dir=tmp_path)  # noqa: E731
    assert ner().alpha == 1.0  # gradient-mix-train: every step
    assert ner("--language-set", "single").alpha == 0.1  # gradient-single (footnote 9)
    assert ner("--language-set", "ar,zh").alpha == 0.4  # gradient-subset (footnote 10)
    assert ner("--language-set", "ar").alpha == 0.4  # a one-language subset is a subset
    assert ner("--language-set", "single", "--alpha", "0.7").alpha == 0.7  # a flag beats the variant
    # the variant's alpha is a result setting: a resumed run with another alpha is refused
    assert ner("--language-set", "single").result_settings()["alpha"] == 0.1
    # other tasks keep their alpha
    assert resolve(run_module, "--task", "pos", "--language-set", "single", data_dir=tmp_path).alpha == 1.0
    assert resolve(run_module, "--task", "xnli", "--language-set", "ar", data_dir=tmp_path).alpha == 0.1
    assert C.PAPER_SETTINGS["ner"].variants == {"single": {"alpha": 0.1}, "subset": {"alpha": 0.4}}


def test_the_epilog_shows_the_variants_alphas(run_module):
    epilog = " ".join(run_module.build_parser().epilog.split())
    assert "gradient-single (--language-set single): ner alpha 0.1" in epilog
    assert "gradient-subset (--language-set a,b,...): ner alpha 0.4" in epilog
    assert "ner lr 2e-05, batch 32 (16 x 2 accumulation), 10 epochs, max length 128, alpha 1, " \
           "gradient-single alpha 0.1, gradient-subset alpha 0.4" in epilog


def test_a_setting_no_source_sets_names_its_flag(run_module, tmp_path, monkeypatch):
    monkeypatch.setitem(C.PRECEDENCE, "lr", ("flag",))
    with pytest.raises(ValueError, match=r"--lr: none of its sources \(flag\) sets it"):
        resolve(run_module, data_dir=tmp_path)
    assert resolve(run_module, "--lr", "1e-4", data_dir=tmp_path).lr == 1e-4
