"""Options and fixtures of the pytest-benchmark cases in benchmarks/.

    pytest benchmarks/ --quick                      # small sizes, short budget
    pytest benchmarks/ --sizes 100M --device cpu    # one size
    python benchmarks/run.py                        # everything, plus memory and the report

The top-level ``pytest`` does not collect this folder (testpaths = tests).
"""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# So the cases can `import benchmarks.*` (pytest runs in importlib mode).  Appended,
# not prepended: an installed sgs_ext must win over the source tree's sgs_ext/,
# which has no compiled extension unless installed with -e.
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

import torch  # noqa: E402

from benchmarks.shapes import FULL_SIZES, QUICK_SIZES, parse_sizes  # noqa: E402
from benchmarks.timing import Budget  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("sgs-ext benchmarks")
    group.addoption("--quick", action="store_true", help=f"small sizes ({','.join(QUICK_SIZES)}) and a short time budget")
    group.addoption("--sizes", default=None, help=f"comma-separated sizes from benchmarks/shapes.py (default {','.join(FULL_SIZES)})")
    group.addoption("--device", default="cpu", choices=["cpu", "cuda"], help="where the gradients live (default cpu)")
    group.addoption("--threads", type=int, default=2, help="CPU intra-op threads (default 2)")
    group.addoption("--gram-sets", default="2,4,8", help="numbers of gradient sets for the gram cases (default 2,4,8)")
    group.addoption("--budget", type=float, default=None, help="seconds of timed rounds per case (default 8, quick 1)")
    group.addoption("--gram-max-params", type=float, default=150e6,
                    help="run gram only for sizes up to this many parameters (default 150e6: 8 sets of XLM-R base are 8.9 GB)")


def _sizes(config):
    if config.getoption("--sizes"):
        return parse_sizes(config.getoption("--sizes"))
    return QUICK_SIZES if config.getoption("--quick") else FULL_SIZES


def pytest_configure(config):
    if config.getoption("--device") == "cpu":
        torch.set_num_threads(config.getoption("--threads"))


def pytest_generate_tests(metafunc):
    # One module-scoped parameter per size, so pytest runs every case of a size
    # (probe first, then the variants) before building the next size's tensors.
    if "size" in metafunc.fixturenames:
        metafunc.parametrize("size", _sizes(metafunc.config), scope="module")
    if "num_sets" in metafunc.fixturenames:
        sets = [int(s) for s in metafunc.config.getoption("--gram-sets").split(",")]
        metafunc.parametrize("num_sets", sets, ids=[f"L{L}" for L in sets])


@pytest.fixture(scope="session")
def device(pytestconfig):
    name = pytestconfig.getoption("--device")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.exit("--device cuda, but torch sees no CUDA device", returncode=2)
    return name


@pytest.fixture(scope="session")
def budget(pytestconfig):
    seconds = pytestconfig.getoption("--budget")
    if seconds is None:
        seconds = 1.0 if pytestconfig.getoption("--quick") else 8.0
    quick = pytestconfig.getoption("--quick")
    return Budget(seconds=seconds, min_rounds=3 if quick else 5, max_rounds=20 if quick else 200)


@pytest.fixture(scope="session")
def run_info(pytestconfig, device):
    """Facts stored with every case, so the report knows what it reads."""
    return {
        "device": device,
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "torch": torch.__version__,
    }
