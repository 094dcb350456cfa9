"""The CPU kernels' instruction set can be chosen (SGS_CPU_ISA, sgs_ext.ops.set_cpu_isa),
so that one machine runs the code paths other CPUs take."""
import os
import subprocess
import sys

import pytest
import torch

import sgs_ext
from sgs_ext import _C, _loader
from ops_testing import (
    CPU_ISAS,
    assert_gram_matches_oracle,
    assert_stats_match_oracle,
    assert_surgery_matches_oracle,
    clone_list,
    conflicting_pair,
    random_list,
)

SUPPORTED = sgs_ext.ops.supported_cpu_isas()
UNSUPPORTED = [isa for isa in CPU_ISAS if isa not in SUPPORTED]


@pytest.fixture
def restore_isa():
    before = sgs_ext.ops.cpu_isa()
    yield
    sgs_ext.ops.set_cpu_isa(before)


def test_the_best_supported_isa_is_the_default():
    assert SUPPORTED[0] == "default" and set(SUPPORTED) <= set(CPU_ISAS)
    assert SUPPORTED == [isa for isa in CPU_ISAS if isa in SUPPORTED]  # in order of capability
    if not os.environ.get(_loader.CPU_ISA_VARIABLE):
        assert sgs_ext.ops.cpu_isa() == SUPPORTED[-1]


@pytest.mark.parametrize("isa", CPU_ISAS)
def test_setting_the_isa_switches_the_kernels(isa, restore_isa):
    if isa not in SUPPORTED:
        pytest.skip(f"this CPU does not support {isa} (it supports {', '.join(SUPPORTED)})")
    sgs_ext.ops.set_cpu_isa(isa)
    assert sgs_ext.ops.cpu_isa() == isa
    assert _C.dispatched_cpu_isa() == isa  # reported by the variant the dispatcher ran
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        train, oracle = conflicting_pair([70_000, 1000, 3], dtype, 2)
        before = clone_list(train)
        assert_stats_match_oracle(sgs_ext.dot_norm(train, oracle), train, oracle)
        assert_surgery_matches_oracle(sgs_ext.surgery_(train, oracle), train, before, oracle)
        sets = [random_list([70_000, 5], dtype, s) for s in range(3)]
        assert_gram_matches_oracle(sgs_ext.gram(sets), sets)


def test_an_unknown_isa_is_refused(restore_isa):
    before = sgs_ext.ops.cpu_isa()
    with pytest.raises(ValueError, match=r"unknown CPU ISA 'sse9'; the choices are: default, avx2, avx512"):
        sgs_ext.ops.set_cpu_isa("sse9")
    assert sgs_ext.ops.cpu_isa() == before


@pytest.mark.skipif(not UNSUPPORTED, reason="this CPU supports every ISA")
def test_an_isa_this_cpu_lacks_is_refused(restore_isa):
    before = sgs_ext.ops.cpu_isa()
    with pytest.raises(RuntimeError, match=rf"'{UNSUPPORTED[-1]}' is not supported by this CPU; "
                                           rf"it supports: {', '.join(SUPPORTED)}"):
        sgs_ext.ops.set_cpu_isa(UNSUPPORTED[-1])
    assert sgs_ext.ops.cpu_isa() == before


def test_the_environment_variable_is_checked(monkeypatch, restore_isa):
    monkeypatch.setenv("SGS_CPU_ISA", "avx3")
    with pytest.raises(ImportError, match=r"SGS_CPU_ISA='avx3'.*the choices are: default, avx2, avx512"):
        _loader._apply_cpu_isa_variable()
    if UNSUPPORTED:
        monkeypatch.setenv("SGS_CPU_ISA", UNSUPPORTED[-1])
        with pytest.raises(ImportError, match=rf"SGS_CPU_ISA='{UNSUPPORTED[-1]}'.*it supports: {', '.join(SUPPORTED)}"):
            _loader._apply_cpu_isa_variable()


def test_the_environment_variable_chooses_the_isa_at_import(tmp_path):
    script = "import sgs_ext, sgs_ext._C as C; print(sgs_ext.ops.cpu_isa(), C.dispatched_cpu_isa())"
    env = dict(os.environ, SGS_CPU_ISA="default")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["default", "default"]
    env["SGS_CPU_ISA"] = "bogus"
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError: sgs_ext: SGS_CPU_ISA='bogus'" in out.stderr and "default, avx2, avx512" in out.stderr
