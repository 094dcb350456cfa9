"""StochasticGradientSurgery on one process: sampling, the surgery itself, bookkeeping."""
import math

import pytest
import torch

import sgs_ext
from sgs_ext import StochasticGradientSurgery, SurgeryStats
from sgs_ext import surgery as surgery_module

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def make_params(seed=0, shapes=SHAPES):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


def directions(seed, shapes=SHAPES):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).float() for s in shapes]


def linear_loss(params, dirs):
    """A loss whose gradient w.r.t. params is exactly dirs."""
    return sum((p * d).sum() for p, d in zip(params, dirs))


def flat(ts):
    return torch.cat([t.reshape(-1).double() for t in ts])


def expected_surgery(train, oracle):
    t, o = flat(train), flat(oracle)
    d = t @ o
    return t - (d / (o @ o)) * o if d < 0 else t


def conflicting_pair():
    a = directions(1)
    b = [-x + 0.3 * y for x, y in zip(a, directions(2))]      # mostly opposite to a
    assert flat(a) @ flat(b) < 0
    return a, b


def aligned_pair():
    a = directions(1)
    b = [x + 0.3 * y for x, y in zip(a, directions(2))]
    assert flat(a) @ flat(b) > 0
    return a, b


# ---------------------------------------------------------------- the surgery itself
def test_conflicting_pair_is_projected_and_dot_becomes_nonnegative():
    params = make_params()
    a, b = conflicting_pair()
    linear_loss(params, a).backward()
    grad_objects = [p.grad for p in params]
    surgery = StochasticGradientSurgery(params, alpha=1.0, seed=0)
    stats = surgery.step({"hi": lambda: linear_loss(params, b)})

    new = flat([p.grad for p in params])
    torch.testing.assert_close(new, expected_surgery(a, b), rtol=1e-5, atol=1e-6)
    assert new @ flat(b) >= -1e-5 * new.norm() * flat(b).norm()
    assert all(p.grad is g for p, g in zip(params, grad_objects)), "g_train must be modified in place"

    t, o = flat(a), flat(b)
    assert stats.language == "hi" and stats.oracle_ran and stats.conflict and stats.projected
    assert not stats.nonfinite
    assert stats.cos_before == pytest.approx(float(t @ o / (t.norm() * o.norm())), rel=1e-5)
    assert stats.cos_after == 0.0
    assert stats.dot == pytest.approx(float(t @ o), rel=1e-5)
    assert stats.train_norm == pytest.approx(float(t.norm()), rel=1e-5)
    assert stats.oracle_norm == pytest.approx(float(o.norm()), rel=1e-5)
    assert stats.train_norm_after == pytest.approx(float(new.norm()), rel=1e-4)


def test_non_conflicting_pair_is_untouched():
    params = make_params()
    a, b = aligned_pair()
    linear_loss(params, a).backward()
    before = [p.grad.clone() for p in params]
    surgery = StochasticGradientSurgery(params, alpha=1.0, seed=0)
    stats = surgery.step({"hi": lambda: linear_loss(params, b)})
    assert stats.oracle_ran and not stats.conflict and not stats.projected
    for p, g in zip(params, before):
        assert torch.equal(p.grad, g)   # bit for bit: the oracle did not accumulate into g_train
    assert stats.cos_after == stats.cos_before > 0
    assert stats.train_norm_after == stats.train_norm


def test_parameters_outside_the_surgery_keep_their_training_gradient():
    params = make_params()
    a, b = conflicting_pair()
    linear_loss(params, a).backward()
    head_before = params[2].grad.clone()
    surgery = StochasticGradientSurgery(params[:2], alpha=1.0)
    surgery.step({"hi": lambda: linear_loss(params, b)})
    assert torch.equal(params[2].grad, head_before)
    torch.testing.assert_close(flat([p.grad for p in params[:2]]), expected_surgery(a[:2], b[:2]),
                               rtol=1e-5, atol=1e-6)


