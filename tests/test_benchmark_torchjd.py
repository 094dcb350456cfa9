"""torchjd as a benchmark peer (benchmarks/peers.py): its one-sided surgery, built from
torchjd's public API (a Weighting over a GramianWeightedAggregator, through
autojac.backward + jac_to_grad), gives sgs_ext.surgery_'s gradient to float32
rounding; its PCGrad is the symmetric surgery; and the benchmark skips cleanly
without torchjd.

The tolerance is derived as tests/ops_testing.py derives the fused op's: the
exact result t - c*o is computed in float64 from the stored Jacobian rows, and
each implementation must be within its own worst-case rounding bound of it.
torchjd computes the 2x2 Gramian in float32 (``matrix @ matrix.T``, or a sum
of per-parameter Gramians): each entry S = sum x*y of n products passes
through at most n + (number of tensors) float32 roundings in any summation
order, so |error| <= ((1 + u32)^k - 1) * sum|x*y|.  That gives its
coefficient a relative error rho (plus one rounding for the division), and
``weights @ J`` evaluates t + w*o in float32 (a product and a sum), which
ops_testing._evaluation_error bounds per element.
"""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for `benchmarks`; appended so the installed sgs_ext still wins
    sys.path.append(str(REPO))

import ops_testing  # noqa: E402
from ops_testing import (  # noqa: E402
    SAFETY, U32, U64, UNDERFLOW, assert_lists_close, assert_within, exact_coefficient, exact_stats,
    expected_projection, float64_copy, oracle_error_bound)

import sgs_ext  # noqa: E402
from benchmarks import peers  # noqa: E402

needs_torchjd = pytest.mark.skipif(peers.torchjd is None, reason=str(peers.TORCHJD_MISSING))

if peers.torchjd is not None:
    from torchjd.aggregation import PCGrad
    from torchjd.autojac import backward, jac_to_grad


# ----------------------------------------------------------------------------
# The error bound of torchjd's one-sided surgery


def torchjd_tolerance(train, oracle, expected):
    """Per element, how far torchjd's t + w*o (float32 Gramian, weights and combination) may
    be from the exact t - c*o (expected, float64), c from the stored values."""
    n = sum(t.numel() for t in train)
    k = n + len(train)  # roundings of a product on its way into a Gramian entry, any order
    growth = math.expm1(k * math.log1p(U32))
    t64 = torch.cat([float64_copy(t).reshape(-1) for t in train])
    o64 = torch.cat([float64_copy(o).reshape(-1) for o in oracle])
    abs_to = float((t64 * o64).abs().sum())
    abs_oo = float((o64 * o64).sum())
    dot, oo, tt = exact_stats(train, oracle)
    c = exact_coefficient((dot, oo, tt))
    assert c != 0.0
    b_dot = growth * abs_to + oracle_error_bound(abs_to, dot)
    b_oo = growth * abs_oo + oracle_error_bound(abs_oo, oo)
    assert b_dot < abs(dot) and b_oo < oo, "the pair is too close to orthogonal to be decided in float32"
    rho = (1 + b_dot / abs(dot)) * (1 + U32) / (1 - b_oo / oo) - 1  # the weight -c, divided in float32
    a, b, g = ops_testing._evaluation_error(rho, U32, UNDERFLOW[torch.float32], 0.0, 0.0)
    own = ops_testing._evaluation_error(U64, U64, UNDERFLOW[torch.float64], 0.0, 0.0)  # the float64 expected
    a, b, g = (SAFETY * (x + y) for x, y in zip((a, b, g), own))
    return [float64_copy(o).abs_().mul_(a * abs(c)).add_(e.abs(), alpha=b).add_(g) for o, e in zip(oracle, expected)]


# ----------------------------------------------------------------------------
# A small model with two losses


def small_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, 5))


def batches(seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 12, generator=g), torch.randn(16, 5, generator=g)) for _ in range(2)]


def losses(model, kind):
    """(loss_train, loss_oracle): 'conflicting' (train . oracle < 0), 'agreeing' (> 0) or
    'zero' (the oracle gradient is exactly 0)."""
    (xa, ya), (xb, yb) = batches()
    mse = torch.nn.functional.mse_loss
    train = mse(model(xa), ya)
    if kind == "conflicting":
        oracle = -0.8 * mse(model(xa), ya) + 0.3 * mse(model(xb), yb)
    elif kind == "agreeing":
        oracle = 0.5 * mse(model(xa), ya) + 0.3 * mse(model(xb), yb)
    else:
        oracle = 0.0 * mse(model(xb), yb)
    return train, oracle


