"""``run.py --shard I/N``: the I-th of N disjoint subsets of the cells, so a job array covers a grid.

The assignment is disjoint and covering for any N; two workers run at once as two processes on
one output directory record every cell exactly once, the same records as one unsharded run;
a source model two workers both trained is saved once (the first to finish) and reused."""
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import harness_helpers as H  # noqa: E402

from transfer import config as C  # noqa: E402
from transfer import run_dir as D  # noqa: E402
from transfer.results import CellKey, read_jsonl  # noqa: E402
from transfer.shards import FULL_TRAINING_COST, SMALL_JOB_COST, assign_shards, shard_cells  # noqa: E402

RUN_PY = H.RUN_PY
TARGETS = ("xx", "hh")


@pytest.fixture(autouse=True)
def _one_thread():
    yield from H.single_thread()


@pytest.fixture(scope="module")
def run_module():
    return H.load_run_script()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("shard")
    return H.write_pos_data(root / "data"), H.write_tiny_model(root / "model")


def argv(data, model, out, *extra):
    return ["--task", "pos", "--methods", "zero-shot,ord-fs,naive-mix-train", "--k", "2", "--seeds", "1,2",
            "--targets", ",".join(TARGETS), "--data-dir", str(data), "--model", str(model), "--output-dir", str(out),
            "--lr", "5e-3", "--batch-size", "8", "--epochs", "1", "--max-steps", "2", "--eval-every", "1",
            "--max-source-examples", "16", "--max-dev-examples", "8", "--max-eval-examples", "8",
            "--max-seq-length", "64", "--no-freeze-embeddings", "--no-progress", "--num-threads", "1", *extra]


# ----------------------------------------------------------------------------- the flag


@pytest.mark.parametrize("value, message", [
    ("2", "expected I/N"), ("a/b", "expected I/N"), ("1/", "expected I/N"), ("1/2/3", "expected I/N"),
    ("-1/2", "expected I/N"), ("0/2", "need 1 <= I <= N"), ("3/2", "need 1 <= I <= N"), ("1/0", "need 1 <= I <= N"),
])
def test_a_bad_shard_is_a_one_line_usage_error(run_module, tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as exc:
        run_module.main([f"--shard={value}", "--report-only", "--output-dir", str(tmp_path / "out")])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "argument --shard" in lines[-1] and message in lines[-1]
    assert not (tmp_path / "out").exists()


def test_the_shard_is_parsed_and_is_not_a_setting_of_the_run(run_module, tmp_path):
    args = run_module.build_parser().parse_args(["--shard", "3/8"])
    assert args.shard == (3, 8)
    config = C.resolve_config(args)
    assert not any("shard" in name for name in config.result_settings())


# ----------------------------------------------------------------------------- the assignment


def paper_shaped_plan(n_targets=48):
    """The cells, costs and source needs of ``--preset paper`` for one task (6 methods, K 1,5,10,
    seeds 1-5), with the runner's cost rule written out."""
    per_target = n_targets * SMALL_JOB_COST
    cost = {"zero-shot": SMALL_JOB_COST, "ord-fs": per_target, "ord-fs-dev": per_target, "mix-ft": SMALL_JOB_COST,
            "naive-mix-train": FULL_TRAINING_COST, "gradient-mix-train": FULL_TRAINING_COST}
    cells = []
    for seed in range(1, 6):
        cells.append(CellKey("ner", "zero-shot", 0, seed))
        cells += [CellKey("ner", m, k, seed) for k in (1, 5, 10) for m in C.METHODS if m != "zero-shot"]
    return (cells, [cost[c.method] for c in cells],
            [c.method not in ("naive-mix-train", "gradient-mix-train") for c in cells])


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 16, 35, 80, 100])
def test_the_shards_are_disjoint_cover_the_plan_and_balance_it(count):
    cells, costs, needs_source = paper_shaped_plan()
    assert len(cells) == 80
    shard = assign_shards(cells, costs, needs_source, count)
    assert shard == assign_shards(cells, costs, needs_source, count)  # deterministic
    assert len(shard) == len(cells) and set(shard) <= set(range(count))  # each cell in exactly one shard
    if count <= 35:  # 30 one-step cells and at least 5 source-model units: every worker has work
        assert len(set(shard)) == count
    # the work: each shard's cells plus one source model per seed it needs
    loads = [sum(costs[i] for i in range(len(cells)) if shard[i] == w)
             + FULL_TRAINING_COST * len({cells[i].seed for i in range(len(cells)) if shard[i] == w and needs_source[i]})
             for w in range(count)]
    total = sum(costs) + 5 * FULL_TRAINING_COST  # 30 one-step trainings, 5 source models, the small jobs
    assert max(loads) <= total / count + 2 * FULL_TRAINING_COST  # within two trainings of an even split
    if count <= 8:  # a seed's source-model cells (6.84 trainings) within an even share: one worker each
        assert sum(loads) == pytest.approx(total)