def test_frozen_parameters_are_left_out():
    params = make_params()
    params[1].requires_grad_(False)
    surgery = StochasticGradientSurgery(params, alpha=1.0)
    assert len(surgery.params) == 2 and all(p is not params[1] for p in surgery.params)
    a, b = conflicting_pair()
    linear_loss(params, a).backward()
    surgery.step({"hi": lambda: linear_loss(params, b)})
    assert params[1].grad is None
    kept = [0, 2]
    torch.testing.assert_close(flat([params[i].grad for i in kept]),
                               expected_surgery([a[i] for i in kept], [b[i] for i in kept]),
                               rtol=1e-5, atol=1e-6)


def test_parameter_without_training_gradient_counts_as_zero():
    params = make_params()
    a, b = conflicting_pair()
    linear_loss(params[:2], a[:2]).backward()       # params[2] gets no training gradient
    assert params[2].grad is None
    a_full = a[:2] + [torch.zeros_like(a[2])]
    surgery = StochasticGradientSurgery(params, alpha=1.0)
    stats = surgery.step({"hi": lambda: linear_loss(params, b)})
    assert stats.projected
    # the projection gives params[2] the gradient -coef * oracle
    torch.testing.assert_close(flat([p.grad for p in params]), expected_surgery(a_full, b), rtol=1e-5, atol=1e-6)

    # without a conflict the missing gradient stays missing (the optimizer keeps skipping it)
    params = make_params()
    a, b = aligned_pair()
    linear_loss(params[:2], a[:2]).backward()
    stats = StochasticGradientSurgery(params, alpha=1.0).step({"hi": lambda: linear_loss(params, b)})
    assert not stats.projected and params[2].grad is None


def test_oracle_gradient_zero_where_oracle_does_not_reach():
    params = make_params()
    a, b = conflicting_pair()
    linear_loss(params, a).backward()
    b_part = b[:2] + [torch.zeros_like(b[2])]
    StochasticGradientSurgery(params).step({"hi": lambda: linear_loss(params[:2], b[:2])})
    torch.testing.assert_close(flat([p.grad for p in params]), expected_surgery(a, b_part), rtol=1e-5, atol=1e-6)


def test_oracle_closure_may_return_chunks():
    params = make_params()
    a, b = conflicting_pair()
    half = [x / 2 for x in b]
    linear_loss(params, a).backward()
    StochasticGradientSurgery(params).step(
        {"hi": lambda: (linear_loss(params, h) for h in (half, half))})
    torch.testing.assert_close(flat([p.grad for p in params]), expected_surgery(a, b), rtol=1e-5, atol=1e-6)


def test_exception_in_closure_restores_training_gradient():
    params = make_params()
    a, _ = conflicting_pair()
    linear_loss(params, a).backward()
    objs = [p.grad for p in params]
    before = [g.clone() for g in objs]

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        StochasticGradientSurgery(params).step({"hi": broken})
    assert all(p.grad is g for p, g in zip(params, objs))
    assert all(torch.equal(p.grad, g) for p, g in zip(params, before))


# ---------------------------------------------------------------- sampling
def test_alpha_decides_whether_the_oracle_runs():
    p = torch.nn.Parameter(torch.ones(1))
    calls = []

    def closure():
        calls.append(1)
        return p.sum()

    p.grad = torch.ones(1)
    never = StochasticGradientSurgery([p], alpha=0.0, seed=3)
    for _ in range(50):
        s = never.step({"hi": closure, "ar": closure})
        assert not s.oracle_ran and s.p >= 0.0
    assert not calls

    sometimes = StochasticGradientSurgery([p], alpha=0.3, seed=3)
    ran = [sometimes.step({"hi": closure}) for _ in range(2000)]
    assert len(calls) == sum(s.oracle_ran for s in ran)
    assert all(s.oracle_ran == (s.p < 0.3) for s in ran)
    assert 0.25 < len(calls) / 2000 < 0.35


def test_only_the_sampled_language_runs_and_sampling_is_uniform():
    p = torch.nn.Parameter(torch.ones(1))
    p.grad = torch.ones(1)
    calls = []
    langs = ["ar", "hi", "sw", "te"]
    closures = {lang: (lambda lang=lang: calls.append(lang) or p.sum()) for lang in langs}
    surgery = StochasticGradientSurgery([p], alpha=1.0, seed=7)
    n = 2000
    for _ in range(n):
        calls.clear()
        s = surgery.step(closures)
        assert calls == [s.language]
    counts = [surgery.counters[lang].steps for lang in langs]
    assert sum(counts) == n
    assert all(abs(c - n / 4) < 0.1 * n / 4 for c in counts), counts


