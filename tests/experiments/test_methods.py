"""The methods as strategies (methods.plan_jobs) and as the runner executes them, on tiny
POS files and a tiny random XLM-R: what each method trains, where it starts, how it selects,
which shots it sees, and resuming."""
import contextlib
import json
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import harness_helpers as H  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    yield from H.single_thread()

from transfer import config as C  # noqa: E402
from transfer import methods as M  # noqa: E402
from transfer import train as T  # noqa: E402

TARGETS = ("xx", "hh", "dd")


# ----------------------------------------------------------------------------- the strategies


def test_target_adapting_methods_start_from_the_source_model_with_batch_k():
    for name in ("ord-fs", "ord-fs-dev"):
        jobs = M.plan_jobs(name, TARGETS)
        assert [j.name for j in jobs] == list(TARGETS)  # one model per target language
        for job, lang in zip(jobs, TARGETS):
            assert (job.init, job.batch, job.with_source_data) == (M.SOURCE_MODEL, "k", False)
            assert job.shot_languages == (lang,) and job.eval_languages == (lang,)
            assert job.oracle_languages == ()
    assert [j.selection for j in M.plan_jobs("ord-fs", TARGETS)] == [M.SELECT_LAST] * 3
    dev = M.plan_jobs("ord-fs-dev", TARGETS)
    assert [(j.selection, j.selection_language) for j in dev] == [(M.SELECT_TARGET_DEV, lang) for lang in TARGETS]
    (mix,) = M.plan_jobs("mix-ft", TARGETS)
    assert (mix.init, mix.shot_languages, mix.eval_languages, mix.selection, mix.batch) == (
        M.SOURCE_MODEL, TARGETS, TARGETS, M.SELECT_LAST, "k")


def test_zero_shot_is_the_source_model():
    (job,) = M.plan_jobs("zero-shot", TARGETS)
    assert job.init == M.SOURCE_MODEL and not job.trains and job.eval_languages == (*TARGETS, "en")


def test_one_step_methods_mix_english_and_select_on_english_dev():
    (naive,) = M.plan_jobs("naive-mix-train", TARGETS)
    (grad,) = M.plan_jobs("gradient-mix-train", TARGETS)
    for job in (naive, grad):
        assert (job.init, job.with_source_data, job.selection, job.selection_language, job.batch) == (
            M.PRETRAINED, True, M.SELECT_SOURCE_DEV, "en", "config")
        assert job.shot_languages == TARGETS and job.eval_languages == (*TARGETS, "en")  # and the source
    # naive-mix-train draws the same oracles, to count its conflicts, and projects nothing
    assert naive.oracle_languages == grad.oracle_languages == TARGETS
    assert (naive.surgery_mode, grad.surgery_mode) == ("observe", "project")
    (code,) = M.plan_jobs("gradient-mix-train", TARGETS, oracle_includes_source=True)
    assert code.oracle_languages == (*TARGETS, "en")


def test_language_sets_single_and_subset():
    single = M.plan_jobs("gradient-mix-train", TARGETS, language_set="single")
    assert [(j.shot_languages, j.oracle_languages, j.eval_languages) for j in single] == [
        ((lang,), (lang,), (lang,)) for lang in TARGETS]
    (subset,) = M.plan_jobs("gradient-mix-train", TARGETS, language_set=("xx", "dd"))
    assert (subset.shot_languages, subset.oracle_languages, subset.eval_languages) == (
        ("xx", "dd"), ("xx", "dd"), (*TARGETS, "en"))
    (naive_subset,) = M.plan_jobs("naive-mix-train", TARGETS, language_set=("xx",))
    assert (naive_subset.oracle_languages, naive_subset.surgery_mode) == (("xx",), "observe")
    assert M.method_label("gradient-mix-train", "single") == "gradient-single"
    assert M.method_label("naive-mix-train", ("xx", "dd")) == "naive-subset(xx+dd)"
    assert M.method_label("ord-fs", "single") == "ord-fs"  # language sets are for one-step methods only
    with pytest.raises(ValueError, match="zz not among the targets"):
        M.plan_jobs("gradient-mix-train", TARGETS, language_set=("zz",))


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'best'"):
        M.plan_jobs("best", TARGETS)
    assert set(M.METHOD_TABLE) == set(C.METHODS)


