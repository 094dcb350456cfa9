"""benchmarks/gpu_check.sh (run where a GPU is lent) at least parses, and its Python half refuses
plainly where there is no GPU or no CUDA build."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sgs_ext

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_gpu_check_script_parses():
    subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu_check.sh")], check=True)


@pytest.mark.skipif(torch.cuda.is_available() and sgs_ext.CUDA_COMPILED, reason="a GPU is here: gpu_check.sh runs it")
def test_gpu_check_says_what_it_needs_without_a_gpu():
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py")], capture_output=True, text=True,
                         cwd=REPO)
    assert run.returncode != 0
    assert "gpu_check needs a GPU and sgs_ext built with CUDA" in run.stderr