def test_language_draw_does_not_depend_on_dict_order():
    p = torch.nn.Parameter(torch.ones(1))
    p.grad = torch.ones(1)
    a = StochasticGradientSurgery([p], alpha=0.0, seed=1)
    b = StochasticGradientSurgery([p], alpha=0.0, seed=1)
    fwd = {"ar": p.sum, "hi": p.sum, "sw": p.sum}
    rev = dict(reversed(list(fwd.items())))
    assert [a.step(fwd).language for _ in range(30)] == [b.step(rev).language for _ in range(30)]


def test_surgery_does_not_touch_the_global_rng():
    p = torch.nn.Parameter(torch.ones(1))
    p.grad = torch.ones(1)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    surgery = StochasticGradientSurgery([p], seed=0)
    for _ in range(5):
        surgery.step({"hi": p.sum, "ar": p.sum})
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- training runs
def make_task(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 6, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    oracle = {lang: (torch.randn(4, 6, generator=g), torch.randint(0, 3, (4,), generator=g))
              for lang in ("ar", "hi", "sw")}
    return x, y, oracle


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def train(steps=12, surgery_kwargs=None, seed=0, use_surgery=True, clip=None):
    x, y, oracle = make_task()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = torch.nn.functional.cross_entropy
    surgery = StochasticGradientSurgery(model.parameters(), seed=seed, **(surgery_kwargs or {}))
    closures = {lang: (lambda xo=xo, yo=yo: loss_fn(model(xo), yo)) for lang, (xo, yo) in oracle.items()}
    history = []
    for step in range(steps):
        xb, yb = x[step * 8 % 64:][:8], y[step * 8 % 64:][:8]
        loss_fn(model(xb), yb).backward()
        if use_surgery:
            history.append(surgery.step(closures))
        if clip is not None:
            surgery.clip_grad_norm_(clip)
        opt.step()
        opt.zero_grad()
    return model, surgery, history


def params_equal(m1, m2):
    return all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))


def test_alpha_zero_and_mode_off_reproduce_naive_training_exactly():
    naive, _, _ = train(use_surgery=False)
    zero, _, hist = train(surgery_kwargs={"alpha": 0.0})
    assert not any(s.oracle_ran for s in hist)
    assert params_equal(naive, zero)
    off, surgery, hist = train(surgery_kwargs={"alpha": 1.0, "mode": "off", "observe": True})
    assert all(s.oracle_ran and not s.projected for s in hist)   # observed, never applied
    assert any(s.conflict for s in hist)
    assert params_equal(naive, off)
    on, _, hist = train(surgery_kwargs={"alpha": 1.0})
    assert any(s.projected for s in hist) and not params_equal(naive, on)


def test_same_seed_same_run_and_different_seed_differs():
    m1, s1, h1 = train(surgery_kwargs={"alpha": 0.5}, seed=11)
    m2, s2, h2 = train(surgery_kwargs={"alpha": 0.5}, seed=11)
    assert h1 == h2
    assert params_equal(m1, m2)
    assert s1.counters == s2.counters
    _, _, h3 = train(surgery_kwargs={"alpha": 0.5}, seed=12)
    assert [(s.language, s.p) for s in h1] != [(s.language, s.p) for s in h3]


def test_counters_match_the_returned_stats():
    _, surgery, hist = train(steps=40, surgery_kwargs={"alpha": 0.7})
    assert any(s.projected for s in hist) and any(s.oracle_ran and not s.conflict for s in hist)
    for lang, c in surgery.counters.items():
        mine = [s for s in hist if s.language == lang]
        ran = [s for s in mine if s.oracle_ran]
        assert c.steps == len(mine)
        assert c.oracle_runs == len(ran)
        assert c.conflicts == sum(s.conflict for s in ran)
        assert c.projections == sum(s.projected for s in ran) == c.conflicts
        assert c.nonfinite == 0
        assert c.mean_cos == pytest.approx(sum(s.cos_before for s in ran) / len(ran))
    assert sum(c.steps for c in surgery.counters.values()) == 40
    logged = surgery.log_dict()
    lang = sorted(surgery.counters)[0]
    assert logged[f"surgery/{lang}/conflicts"] == surgery.counters[lang].conflicts
    assert logged[f"surgery/{lang}/conflict_rate"] == surgery.counters[lang].conflict_rate


