"""One run on two processes (``torchrun --nproc-per-node 2 experiments/run.py``, gloo on the CPU)
equals the same run on one process, and only rank 0 writes.

The run: POS on the made-up languages of harness_helpers, a tiny XLM-R without dropout (the
equality condition: with dropout each rank draws its own masks for its rows), three cells of
one seed: zero-shot (trains and caches the source model, selecting on English dev every 2 steps),
ord-FS (loads the cached source model: rank 0 reads it and broadcasts it; batch K = 3, so the
ranks get 2 and 1 rows) and gradient-mix-train (surgery with alpha 1; micro-batches of 5 rows,
2 per step, and 31 examples, so an epoch's last micro-batch has one row and rank 1 none).
Tagging batches give the ranks different numbers of labelled tokens: each rank's loss is
weighted by its share of the global micro-batch's tokens, so the averaged gradient is the
one-process mean-loss gradient.

Tolerance: the gradients are the same sums taken in another order (each rank's partial sum,
then the all-reduce), so they differ by float32 rounding (~1e-7 relative) and the few Adam
steps after carry that along: losses, dev scores and cosines are compared at rel 1e-4,
abs 1e-6. Discrete outcomes (selected steps, step counts, the surgery's draws, conflicts and
projections, every score's record) must be equal.

Rank 1 runs under an audit hook (``sys.addaudithook``) that records every file it opens for
writing, creates, renames or removes under the output directory: there must be none.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import harness_helpers as H  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "experiments" / "run.py"
REL, ABS = 1e-4, 1e-6

ENTRY = textwrap.dedent('''
    """run.py under an audit hook: on a rank other than 0, every write under the output dir is noted."""
    import atexit, json, os, runpy, sys
    out = os.path.realpath(os.environ["SGS_AUDIT_OUT"])
    rank = int(os.environ.get("RANK", "0"))
    seen = []
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def under_out(path):
        try:
            real = os.path.realpath(os.fsdecode(path))
            return real == out or real.startswith(out + os.sep)
        except (TypeError, ValueError):
            return False

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
            if writes and under_out(path):
                seen.append([event, os.fsdecode(path), str(mode)])
        elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree"):
            if args and under_out(args[0]):
                seen.append([event, os.fsdecode(args[0]), ""])

    if rank != 0:
        sys.addaudithook(hook)

    def report():
        with open(os.environ["SGS_AUDIT_LOG"] + f".rank{rank}.json", "w") as f:
            json.dump(seen, f)

    atexit.register(report)
    sys.argv = [os.environ["SGS_RUN_PY"], *sys.argv[1:]]
    runpy.run_path(os.environ["SGS_RUN_PY"], run_name="__main__")
''')


def write_data(root: Path) -> Path:
    """harness_helpers' POS files, but "xx" is English re-tagged (every word's tag shifted by one):
    its shots contradict the English data, so the surgery finds conflicts and projects."""
    H.write_pos_data(root)
    shift = {t: H.TAGS[(i + 1) % len(H.TAGS)] for i, t in enumerate(H.TAGS)}
    for split, n, seed in (("train", 20, 11), ("dev", 16, 12), ("test", 16, 13)):
        H.write_tsv(root / "udpos" / "xx" / f"{split}.tsv",
                    [[(w, shift[t]) for w, t in s] for s in H.sentences("en", n, seed)])
    return root


def run_args(data: Path, model: Path, out: Path, extra=()) -> list[str]:
    methods = "gradient-mix-train" if extra else "zero-shot,ord-fs,gradient-mix-train"
    return [*extra, "--task", "pos", "--data-dir", str(data), "--model", str(model), "--output-dir", str(out),
            "--targets", "xx,yy", "--methods", methods, "--k", "3", "--seeds", "1",
            "--alpha", "1", "--lr", "3e-2", "--batch-size", "10", "--grad-accum-steps", "2", "--epochs", "8",
            "--max-source-examples", "25", "--max-dev-examples", "8", "--max-eval-examples", "8",
            "--eval-every", "2", "--max-seq-length", "32", "--no-progress", "--num-threads", "1"]


def launch(tmp_path: Path, name: str, nproc: int, data: Path, model: Path, extra=()) -> tuple[Path, dict[int, list]]:
    out = tmp_path / name
    entry = tmp_path / "audited_run.py"
    entry.write_text(ENTRY)
    env = {**os.environ, "SGS_AUDIT_OUT": str(out), "SGS_AUDIT_LOG": str(tmp_path / f"audit-{name}"),
           "SGS_RUN_PY": str(RUN_PY), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    if nproc == 1:
        cmd = [sys.executable, str(entry)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               str(entry)]
    proc = subprocess.run([*cmd, *run_args(data, model, out, extra)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    audits = {r: json.loads((tmp_path / f"audit-{name}.rank{r}.json").read_text()) for r in range(nproc)}
    return out, audits


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


TIMING = {"train_seconds", "eval_seconds", "test_seconds", "source_train_seconds"}


def assert_close(got, want, where: str) -> None:
    """Equal, numbers to REL/ABS (booleans, ints that count things and strings exactly)."""
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for key in want:
            if key not in TIMING:
                assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got == pytest.approx(want, rel=REL, abs=ABS, nan_ok=True), where
    else:
        assert got == want, where


def files_of(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    data, model = write_data(tmp / "data"), H.write_tiny_model(tmp / "model")
    one, one_audit = launch(tmp, "one", 1, data, model)
    two, two_audit = launch(tmp, "two", 2, data, model)
    return one, two, two_audit


def test_two_processes_equal_one(two_runs):
    one, two, _ = two_runs
    assert_same_records(one, two)
    # the cached source model: its training record and its weights
    import torch
    from safetensors.torch import load_file
    from transfer import run_dir as D

    folder_one, folder_two = D.source_model_dir(one, "pos", 1), D.source_model_dir(two, "pos", 1)
    assert_close(json.loads(D.info_path(folder_two).read_text()), json.loads(D.info_path(folder_one).read_text()),
                 "source model info")
    want, got = load_file(str(D.state_path(folder_one))), load_file(str(D.state_path(folder_two)))
    assert set(got) == set(want)
    for name in want:
        if name.endswith("attention.self.key.bias"):
            # softmax is blind to the key bias: its true gradient is 0, its computed one rounding noise
            # (~1e-9), which Adam scales up to lr-sized steps of either sign: not comparable
            continue
        torch.testing.assert_close(got[name], want[name], rtol=REL, atol=1e-5, msg=name)


def test_per_micro_batch_surgery_two_processes_equal_one(tmp_path):
    """--surgery-per-micro-batch: DDP synchronises every micro-batch (no no_sync), so the surgery
    after each one sees the all-reduced running gradient."""
    data, model = write_data(tmp_path / "data"), H.write_tiny_model(tmp_path / "model")
    extra = ("--surgery-per-micro-batch",)
    one, _ = launch(tmp_path, "one", 1, data, model, extra)
    two, _ = launch(tmp_path, "two", 2, data, model, extra)
    assert_same_records(one, two)


def assert_same_records(one: Path, two: Path) -> None:
    want_runs, got_runs = read_jsonl(one / "runs.jsonl"), read_jsonl(two / "runs.jsonl")
    key = lambda r: (r["method"], r["job"])  # noqa: E731
    assert sorted(map(key, got_runs)) == sorted(map(key, want_runs))
    got_by = {key(r): r for r in got_runs}
    for want in want_runs:
        assert_close(got_by[key(want)], want, f"runs {key(want)}")
    # the fixture exercises what it says: surgery that projected, selection, an uneven last batch
    (grad,) = [r for r in want_runs if r["method"] == "gradient-mix-train"]
    counters = grad["surgery_counters"]
    assert sum(c["oracle_runs"] for c in counters.values()) >= grad["steps"] > 0  # alpha 1: every step (or micro-batch)
    assert sum(c["projections"] for c in counters.values()) > 0, "no projection: the surgery path is untested"
    assert any(row["kind"] == "dev" for row in grad["curve"])

    key = lambda r: (r["method"], r["job"], r["language"], r["metric"], r["checkpoint"])  # noqa: E731
    want_results, got_results = read_jsonl(one / "results.jsonl"), read_jsonl(two / "results.jsonl")
    assert sorted(map(key, got_results)) == sorted(map(key, want_results))
    got_by = {key(r): r for r in got_results}
    for want in want_results:
        assert_close(got_by[key(want)], want, f"results {key(want)}")


def test_only_rank_zero_writes(two_runs):
    one, two, audit = two_runs
    assert audit[1] == [], f"rank 1 wrote under the output dir: {audit[1][:10]}"
    assert files_of(two) == files_of(one)  # the same files, once (rank 0's)
    log = (two / "run.log").read_text()
    assert "[rank 1]" not in log
    starts = [line for line in log.splitlines() if ": starting" in line]
    assert len(starts) == 3, starts  # three cells, logged once each