def torchjd_step(model, kind, aggregator, optimize_gramian=False):
    """torchjd's step: the two losses' Jacobian by autojac.backward, then jac_to_grad.
    Returns (grads, train rows, oracle rows, weights), rows from the same Jacobian."""
    params = list(model.parameters())
    for p in params:
        p.grad = None
    backward(list(losses(model, kind)), inputs=params)
    weights = jac_to_grad(params, aggregator, retain_jac=True, optimize_gramian_computation=optimize_gramian)
    grads = [p.grad.detach().clone() for p in params]
    train = [p.jac[0].detach().clone() for p in params]
    oracle = [p.jac[1].detach().clone() for p in params]
    for p in params:
        del p.jac
    return grads, train, oracle, weights


def plain_gradients(model, kind):
    params = list(model.parameters())
    train_loss, oracle_loss = losses(model, kind)
    return list(torch.autograd.grad(train_loss, params)), list(torch.autograd.grad(oracle_loss, params))


# ----------------------------------------------------------------------------
# The one-sided surgery


@needs_torchjd
@pytest.mark.parametrize("optimize_gramian", [False, True], ids=["concatenated", "gramian_sum"])
def test_torchjd_one_sided_surgery_equals_fused_when_conflicting(optimize_gramian):
    model = small_model()
    got, train, oracle, weights = torchjd_step(model, "conflicting", peers.one_sided_surgery(), optimize_gramian)
    dot, oo, tt = exact_stats(train, oracle)
    assert dot < -1e-3 * math.sqrt(oo * tt), "the case must conflict clearly"

    fused = [t.clone() for t in train]
    stats = sgs_ext.surgery_(fused, oracle)
    expected, tol_fused = expected_projection(train, oracle)
    tol_torchjd = torchjd_tolerance(train, oracle, expected)

    assert_within(fused, expected, tol_fused)  # the fused op is exact to its bound
    assert_within(got, expected, tol_torchjd)  # torchjd is exact to its float32 bound
    # and so the two agree to the sum of the bounds
    assert_within(got, [f.double() for f in fused], [a + b for a, b in zip(tol_torchjd, tol_fused)])

    # the bound is tight enough to mean something: far below what the projection changes
    c = exact_coefficient((dot, oo, tt))
    change = max(float((c * o.double()).abs().max()) for o in oracle)
    assert max(float(t.max()) for t in tol_torchjd) < 1e-3 * change
    # the weights are [1, -c] (c from the fused op's statistics)
    c_fused = sgs_ext.reference.projection_coefficient(*stats.tolist())
    assert float(weights[0]) == 1.0
    assert float(weights[1]) == pytest.approx(-c_fused, rel=1e-4)


@needs_torchjd
@pytest.mark.parametrize("kind", ["agreeing", "zero"])
@pytest.mark.parametrize("optimize_gramian", [False, True], ids=["concatenated", "gramian_sum"])
def test_torchjd_one_sided_surgery_leaves_train_when_not_conflicting(kind, optimize_gramian):
    model = small_model()
    got, train, oracle, weights = torchjd_step(model, kind, peers.one_sided_surgery(), optimize_gramian)
    dot, oo, tt = exact_stats(train, oracle)
    if kind == "agreeing":
        assert dot > 1e-3 * math.sqrt(oo * tt)
    else:
        assert oo == 0.0 and all(not o.any() for o in oracle)
    fused = [t.clone() for t in train]
    sgs_ext.surgery_(fused, oracle)
    assert weights.tolist() == [1.0, 0.0]
    for g, f, t in zip(got, fused, train):  # t + 0*o == t: bit for bit, as the fused op
        assert torch.equal(g, t) and torch.equal(f, t)


@needs_torchjd
@pytest.mark.parametrize("kind", ["conflicting", "agreeing"])
def test_torchjd_step_equals_plain_autograd_step_with_fused_surgery(kind):
    """The whole torchjd step against the whole sgs_ext step (two autograd gradients, then
    surgery_): the Jacobian rows are those gradients up to the rounding of a vmapped backward."""
    model = small_model()
    got, train, oracle, _ = torchjd_step(model, kind, peers.one_sided_surgery())
    plain_train, plain_oracle = plain_gradients(model, kind)
    assert_lists_close(train, plain_train, torch.float32)
    assert_lists_close(oracle, plain_oracle, torch.float32)
    sgs_ext.surgery_(plain_train, plain_oracle)
    assert_lists_close(got, plain_train, torch.float32)


