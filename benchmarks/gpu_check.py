"""The checks only a real GPU can answer, in one run (called by benchmarks/gpu_check.sh).

    python benchmarks/gpu_check.py            # every check + bandwidth at XLM-R large
    python benchmarks/gpu_check.py --small    # a small case for compute-sanitizer

Checks (each prints PASS/FAIL and one line of numbers):
  sync       dot_norm, project_, surgery_ and gram run under torch.cuda.set_sync_debug_mode("error")
  graph      surgery_ captured in a CUDA graph and replayed equals the eager call
  big        a tensor of 2^31 + 2^20 float16 elements (> int32 indexing), against float64 torch
  splits     > 96 tensors (launches split on tensor slots) and an embedding of 2,930 chunks
  bandwidth  dot_norm, project_, surgery_ on an XLM-R-large-sized list (560M float32 in 391
             tensors) as a fraction of a device copy probe's bandwidth (target: surgery >= 85%)
"""
import argparse
import sys
import time
from pathlib import Path

import torch

# `benchmarks` from this checkout, but sgs_ext as installed (a source tree has no compiled _C
# unless built in place, which gpu_check.sh does and puts first on PYTHONPATH).
sys.path.append(str(Path(__file__).resolve().parents[1]))
import sgs_ext  # noqa: E402
from benchmarks.gradients import make_pair  # noqa: E402
from benchmarks.shapes import model_shapes  # noqa: E402

FAILURES = []


