"""Mixed precision: GradScaler (scaled or unscaled gradients), Inf/NaN steps, bf16."""
import copy

import pytest
import torch

from sgs_ext import StochasticGradientSurgery


def flat(ts):
    return torch.cat([t.reshape(-1).double() for t in ts])


def expected_surgery(t, o):
    d = t @ o
    return t - (d / (o @ o)) * o if d < 0 else t


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    x, y = torch.randn(16, 8, generator=g), torch.randint(0, 4, (16,), generator=g)
    return model, (x, y)


def train_loss(model, batch):
    x, y = batch
    return torch.nn.functional.cross_entropy(model(x), y)


def conflicting_oracle(model, batch):
    # minus the training loss on half the batch: conflicts with g_train by construction
    x, y = batch
    return -0.5 * torch.nn.functional.cross_entropy(model(x[:8]), y[:8])


def reference_step(model, batch):
    """fp32, no scaler: the projected gradient and the stats."""
    model.zero_grad()
    train_loss(model, batch).backward()
    s = StochasticGradientSurgery(model.parameters(), seed=0)
    stats = s.step({"hi": lambda: conflicting_oracle(model, batch)})
    return flat([p.grad for p in model.parameters()]), stats


@pytest.mark.parametrize("unscale_first", [False, True])
def test_grad_scaler_surgery_matches_fp32(unscale_first):
    model, batch = setup()
    ref_model = copy.deepcopy(model)
    expected, ref_stats = reference_step(ref_model, batch)
    assert ref_stats.projected, "the fixture must produce a conflict"

    scale = 2.0 ** 12
    scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    surgery = StochasticGradientSurgery(model.parameters(), seed=0, grad_scaler=scaler)
    scaler.scale(train_loss(model, batch)).backward()
    if unscale_first:
        scaler.unscale_(opt)
    stats = surgery.step({"hi": lambda: conflicting_oracle(model, batch)})
    got = flat([p.grad for p in model.parameters()])
    if not unscale_first:
        got = got / scale
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert stats.projected
    assert stats.cos_before == pytest.approx(ref_stats.cos_before, rel=1e-5)
    assert stats.oracle_norm == pytest.approx(ref_stats.oracle_norm, rel=1e-5)   # reported unscaled
    assert stats.dot * (1 if unscale_first else 1 / scale) == pytest.approx(ref_stats.dot, rel=1e-5)

    # and the scaler's step applies exactly the projected update
    before = [p.detach().clone() for p in model.parameters()]
    scaler.step(opt)
    scaler.update()
    delta = flat([(b - p.detach()) / 0.1 for b, p in zip(before, model.parameters())])
    torch.testing.assert_close(delta, expected, rtol=1e-4, atol=1e-6)


def test_fp16_autocast_with_grad_scaler_runs_and_projects():
    model, batch = setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    surgery = StochasticGradientSurgery(model.parameters(), seed=0, grad_scaler=scaler)
    with torch.autocast("cpu", dtype=torch.float16):
        scaler.scale(train_loss(model, batch)).backward()
        train = flat([p.grad for p in model.parameters()])
        stats = surgery.step({"hi": lambda: conflicting_oracle(model, batch)})
    assert stats.projected and not stats.nonfinite
    # the oracle gradient the surgery saw, recomputed independently under the same autocast
    with torch.autocast("cpu", dtype=torch.float16):
        oracle = flat(torch.autograd.grad(conflicting_oracle(model, batch) * scaler.get_scale(),
                                          list(model.parameters())))
    torch.testing.assert_close(flat([p.grad for p in model.parameters()]), expected_surgery(train, oracle),
                               rtol=1e-4, atol=1e-4)


def test_inf_in_training_gradient_skips_the_step_like_the_scaler():
    model, batch = setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    surgery = StochasticGradientSurgery(model.parameters(), seed=0, grad_scaler=scaler)
    scaler.scale(train_loss(model, batch)).backward()
    first = next(model.parameters())
    first.grad[0, 0] = float("inf")
    grads = [p.grad.clone() for p in model.parameters()]
    params = [p.detach().clone() for p in model.parameters()]
    stats = surgery.step({"hi": lambda: conflicting_oracle(model, batch)})
    assert stats.oracle_ran and stats.nonfinite and not stats.projected and not stats.conflict
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)         # untouched, Inf included
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))   # scaler skipped the step
    assert scaler.get_scale() == 2.0 ** 9
    c = surgery.counters["hi"]
    assert (c.oracle_runs, c.nonfinite, c.conflicts, c.projections, c.cos_count) == (1, 1, 0, 0, 0)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_nonfinite_oracle_gradient_leaves_training_gradient_alone(bad):
    model, batch = setup()
    train_loss(model, batch).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    surgery = StochasticGradientSurgery(model.parameters(), seed=0)
    stats = surgery.step({"hi": lambda: conflicting_oracle(model, batch) * bad})
    assert stats.nonfinite and not stats.projected
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


def test_bf16_autocast():
    model, batch = setup()
    surgery = StochasticGradientSurgery(model.parameters(), seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        train_loss(model, batch).backward()
        train = flat([p.grad for p in model.parameters()])
        oracle = flat(torch.autograd.grad(conflicting_oracle(model, batch), list(model.parameters())))
        stats = surgery.step({"hi": lambda: conflicting_oracle(model, batch)})
    assert stats.projected
    got = flat([p.grad for p in model.parameters()])
    torch.testing.assert_close(got, expected_surgery(train, oracle), rtol=1e-5, atol=1e-6)
    assert got @ oracle >= -1e-5 * got.norm() * oracle.norm()


def test_bf16_parameters():
    model, batch = setup()
    model = model.to(torch.bfloat16)
    x, y = batch
    batch = (x.to(torch.bfloat16), y)
    surgery = StochasticGradientSurgery(model.parameters(), seed=0)
    train_loss(model, batch).backward()
    train = flat([p.grad for p in model.parameters()])
    oracle = flat(torch.autograd.grad(conflicting_oracle(model, batch), list(model.parameters())))
    stats = surgery.step({"hi": lambda: conflicting_oracle(model, batch)})
    assert stats.projected
    assert [k[1] for k in surgery._buffer.flats] == [torch.bfloat16]
    got = flat([p.grad for p in model.parameters()])
    # the projection is computed in float32 and rounded to bf16 once
    torch.testing.assert_close(got, expected_surgery(train, oracle), rtol=1e-2, atol=1e-3)
    assert abs(float(got @ oracle)) < 2e-2 * float(got.norm() * oracle.norm())