# ----------------------------------------------------------------------------- executed by the runner


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    layout = {**H.POS_LAYOUT, "dd": {"dev": 40}}  # dd: only a dev file (shots, selection and evaluation from it)
    data = H.write_pos_data(root / "data", layout)
    model = H.write_tiny_model(root / "model", hidden_dropout_prob=0.1)  # dropout: randomness matters
    return data, model


def make_config(data, out, **overrides):
    args = dict(task="pos", methods=",".join(C.METHODS), k="2", seeds="1", targets=",".join(TARGETS),
                data_dir=str(data), output_dir=str(out), lr=5e-3, epochs=2, adapt_epochs=3, eval_every=4,
                max_source_examples=48, max_dev_examples=0, max_eval_examples=0, batch_size=8, no_progress=True,
                freeze_embeddings=False, max_seq_length=64)  # the tiny model has 78 positions
    args.update(overrides)
    return C.resolve_config(types.SimpleNamespace(**args))


class Spy:
    """Records what the runner trains and evaluates."""

    def __init__(self, monkeypatch, runner):
        from transfer import runner as R

        self.trained, self.evaluated, self.method = [], [], None
        original_train, original_eval, original_cell = R.train, runner.task.evaluate, runner.run_cell

        def train(model, dataset, settings, **kw):
            self.trained.append({"desc": kw["desc"], "n": len(dataset), "batch": settings.micro_batch_size,
                                 "oracles": sorted(kw.get("oracle_batches") or {}), "selector": kw.get("selector")})
            return original_train(model, dataset, settings, **kw)

        def evaluate(model, examples, *a, **kw):
            self.evaluated.append((self.method, {ex.uid for ex in examples}))
            return original_eval(model, examples, *a, **kw)

        def run_cell(key, *a, **kw):
            self.method = key.method
            return original_cell(key, *a, **kw)

        monkeypatch.setattr(R, "train", train)
        monkeypatch.setattr(runner.task, "evaluate", evaluate)
        monkeypatch.setattr(runner, "run_cell", run_cell)


@pytest.fixture(scope="module")
def run_module():
    return H.load_run_script()


def make_runner(config, model):
    from transfer.runner import Runner

    return Runner(config, model_path=str(model))


