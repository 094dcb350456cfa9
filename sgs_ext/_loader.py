"""Load the compiled extension ``sgs_ext._C`` and check it matches the running torch.

torch must be imported before the extension: the extension links against
torch's libraries (and its OpenMP runtime) rather than loading its own.
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