def test_the_runner_shards_its_own_plan(tiny, run_module):
    from transfer.runner import Runner

    data, model = tiny
    config = C.resolve_config(run_module.build_parser().parse_args(
        argv(data, model, data.parent / "plan_out", "--methods", ",".join(C.METHODS), "--k", "1,2", "--seeds", "1,2,3")))
    runner = Runner(config, model_path=str(model))
    plan = runner.plan_cells()
    for count in (1, 2, 3, 5, len(plan), len(plan) + 3):
        shards = [shard_cells(plan, config, runner.data.targets, i, count) for i in range(1, count + 1)]
        keys = [key for cells in shards for key, _, _ in cells]
        assert sorted(keys) == sorted(key for key, _, _ in plan) and len(set(keys)) == len(plan)
        assert all(cells == [c for c in plan if c in cells] for cells in shards)  # in plan order
    with pytest.raises(ValueError, match="need 1 <= I <= N"):
        shard_cells(plan, config, runner.data.targets, 3, 2)


# ----------------------------------------------------------------------------- workers on one directory


def comparable(records):
    """Records without their timings (which differ from run to run), as sorted JSON lines."""
    return sorted(json.dumps({k: v for k, v in r.items() if not k.endswith("_seconds")}, sort_keys=True)
                  for r in records)


def identity(r):
    return (r["task"], r["method"], r["k"], r["seed"], r["job"], r.get("language"), r.get("metric"),
            r.get("checkpoint"))


def test_two_workers_on_one_directory_record_every_cell_once_as_one_run_does(tiny, run_module, tmp_path):
    data, model = tiny
    shared = tmp_path / "shared"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, str(RUN_PY), *argv(data, model, shared, "--shard", f"{i}/2")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
               for i in (1, 2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
    assert all("shard" in o for o in outputs)

    single = tmp_path / "single"
    assert run_module.main(argv(data, model, single)) == 0

    merged, reference = read_jsonl(D.results_path(shared)), read_jsonl(D.results_path(single))
    counts = collections.Counter(map(identity, merged))
    assert counts and set(counts.values()) == {1}  # every record exactly once
    assert comparable(merged) == comparable(reference)
    runs, reference_runs = read_jsonl(D.runs_path(shared)), read_jsonl(D.runs_path(single))
    assert sorted(map(identity, runs)) == sorted(map(identity, reference_runs))
    assert len(set(map(identity, runs))) == len(runs)
    # one manifest with every K and seed's shots, one source model per seed
    assert json.loads(D.manifest_path(shared).read_text()) == json.loads(D.manifest_path(single).read_text())
    assert sorted(p.parent.name for p in D.source_info_paths(shared)) == ["seed1", "seed2"]

    # --report-only merges them: the same summary as the single run's
    assert run_module.main(["--report-only", "--output-dir", str(shared)]) == 0
    assert run_module.main(["--report-only", "--output-dir", str(single)]) == 0
    strip = lambda text: [line for line in text.splitlines() if str(shared) not in line and str(single) not in line]  # noqa: E731
    assert strip((shared / "summary.md").read_text()) == strip((single / "summary.md").read_text())

    # a worker started again finds its shard finished and runs nothing
    again = subprocess.run([sys.executable, str(RUN_PY), *argv(data, model, shared, "--shard", "2/2")],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert comparable(read_jsonl(D.results_path(shared))) == comparable(merged)


def test_a_source_model_saved_by_another_worker_first_wins(tiny, run_module, tmp_path):
    from transfer.runner import Runner

    data, model = tiny
    out = tmp_path / "out"
    config = C.resolve_config(run_module.build_parser().parse_args(argv(data, model, out)))
    first = Runner(config, model_path=str(model))
    trained, info = first.source_model(1)
    folder = D.source_model_dir(out, "pos", 1)
    saved = D.state_path(folder).read_bytes(), D.info_path(folder).read_bytes()

    # a second worker that trained the same seed meanwhile (here: another model) finishes later
    second = Runner(config, model_path=str(model))
    other = second.pretrained_model(2)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    kept, kept_info = second._commit_source_model(folder, other, {"seed": 1, "train_seconds": -1.0}, 1)
    assert (D.state_path(folder).read_bytes(), D.info_path(folder).read_bytes()) == saved  # untouched
    assert kept_info == info
    mine = dict(trained.named_parameters())
    assert all(torch.equal(p, mine[n]) for n, p in kept.named_parameters())  # it continues with the saved one
