"""Load the compiled extension ``sgs_ext._C`` and check it matches the running torch.

torch must be imported before the extension: the extension links against
torch's libraries (and its OpenMP runtime) rather than loading its own.

At load, ``SGS_CPU_ISA`` (``default``, ``avx2`` or ``avx512``; unset or empty:
the best this CPU supports) chooses the instruction set of the CPU kernels
(see :mod:`sgs_ext.ops`); an unknown value, or one this CPU cannot run, is an
ImportError.
"""
import os

import torch  # noqa: F401  (must precede the compiled module)

_SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REBUILD = (
    "Rebuild sgs-ext against the torch you run, from its source directory:\n"
    "    pip install --no-build-isolation --force-reinstall --no-deps .\n"
    "(or `pip install --no-build-isolation -e .` for a development install)."
)

try:
    from . import _C  # noqa: E402
except ImportError as exc:  # missing, or built against another torch (undefined symbols)
    raise ImportError(
        f"sgs_ext: cannot load the compiled extension sgs_ext._C ({exc}).\n"
        f"This sgs_ext was imported from {os.path.dirname(os.path.abspath(__file__))}; if that is a source "
        "checkout that was installed without -e, run from another directory so the installed package is "
        f"used, or install in place.\nThe running torch is {torch.__version__}. " + _REBUILD
    ) from exc

BUILT_WITH_TORCH = _C.torch_version()
if BUILT_WITH_TORCH != torch.__version__:
    raise ImportError(
        f"sgs_ext._C was compiled against torch {BUILT_WITH_TORCH} but torch {torch.__version__} is running; "
        "a compiled torch extension only works with the torch it was built against. " + _REBUILD
    )

CUDA_COMPILED = bool(_C.cuda_compiled())

CPU_ISA_VARIABLE = "SGS_CPU_ISA"


def _apply_cpu_isa_variable() -> None:
    value = os.environ.get(CPU_ISA_VARIABLE, "").strip()
    if not value:
        return
    try:
        _C.set_cpu_isa(value)
    except ValueError as exc:  # unknown name; the message lists the choices
        raise ImportError(
            f"sgs_ext: {CPU_ISA_VARIABLE}={value!r} is not a CPU instruction set sgs_ext has kernels for: {exc} "
            "(or leave it unset for the best this CPU supports)"
        ) from exc
    except RuntimeError as exc:  # this CPU lacks it; the message says what it supports
        raise ImportError(f"sgs_ext: {CPU_ISA_VARIABLE}={value!r} cannot be used here: {exc}") from exc


_apply_cpu_isa_variable()
