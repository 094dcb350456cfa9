"""Build sgs-ext and its compiled extension ``sgs_ext._C``.

The extension is compiled against the torch that is installed when you build,
and must run with exactly that torch.  Install torch first, then build without
build isolation so pip does not fetch a second (newest, CUDA) torch:

    pip install torch==2.13.0            # or the torch you want
    pip install --no-build-isolation .

Environment switches:
    FORCE_CUDA=1          build the CUDA kernels, fail if that is impossible
    SGS_CPU_ONLY=1        build the CPU kernels only, even with a CUDA torch and nvcc
    TORCH_CUDA_ARCH_LIST  GPU architectures (default "8.0;9.0" when no GPU is visible)
"""
import glob
import os
import sys

from setuptools import find_packages, setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:
    sys.exit(
        "sgs-ext compiles its extension against the torch that will run it, and torch is not "
        "installed in this environment.\nInstall torch first, then build without isolation:\n"
        "    pip install torch==2.13.0\n"
        "    pip install --no-build-isolation .\n"
        "(With build isolation pip would compile against a freshly downloaded torch that you "
        "do not run.)"
    )

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_VERSION = torch.__version__
TORCH_RELEASE = TORCH_VERSION.split("+")[0]
DEFAULT_CUDA_ARCHS = "8.0;9.0"


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def build_cuda():
    """CUDA kernels when torch has CUDA and nvcc is present; FORCE_CUDA / SGS_CPU_ONLY override."""
    if _flag("SGS_CPU_ONLY"):
        return False
    have_cuda = torch.version.cuda is not None and CUDA_HOME is not None
    if _flag("FORCE_CUDA"):
        if not have_cuda:
            sys.exit(
                "FORCE_CUDA=1, but the CUDA kernels cannot be built here: "
                f"torch {TORCH_VERSION} has CUDA {torch.version.cuda}, CUDA_HOME is {CUDA_HOME}. "
                "Install a CUDA build of torch and the CUDA toolkit (nvcc), or unset FORCE_CUDA."
            )
        return True
    return have_cuda


def sources(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def extension():
    cpp_sources = sources("csrc/*.cpp") + sources("csrc/common/*.cpp") + sources("csrc/cpu/*.cpp")
    # -fopenmp at compile *and* link time, or at::parallel_for runs on one thread.
    cxx_flags = ["-O3", "-fopenmp", f'-DSGS_TORCH_VERSION="{TORCH_VERSION}"']
    include_dirs = [os.path.join(HERE, "csrc")]
    if build_cuda():
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
        return CUDAExtension(
            "sgs_ext._C",
            cpp_sources + sources("csrc/cuda/*.cu"),
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags + ["-DSGS_WITH_CUDA"], "nvcc": ["-O3", "-std=c++17"]},
            extra_link_args=["-fopenmp"],
        )
    return CppExtension(
        "sgs_ext._C",
        cpp_sources,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
    )


EXPERIMENTS = [
    "transformers>=4.40",
    "accelerate>=1.1",  # transformers' Trainer needs it (sgs_ext.integrations.transformers)
    "datasets>=2.18",
    # seqeval ships only an sdist whose version comes from setuptools_scm (a build requirement):
    # built under --no-build-isolation it reports version 0.0.0 and pip discards it. The README
    # installs it in the step before, with build isolation; every other requirement has a wheel.
    "seqeval>=1.2.2",
    "safetensors>=0.4",
    "tokenizers>=0.15",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "numpy>=1.24",
    "scipy>=1.10",
    "lang2vec==1.1.2",  # URIEL data for `analyze.py similarity` (its files are read directly)
]
TEST = ["pytest>=7", "hypothesis>=6.80", "pytest-benchmark>=4"]
# Optional benchmark peer (benchmarks/peers.py, tests/test_benchmark_torchjd.py): a pure-Python
# wheel whose only requirement is torch>=2.3; it needs Python >= 3.10 (without it the test skips).
PEERS = ['torchjd==0.18.0; python_version >= "3.10"']

setup(
    name="sgs-ext",
    version="0.1.0",
    description="Fused stochastic gradient surgery for PyTorch, and a harness for few-shot cross-lingual transfer",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read()
    if os.path.exists(os.path.join(HERE, "README.md"))
    else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["sgs_ext", "sgs_ext.*"]),
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
    # Pinned to the torch it is compiled against: another torch cannot load it.
    install_requires=[f"torch=={TORCH_RELEASE}"],
    extras_require={"experiments": EXPERIMENTS, "test": TEST, "peers": PEERS, "all": EXPERIMENTS + TEST + PEERS},
    zip_safe=False,
)