def test_weighting_cases():
    if peers.torchjd is None:
        pytest.skip(str(peers.TORCHJD_MISSING))
    w = peers.OneSidedSurgeryWeighting()
    assert w(torch.tensor([[4.0, -2.0], [-2.0, 1.0]])).tolist() == [1.0, 2.0]  # c = -2 / 1
    assert w(torch.tensor([[4.0, 2.0], [2.0, 1.0]])).tolist() == [1.0, 0.0]  # no conflict
    assert w(torch.tensor([[4.0, 0.0], [0.0, 0.0]])).tolist() == [1.0, 0.0]  # zero oracle: no 0/0
    assert w(torch.tensor([[float("nan"), -1.0], [-1.0, 1.0]])).tolist() == [1.0, 0.0]  # non-finite: write nothing
    assert w(torch.tensor([[1.0, -1e-30], [-1e-30, 1e-30]], dtype=torch.float64)).tolist() == [1.0, 1e-30 / 1e-12]  # eps
    with pytest.raises(ValueError, match="exactly 2 rows"):
        w(torch.eye(3))
    with pytest.raises(ValueError, match="eps"):
        peers.OneSidedSurgeryWeighting(eps=0.0)


# ----------------------------------------------------------------------------
# PCGrad: the symmetric surgery


@needs_torchjd
def test_torchjd_pcgrad_is_the_symmetric_surgery():
    model = small_model()
    got, train, oracle, _ = torchjd_step(model, "conflicting", PCGrad())
    t = torch.cat([x.double().reshape(-1) for x in train])
    o = torch.cat([x.double().reshape(-1) for x in oracle])
    d = float(t @ o)
    assert d < 0
    want = t - d / float(o @ o) * o + o - d / float(t @ t) * t
    flat = torch.cat([g.double().reshape(-1) for g in got])
    assert float((flat - want).abs().max()) <= 1e-5 * float(want.abs().max())
    one_sided = t - d / float(o @ o) * o
    assert float((flat - one_sided).abs().max()) > 0.1 * float(one_sided.abs().max())  # a different update


# ----------------------------------------------------------------------------
# The benchmark's model and runner


@needs_torchjd
def test_benchmark_model_gives_the_gradient_lists_and_the_fused_result():
    from benchmarks.shapes import EncoderConfig, encoder_shapes

    shapes = encoder_shapes(EncoderConfig(vocab_size=101, hidden_size=16, num_hidden_layers=1, intermediate_size=24,
                                          max_position_embeddings=9))
    model = peers.LinearTwoLossModel(shapes, seed=2)
    backward_fn, aggregate = peers._torchjd_step(model, peers.one_sided_surgery)
    backward_fn()
    for p, t, o in zip(model.params, model.pair.train, model.pair.oracle):  # the Jacobian rows are exactly t and o
        assert torch.equal(p.jac[0], t) and torch.equal(p.jac[1], o)
    aggregate(None)
    got = [p.grad for p in model.params]
    expected, tol_fused = expected_projection(model.pair.train, model.pair.oracle)
    assert_within(got, expected, torchjd_tolerance(model.pair.train, model.pair.oracle, expected))

    model.zero_grad()
    backward_fn, aggregate = peers._fused_step(model)
    aggregate(backward_fn())
    assert_within([p.grad for p in model.params], expected, tol_fused)


@needs_torchjd
def test_peers_runner_writes_its_table(tmp_path):
    cmd = [sys.executable, str(REPO / "benchmarks" / "peers.py"), "--sizes", "1M", "--rounds", "1",
           "--variants", "fused,torchjd_surgery", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "peers.md").read_text()
    assert "| 1M | 1.0M | fused |" in text and "| 1M | 1.0M | torchjd_surgery |" in text
    assert "relative difference to fused" in text


def test_peers_skip_with_a_message_without_torchjd(tmp_path):
    """With torchjd unimportable, the peers step prints why and measures nothing."""
    code = ("import sys; sys.modules['torchjd'] = None; sys.path.append(sys.argv[1]); "
            "from benchmarks import peers; assert peers.torchjd is None; "
            "assert peers.run_all(['1M']) == []; peers.main(['--sizes', '1M'])")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "peers: skipped: torchjd is not installed" in proc.stdout
    assert "pip install '.[peers]'" in proc.stdout


def test_runner_skips_the_peers_section_without_torchjd(tmp_path):
    code = ("import sys, argparse; sys.modules['torchjd'] = None; sys.path.append(sys.argv[1]); "
            "from benchmarks import run; "
            "run.run_peers(['1M'], argparse.Namespace(device='cpu', quick=True, peer_rounds=None, threads=2), "
            "__import__('pathlib').Path(sys.argv[2]))")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO), str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "peers: skipped: torchjd is not installed" in proc.stdout
    assert not (tmp_path / "peers.md").exists()