def test_oracle_run_stats_from_the_three_scalars_and_the_counters_they_add():
    run = dict(step=3, language="hi", p=0.25, eps=1e-12)
    # t.o = -2, |o|^2 = 4, |t|^2 = 9: c = -0.5, |t - c o|^2 = 9 - 2 + 1 = 8
    s = surgery_module.oracle_run_stats([-2.0, 4.0, 9.0], project=True, scale=2.0, **run)
    assert (s.step, s.language, s.p, s.oracle_ran, s.conflict, s.projected, s.nonfinite) == \
        (3, "hi", 0.25, True, True, True, False)
    assert s.cos_before == pytest.approx(-1 / 3) and s.cos_after == 0.0
    assert (s.dot, s.oracle_norm) == (-1.0, 1.0)   # unscaled
    assert (s.train_norm, s.train_norm_after) == (3.0, pytest.approx(math.sqrt(8)))
    observed = surgery_module.oracle_run_stats([-2.0, 4.0, 9.0], project=False, **run)
    assert observed.conflict and not observed.projected and observed.train_norm_after == 3.0
    bad = surgery_module.oracle_run_stats([math.nan, 4.0, 9.0], project=True, **run)
    assert bad.nonfinite and not bad.conflict and math.isnan(bad.cos_before)
    c = surgery_module.LanguageCounters(steps=3)
    for one in (s, observed, bad):
        c.add(one)
    assert (c.steps, c.oracle_runs, c.conflicts, c.projections, c.nonfinite, c.cos_count) == (3, 3, 2, 1, 1, 2)
    assert c.mean_cos == pytest.approx(-1 / 3)


def test_state_dict_resumes_the_same_draws():
    p = torch.nn.Parameter(torch.ones(1))
    p.grad = torch.ones(1)
    closures = {"ar": p.sum, "hi": p.sum, "sw": p.sum}
    a = StochasticGradientSurgery([p], alpha=0.5, seed=4)
    for _ in range(5):
        a.step(closures)
    state = a.state_dict()
    rest = [(s.language, s.p) for s in (a.step(closures) for _ in range(5))]
    b = StochasticGradientSurgery([p], alpha=0.5, seed=999)
    b.load_state_dict(state)
    assert [(s.language, s.p) for s in (b.step(closures) for _ in range(5))] == rest
    assert b.counters == a.counters and b.num_steps == a.num_steps == 10


# ---------------------------------------------------------------- pcgrad
def test_pcgrad_projects_against_every_language_in_random_order():
    orders = set()
    for trial in range(6):
        params = make_params()
        a = directions(1)
        oracles = {"ar": [-x for x in a],
                   "hi": [-x + y for x, y in zip(a, directions(3))],
                   "sw": directions(4)}
        linear_loss(params, a).backward()
        surgery = StochasticGradientSurgery(params, mode="pcgrad", seed=trial)
        stats = surgery.step({lang: (lambda d=d: linear_loss(params, d)) for lang, d in oracles.items()})
        order = [s.language for s in stats.per_language]
        assert sorted(order) == ["ar", "hi", "sw"] and stats.language is None
        orders.add(tuple(order))
        expected = a
        for lang in order:
            v = expected_surgery(expected, oracles[lang])
            expected = list(torch.split(v, [math.prod(s) for s in SHAPES]))
            expected = [e.reshape(s) for e, s in zip(expected, SHAPES)]
        torch.testing.assert_close(flat([p.grad for p in params]), flat(expected), rtol=1e-4, atol=1e-5)
        assert stats.projected == any(s.projected for s in stats.per_language)
        assert all(surgery.counters[lang].steps == 1 for lang in oracles)
    assert len(orders) > 1


