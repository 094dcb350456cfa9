"""The fused gradient-surgery ops: Python entry points over ``torch.ops.sgs.*``.

Every op takes Python lists of tensors, one tensor per parameter.  The two
lists of an op must match tensor for tensor in shape, dtype and device; the
dtypes may differ from one parameter to the next (float32, float64, float16,
bfloat16).  Statistics are float64 when every tensor is float64 and float32
otherwise (:func:`sgs_ext.reference.stats_dtype`).  Reductions accumulate in a
fixed order, so results do not depend on the number of threads: on the CPU
float32 products are summed in float32 vector lanes of 4 products and
everything beyond that in float64 (float64 and 16-bit inputs in float64
throughout); on CUDA each thread sums its share of a chunk in the compute type
(float64 for float64 inputs, float32 for float32 and the 16-bit types) and the
threads' and blocks' sums are added in float64, except that a ``gram`` pass
over more than 8 sets at once (the shared-memory pass) sums in float64 for
every dtype.

The CPU kernels are compiled for three instruction sets, ``avx512``
(AVX-512F), ``avx2`` and ``default`` (baseline x86-64, SSE2), and run the
best one this CPU supports.  To run another, e.g. to test on one machine the
code path another CPU takes, set the environment variable before importing
sgs_ext::

    SGS_CPU_ISA=default python train.py      # or avx2, avx512

(an unknown value, or an instruction set this CPU lacks, makes the import fail
with an ImportError saying so), or call :func:`set_cpu_isa` while no op runs;
:func:`cpu_isa` says which one runs.  Results are deterministic for a given
instruction set; they may differ in the last bits between instruction sets
(the AVX-512 code fuses multiply-adds).

Meta tensors: the ops have fake kernels, so tracing (``torch.compile``,
``torch.export``, ``FakeTensorMode``) gets their outputs' shapes and dtypes.  An
eager call on tensors on ``device="meta"`` raises NotImplementedError, as torch
does for an op without a meta kernel: the checks of the lists (lengths, shapes,
dtypes, overlap) live in the compiled kernels, so a meta result would vouch for
calls a real device refuses.
"""
from typing import Iterable, List, Sequence

import torch

from ._loader import _C  # noqa: F401  (registers torch.ops.sgs.*)
from .reference import stats_dtype

__all__ = ["dot_norm", "project_", "surgery_", "gram", "cpu_isa", "set_cpu_isa", "supported_cpu_isas"]


def cpu_isa() -> str:
    """The instruction set the CPU kernels run: ``"default"``, ``"avx2"`` or ``"avx512"``."""
    return _C.cpu_isa()


def set_cpu_isa(name: str) -> None:
    """Run the CPU kernels compiled for ``name`` (``"default"``, ``"avx2"`` or ``"avx512"``).

    Raises ValueError for an unknown name and RuntimeError for an instruction
    set this CPU lacks (both say what the choices are).  Not meant to be
    called while an op runs in another thread.
    """
    _C.set_cpu_isa(str(name))


def supported_cpu_isas() -> List[str]:
    """The instruction sets this CPU can run, from ``"default"`` up."""
    return list(_C.supported_cpu_isas())


def _as_list(name: str, tensors: Iterable[torch.Tensor]) -> List[torch.Tensor]:
    if isinstance(tensors, torch.Tensor):
        raise TypeError(f"{name} must be a list of tensors (one per parameter), got a single Tensor")
    out = list(tensors)
    for i, t in enumerate(out):
        if t is None:
            raise ValueError(f"{name}[{i}] is None (a parameter without a gradient?); pass zeros or leave it out")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{i}] is a {type(t).__name__}, not a Tensor")
    return out


def _check_one_device(**lists: Sequence[torch.Tensor]) -> None:
    # The dispatcher picks one backend for the whole call, so a tensor on
    # another device would reach a kernel that cannot read it; say which.
    first = None
    for name, tensors in lists.items():
        for i, t in enumerate(tensors):
            if first is None:
                first = (name, t.device)
            elif t.device != first[1]:
                raise ValueError(
                    f"{name}[{i}] is on {t.device} but {first[0]}[0] is on {first[1]}; all tensors must be on one device"
                )


