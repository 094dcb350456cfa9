"""torch.compile: compiled code that calls the fused ops runs and matches eager.

The ops are ``torch.ops.sgs.*`` custom ops with fake (meta) kernels, so a compiled function
can call them inside one graph (``fullgraph=True``), including the in-place ``project_`` on
gradients produced inside the graph. The surgery class itself runs eagerly around a
compiled model.
"""
import pytest
import torch

import sgs_ext
from sgs_ext import StochasticGradientSurgery

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

# aot_eager traces through the fake kernels and functionalization (fast); inductor also
# generates and compiles C++ for the graph around the ops (about a minute on 2 cores).
BACKENDS = ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3))


def data():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    xo, yo = torch.randn(4, 6, generator=g), (torch.randint(0, 3, (4,), generator=g) + 1) % 3
    return x, y, xo, yo


def grads(model, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    return list(torch.autograd.grad(loss, list(model.parameters())))


def surgery_on_lists(train, oracle):
    train = [t.clone() for t in train]
    stats = sgs_ext.dot_norm(train, oracle)
    sgs_ext.project_(train, oracle, stats)
    fused = [t.clone() for t in train]
    sgs_ext.surgery_(fused, oracle)   # already projected: dot is ~0 now, so (almost) a no-op
    return train, fused, stats


@pytest.mark.parametrize("backend", BACKENDS)
def test_ops_compile_fullgraph_and_match_eager(backend):
    torch._dynamo.reset()
    model = make_model()
    x, y, xo, yo = data()
    train, oracle = grads(model, x, y), grads(model, xo, yo)
    want_t, want_f, want_s = surgery_on_lists(train, oracle)
    assert float(want_s[0]) < 0, "the fixture must conflict"
    compiled = torch.compile(surgery_on_lists, fullgraph=True, backend=backend)
    got_t, got_f, got_s = compiled(train, oracle)
    torch.testing.assert_close(got_s, want_s)
    for a, b in zip(got_t + got_f, want_t + want_f):
        torch.testing.assert_close(a, b)
    # the inputs were not touched by the compiled function (it projected clones)
    torch.testing.assert_close(train[0], grads(model, x, y)[0])


def test_compiled_training_step_with_gradients_inside_the_graph():
    """Forward, both gradients, dot_norm and project_ in one compiled step (aot autograd)."""
    torch._dynamo.reset()
    x, y, xo, yo = data()

    def step(params, x, y, xo, yo):
        def loss(p, a, b):
            h = torch.tanh(a @ p[0].T + p[1])
            return torch.nn.functional.cross_entropy(h @ p[2].T + p[3], b)

        train = list(torch.func.grad(loss)(params, x, y))
        oracle = list(torch.func.grad(loss)(params, xo, yo))
        stats = sgs_ext.surgery_(train, oracle)
        return [p - 0.5 * g for p, g in zip(params, train)], stats

    params = [p.detach().clone() for p in make_model().parameters()]
    want_p, want_s = step(params, x, y, xo, yo)
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    got_p, got_s = compiled(params, x, y, xo, yo)
    torch.testing.assert_close(got_s, want_s)
    for a, b in zip(got_p, want_p):
        torch.testing.assert_close(a, b)
    assert float(want_s[0]) < 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_surgery_class_around_a_compiled_model_matches_eager(backend):
    torch._dynamo.reset()
    x, y, xo, yo = data()

    def run(compile_model):
        model = make_model()
        fwd = torch.compile(model, backend=backend) if compile_model else model
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        surgery = StochasticGradientSurgery(model.parameters(), seed=0)
        closures = {"hi": lambda: torch.nn.functional.cross_entropy(fwd(xo), yo),
                    "ar": lambda: torch.nn.functional.cross_entropy(fwd(xo[:2]), yo[:2])}
        history = []
        for _ in range(4):
            torch.nn.functional.cross_entropy(fwd(x), y).backward()
            history.append(surgery.step(closures).projected)
            opt.step()
            opt.zero_grad()
        return [p.detach() for p in model.parameters()], history

    want, hist_eager = run(False)
    got, hist_compiled = run(True)
    assert hist_eager == hist_compiled and any(hist_eager)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
