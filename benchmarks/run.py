"""Run every benchmark and write the report: one command.

    python benchmarks/run.py                 # full: 10M, 100M, XLM-R base and large (CPU: ~1 hour)
    python benchmarks/run.py --quick         # small sizes, a minute or two
    python benchmarks/run.py --device cuda   # the same on the GPU

Steps, each in its own process so memory is returned between them:
  1. per size: pytest-benchmark over test_surgery_bench.py and test_gram_bench.py
     (bandwidth probe, dot_norm, surgery, gram; one size at a time),
  2. the training-step benchmark (test_train_step_bench.py),
  3. peak extra memory of every variant at every size (quick: the largest), one fresh
     process each (memory.py),
  4. results.json, results.md and results.png in --out, the raw data in --out/raw;
     a full run into the default folder also rewrites the tables in benchmarks/README.md,
  5. optional: torchjd as a peer (peers.py: its one-sided surgery and PCGrad beside the
     fused op, time and peak extra memory) into --out/peers.md and --out/peers.json;
     skipped with a message when torchjd is not installed (pip install '.[peers]').

On a shared machine, --wait-load 0.5 waits (up to --wait-max seconds) for the
1-minute load average to drop below 0.5 before starting.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # after site-packages, so an installed sgs_ext wins (see conftest.py)
    sys.path.append(str(REPO))

from benchmarks.memory import expected_total_bytes  # noqa: E402
from benchmarks.report import load_cases, summarize, update_readme, write_all  # noqa: E402
from benchmarks.shapes import FULL_SIZES, QUICK_SIZES, model_shapes, num_params, parse_sizes  # noqa: E402
from benchmarks.timing import available_bytes  # noqa: E402
from benchmarks.variants import GRAM_VARIANTS, SURGERY_VARIANTS  # noqa: E402


def machine_info(args) -> dict:
    import torch

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "device": args.device,
        "threads": args.threads if args.device == "cpu" else None,
        "torch": torch.__version__,
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": round(os.getloadavg()[0], 2),
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def wait_for_quiet(max_load: float, max_wait: float) -> None:
    deadline = time.time() + max_wait
    while True:
        load = os.getloadavg()[0]
        if load < max_load:
            print(f"load average {load:.2f} < {max_load}: starting", flush=True)
            return
        if time.time() >= deadline:
            print(f"load average still {load:.2f} after {max_wait:.0f} s: starting anyway (the report shows the load)", flush=True)
            return
        print(f"load average {load:.2f} >= {max_load}: waiting", flush=True)
        time.sleep(60)


def run_pytest(files, json_path: Path, args, extra=()) -> None:
    cmd = [sys.executable, "-m", "pytest", *[str(HERE / f) for f in files], "-q", "-p", "no:cacheprovider",
           f"--benchmark-json={json_path}", "--benchmark-columns=min,median,rounds", "--benchmark-sort=name",
           "--benchmark-disable-gc", f"--device={args.device}", f"--threads={args.threads}", f"--gram-sets={args.gram_sets}",
           f"--gram-max-params={args.gram_max_params}", *extra]
    if args.quick:
        cmd.append("--quick")
    if args.budget is not None:
        cmd.append(f"--budget={args.budget}")
    print("+", " ".join(cmd), flush=True)
    # `python -m` puts the working directory first on sys.path: run from the raw
    # results folder, not the source tree, so the installed sgs_ext is the one imported.
    subprocess.run(cmd, cwd=json_path.parent, check=True)


def measure_memory(sizes, args, skip) -> list:
    results = []
    gram_sets = [int(s) for s in args.gram_sets.split(",")]
    jobs = [(op, v, 2) for op in ("surgery", "dot_norm") for v in SURGERY_VARIANTS]
    jobs += [("gram", v, L) for L in gram_sets for v in GRAM_VARIANTS]
    for size in sizes:
        numel = num_params(model_shapes(size))
        for op, variant, num_sets in jobs:
            if op == "gram" and ("gram" in skip or numel > args.gram_max_params):
                continue
            need = expected_total_bytes(op, variant, numel, num_sets)
            if need * 1.1 > available_bytes(args.device):
                print(f"memory: skip {op} {variant} {size} L={num_sets}: needs ~{need / 2**30:.1f} GiB", flush=True)
                continue
            cmd = [sys.executable, str(HERE / "memory.py"), "--size", size, "--op", op, "--variant", variant,
                   "--num-sets", str(num_sets), "--device", args.device, "--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(f"memory: {op:8s} {variant:14s} {size:10s} L={num_sets}  {result['peak_extra_bytes'] / 2**20:9.1f} MiB", flush=True)
            results.append(result)
    return results


def run_peers(sizes, args, out: Path) -> None:
    """The optional torchjd section (peers.py), one fresh process per case; CPU only."""
    try:
        missing = importlib.util.find_spec("torchjd") is None
    except ValueError:  # sys.modules["torchjd"] is None: blocked
        missing = True
    if missing:
        print("peers: skipped: torchjd is not installed (pip install '.[peers]' for torchjd==0.18.0)", flush=True)
        return
    if args.device != "cpu":
        print("peers: skipped: the torchjd comparison measures CPU memory (VmHWM) and runs on the CPU only", flush=True)
        return
    rounds = args.peer_rounds if args.peer_rounds is not None else (2 if args.quick else 3)
    cmd = [sys.executable, str(HERE / "peers.py"), "--sizes", ",".join(sizes), "--rounds", str(rounds),
           "--threads", str(args.threads), "--out", str(out)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"sizes {','.join(QUICK_SIZES)}, short budget, small training step")
    parser.add_argument("--sizes", help=f"comma-separated sizes (default {','.join(FULL_SIZES)}; quick: {','.join(QUICK_SIZES)})")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="benchmark the CPU or the CUDA path")
    parser.add_argument("--threads", type=int, default=2, help="CPU intra-op threads (default 2)")
    parser.add_argument("--gram-sets", default="2,4,8", help="numbers of gradient sets for gram (default 2,4,8)")
    parser.add_argument("--budget", type=float, help="seconds of timed rounds per case (default 8; quick 1)")
    parser.add_argument("--gram-max-params", type=float, default=150e6,
                        help="gram only for sizes up to this many parameters (default 150e6)")
    parser.add_argument("--skip", default="", help="comma-separated steps to skip: gram, train, memory, peers")
    parser.add_argument("--peer-rounds", type=int, help="rounds per torchjd peer case (default 3; quick 2)")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results, quick: benchmarks/results/quick)")
    parser.add_argument("--wait-load", type=float, help="wait until the 1-minute load average is below this")
    parser.add_argument("--wait-max", type=float, default=1800, help="longest wait for --wait-load, seconds (default 1800)")
    args = parser.parse_args(argv)

    sizes = parse_sizes(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - {"gram", "train", "memory", "peers"}
    if unknown:
        parser.error(f"--skip: unknown steps {sorted(unknown)}; choose from gram, train, memory, peers")
    out = (args.out or (HERE / "results" / "quick" if args.quick else HERE / "results")).resolve()
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for old in raw.glob("bench-*.json"):
        old.unlink()

    if args.wait_load is not None:
        wait_for_quiet(args.wait_load, args.wait_max)
    machine = machine_info(args)

    files = ["test_surgery_bench.py"] + ([] if "gram" in skip else ["test_gram_bench.py"])
    for size in sizes:
        run_pytest(files, raw / f"bench-{size}.json", args, extra=[f"--sizes={size}"])
    if "train" not in skip:
        run_pytest(["test_train_step_bench.py"], raw / "bench-train-step.json", args)
    machine["load_after"] = round(os.getloadavg()[0], 2)

    memory = None
    if "memory" not in skip:
        memory = measure_memory(sizes[-1:] if args.quick else sizes, args, skip)  # quick: the largest size only
        (raw / "memory.json").write_text(json.dumps(memory, indent=1) + "\n")
    (raw / "machine.json").write_text(json.dumps(machine, indent=1) + "\n")

    summary = summarize(load_cases(sorted(raw.glob("bench-*.json"))), memory, machine)
    for path in write_all(summary, out):
        print(f"wrote {path}")
    if out == (HERE / "results").resolve() and not args.quick:  # the default full run: README shows its tables
        update_readme(HERE / "README.md", summary)
        print(f"updated {HERE / 'README.md'}")
    if "peers" not in skip:
        run_peers(sizes, args, out)
    missed = [t for t in summary["targets"] if not t["met"]]
    for t in summary["targets"]:
        value = "not measured" if t["value"] is None else f"{t['value']:.2f}"
        print(f"target {'met    ' if t['met'] else 'NOT MET'} {t['size']:10s} {t['target']}: {value} (goal {t['goal']:g})")
    if missed:
        print(f"{len(missed)} of {len(summary['targets'])} targets not met")


if __name__ == "__main__":
    main()
