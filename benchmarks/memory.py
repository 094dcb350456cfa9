"""Peak extra memory of one variant, measured in a fresh process.

``tracemalloc`` does not see torch's allocations, so the peak is taken from
the operating system (CPU) or torch's CUDA allocator (GPU):

- CPU: the process's resident-set high-water mark.  The process runs the
  variant once on a tiny list (thread pools, BLAS buffers and code pages are
  one-time costs, not the variant's), returns freed heap to the system
  (``malloc_trim``), builds the real gradient lists (in place, no
  temporaries), resets the high-water mark (``5 > /proc/self/clear_refs``),
  runs the variant once, and reports ``VmHWM`` minus the ``VmRSS`` from just
  before the call: the most memory the call held beyond the gradient lists.
- CUDA: ``torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()``
  around the same call, after ``torch.cuda.reset_peak_memory_stats()``.

Run one measurement (prints one JSON line):

    python benchmarks/memory.py --size 100M --op surgery --variant naive
"""
import argparse
import ctypes
import json
import re
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: see conftest.py

import torch  # noqa: E402

from benchmarks.gradients import make_pair, make_sets  # noqa: E402
from benchmarks.shapes import model_shapes, num_params  # noqa: E402
from benchmarks.variants import GRAM_VARIANTS, SURGERY_VARIANTS  # noqa: E402

OPS = ["surgery", "dot_norm", "gram"]

# Expected peak, in copies of one gradient list (gram: of one set), beyond the
# lists themselves: used only to skip what cannot fit; the real peak is measured.
EXPECTED_EXTRA_COPIES = {
    ("surgery", "naive"): 3,  # flat train, flat oracle, c * flat oracle
    ("dot_norm", "naive"): 2,  # flat train, flat oracle
}


def expected_extra_copies(op: str, variant: str, num_sets: int = 2) -> int:
    if op == "gram":
        return num_sets if variant == "naive" else 0  # one flat copy of every set
    return EXPECTED_EXTRA_COPIES.get((op, variant), 0)


def expected_total_bytes(op: str, variant: str, numel: int, num_sets: int = 2, itemsize: int = 4) -> int:
    """What a measuring process holds at its peak: the lists plus the variant's expected extra."""
    lists = num_sets if op == "gram" else 2
    return (lists + expected_extra_copies(op, variant, num_sets)) * numel * itemsize
CPU_METHOD = "peak RSS (VmHWM after clear_refs) minus RSS before the call, fresh process"
CUDA_METHOD = "torch.cuda.max_memory_allocated minus memory_allocated before the call, fresh process"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    if not match:
        raise RuntimeError(f"/proc/self/status has no {field} line: peak RSS cannot be measured on this system")
    return int(match.group(1))


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as exc:
        raise RuntimeError(f"cannot reset the RSS high-water mark via /proc/self/clear_refs ({exc})") from exc


# What the warm-up call runs on: a matrix and a vector, like one small layer.
WARMUP_SHAPES = [("warmup.weight", (64, 64)), ("warmup.bias", (64,))]


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: freed heap may stay resident (the peak can only read low)
        pass


def _build(op: str, shapes, num_sets: int, device: str):
    if op == "gram":
        _, sets = make_sets(shapes, num_sets, device=device)
        return sets
    return make_pair(shapes, device=device)


def _call(op: str, variant: str, data) -> None:
    if op == "gram":
        GRAM_VARIANTS[variant](data)
    elif op == "surgery":
        SURGERY_VARIANTS[variant].surgery_(data.train, data.oracle)
    else:
        SURGERY_VARIANTS[variant].dot_norm(data.train, data.oracle)


def measure(op: str, variant: str, size: str, device: str = "cpu", num_sets: int = 2, threads: int = 2) -> dict:
    """Peak extra bytes of one call of ``variant`` (run this in a fresh process)."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; choose from {OPS}")
    known = GRAM_VARIANTS if op == "gram" else SURGERY_VARIANTS
    if variant not in known:
        raise ValueError(f"unknown {op} variant {variant!r}; choose from {list(known)}")
    if device == "cpu":
        torch.set_num_threads(threads)
    _call(op, variant, _build(op, WARMUP_SHAPES, num_sets, device))
    _malloc_trim()
    data = _build(op, model_shapes(size), num_sets, device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _call(op, variant, data)
        torch.cuda.synchronize()
        extra, method = torch.cuda.max_memory_allocated() - before, CUDA_METHOD
    else:
        before_kib = _status_kib("VmRSS")
        _reset_peak_rss()
        _call(op, variant, data)
        extra, method = (_status_kib("VmHWM") - before_kib) * 1024, CPU_METHOD
    return {
        "op": op,
        "variant": variant,
        "size": size,
        "numel": num_params(model_shapes(size)),
        "num_sets": num_sets if op == "gram" else 2,
        "device": device,
        "peak_extra_bytes": max(int(extra), 0),
        "method": method,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", required=True, help="a size from benchmarks/shapes.py, e.g. 100M or xlmr-base")
    parser.add_argument("--op", required=True, choices=OPS)
    parser.add_argument("--variant", required=True, help="a variant name from benchmarks/variants.py")
    parser.add_argument("--num-sets", type=int, default=2, help="gradient sets for --op gram (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="CPU intra-op threads (default 2)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.op, args.variant, args.size, args.device, args.num_sets, args.threads)))


if __name__ == "__main__":
    main()