@pytest.mark.parametrize("returned, described", [(None, "None"), (1.5, r"a float \(1\.5\)"), (7, r"an int \(7\)")])
def test_a_closure_returning_no_tensor_is_named_with_its_language(returned, described):
    """A forgotten ``return`` or a ``loss.item()``: the error names the language and what came
    back (it used to be "'NoneType' object is not iterable" from deep inside), and the
    failed step leaves no trace."""
    params = make_params()
    linear_loss(params, directions(1)).backward()
    surgery = StochasticGradientSurgery(params, alpha=1.0)
    with pytest.raises(TypeError, match=rf"the closure for 'hi' returned {described}; it must return the oracle loss"):
        surgery.step({"hi": lambda: returned})
    assert surgery.num_steps == 0 and not surgery.counters
    stats = surgery.step({"hi": lambda: linear_loss(params, directions(2))})  # a good closure works after it
    assert stats.oracle_ran and surgery.num_steps == 1


@pytest.mark.parametrize("mode", ["pcgrad", "stochastic"])
def test_a_step_whose_closure_raises_leaves_no_trace(mode):
    """Gradients (values, not only objects), the generator, num_steps and the counters are as
    before the failed step, so retrying it gives what an undisturbed step would have."""
    a = directions(1)
    oracles = {"ar": [-x for x in a], "hi": [-x + y for x, y in zip(a, directions(3))], "sw": [-x for x in a]}

    def closures(params, failing=None):
        def make(lang, d):
            def closure():
                if lang == failing:
                    raise RuntimeError(f"out of memory on {lang}")
                return linear_loss(params, d)
            return closure
        return {lang: make(lang, d) for lang, d in oracles.items()}

    params = make_params()
    linear_loss(params, a).backward()
    surgery = StochasticGradientSurgery(params, mode=mode, seed=3)
    before = [p.grad.clone() for p in params]

    def raising():
        raise RuntimeError("out of memory")

    # pcgrad (seed 3 draws hi, ar, sw): hi and ar are projected in place, then sw raises;
    # stochastic: the drawn language raises
    failing = closures(params, failing="sw") if mode == "pcgrad" else {lang: raising for lang in oracles}
    with pytest.raises(RuntimeError, match="out of memory"):
        surgery.step(failing)
    assert all(torch.equal(p.grad, b) for p, b in zip(params, before))
    assert surgery.num_steps == 0 and surgery.counters == {}
    retried = surgery.step(closures(params))
    fresh_params = make_params()
    linear_loss(fresh_params, a).backward()
    fresh = StochasticGradientSurgery(fresh_params, mode=mode, seed=3).step(closures(fresh_params))
    assert (retried.language, retried.p) == (fresh.language, fresh.p)
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(params, fresh_params))


# ---------------------------------------------------------------- buffers, accumulation, clipping
def test_oracle_buffer_is_allocated_once_and_no_cat(monkeypatch):
    created = []
    real = surgery_module._OracleBuffer

    class Counting(real):
        def __init__(self, params):
            created.append(1)
            super().__init__(params)

    monkeypatch.setattr(surgery_module, "_OracleBuffer", Counting)
    x, y, oracle = make_task()
    model = make_model()
    surgery = StochasticGradientSurgery(model.parameters(), alpha=1.0)
    closures = {lang: (lambda xo=xo, yo=yo: torch.nn.functional.cross_entropy(model(xo), yo))
                for lang, (xo, yo) in oracle.items()}
    ptrs = set()

    def no_cat(*a, **k):
        raise AssertionError("torch.cat called during a surgery step")

    for _ in range(5):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        with monkeypatch.context() as m:
            m.setattr(torch, "cat", no_cat)
            surgery.step(closures)
        ptrs.update(f.data_ptr() for f in surgery._buffer.flats.values())
    assert created == [1]
    assert len(ptrs) == 1     # one flat fp32 buffer, the same memory every step
    n = sum(p.numel() for p in model.parameters())
    assert sum(f.numel() for f in surgery._buffer.flats.values()) == n