def test_every_method_runs_and_resumes(tiny_setup, tmp_path, monkeypatch):
    data, model = tiny_setup
    out = tmp_path / "out"
    runner = make_runner(make_config(data, out), model)
    spy = Spy(monkeypatch, runner)
    done = runner.run()
    assert {(key.method, key.k) for key in done} == {("zero-shot", 0)} | {(m, 2) for m in C.METHODS[1:]}

    results = runner.store.results()
    selected = [r for r in results if r["checkpoint"] == "selected"]
    cells = {(r["method"], r["language"], r["metric"]) for r in selected}
    # every method is scored on the source language too (the paper's averages include it)
    assert cells == {(m, lang, metric) for m in C.METHODS for lang in (*TARGETS, "en")
                     for metric in ("f1", "accuracy")}
    assert {r["role"] for r in selected if r["language"] == "en"} == {"source"}
    assert {r["role"] for r in selected if r["language"] != "en"} == {"target"}
    assert all(0.0 <= r["value"] <= 100.0 for r in results)
    # the target-adapting methods leave English to the source model: they record its score
    english = {r["method"]: r["value"] for r in selected if r["language"] == "en" and r["metric"] == "f1"}
    assert english["ord-fs"] == english["ord-fs-dev"] == english["mix-ft"] == english["zero-shot"]
    assert {r["job"] for r in selected if r["language"] == "en" and r["method"] == "ord-fs"} == {"source-model"}
    # methods that select also report their last checkpoint, on the same languages
    last = [r for r in results if r["checkpoint"] == "last"]
    assert {r["method"] for r in last} == {"ord-fs-dev", "naive-mix-train", "gradient-mix-train"}
    for method in ("naive-mix-train", "gradient-mix-train"):
        assert ({(r["language"], r["metric"]) for r in last if r["method"] == method}
                == {(r["language"], r["metric"]) for r in selected if r["method"] == method})
        assert {r["selected_step"] for r in last if r["method"] == method} == {
            r["steps"] for r in last if r["method"] == method}

    descs = [t["desc"] for t in spy.trained]
    assert descs.count("source seed1") == 1  # the source model is trained once and shared
    # target-adapting: batch K on that language's K shots; mix-FT: all targets' shots
    shots_of = {lang: runner.data.shots(lang, 2, 1) for lang in TARGETS}
    assert all(len(s) == 2 for s in shots_of.values())
    ordfs = [t for t in spy.trained if t["desc"].startswith("ord-fs k2")]
    assert [(t["n"], t["batch"], t["selector"]) for t in ordfs] == [(2, 2, None)] * 3
    ordfs_dev = [t for t in spy.trained if t["desc"].startswith("ord-fs-dev k2")]
    assert all(t["selector"] is not None and t["selector"].every == 1 for t in ordfs_dev)  # every epoch
    (mixft,) = [t for t in spy.trained if t["desc"].startswith("mix-ft")]
    assert (mixft["n"], mixft["batch"]) == (6, 2)
    (naive,) = [t for t in spy.trained if t["desc"].startswith("naive-mix-train")]
    (grad,) = [t for t in spy.trained if t["desc"].startswith("gradient-mix-train")]
    assert naive["n"] == grad["n"] == 48 + 6 and naive["batch"] == 8
    assert naive["oracles"] == grad["oracles"] == sorted(TARGETS)
    assert grad["selector"].every == 4

    # shots drawn from dev never reach the evaluation of a method that saw them (dd: shots,
    # selection and evaluation all come from its dev file); zero-shot saw no shots
    dd_shots = {ex.uid for ex in shots_of["dd"]}
    assert all(uid.startswith("udpos/dd/dev/") for uid in dd_shots)
    dd_evals = [(m, uids) for m, uids in spy.evaluated if any(u.startswith("udpos/dd/") for u in uids)]
    assert {m for m, _ in dd_evals} == set(C.METHODS)
    assert all(not (uids & dd_shots) for m, uids in dd_evals if m != "zero-shot")

    # the manifest records every target's shots for K=2, seed 1
    from transfer.shots import read_manifest

    manifest = read_manifest(out / "shots" / "manifest.json")
    assert {key[1]: set(rec.uids) for key, rec in manifest.items()} == {
        lang: {ex.uid for ex in shots} for lang, shots in shots_of.items()}

    # per-job training records, with surgery counters for the one-step methods (naive: observed only)
    runs = runner.store.runs()
    for method in ("gradient-mix-train", "naive-mix-train"):
        (run,) = [r for r in runs if r["method"] == method]
        assert sum(c["steps"] for c in run["surgery_counters"].values()) == run["steps"]
    (naive_run,) = [r for r in runs if r["method"] == "naive-mix-train"]
    assert sum(c["oracle_runs"] for c in naive_run["surgery_counters"].values()) == naive_run["steps"]
    assert sum(c["projections"] for c in naive_run["surgery_counters"].values()) == 0
    assert all(r["surgery_counters"] is None for r in runs if "mix-train" not in r["method"])

    # zero-shot is exactly the source model: its selected step is the source model's
    source_info = (out / "source_models" / "pos" / "seed1" / "train_result.json")
    assert source_info.exists()
    zero = [r for r in selected if r["method"] == "zero-shot"]
    assert {r["k"] for r in zero} == {0}
    source = json.loads(source_info.read_text())
    assert source["steps"] == 2 * 6  # 48 English sentences / batch 8, 2 epochs
    assert {(r["steps"], r["selected_step"]) for r in zero} == {(source["steps"], source["selected_step"])}
    assert all(r["source_train_seconds"] == source["train_seconds"] for r in zero)

    # resuming: nothing to do, nothing trained
    before = sorted(map(str, results))
    again = make_runner(make_config(data, out), model)
    spy2 = Spy(monkeypatch, again)
    assert again.run() == []
    assert spy2.trained == [] and sorted(map(str, again.store.results())) == before

    # a lost cell is redone alone, from the cached source model
    from transfer.results import write_jsonl

    write_jsonl(out / "results.jsonl", [r for r in results if r["method"] != "ord-fs"])
    third = make_runner(make_config(data, out), model)
    spy3 = Spy(monkeypatch, third)
    assert [key.method for key in third.run()] == ["ord-fs"]
    assert [t["desc"].split(" k")[0] for t in spy3.trained] == ["ord-fs"] * 3
    redone = sorted((r["language"], r["metric"], r["value"]) for r in third.store.results() if r["method"] == "ord-fs")
    assert {r[0] for r in redone} == {*TARGETS, "en"}
    assert redone == sorted((r["language"], r["metric"], r["value"]) for r in results if r["method"] == "ord-fs")


