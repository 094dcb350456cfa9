"""Gradient surgery under torch.distributed: two gloo processes on the CPU.

* DDP: after several steps every rank's parameters equal those of one process that sees the
  same global batches (and the full oracle sets), for each way of wiring DDP.
* Sharded gradients (FSDP/ZeRO style): surgery on slices + one all-reduce of the three
  scalars equals the unsharded surgery.

The workers are module-level functions of this file, imported in the spawned children by
plain module name (this directory is put on ``sys.path``, which ``spawn`` passes on).
"""
import importlib
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import sgs_ext
from sgs_ext import StochasticGradientSurgery
from sgs_ext.distributed import sharded_surgery_

WORLD = 2
STEPS = 6
GLOBAL_BATCH = 8
ORACLE_SHOTS = 4
LR = 0.5
ALPHA = 0.7

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- shared fixtures
def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3))


def make_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS * GLOBAL_BATCH, 6, generator=g)
    y = torch.randint(0, 3, (STEPS * GLOBAL_BATCH,), generator=g)
    oracle = {}
    for lang, shift in (("ar", 0), ("hi", 1), ("sw", 2)):
        xo = torch.randn(ORACLE_SHOTS, 6, generator=g)
        yo = (torch.randint(0, 3, (ORACLE_SHOTS,), generator=g) + shift) % 3
        oracle[lang] = (xo, yo)
    return x, y, oracle


def loss_fn(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


def single_process_run():
    model = make_model()
    x, y, oracle = make_data()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    surgery = StochasticGradientSurgery(model.parameters(), alpha=ALPHA, seed=0, distributed=False)
    closures = {lang: (lambda xo=xo, yo=yo: loss_fn(model, xo, yo)) for lang, (xo, yo) in oracle.items()}
    history = []
    for step in range(STEPS):
        sl = slice(step * GLOBAL_BATCH, (step + 1) * GLOBAL_BATCH)
        loss_fn(model, x[sl], y[sl]).backward()
        s = surgery.step(closures)
        history.append((s.language, s.p, s.projected))
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()], history


# ---------------------------------------------------------------- workers (run in the children)
def _init(rank, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)


DDP_VARIANTS = ["ddp_module", "module", "bucket_view", "seed_per_rank", "mismatch"]


def ddp_run(rank, variant):
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = make_model()
    ddp = DDP(model, gradient_as_bucket_view=(variant == "bucket_view"))
    x, y, oracle = make_data()
    opt = torch.optim.SGD(ddp.parameters(), lr=LR)
    per = GLOBAL_BATCH // WORLD
    shots = ORACLE_SHOTS // WORLD
    mine = {lang: (xo[rank * shots:(rank + 1) * shots], yo[rank * shots:(rank + 1) * shots])
            for lang, (xo, yo) in oracle.items()}
    if variant == "module":
        # no ddp_module: distributed mode is detected; closures bypass DDP's reducer
        surgery = StochasticGradientSurgery(ddp.parameters(), alpha=ALPHA, seed=0)
        closures = {lang: (lambda xo=xo, yo=yo: loss_fn(ddp.module, xo, yo)) for lang, (xo, yo) in mine.items()}
    else:
        seed = rank if variant == "seed_per_rank" else 0   # rank 0's draws must win
        surgery = StochasticGradientSurgery(ddp.parameters(), alpha=ALPHA, seed=seed, ddp_module=ddp)
        closures = {lang: (lambda xo=xo, yo=yo: loss_fn(ddp, xo, yo)) for lang, (xo, yo) in mine.items()}
    if variant == "mismatch" and rank == 1:
        closures["te"] = closures["hi"]
    history = []
    try:
        for step in range(STEPS):
            lo = step * GLOBAL_BATCH + rank * per
            loss_fn(ddp, x[lo:lo + per], y[lo:lo + per]).backward()
            s = surgery.step(closures)
            history.append((s.language, s.p, s.projected))
            opt.step()
            opt.zero_grad()
    except ValueError as e:
        return {"error": str(e)}
    return {"params": [p.detach().clone() for p in model.parameters()], "history": history,
            "counters": surgery.log_dict()}


