"""The run directory's layout has one owner (``transfer.run_dir``): a tiny ``run.py`` writes
exactly the paths it names (and the reports), and its one loader of saved states refuses a
state that does not fit the model, naming the tensor."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import harness_helpers as H  # noqa: E402

from transfer import run_dir as D  # noqa: E402

RUN_PY = H.RUN_PY
TARGETS = ("xx", "hh")


@pytest.fixture(autouse=True)
def _one_thread():
    yield from H.single_thread()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_dir")
    data = H.write_pos_data(root / "data")
    model = H.write_tiny_model(root / "model")
    out = root / "out"
    run = H.load_run_script()
    argv = ["--task", "pos", "--methods", "zero-shot,ord-fs,naive-mix-train", "--k", "2", "--seeds", "1",
            "--targets", ",".join(TARGETS), "--data-dir", str(data), "--model", str(model), "--output-dir", str(out),
            "--lr", "5e-3", "--batch-size", "8", "--epochs", "1", "--max-steps", "2", "--eval-every", "1",
            "--max-source-examples", "16", "--max-dev-examples", "8", "--max-eval-examples", "8",
            "--max-seq-length", "64", "--no-freeze-embeddings", "--no-progress", "--save-models"]
    assert run.main(argv) == 0
    return out, model


def test_a_run_writes_exactly_the_paths_run_dir_names(tiny_run):
    from transfer.report import write_reports

    out, _ = tiny_run
    model_dirs = [D.source_model_dir(out, "pos", 1), D.cell_model_dir(out, "pos", "naive-mix-train", 2, 1),
                  *(D.cell_model_dir(out, "pos", "ord-fs", 2, 1, lang) for lang in TARGETS)]
    expected = {D.run_config_path(out), D.data_files_path(out), D.results_path(out), D.runs_path(out),
                D.lock_path(out), D.log_path(out), D.manifest_path(out),
                *(path for folder in model_dirs for path in (D.state_path(folder), D.info_path(folder)))}
    expected |= set(write_reports(out).values())  # the reports: named by report.py beside their content
    assert {p for p in out.rglob("*") if p.is_file()} == expected
    assert D.source_info_paths(out) == [D.info_path(D.source_model_dir(out, "pos", 1))]
    # the names, spelled out once here: a renamed file is a change of the run format
    assert D.manifest_path(out) == out / "shots" / "manifest.json"
    assert D.cell_model_dir(out, "pos", "ord-fs", 2, 1, "xx") == (
        out / "models" / "pos" / "ord-fs" / "k2" / "seed1" / "xx")
    assert D.state_path(D.source_model_dir(out, "pos", 1)) == (
        out / "source_models" / "pos" / "seed1" / "trained_state.safetensors")
    assert D.analysis_dir(out) == out / "analysis"


def test_the_loader_restores_a_saved_state_and_refuses_one_that_does_not_fit(tiny_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from transfer.tasks import get_task

    out, base = tiny_run
    task = get_task("pos")
    saved = D.source_model_dir(out, "pos", 1)
    torch.manual_seed(0)
    model = task.build_model(str(base))
    D.load_trained_state(model, saved, base=str(base))
    state = load_file(str(D.state_path(saved)))
    own = model.state_dict()
    assert state and all(torch.equal(own[name], tensor) for name, tensor in state.items())

    wrong_shape = tmp_path / "wrong_shape"
    wrong_shape.mkdir()
    save_file({**state, "classifier.weight": torch.zeros(3, 5)}, str(D.state_path(wrong_shape)))
    with pytest.raises(ValueError, match=r"does not fit the model .*shapes differ: classifier.weight \(3, 5\) vs"):
        D.load_trained_state(task.build_model(str(base)), wrong_shape, base=str(base))

    unknown = tmp_path / "unknown"
    unknown.mkdir()
    save_file({**state, "head.extra": torch.zeros(2)}, str(D.state_path(unknown)))
    with pytest.raises(ValueError, match=r"does not fit the model .*unknown tensors head.extra"):
        D.load_trained_state(task.build_model(str(base)), unknown, base=str(base))


def test_no_other_module_spells_a_run_dir_file_name():
    """Each name is written once: a module that needs a path of the run dir asks run_dir for it."""
    import ast

    experiments = RUN_PY.parent
    names = {D.RUN_CONFIG_FILE, D.DATA_FILES_FILE, D.RESULTS_FILE, D.RUNS_FILE, D.LOCK_FILE, D.LOG_FILE,
             D.MANIFEST_FILE, D.SOURCE_MODELS_DIR, D.STATE_FILE, D.INFO_FILE}
    spelled = []
    for path in sorted([*experiments.glob("*.py"), *(experiments / "transfer").rglob("*.py")]):
        if path.name == "run_dir.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
        spelled += [f"{path.relative_to(experiments)}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and node.value in names and id(node) not in in_fstrings]
    assert spelled == []