def test_resume_with_other_settings_is_refused(tiny_setup, tmp_path):
    data, model = tiny_setup
    out = tmp_path / "out"
    make_runner(make_config(data, out, methods="zero-shot", max_steps=2), model).run()
    with pytest.raises(SystemExit, match="lr: was 0.005, now 0.001"):
        make_runner(make_config(data, out, methods="zero-shot", max_steps=2, lr=1e-3), model).run()


@contextlib.contextmanager
def changed_file(path, change):
    """``path`` rewritten as ``change(text)`` for the block, then restored (the module's tiny
    data is shared by its tests)."""
    original = path.read_bytes()
    try:
        path.write_bytes(change(original.decode("utf-8")).encode("utf-8"))
        yield
    finally:
        path.write_bytes(original)


def line_replaced(index, new_line):
    def change(text):
        lines = text.splitlines(keepends=True)
        lines[index] = new_line(lines[index])
        return "".join(lines)
    return change


def test_resume_on_changed_data_is_refused_naming_the_file(tiny_setup, tmp_path):
    data, model = tiny_setup
    out = tmp_path / "out"
    make_runner(make_config(data, out, methods="zero-shot", max_steps=2), model).run()
    recorded = json.loads((out / "data_files.json").read_text())
    assert "udpos/en/train.tsv" in recorded["files"] and recorded["data_dir"] == str(data)
    with changed_file(data / "udpos" / "xx" / "test.tsv", lambda text: text + "extra\tNOUN\n\n"):
        with pytest.raises(SystemExit, match=r"holds results made from other data(.|\n)*udpos/xx/test\.tsv: was"):
            make_runner(make_config(data, out, methods="zero-shot", max_steps=2), model).run()
    make_runner(make_config(data, out, methods="zero-shot", max_steps=2), model).run()  # restored: resumes


def test_unknown_target_language_is_named(tiny_setup, tmp_path):
    data, model = tiny_setup
    with pytest.raises(ValueError, match=r"--targets: no pos data for qq .*languages with data: dd, en, hh, xx, yy"):
        make_runner(make_config(data, tmp_path, targets="xx,qq"), model)


def test_a_redone_cell_reproduces_even_right_after_training_the_source_model(tiny_setup, tmp_path):
    # fresh run: ord-fs is trained right after the source model, in the same process;
    # the redo loads the cached source model: the scores must be the same
    data, model = tiny_setup
    out = tmp_path / "out"
    config = make_config(data, out, methods="ord-fs", lr=2e-2)
    first = make_runner(config, model)
    first.run()
    scores = sorted((r["language"], r["metric"], r["value"]) for r in first.store.results())
    (out / "results.jsonl").unlink()
    again = make_runner(config, model)
    again.run()
    assert sorted((r["language"], r["metric"], r["value"]) for r in again.store.results()) == scores


def test_targets_without_a_shot_pool(tiny_setup, tmp_path):
    # tt has only a test split: zero-shot can evaluate it, few-shot methods cannot draw shots
    data, model = tiny_setup
    H.write_tsv(data / "udpos" / "tt" / "test.tsv", H.sentences("tt", 8, 0))
    try:
        with pytest.raises(ValueError, match="--targets: tt has no split to draw pos shots from"):
            make_runner(make_config(data, tmp_path, targets="xx,tt"), model)
        everything = make_runner(make_config(data, tmp_path / "a", targets="all"), model)
        assert everything.data.targets == ("dd", "hh", "xx", "yy")  # tt skipped, as the paper skips such languages
        zero = make_runner(make_config(data, tmp_path / "b", targets="all", methods="zero-shot"), model)
        assert "tt" in zero.data.targets
    finally:
        (data / "udpos" / "tt" / "test.tsv").unlink()
        (data / "udpos" / "tt").rmdir()


