"""The extension as torch sees it: build facts, custom ops, tracing."""
import importlib

import pytest
import torch

import sgs_ext
import sgs_ext._loader as loader


def test_built_against_the_running_torch():
    assert sgs_ext.BUILT_WITH_TORCH == torch.__version__


def test_a_different_torch_is_refused_with_rebuild_instructions(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "9.9.9+other")
    with pytest.raises(ImportError) as info:
        importlib.reload(loader)
    message = str(info.value)
    assert f"compiled against torch {sgs_ext.BUILT_WITH_TORCH}" in message
    assert "torch 9.9.9+other is running" in message
    assert "pip install --no-build-isolation" in message
    monkeypatch.undo()
    importlib.reload(loader)


@pytest.mark.parametrize("name", ["dot_norm", "project_", "surgery_", "gram"])
def test_ops_are_registered(name):
    assert hasattr(torch.ops.sgs, name)


def test_fake_implementations_give_shapes_and_dtypes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        t = [torch.empty(10), torch.empty(3, 4)]
        o = [torch.empty(10), torch.empty(3, 4)]
        stats = torch.ops.sgs.dot_norm(t, o)
        assert stats.shape == (3,) and stats.dtype == torch.float32
        g = torch.ops.sgs.gram(t + o, 2)
        assert g.shape == (2, 2)
        d = [x.double() for x in t]
        assert torch.ops.sgs.dot_norm(d, d).dtype == torch.float64
        torch.ops.sgs.project_(t, o, stats, 1e-12)


def test_opcheck_passes():
    from torch.library import opcheck

    g = torch.Generator().manual_seed(0)
    t = [torch.randn(50, generator=g), torch.randn(7, 3, generator=g)]
    o = [-x + 0.1 for x in t]
    opcheck(torch.ops.sgs.dot_norm.default, (t, o))
    opcheck(torch.ops.sgs.gram.default, (t + o, 2))
    opcheck(torch.ops.sgs.project_.default, ([x.clone() for x in t], o, torch.tensor([-1.0, 2.0, 3.0]), 1e-12))


def test_torch_compile_traces_the_ops_and_matches_eager():
    def step(train, oracle):
        stats = sgs_ext.surgery_(train, oracle)
        return stats, sgs_ext.gram([train, oracle])

    g = torch.Generator().manual_seed(1)
    train = [torch.randn(100, generator=g), torch.randn(20, 5, generator=g)]
    oracle = [-t + 0.3 * torch.randn(t.shape, generator=g) for t in train]
    eager_t, compiled_t = [t.clone() for t in train], [t.clone() for t in train]
    eager = step(eager_t, oracle)
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")(compiled_t, oracle)
    assert torch.equal(eager[0], compiled[0]) and torch.equal(eager[1], compiled[1])
    assert all(torch.equal(a, b) for a, b in zip(eager_t, compiled_t))
    assert not all(torch.equal(a, b) for a, b in zip(train, compiled_t)), "the compiled step must project in place"