def test_per_micro_batch_surgery():
    params = make_params()
    a1, b = conflicting_pair()
    a2 = directions(5)
    surgery = StochasticGradientSurgery(params, alpha=1.0)
    closures = {"hi": lambda: linear_loss(params, b)}
    for a in (a1, a2):
        with surgery.micro_batch():
            linear_loss(params, a).backward()
            surgery.step(closures)
    expected = expected_surgery(a1, b) + expected_surgery(a2, b)
    torch.testing.assert_close(flat([p.grad for p in params]), expected, rtol=1e-5, atol=1e-6)


def test_default_accumulation_projects_the_accumulated_gradient():
    params = make_params()
    a1, b = conflicting_pair()
    a2 = directions(5)
    for a in (a1, a2):
        linear_loss(params, a).backward()
    StochasticGradientSurgery(params).step({"hi": lambda: linear_loss(params, b)})
    total = [x + y for x, y in zip(a1, a2)]
    torch.testing.assert_close(flat([p.grad for p in params]), expected_surgery(total, b), rtol=1e-5, atol=1e-6)


def test_clipping_comes_after_the_surgery():
    params = make_params()
    a, b = conflicting_pair()
    linear_loss(params, a).backward()
    surgery = StochasticGradientSurgery(params)
    surgery.step({"hi": lambda: linear_loss(params, b)})
    projected = flat([p.grad for p in params])
    norm = surgery.clip_grad_norm_(0.5)
    assert float(norm) == pytest.approx(float(projected.norm()), rel=1e-5)
    clipped = flat([p.grad for p in params])
    assert float(clipped.norm()) == pytest.approx(0.5, rel=1e-4)
    torch.testing.assert_close(clipped, projected * (0.5 / projected.norm()), rtol=1e-4, atol=1e-6)
    history_clip = train(steps=6, surgery_kwargs={"alpha": 1.0}, clip=0.1)[0]
    history_noclip = train(steps=6, surgery_kwargs={"alpha": 1.0})[0]
    assert not params_equal(history_clip, history_noclip)


# ---------------------------------------------------------------- errors
def test_bad_arguments_are_named():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="mode"):
        StochasticGradientSurgery([p], mode="sometimes")
    with pytest.raises(ValueError, match="alpha"):
        StochasticGradientSurgery([p], alpha=1.5)
    with pytest.raises(ValueError, match="requires grad"):
        StochasticGradientSurgery([torch.ones(2)])
    surgery = StochasticGradientSurgery([p])
    with pytest.raises(ValueError, match="non-empty dict"):
        surgery.step({})
    with pytest.raises(TypeError, match="scalar loss"):
        surgery.step({"hi": lambda: p * 2})
    with pytest.raises(ValueError, match="no_grad"):
        surgery.step({"hi": lambda: p.detach().sum()})
    with pytest.raises(TypeError, match="not callable"):
        surgery.step({"hi": 3})


def test_stats_is_a_small_dataclass():
    s = SurgeryStats(step=1, language="hi", p=0.5, oracle_ran=False)
    d = s.as_dict()
    assert d["language"] == "hi" and math.isnan(d["cos_before"]) and d["per_language"] == []
    assert sgs_ext.StochasticGradientSurgery is StochasticGradientSurgery


def test_mixed_dtype_parameters_share_one_step():
    dtypes = [torch.float32, torch.bfloat16, torch.float64]
    params = [torch.nn.Parameter(p.detach().to(dt)) for p, dt in zip(make_params(), dtypes)]
    a, b = conflicting_pair()
    a = [x.to(dt) for x, dt in zip(a, dtypes)]
    b = [x.to(dt) for x, dt in zip(b, dtypes)]
    linear_loss(params, a).backward()
    surgery = StochasticGradientSurgery(params)
    stats = surgery.step({"hi": lambda: linear_loss(params, b)})
    assert stats.projected
    assert sorted(str(k[1]) for k in surgery._buffer.flats) == sorted(str(d) for d in dtypes)
    assert [p.grad.dtype for p in params] == dtypes
    # each gradient is rounded to its own dtype once; compare in float64 with bf16's tolerance
    torch.testing.assert_close(flat([p.grad for p in params]), expected_surgery(a, b), rtol=1e-2, atol=1e-2)
