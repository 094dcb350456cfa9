"""How the cases are timed: a time budget per case, device sync, memory guard.

Every case is one ``benchmark.pedantic`` call with ``iterations=1``: each
round is one call of the variant on the full gradient lists, preceded by an
untimed ``setup`` (e.g. restoring ``train`` so the surgery projects again).
The number of rounds fits a per-case time budget, from one untimed warm-up
call.  On CUDA each timed call ends with ``torch.cuda.synchronize()``.

What runs just before a round can matter on the CPU.  Measured on the 2-core
VM at XLM-R large, rounds alternating within one process: in a slow hour,
``dot_norm`` took 261 ms right after another ``dot_norm`` and 350 ms right
after the 2.2 GB copy that restores ``train`` (after a 0.3 s sleep, as slow as
after the copy); in a fast hour, 137 ms either way, and the same for the dot
and axpy probes.  The surgery cases need the restore, so every round of the
surgery-group cases (probes included) starts after it, and they all see the
same state whichever hour it is.
"""
import re
import time
from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch


@dataclass(frozen=True)
class Budget:
    seconds: float
    min_rounds: int
    max_rounds: int

    def rounds_for(self, seconds_per_call: float) -> int:
        fit = int(self.seconds / max(seconds_per_call, 1e-6))
        return max(self.min_rounds, min(self.max_rounds, fit))


def synced(fn: Callable[[], object], device: str) -> Callable[[], object]:
    if device != "cuda":
        return fn

    def call():
        out = fn()
        torch.cuda.synchronize()
        return out

    return call


def time_case(benchmark, fn: Callable[[], object], budget: Budget, device: str, extra_info: dict,
              setup: Optional[Callable[[], None]] = None):
    """Time ``fn`` (after ``setup`` each round) with pytest-benchmark and record ``extra_info``."""
    call = synced(fn, device)
    if setup is not None:
        setup()
    start = time.perf_counter()
    call()  # warm-up, and the estimate of one call's time
    rounds = budget.rounds_for(time.perf_counter() - start)
    benchmark.extra_info.update(extra_info)
    benchmark.extra_info["rounds_budget_s"] = budget.seconds
    return benchmark.pedantic(call, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)


def available_bytes(device: str) -> int:
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free
    with open("/proc/meminfo") as f:
        match = re.search(r"^MemAvailable:\s+(\d+) kB", f.read(), re.M)
    return int(match.group(1)) * 1024 if match else 1 << 62


def skip_unless_fits(needed_bytes: int, device: str, what: str) -> None:
    """Skip a case whose extra allocations would not fit (with 10% to spare)."""
    have = available_bytes(device)
    if needed_bytes * 1.1 > have:
        pytest.skip(f"{what} needs ~{needed_bytes / 2**30:.1f} GiB more {device} memory, {have / 2**30:.1f} GiB available")