def dot_norm(train: Iterable[torch.Tensor], oracle: Iterable[torch.Tensor]) -> torch.Tensor:
    """``[train·oracle, ‖oracle‖², ‖train‖²]`` over all tensors of both lists, in one pass."""
    train, oracle = _as_list("train", train), _as_list("oracle", oracle)
    if not train and not oracle:
        return torch.zeros(3)
    _check_one_device(train=train, oracle=oracle)
    return torch.ops.sgs.dot_norm(train, oracle)


def project_(
    train: Iterable[torch.Tensor], oracle: Iterable[torch.Tensor], stats: torch.Tensor, eps: float = 1e-12
) -> None:
    """In place: ``train -= min(dot, 0) / max(‖oracle‖², eps) · oracle`` with ``stats`` from :func:`dot_norm`.

    Nothing is written when ``dot >= 0`` or when a statistic is NaN/Inf.  On
    CUDA the coefficient is computed on the device (no host synchronisation).
    """
    train, oracle = _as_list("train", train), _as_list("oracle", oracle)
    _check_one_device(train=train, oracle=oracle)
    torch.ops.sgs.project_(train, oracle, stats, float(eps))


def surgery_(train: Iterable[torch.Tensor], oracle: Iterable[torch.Tensor], eps: float = 1e-12) -> torch.Tensor:
    """:func:`dot_norm` then :func:`project_`; returns the statistics from before the projection."""
    train, oracle = _as_list("train", train), _as_list("oracle", oracle)
    if not train and not oracle:
        return torch.zeros(3)
    _check_one_device(train=train, oracle=oracle)
    return torch.ops.sgs.surgery_(train, oracle, float(eps))


def gram(sets: Iterable[Iterable[torch.Tensor]]) -> torch.Tensor:
    """All pairwise dot products ``G[i, j] = set_i · set_j`` of L gradient sets, in one pass.

    Each set is a list of tensors with the same shapes as every other set's.
    """
    if isinstance(sets, torch.Tensor):
        raise TypeError("sets must be a list of gradient sets (each a list of tensors), got a single Tensor")
    sets = [_as_list(f"sets[{s}]", tensors) for s, tensors in enumerate(sets)]
    if not sets:
        raise ValueError("gram needs at least one gradient set")
    lengths = {len(s) for s in sets}
    if len(lengths) != 1:
        raise ValueError(f"gram: the sets have different lengths {[len(s) for s in sets]}; each needs one tensor per parameter")
    if not sets[0]:
        return torch.zeros(len(sets), len(sets))
    _check_one_device(**{f"sets[{s}]": tensors for s, tensors in enumerate(sets)})
    return torch.ops.sgs.gram([t for s in sets for t in s], len(sets))


# Shapes and dtypes for tracing (torch.compile, FakeTensor): the ops' outputs
# depend only on the inputs' dtypes and device.
#
# torch also runs a fake kernel for plain tensors on the "meta" device, outside any
# tracing. There it would skip every check the compiled kernels make (list lengths,
# shapes, dtypes, overlap) and answer shapes for calls a real device refuses, so an
# eager meta call is refused instead, as torch refuses an op without a meta kernel
# (NotImplementedError). While tracing, the real kernels check the real tensors.


def _refuse_eager_meta(op: str, tensors) -> None:
    if tensors and not torch._subclasses.fake_tensor.is_fake(tensors[0]):
        raise NotImplementedError(
            f"{op}: meta tensors are supported only while tracing (torch.compile, torch.export, FakeTensorMode); "
            "an eager call on device='meta' has no data to compute with and would skip the op's checks. "
            "Run it on the CPU or CUDA"
        )


@torch.library.register_fake("sgs::dot_norm")
def _dot_norm_fake(train, oracle):
    _refuse_eager_meta("sgs::dot_norm", [*train, *oracle])
    return train[0].new_empty(3, dtype=stats_dtype(train))


@torch.library.register_fake("sgs::project_")
def _project_fake(train, oracle, stats, eps=1e-12):
    _refuse_eager_meta("sgs::project_", [*train, *oracle, stats])
    return None


@torch.library.register_fake("sgs::gram")
def _gram_fake(tensors, num_sets):
    _refuse_eager_meta("sgs::gram", tensors)
    return tensors[0].new_empty((num_sets, num_sets), dtype=stats_dtype(tensors))
