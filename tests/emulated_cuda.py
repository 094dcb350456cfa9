"""The CUDA kernels of csrc/cuda/, unchanged, compiled as C++ against the test-only
emulation in tests/cuda_emu/ and called through ctypes on CPU tensors.

`EmulatedCuda(variant)` builds (once per source hash, cached under build/cuda_emu/) and loads
one shared library: "default" with the real launch limits, "split" with at most 3 blocks per
launch so that launches also split inside a tensor.  Its dot_norm / project_ / surgery_ / gram
take and return torch CPU tensors like the sgs_ext ops, so the float64 oracle of ops_testing.py
checks them with the CUDA kernels' error bounds (device="cuda").

What this cannot show: the code nvcc generates (the __CUDA_ARCH__ branches, e.g. the hardware
fp16/bf16 conversions, are not compiled here), occupancy, bandwidth, the torch glue's streams
and device guards, and races *between* blocks (blocks run one after the other).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
EMU = REPO / "tests" / "cuda_emu"
CUDA_SOURCES = sorted((REPO / "csrc" / "cuda").glob("*.cu"))
HOST_SOURCES = [REPO / "csrc" / "common" / "chunk_table.cpp", REPO / "csrc" / "common" / "gram_tiles.cpp"]
EMU_SOURCES = [EMU / "emulator.cpp"]
HEADERS = sorted((REPO / "csrc").rglob("*.h")) + sorted((REPO / "csrc").rglob("*.cuh")) + sorted(EMU.rglob("*.h"))

VARIANTS: Dict[str, List[str]] = {
    "default": [],
    "split": ["-DSGS_CUDA_MAX_BLOCKS_PER_LAUNCH=3"],  # launches end inside tensors
}
CXX = os.environ.get("CXX", "g++")
BASE_FLAGS = ["-std=c++20", "-O2", "-g", "-fno-strict-aliasing", "-Wall", "-Wno-unused-function", "-Wno-sign-compare", "-Wno-unknown-pragmas",
              f"-I{EMU / 'include'}", f"-I{EMU}", f"-I{REPO / 'csrc'}"]

DTYPE_CODE = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}


def compiler_available() -> bool:
    return shutil.which(CXX) is not None


def compile_command(out: Path, extra: Sequence[str], main: Sequence[Path]) -> List[str]:
    """The compiler command for the emulated kernels plus `main` (bindings or a driver)."""
    return ([CXX, *BASE_FLAGS, *extra, "-x", "c++", *map(str, CUDA_SOURCES), "-x", "none",
             *map(str, HOST_SOURCES + EMU_SOURCES + list(main)), "-o", str(out)])


def build(variant: str = "default") -> Path:
    """Compile the shared library for `variant` unless a build of these exact sources exists."""
    extra = VARIANTS[variant] + ["-shared", "-fPIC"]
    main = [EMU / "bindings.cpp"]
    digest = hashlib.sha256(" ".join(compile_command(Path("x"), extra, main)).encode())
    for path in CUDA_SOURCES + HOST_SOURCES + EMU_SOURCES + main + HEADERS:
        digest.update(path.read_bytes())
    out_dir = REPO / "build" / "cuda_emu"
    out = out_dir / f"libsgs_cuda_emu-{variant}-{digest.hexdigest()[:16]}.so"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out_dir, suffix=".so.tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        result = subprocess.run(compile_command(tmp_path, extra, main), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building the CUDA emulation ({variant}) failed:\n{result.stderr[-4000:]}")
        os.replace(tmp_path, out)  # atomic: a concurrent run sees the whole library or none
    finally:
        tmp_path.unlink(missing_ok=True)
    return out


class _Ref(ctypes.Structure):  # sgs::TensorRef
    _fields_ = [("data", ctypes.c_void_p), ("numel", ctypes.c_int64), ("dtype", ctypes.c_int32)]


def _refs(tensors: Sequence[torch.Tensor]):
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError("the emulated kernels take contiguous tensors (the glue makes them so)")
    arr = (_Ref * max(len(tensors), 1))()
    for i, t in enumerate(tensors):
        arr[i] = _Ref(t.data_ptr(), t.numel(), DTYPE_CODE[t.dtype])
    return arr


def _stats_dtype(tensors: Sequence[torch.Tensor]) -> torch.dtype:
    """As the ops: float64 when every tensor is float64, float32 otherwise."""
    return torch.float64 if tensors and all(t.dtype == torch.float64 for t in tensors) else torch.float32


class EmulatedCuda:
    def __init__(self, variant: str = "default"):
        self.lib = ctypes.CDLL(str(build(variant)))
        lib = self.lib
        lib.emu_error.restype = ctypes.c_char_p
        for name in ("emu_chunk_size", "emu_max_blocks_per_launch", "emu_pair_max_tensors", "emu_gram_max_tensors",
                     "emu_gram_pass_sets",
                     "emu_max_param_bytes", "emu_num_launches"):
            getattr(lib, name).restype = ctypes.c_int64
        lib.emu_project.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int,
                                    ctypes.c_double]
        lib.emu_dot_norm.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int]
        lib.emu_gram.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_void_p]
        lib.emu_launch.argtypes = [ctypes.c_int64] + [ctypes.POINTER(ctypes.c_int64)] * 3
        self.chunk_size = lib.emu_chunk_size()
        self.max_blocks_per_launch = lib.emu_max_blocks_per_launch()
        self.pair_max_tensors = lib.emu_pair_max_tensors()
        self.gram_max_tensors = lib.emu_gram_max_tensors()
        self.gram_pass_sets = lib.emu_gram_pass_sets()  # sets one gram pass reads
        self.max_param_bytes = lib.emu_max_param_bytes()

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise RuntimeError(self.lib.emu_error().decode())

    def set_scheduler(self, name: str) -> None:
        """"fibers" (deterministic, the default) or "threads" (one OS thread per GPU thread)."""
        self.lib.emu_set_scheduler({"fibers": 0, "threads": 1}[name])

    def set_pending_error(self, code: int) -> None:
        self.lib.emu_set_pending_error(code)

    def launches(self) -> List[tuple]:
        """(grid, block, parameter bytes) of every launch since the last clear_launches()."""
        out = []
        for i in range(self.lib.emu_num_launches()):
            g, b, p = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
            self.lib.emu_launch(i, ctypes.byref(g), ctypes.byref(b), ctypes.byref(p))
            out.append((g.value, b.value, p.value))
        return out

    def selftest(self, which: str) -> None:
        """Launch one of the deliberately broken kernels of bindings.cpp ("divergent_barrier",
        "oversized_block") or a good one ("good"); raises RuntimeError with the emulator's error."""
        self._check(self.lib.emu_selftest({"divergent_barrier": 0, "oversized_block": 1, "good": 2}[which]))

    def clear_launches(self) -> None:
        self.lib.emu_clear_launches()

    def dot_norm(self, train: Sequence[torch.Tensor], oracle: Sequence[torch.Tensor]) -> torch.Tensor:
        out = torch.full((3,), float("nan"), dtype=_stats_dtype(train))
        t, o = _refs(train), _refs(oracle)  # kept alive across the call
        self._check(self.lib.emu_dot_norm(ctypes.addressof(t), ctypes.addressof(o), len(train), out.data_ptr(),
                                          DTYPE_CODE[out.dtype]))
        return out

    def project_(self, train: Sequence[torch.Tensor], oracle: Sequence[torch.Tensor], stats: torch.Tensor,
                 eps: float = 1e-12) -> None:
        stats = stats.contiguous()
        t, o = _refs(train), _refs(oracle)
        self._check(self.lib.emu_project(ctypes.addressof(t), ctypes.addressof(o), len(train), stats.data_ptr(),
                                         DTYPE_CODE[stats.dtype], eps))

    def surgery_(self, train, oracle, eps: float = 1e-12) -> torch.Tensor:
        stats = self.dot_norm(train, oracle)
        self.project_(train, oracle, stats, eps)
        return stats

    def gram(self, sets: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        n = len(sets[0])
        flat = [t for s in sets for t in s]
        out = torch.full((len(sets), len(sets)), float("nan"), dtype=torch.float64)
        refs = _refs(flat)
        self._check(self.lib.emu_gram(ctypes.addressof(refs), len(sets), n, out.data_ptr()))
        return out.to(_stats_dtype(sets[0]))