def report(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'}  {name:9s} {detail}", flush=True)
    if not ok:
        FAILURES.append(name)


def rel_err(got, want):
    return float((got.double() - want).abs().max() / want.abs().max().clamp_min(1e-300))


def reference_stats(train, oracle):
    t = torch.cat([x.double().flatten() for x in train])
    o = torch.cat([x.double().flatten() for x in oracle])
    return torch.stack([t @ o, o @ o, t @ t])


def check_sync(pair):
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = sgs_ext.dot_norm(pair.train, pair.oracle)
        sgs_ext.project_(pair.train, pair.oracle, stats)
        sgs_ext.surgery_(pair.train, pair.oracle)
        sgs_ext.gram([pair.train, pair.oracle])
        ok, detail = True, "no host synchronisation in any op"
    except RuntimeError as e:
        ok, detail = False, f"synchronised: {str(e).splitlines()[0]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    report("sync", ok, detail)


def check_graph(shapes):
    eager, captured = make_pair(shapes, device="cuda", seed=1), make_pair(shapes, device="cuda", seed=1)
    want_stats = sgs_ext.surgery_(eager.train, eager.oracle)
    start = captured.train_flat.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up outside the graph, as torch.cuda.graphs asks
        sgs_ext.surgery_(captured.train, captured.oracle)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            got_stats = sgs_ext.surgery_(captured.train, captured.oracle)
        captured.train_flat.copy_(start)
        graph.replay()
        torch.cuda.synchronize()
        ok = torch.equal(got_stats, want_stats) and torch.equal(captured.train_flat, eager.train_flat)
        report("graph", ok, "replay equals the eager call bit for bit" if ok else "replay differs from eager")
    except RuntimeError as e:
        report("graph", False, f"capture failed: {str(e).splitlines()[0]}")


def check_big():
    n = 2**31 + 2**20
    if torch.cuda.get_device_properties(0).total_memory < n * (2 * 2 + 8 * 3) + (4 << 30):  # + float64 checks
        report("big", True, "skipped: not enough device memory")
        return
    g = torch.Generator(device="cuda").manual_seed(3)
    t = torch.randn(n, device="cuda", dtype=torch.float16, generator=g)
    o = torch.randn(n, device="cuda", dtype=torch.float16, generator=g)
    stats = sgs_ext.dot_norm([t], [o])
    want = torch.stack([(t.double() * o.double()).sum(), (o.double() ** 2).sum(), (t.double() ** 2).sum()])
    err = rel_err(stats, want)
    tail_before = t[-1000:].float().clone()
    c = float(-1.0 / 4.0)
    sgs_ext.project_([t], [o], torch.tensor([-1.0, 4.0, 1.0], device="cuda"))
    tail_err = float((t[-1000:].float() - (tail_before - c * o[-1000:].float())).abs().max())
    ok = err < 1e-4 and tail_err < 1e-2
    report("big", ok, f"{n} fp16 elements: stats rel. error {err:.2e}, last elements |err| {tail_err:.2e}")


def check_splits():
    sizes = [250002 * 768] + [3] * 200 + [65537]
    g = torch.Generator(device="cuda").manual_seed(4)
    train = [torch.randn(s, device="cuda", generator=g) for s in sizes]
    oracle = [torch.randn(s, device="cuda", generator=g) for s in sizes]
    err = rel_err(sgs_ext.dot_norm(train, oracle), reference_stats(train, oracle))
    gram = sgs_ext.gram([train, oracle, train])
    gerr = rel_err(gram[0, 1], reference_stats(train, oracle)[0])
    report("splits", err < 1e-5 and gerr < 1e-5, f"{len(sizes)} tensors: dot_norm rel. error {err:.2e}, gram {gerr:.2e}")


def timed(fn, repeats):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return times[len(times) // 2]


def check_bandwidth(shapes, repeats):
    pair = make_pair(shapes, device="cuda", seed=5)
    n_bytes = pair.train_flat.numel() * pair.train_flat.element_size()
    dst = torch.empty_like(pair.train_flat)
    copy_s = timed(lambda: dst.copy_(pair.oracle_flat), repeats)
    copy_gbps = 2 * n_bytes / copy_s / 1e9
    stats = sgs_ext.dot_norm(pair.train, pair.oracle)
    rows = {
        "dot_norm": (lambda: sgs_ext.dot_norm(pair.train, pair.oracle), 2 * n_bytes),
        "project_": (lambda: sgs_ext.project_(pair.train, pair.oracle, stats), 3 * n_bytes),
        "surgery_": (lambda: sgs_ext.surgery_(pair.train, pair.oracle), 5 * n_bytes),
    }
    print(f"      bandwidth: {pair.train_flat.numel() / 1e6:.0f}M float32 in {len(pair.train)} tensors; "
          f"copy probe {copy_gbps:.0f} GB/s ({copy_s * 1e3:.3f} ms)")
    for name, (fn, moved) in rows.items():
        s = timed(fn, repeats)
        gbps = moved / s / 1e9
        frac = gbps / copy_gbps
        print(f"      {name:9s} {s * 1e3:8.3f} ms  {gbps:7.0f} GB/s  {100 * frac:5.1f}% of copy")
        if name == "surgery_":
            report("bandwidth", frac >= 0.85, f"surgery_ at {100 * frac:.1f}% of the copy probe (target 85%)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="one small case of every op (for compute-sanitizer)")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    if not torch.cuda.is_available() or not sgs_ext.CUDA_COMPILED:
        sys.exit(f"gpu_check needs a GPU and sgs_ext built with CUDA (cuda available: "
                 f"{torch.cuda.is_available()}, CUDA kernels compiled: {sgs_ext.CUDA_COMPILED})")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    if args.small:
        pair = make_pair(model_shapes("1M"), device="cuda", seed=0)
        sgs_ext.surgery_(pair.train, pair.oracle)
        sgs_ext.gram([pair.train, pair.oracle] * 9)  # 18 sets: tiles of register and shared-memory passes
        half = make_pair(model_shapes("1M"), dtype=torch.bfloat16, device="cuda", seed=1)
        sgs_ext.surgery_(half.train, half.oracle)
        off = torch.randn(1001, device="cuda")
        sgs_ext.surgery_([off[1:]], [torch.randn(1000, device="cuda")])  # unaligned: scalar path
        torch.cuda.synchronize()
        print("small case done")
        return
    t0 = time.time()
    check_sync(make_pair(model_shapes("10M"), device="cuda", seed=0))
    check_graph(model_shapes("10M"))
    check_splits()
    check_big()
    torch.cuda.empty_cache()
    check_bandwidth(model_shapes("xlmr-large"), args.repeats)
    print(f"{len(FAILURES)} check(s) failed{': ' + ', '.join(FAILURES) if FAILURES else ''} ({time.time() - t0:.0f} s)")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