def test_a_skipped_target_is_named_in_the_summary(tiny_setup, tmp_path, run_module):
    """Not only a log line: the run records the languages --targets all skipped, and summary.md
    (rebuilt from the records, as --report-only does) names them with the reason."""
    from transfer.report import write_reports

    data, model = tiny_setup
    H.write_tsv(data / "udpos" / "tt" / "test.tsv", H.sentences("tt", 8, 0))
    out = tmp_path / "out"
    try:
        runner = make_runner(make_config(data, out, targets="all", methods="ord-fs", max_steps=1), model)
        runner.run()
    finally:
        (data / "udpos" / "tt" / "test.tsv").unlink()
        (data / "udpos" / "tt").rmdir()
    line = "Skipped: tt (no pos train or dev split to draw shots from)."
    assert json.loads((out / "data_files.json").read_text())["skipped_targets"] == {
        "tt": "no pos train or dev split to draw shots from"}
    write_reports(out)
    assert line in (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    assert run_module.main(["--report-only", "--output-dir", str(out), "--data-dir", str(data)]) == 0
    assert line in (out / "summary.md").read_text()
    # a run that skipped nothing says nothing
    other = tmp_path / "other"
    make_runner(make_config(data, other, targets="xx", methods="zero-shot", max_steps=1), model).run()
    write_reports(other)
    assert "Skipped" not in (other / "summary.md").read_text()


def test_a_max_seq_length_beyond_the_models_positions_is_refused_before_training(tiny_setup, tmp_path):
    data, model = tiny_setup  # the tiny XLM-R: max_position_embeddings 80, pad_token_id 1
    with pytest.raises(ValueError, match=r"--max-seq-length 79: the model .*model takes at most 78 tokens "
                                         r"\(max_position_embeddings 80 - pad_token_id 1 - 1"):
        make_runner(make_config(data, tmp_path / "out", max_seq_length=79), model)
    assert not (tmp_path / "out" / "source_models").exists()
    make_runner(make_config(data, tmp_path / "out", max_seq_length=78), model)  # the limit itself is fine


def test_the_length_limit_is_where_the_models_positions_end(tiny_setup, tmp_path):
    """XLM-R-like models number positions from pad_token_id + 1; BERT-like ones from 0."""
    import torch
    from transformers import AutoModel, BertConfig, XLMRobertaConfig

    from transfer.runner import max_input_length

    _, model_dir = tiny_setup
    XLMRobertaConfig(max_position_embeddings=514, pad_token_id=1).save_pretrained(tmp_path / "xlmr")
    BertConfig(max_position_embeddings=512, pad_token_id=0).save_pretrained(tmp_path / "bert")
    assert max_input_length(str(tmp_path / "xlmr"))[0] == 512  # me5-small's and XLM-R's 514 positions
    assert max_input_length(str(tmp_path / "bert"))[0] == 512
    limit, _ = max_input_length(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        model(input_ids=torch.full((1, limit), 5))
        with pytest.raises((IndexError, RuntimeError)):
            model(input_ids=torch.full((1, limit + 1), 5))


@pytest.mark.parametrize("targets", ["all", "xx,yy"])
def test_a_malformed_shot_pool_file_is_an_error_naming_file_and_line(tiny_setup, tmp_path, targets):
    """Not a skipped language: with --targets all it used to vanish from every average."""
    data, model = tiny_setup
    with changed_file(data / "udpos" / "yy" / "train.tsv", line_replaced(9, lambda l: l.rstrip("\n") + "\textra\n")):
        with pytest.raises(ValueError, match=r"yy/train\.tsv:10: "):
            make_runner(make_config(data, tmp_path, targets=targets), model)


def test_a_malformed_evaluation_file_fails_before_any_training(tiny_setup, tmp_path):
    """Found when the run starts, not after training the languages before it."""
    data, model = tiny_setup
    with changed_file(data / "udpos" / "yy" / "test.tsv", line_replaced(2, lambda l: "no-tab-here\n")):
        with pytest.raises(ValueError, match=r"yy/test\.tsv:3: "):
            make_runner(make_config(data, tmp_path, targets="xx,yy", methods="zero-shot"), model)


def test_k_beyond_a_pool_names_the_language_before_training(tiny_setup, tmp_path):
    data, model = tiny_setup  # hh draws from its dev split of 24 sentences
    with pytest.raises(ValueError, match=r"--k 30: pos/hh: cannot draw 30 shots from a pool of 24 \(its dev split\)"):
        make_runner(make_config(data, tmp_path, targets="hh", k="30"), model)


def test_an_empty_train_file_does_not_silently_move_the_shots_to_dev(tiny_setup, tmp_path):
    data, model = tiny_setup
    with changed_file(data / "udpos" / "xx" / "train.tsv", lambda text: ""):
        with pytest.raises(ValueError, match=r"xx/train\.tsv: the file is empty"):
            make_runner(make_config(data, tmp_path, targets="xx"), model)


def test_source_selection_last_keeps_the_final_checkpoints(tiny_setup, tmp_path, monkeypatch):
    data, model = tiny_setup
    runner = make_runner(make_config(data, tmp_path, methods="zero-shot,naive-mix-train", source_selection="last"),
                         model)
    spy = Spy(monkeypatch, runner)
    runner.run()
    assert [t["selector"] for t in spy.trained] == [None, None]
    for r in runner.store.results():
        assert r["selected_step"] == r["steps"]
    assert {r["selection"] for r in runner.store.runs() if r["method"] == "naive-mix-train"} == {"last"}


def test_published_code_oracles(tiny_setup, tmp_path):
    from transfer.train import RandomOracleBatch

    data, model = tiny_setup
    text = make_runner(make_config(data, tmp_path / "a"), model)
    fixed = text.data.oracle_batch("xx", 2, 1)  # the text: the K shots, one fixed batch
    assert not callable(fixed) and fixed["input_ids"].shape[0] == 2
    code = make_runner(make_config(data, tmp_path / "b", oracle_includes_source=True, oracle_shot_subset=True,
                                   k="3", batch_size=8, grad_accum_steps=4), model)
    english = code.data.oracle_batch("en", 3, 1)  # a fresh random English batch of min(K, micro-batch) = 2
    assert isinstance(english, RandomOracleBatch) and english.dataset is code.data.source_train_set()
    assert english()["input_ids"].shape[0] == 2
    subset = code.data.oracle_batch("xx", 3, 1)  # a random min(K, micro-batch) subset of the shots
    assert isinstance(subset, RandomOracleBatch) and len(subset.dataset) == 3 and subset.size == 2
    (job,) = M.plan_jobs("gradient-mix-train", TARGETS, oracle_includes_source=True)
    assert job.oracle_languages[-1] == "en"


def test_selection_average_scores_the_average_beside_the_rule_and_the_last(tiny_setup, tmp_path):
    data, model = tiny_setup
    methods = "gradient-mix-train,ord-fs"
    rule = make_runner(make_config(data, tmp_path / "rule", methods=methods), model)
    rule.run()
    average = make_runner(make_config(data, tmp_path / "average", methods=methods, selection="average"), model)
    average.run()
    by = lambda records: {(r["method"], r["checkpoint"], r["language"], r["metric"]): r for r in records}  # noqa: E731
    ruled, averaged = by(rule.store.results()), by(average.store.results())
    assert {c for _, c, _, _ in averaged} == {"selected", "last", "source-dev"}
    assert {(m, c) for m, c, _, _ in averaged if c == "source-dev"} == {("gradient-mix-train", "source-dev")}
    for (method, checkpoint, lang, metric), r in ruled.items():
        # averaging changes no training: the rule's checkpoint and the last score as in the run without it
        same = "source-dev" if (method, checkpoint) == ("gradient-mix-train", "selected") else checkpoint
        if (method, lang) == ("ord-fs", "en") or (method, checkpoint) == ("ord-fs", "selected"):
            same = "selected" if lang == "en" else "last"  # ord-FS's rule is its last checkpoint
        assert averaged[(method, same, lang, metric)]["value"] == r["value"], (method, checkpoint, lang)
    assert {r["selection"] for r in average.store.runs()} == {"average"}
    one_step = [r for r in average.store.runs() if r["method"] == "gradient-mix-train"]
    assert all(r["average_from_step"] == T.average_start(r["steps"]) for r in one_step)
    from transfer.report import write_reports

    write_reports(tmp_path / "average"), write_reports(tmp_path / "rule")
    summary = (tmp_path / "average" / "summary.md").read_text()
    assert "## Checkpoint averaging" in summary and "average − source-dev" in summary
    assert "## Checkpoint averaging" not in (tmp_path / "rule" / "summary.md").read_text()


def test_an_evaluation_example_equal_to_a_shot_is_removed_and_counted(tiny_setup, tmp_path):
    import shutil

    data, model = tiny_setup
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    train_file, test_file = copy / "udpos" / "xx" / "train.tsv", copy / "udpos" / "xx" / "test.tsv"
    test_file.write_text(test_file.read_text() + train_file.read_text())  # every train sentence again in test
    runner = make_runner(make_config(copy, tmp_path / "out", methods="zero-shot,ord-fs"), model)
    runner.run()
    shots = {tuple(ex.tokens) for ex in runner.data.shots("xx", 2, 1)}
    n_test = len(runner.task.eval_set("xx", copy))
    for r in runner.store.results():
        if r["language"] != "xx":
            continue
        if r["method"] == "zero-shot":
            assert (r["n_eval"], r["n_excluded"]) == (n_test, 0)  # trained on no shots
        else:
            assert (r["n_eval"], r["n_excluded"]) == (n_test - len(shots), len(shots))
    kept, removed = runner.data.eval_set("xx", runner.data.shots("xx", 2, 1))
    assert removed == len(shots) and not shots & {tuple(ex.tokens) for ex in kept}


# ----------------------------------------------------------------------------- analysis methods (issue 16)


def test_target_only_methods_start_from_the_pretrained_encoder_on_the_target_alone():
    jobs = M.plan_jobs("target-only", TARGETS)
    assert [j.name for j in jobs] == list(TARGETS)  # one model per target, as ord-FS
    for job, lang in zip(jobs, TARGETS):
        assert (job.init, job.with_source_data, job.batch, job.selection) == (M.PRETRAINED, False, "k", M.SELECT_LAST)
        assert (job.shot_languages, job.target_train_languages, job.eval_languages) == ((lang,), (), (lang,))
        assert job.oracle_languages == () and job.surgery_mode is None
    full = M.plan_jobs("target-only-full", ("xx", "yy"))
    for job, lang in zip(full, ("xx", "yy")):
        assert (job.init, job.with_source_data, job.batch) == (M.PRETRAINED, False, "config")
        assert (job.shot_languages, job.target_train_languages, job.eval_languages) == ((), (lang,), (lang,))
        assert (job.selection, job.selection_language) == (M.SELECT_TARGET_DEV, lang) and job.trains
    assert (M.cell_k("target-only-full", 5), M.cell_k("target-only", 5), M.cell_k("zero-shot", 5)) == (0, 5, 0)


def test_analysis_methods_stay_out_of_the_paper_s_method_lists(tiny_setup):
    from transfer.report import PAIRS

    data, _ = tiny_setup

    assert set(M.ANALYSIS_METHOD_TABLE) == set(C.ANALYSIS_METHODS) == {"target-only", "target-only-full"}
    assert not set(C.ANALYSIS_METHODS) & set(C.METHODS) and not set(M.ANALYSIS_METHOD_TABLE) & set(M.METHOD_TABLE)
    for preset in C.PRESET_SETTINGS.values():
        assert not set(preset.get("methods") or ()) & set(C.ANALYSIS_METHODS)
    assert not {m for pair in PAIRS for m in pair} & set(C.ANALYSIS_METHODS)
    assert make_config(data, Path("out"), methods="target-only,target-only-full").methods == (
        "target-only", "target-only-full")
    assert C.PRESET_SETTINGS["paper"]["methods"] == C.METHODS  # Table 1's six, unchanged
    with pytest.raises(ValueError, match="unknown method\\(s\\) target-only-fool"):
        make_config(data, Path("out"), methods="target-only-fool")


class StartSpy:
    """Records, for every training, its data (the MixedSet) and the model's state at its start."""

    def __init__(self, monkeypatch):
        from transfer import runner as R

        self.trained = []
        original = R.train

        def train(model, dataset, settings, **kw):
            self.trained.append({"desc": kw["desc"], "dataset": dataset, "batch": settings.micro_batch_size,
                                 "epochs": settings.epochs, "selector": kw.get("selector"),
                                 "oracles": kw.get("oracle_batches"),
                                 "start": {n: t.detach().clone() for n, t in model.state_dict().items()}})
            return original(model, dataset, settings, **kw)

        monkeypatch.setattr(R, "train", train)


def input_ids(encoded):
    return [encoded[i]["input_ids"].tolist() for i in range(len(encoded))]


def test_target_only_models_train_from_the_pretrained_start_on_exactly_their_data(tiny_setup, tmp_path, monkeypatch):
    from transfer import run_dir as D
    from transfer.shots import cap

    data, model = tiny_setup
    out = tmp_path / "out"
    config = make_config(data, out, methods="target-only,target-only-full", targets="xx,yy", max_source_examples=12,
                         save_models=True)
    runner = make_runner(config, model)
    assert runner.data.train_split_targets == ("xx", "yy")
    spy = StartSpy(monkeypatch)
    done = runner.run()
    # target-only-full trains on no shots: one K=0 cell per seed, like zero-shot
    assert sorted((key.method, key.k) for key in done) == [("target-only", 2), ("target-only-full", 0)]
    by_desc = {t["desc"]: t for t in spy.trained}  # the K=0 cells first, as zero-shot's
    assert [t["desc"] for t in spy.trained] == ["target-only-full k0 s1 xx", "target-only-full k0 s1 yy",
                                                "target-only k2 s1 xx", "target-only k2 s1 yy"]
    start = runner.pretrained_model(1).state_dict()  # the seed's pretrained start, head included
    for t in spy.trained:
        assert set(t["start"]) == set(start) and all(torch_equal(t["start"][n], start[n]) for n in start), t["desc"]
        assert t["oracles"] is None
        assert all(s is not runner.data.source_train_set() for s in t["dataset"].sets)  # no English data
    for lang in ("xx", "yy"):  # the language's K shots, batch K, the adapting epochs
        t = by_desc[f"target-only k2 s1 {lang}"]
        (shots,) = t["dataset"].sets
        expected = runner.task.encode(runner.data.shots(lang, 2, 1), runner.tokenizer, 64)
        assert input_ids(shots) == input_ids(expected) and len(shots) == 2
        assert (t["batch"], t["epochs"], t["selector"]) == (2, config.adapt_epochs, None)
    for lang in ("xx", "yy"):  # its train split, capped as English is, the source budget
        t = by_desc[f"target-only-full k0 s1 {lang}"]
        (train_set,) = t["dataset"].sets
        split = runner.task.source_train(lang, data)
        assert len(split) == 20 and all(ex.uid.startswith(f"udpos/{lang}/train/") for ex in split)
        expected = runner.task.encode(cap(split, 12), runner.tokenizer, 64)
        assert len(train_set) == 12 and input_ids(train_set) == input_ids(expected)
        assert (t["batch"], t["epochs"]) == (config.micro_batch_size, config.epochs)
        assert (t["selector"].name, t["selector"].every) == (f"{lang}-dev", config.eval_every)
    for method, k in (("target-only", 2), ("target-only-full", 0)):
        for lang in ("xx", "yy"):
            assert D.is_saved(D.cell_model_dir(out, "pos", method, k, 1, lang))
    results = runner.store.results()
    assert {(r["method"], r["job"], r["language"]) for r in results} == {
        (m, lang, lang) for m in ("target-only", "target-only-full") for lang in ("xx", "yy")}
    runs = {(r["method"], r["job"]): r for r in runner.store.runs()}
    assert runs[("target-only-full", "xx")]["target_train_languages"] == ["xx"]
    assert runs[("target-only", "xx")]["shot_languages"] == ["xx"]
    from transfer.report import write_reports

    write_reports(out)  # analysis methods in a run's records: the report still builds
    assert "target-only-full" in (out / "summary.md").read_text()


def test_target_only_full_follows_source_selection_last(tiny_setup, tmp_path, monkeypatch):
    data, model = tiny_setup
    runner = make_runner(make_config(data, tmp_path, methods="target-only-full", targets="xx", max_steps=2,
                                     source_selection="last"), model)
    spy = StartSpy(monkeypatch)
    runner.run()
    assert [t["selector"] for t in spy.trained] == [None]
    assert {r["selection"] for r in runner.store.runs()} == {"last"}


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)


def test_target_only_full_needs_a_train_split(tiny_setup, tmp_path):
    data, model = tiny_setup  # hh and dd have no train split: their shots come from dev
    with pytest.raises(ValueError, match=r"--methods target-only-full: hh has no pos train split to train "
                                         r"target-only-full on"):
        make_runner(make_config(data, tmp_path, methods="target-only-full", targets="xx,hh"), model)
    everything = make_runner(make_config(data, tmp_path / "all", methods="ord-fs,target-only-full", targets="all"),
                             model)
    assert everything.data.targets == ("dd", "hh", "xx", "yy")  # the other methods keep every target
    assert everything.data.train_split_targets == ("xx", "yy")
    assert make_runner(make_config(data, tmp_path / "no", methods="target-only", targets="xx,hh"),
                       model).data.train_split_targets == ()  # K shots: dev-drawn shots are fine