def ddp_worker(rank, port, out_dir):
    _init(rank, port)
    try:
        results = {variant: ddp_run(rank, variant) for variant in DDP_VARIANTS}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def fsdp_worker(rank, port, out_dir):
    """FSDP2 (fully_shard) on a CPU mesh: each rank's .grad is a Shard(0) DTensor."""
    _init(rank, port)
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (WORLD,))
        model = make_model()
        for layer in (model[0], model[2]):
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        x, y, oracle = make_data()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        per, shots = GLOBAL_BATCH // WORLD, ORACLE_SHOTS // WORLD
        mine = {lang: (xo[rank * shots:(rank + 1) * shots], yo[rank * shots:(rank + 1) * shots])
                for lang, (xo, yo) in oracle.items()}
        surgery = StochasticGradientSurgery(model.parameters(), alpha=ALPHA, seed=0, sharded=True)
        closures = {lang: (lambda xo=xo, yo=yo: loss_fn(model, xo, yo)) for lang, (xo, yo) in mine.items()}
        history = []
        for step in range(STEPS):
            lo = step * GLOBAL_BATCH + rank * per
            loss_fn(model, x[lo:lo + per], y[lo:lo + per]).backward()
            s = surgery.step(closures)
            history.append((s.language, s.p, s.projected))
            opt.step()
            opt.zero_grad()
        params = [p.full_tensor().detach().clone() for p in model.parameters()]
        torch.save({"params": params, "history": history}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


SHAPES = [(7, 5), (13,), (4, 3, 2)]


def global_gradients(conflict):
    g = torch.Generator().manual_seed(3)
    train = [torch.randn(s, generator=g) for s in SHAPES]
    noise = [torch.randn(s, generator=g) for s in SHAPES]
    sign = -1.0 if conflict else 1.0
    oracle = [sign * t + 0.5 * n for t, n in zip(train, noise)]
    return train, oracle


def shard(tensors, rank):
    """This rank's slice of every tensor (uneven sizes allowed), as fresh contiguous tensors."""
    return [t.reshape(-1).tensor_split(WORLD)[rank].clone() for t in tensors]


def sharded_worker(rank, port, out_dir):
    _init(rank, port)
    try:
        out = {}
        for conflict in (True, False):
            train, oracle = global_gradients(conflict)
            # the helper: dot_norm on the shard, one all-reduce, project_ on the shard
            t_shard, o_shard = shard(train, rank), shard(oracle, rank)
            stats = sharded_surgery_(t_shard, o_shard)
            out[("helper", conflict)] = (t_shard, stats)

            # the class with sharded=True: each parameter is this rank's slice
            params = [torch.nn.Parameter(torch.zeros_like(t)) for t in shard(train, rank)]
            for p, t in zip(params, shard(train, rank)):
                p.grad = t
            o_dirs = shard(oracle, rank)
            surgery = StochasticGradientSurgery(params, sharded=True)
            s = surgery.step({"hi": lambda: sum((p * d).sum() for p, d in zip(params, o_dirs))})
            projected = [p.grad.clone() for p in params]
            norm = surgery.clip_grad_norm_(1.0)
            out[("class", conflict)] = (projected, s, norm, [p.grad.clone() for p in params])
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- the tests (parent process)
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker_name, tmp_path, *args):
    """Run ``worker_name`` of this module in WORLD processes; return each rank's saved result."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    module = importlib.import_module(Path(__file__).stem)   # a name the children can import
    mp.spawn(getattr(module, worker_name), args=(_free_port(), str(tmp_path), *args), nprocs=WORLD, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def reference():
    params, history = single_process_run()
    assert any(h[2] for h in history), "the fixture must produce projections"
    assert any(not h[2] for h in history), "... and steps without one"
    return params, history


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    return _spawn("ddp_worker", tmp_path_factory.mktemp("ddp"))


@pytest.mark.parametrize("variant", ["ddp_module", "module", "bucket_view", "seed_per_rank"])
def test_ddp_matches_single_process(ddp_results, reference, variant):
    ref_params, ref_history = reference
    results = [r[variant] for r in ddp_results]
    for rank, r in enumerate(results):
        assert "error" not in r, r.get("error")
        assert r["history"] == ref_history, f"rank {rank} drew/projected differently"
        for got, want in zip(r["params"], ref_params):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(results[0]["params"], results[1]["params"]):
        assert torch.equal(a, b)     # ranks stay bit-identical
    assert results[0]["counters"] == results[1]["counters"]


def test_ranks_with_different_languages_get_a_clear_error(ddp_results):
    for r in ddp_results:
        err = r["mismatch"]["error"]
        assert "same languages" in err and "rank 1" in err and "te" in err


def test_sharded_surgery_equals_unsharded(tmp_path):
    results = _spawn("sharded_worker", tmp_path)
    for conflict in (True, False):
        train, oracle = global_gradients(conflict)
        want = [t.clone() for t in train]
        want_stats = sgs_ext.surgery_(want, oracle)
        for kind in ("helper", "class"):
            pieces = [r[(kind, conflict)][0] for r in results]
            got = [torch.cat([p[i] for p in pieces]).view(s) for i, s in enumerate(SHAPES)]
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
        for r in results:
            torch.testing.assert_close(r[("helper", conflict)][1].double(), want_stats.double(), rtol=1e-5, atol=1e-5)
            s = r[("class", conflict)][1]
            assert s.projected == conflict == s.conflict
            assert s.dot == pytest.approx(float(want_stats[0]), rel=1e-5)
            assert s.train_norm == pytest.approx(float(want_stats[2]) ** 0.5, rel=1e-5)
            # the clip norm spans both shards: it is the norm of the full projected gradient
            full_norm = torch.cat([w.reshape(-1) for w in want]).norm()
            assert float(r[("class", conflict)][2]) == pytest.approx(float(full_norm), rel=1e-5)
        assert float(full_norm) > 1.0   # so the clip below really scales
        pieces = [r[("class", conflict)][3] for r in results]
        clipped = [torch.cat([p[i] for p in pieces]).view(s) for i, s in enumerate(SHAPES)]
        for c, w in zip(clipped, want):
            torch.testing.assert_close(c, w / (full_norm + 1e-6), rtol=1e-5, atol=1e-6)


def test_fsdp2_matches_single_process(tmp_path, reference):
    ref_params, ref_history = reference
    for rank, r in enumerate(_spawn("fsdp_worker", tmp_path)):
        assert r["history"] == ref_history, f"rank {rank} drew/projected differently"
        for got, want in zip(r["params"], ref_params):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
