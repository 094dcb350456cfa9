"""Shared pytest fixtures.

The experiment harness lives in ``experiments/`` (scripts plus the ``transfer``
package); put that folder on ``sys.path`` so tests can ``import transfer``.
The library under test, ``sgs_ext``, is imported from the installed package
(pytest runs in importlib mode, see pyproject.toml).
"""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
TESTS = REPO / "tests"
for _path in (EXPERIMENTS, TESTS):  # experiments' `transfer` package; shared test helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def _xtreme_dir():
    env = os.environ.get("SGS_DATA_DIR")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data" / "xtreme"


@pytest.fixture(scope="session")
def xtreme_dir():
    """The real XTREME data directory (SGS_DATA_DIR or ../shared/data/xtreme)."""
    path = _xtreme_dir()
    if not path.is_dir():
        pytest.skip(f"real XTREME data not found at {path} (set SGS_DATA_DIR)")
    return path
