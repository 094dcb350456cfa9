"""A STREAM-like probe of the memory bandwidth, on the benchmark's own buffers.

Three kernels, each timed in the same run as the variants and over the same
bytes (the flat buffers behind the two gradient lists, see gradients.py):

    copy   b = a          reads a, writes b         2 elements of traffic
    dot    a . b          reads a and b             2
    axpy   b += s * a     reads a and b, writes b   3

As in STREAM, the traffic counted is what the kernel must move (no
write-allocate).  ``benchmarks/report.py`` reports every variant's effective
rate as a fraction of two bandwidths measured at that size: the best of the
three probes, and the probes that do the op's own traffic (the dot probe then
the axpy probe for a surgery, the dot probe for ``dot_norm`` and ``gram``).
The bandwidth target is judged on the second (``report.TARGET_BANDWIDTH`` says
why), from the paired case where the run has one.

All three run on every intra-op thread torch has.  ``torch.dot`` alone is a
single BLAS call that may use one thread, so ``dot`` splits the buffers into
one slice per thread and dots the slices concurrently.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict

import torch


@dataclass(frozen=True)
class Probe:
    name: str
    elements_moved: int  # per element of one buffer: reads + writes
    run: Callable[[torch.Tensor, torch.Tensor], object]

    def bytes_moved(self, buffer: torch.Tensor) -> int:
        return self.elements_moved * buffer.numel() * buffer.element_size()


def _copy(a: torch.Tensor, b: torch.Tensor) -> None:
    b.copy_(a)


_POOL = None


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    global _POOL
    threads = torch.get_num_threads()
    if a.device.type != "cpu" or threads == 1:
        return torch.dot(a, b)
    if _POOL is None or _POOL._max_workers != threads:
        _POOL = ThreadPoolExecutor(max_workers=threads)
    bounds = [a.numel() * k // threads for k in range(threads + 1)]
    parts = _POOL.map(lambda k: torch.dot(a[bounds[k] : bounds[k + 1]], b[bounds[k] : bounds[k + 1]]), range(threads))
    return torch.stack(list(parts)).sum()


def _axpy(a: torch.Tensor, b: torch.Tensor) -> None:
    b.add_(a, alpha=1e-3)


PROBES: Dict[str, Probe] = {p.name: p for p in [Probe("copy", 2, _copy), Probe("dot", 2, _dot), Probe("axpy", 3, _axpy)]}
