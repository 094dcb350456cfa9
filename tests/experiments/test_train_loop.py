"""The one training loop (transfer.train): learning, seeding, selection, accumulation,
surgery before clipping, weight-decay groups, schedule, frozen embeddings."""
import math
import sys
import types
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).parent))
import harness_helpers as H  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    yield from H.single_thread()

from transfer import train as T  # noqa: E402


class ToyTagging(Dataset):
    """Word-level tagging features for the tiny tokenizer (one token per word)."""

    def __init__(self, tokenizer, sents):
        self.features = []
        label2id = {t: i for i, t in enumerate(H.TAGS)}
        for sent in sents:
            words = [w for w, _ in sent]
            enc = tokenizer(" ".join(words))
            labels = [-100] + [label2id[t] for _, t in sent] + [-100]
            assert len(labels) == len(enc["input_ids"])
            self.features.append({"input_ids": torch.tensor(enc["input_ids"]),
                                  "attention_mask": torch.tensor(enc["attention_mask"]),
                                  "labels": torch.tensor(labels)})

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]

    def collate(self, items):
        width = max(len(it["input_ids"]) for it in items)
        out = {}
        for key, pad in (("input_ids", 1), ("attention_mask", 0), ("labels", -100)):
            out[key] = torch.stack([torch.nn.functional.pad(it[key], (0, width - len(it[key])), value=pad)
                                    for it in items])
        return out


@pytest.fixture(scope="module")
def tokenizer():
    return H.make_tokenizer()


def tiny_model(tokenizer, seed=0, **overrides):
    from transformers import XLMRobertaForTokenClassification

    torch.manual_seed(seed)
    return XLMRobertaForTokenClassification(H.tiny_config(len(tokenizer), num_labels=len(H.TAGS), **overrides))


def settings(**kw):
    base = dict(lr=3e-3, epochs=1, micro_batch_size=8, grad_accum_steps=1, max_grad_norm=1.0)
    base.update(kw)
    return T.OptimSettings(**base)


def params_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_loop_learns_and_is_reproducible(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 64, 0))
    runs = []
    for seed in (1, 1, 2):
        model = tiny_model(tokenizer)
        result = T.train(model, data, settings(epochs=6), seed=seed, progress=False)
        losses = [r["value"] for r in result.curve if r["kind"] == "loss"]
        runs.append((losses, params_of(model)))
        assert result.steps == 6 * 8 == len(losses)
        assert result.selected_step == result.steps  # no selector: the last checkpoint
    (first, p1), (again, p2), (other, _) = runs
    assert sum(first[-5:]) / 5 < 0.6 * sum(first[:5]) / 5, first
    assert first == again  # same seed: same data order, same numbers
    assert all(torch.equal(p1[n], p2[n]) for n in p1)
    assert first != other  # another seed: another data order


def test_selection_keeps_the_best_checkpoint(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 48, 0))  # 6 steps of 8
    scores = iter([1.0, 3.0, 2.0])
    snapshots = {}

    def evaluate(model):
        snapshots[len(snapshots)] = params_of(model)
        return next(scores)

    model = tiny_model(tokenizer)
    result = T.train(model, data, settings(), seed=0, selector=T.Selector(evaluate, every=2), progress=False)
    assert result.steps == 6
    assert [(r["step"], r["value"]) for r in result.curve if r["kind"] == "dev"] == [(2, 1.0), (4, 3.0), (6, 2.0)]
    assert (result.selected_step, result.selected_score) == (4, 3.0)
    final = params_of(model)
    assert all(torch.equal(final[n], snapshots[1][n]) for n in final)
    assert not all(torch.equal(final[n], snapshots[2][n]) for n in final)


def test_selection_evaluates_after_the_last_step_and_prefers_the_earliest_tie(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 40, 0))  # 5 steps of 8
    model = tiny_model(tokenizer)
    result = T.train(model, data, settings(), seed=0, selector=T.Selector(lambda m: 5.0, every=2), progress=False)
    assert [r["step"] for r in result.curve if r["kind"] == "dev"] == [2, 4, 5]
    assert result.selected_step == 2


class RecordingSurgery:
    """Stands in for sgs_ext.StochasticGradientSurgery: records the gradient it sees and
    multiplies it by 1000 (so clipping after it has something to do)."""

    instances = []

    def __init__(self, params, alpha, mode, seed, observe=False):
        self.params, self.alpha, self.mode, self.seed, self.observe = list(params), alpha, mode, seed, observe
        self.events = []
        self.counters = {"xx": {"steps": 0}}
        RecordingSurgery.instances.append(self)

    def step(self, closures):
        grads = [p.grad.detach().clone() for p in self.params]
        oracle_losses = {lang: float(fn().detach()) for lang, fn in closures.items()}
        self.events.append(("surgery", torch.sqrt(sum((g ** 2).sum() for g in grads)).item(), grads, oracle_losses))
        for p in self.params:
            p.grad.mul_(1000.0)
        self.counters["xx"]["steps"] += 1
        return types.SimpleNamespace(oracle_ran=True, cos_before=0.5, language="xx", projected=False)


@pytest.fixture
def fake_sgs(monkeypatch):
    RecordingSurgery.instances = []
    monkeypatch.setitem(sys.modules, "sgs_ext", types.SimpleNamespace(StochasticGradientSurgery=RecordingSurgery))
    clip_calls = []
    original = torch.nn.utils.clip_grad_norm_

    def recording_clip(params, max_norm, *a, **kw):
        params = list(params)
        norm = original(params, max_norm, *a, **kw)
        after = torch.sqrt(sum((p.grad ** 2).sum() for p in params)).item()
        clip_calls.append((norm.item(), after))
        if RecordingSurgery.instances:
            RecordingSurgery.instances[-1].events.append(("clip", norm.item(), after))
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    return clip_calls


def oracle_batch(tokenizer, lang="xx"):
    shots = ToyTagging(tokenizer, H.sentences(lang, 5, 9))
    return shots.collate([shots[i] for i in range(len(shots))])


def test_surgery_runs_once_per_step_before_clipping(tokenizer, fake_sgs):
    data = ToyTagging(tokenizer, H.sentences("en", 32, 0))  # 4 steps of 8
    model = tiny_model(tokenizer)
    result = T.train(model, data, settings(max_grad_norm=1.0), seed=3, oracle_batches={"xx": oracle_batch(tokenizer)},
                     surgery=T.SurgerySettings(alpha=0.7), progress=False)
    surgeon = RecordingSurgery.instances[-1]
    assert (surgeon.alpha, surgeon.mode, surgeon.seed) == (0.7, "stochastic", 3)
    kinds = [e[0] for e in surgeon.events]
    assert kinds == ["surgery", "clip"] * 4
    for surgery, clip in zip(surgeon.events[::2], surgeon.events[1::2]):
        assert clip[1] == pytest.approx(1000 * surgery[1], rel=1e-4)  # clipping saw the surgery's output
        assert clip[2] == pytest.approx(1.0, rel=1e-3)  # and clipped it to max norm 1
        assert math.isfinite(surgery[3]["xx"]) and surgery[3]["xx"] > 0  # the oracle closure computes a loss
    assert result.surgery_counters == {"xx": {"steps": 4}}
    assert [r["kind"] for r in result.curve].count("cos") == 4


def test_gradient_accumulation_matches_one_big_batch(tokenizer, fake_sgs):
    # equal-length sentences: the mean over 2 micro-batches of 4 is the mean over 8
    sents = [s[:3] for s in H.sentences("en", 8, 0)]
    data = ToyTagging(tokenizer, sents)
    grads = []
    for micro, accum in ((8, 1), (4, 2)):
        model = tiny_model(tokenizer)
        T.train(model, data, settings(micro_batch_size=micro, grad_accum_steps=accum, max_steps=1), seed=0,
                oracle_batches={"xx": oracle_batch(tokenizer)}, surgery=T.SurgerySettings(alpha=1.0), progress=False)
        events = [e for e in RecordingSurgery.instances[-1].events if e[0] == "surgery"]
        assert len(events) == 1
        grads.append(events[0][2])
    for full, accumulated in zip(*grads):
        torch.testing.assert_close(full, accumulated, rtol=1e-5, atol=1e-7)


def test_surgery_per_micro_batch_option(tokenizer, fake_sgs):
    data = ToyTagging(tokenizer, H.sentences("en", 32, 0))
    model = tiny_model(tokenizer)
    T.train(model, data, settings(micro_batch_size=4, grad_accum_steps=2), seed=0,
            oracle_batches={"xx": oracle_batch(tokenizer)},
            surgery=T.SurgerySettings(alpha=1.0, per_micro_batch=True), progress=False)
    kinds = [e[0] for e in RecordingSurgery.instances[-1].events]
    assert kinds == ["surgery", "surgery", "clip"] * 4


def test_a_sampled_oracle_gives_a_new_batch_at_every_pass(tokenizer, fake_sgs):
    # the published code's English oracle: a fresh random min(K, micro-batch) batch each time
    english = ToyTagging(tokenizer, H.sentences("en", 20, 4))
    sampler = T.RandomOracleBatch(english, size=3, seed=5)
    drawn = []

    def recording():
        batch = sampler()
        drawn.append(batch["input_ids"].tolist())
        return batch

    data = ToyTagging(tokenizer, H.sentences("en", 32, 0))
    T.train(tiny_model(tokenizer), data, settings(), seed=0, oracle_batches={"en": recording},
            surgery=T.SurgerySettings(alpha=1.0), progress=False)
    assert len(drawn) == 4 and all(len(b) == 3 for b in drawn)  # one per step, 3 examples each
    assert len({str(b) for b in drawn}) > 1  # not one fixed batch
    # reproducible from its seed, and never more than the dataset holds
    again = T.RandomOracleBatch(english, size=3, seed=5)
    assert again()["input_ids"].tolist() == T.RandomOracleBatch(english, size=3, seed=5)()["input_ids"].tolist()
    assert len(T.RandomOracleBatch(english, size=99, seed=0)()["input_ids"]) == 20


def test_surgery_needs_oracle_batches(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 8, 0))
    with pytest.raises(ValueError, match="oracle batches"):
        T.train(tiny_model(tokenizer), data, settings(), seed=0, surgery=T.SurgerySettings(alpha=1.0), progress=False)


def test_real_surgery_counts_every_step(tokenizer):
    pytest.importorskip("sgs_ext", exc_type=ImportError)
    data = ToyTagging(tokenizer, H.sentences("en", 32, 0))
    model = tiny_model(tokenizer)
    result = T.train(model, data, settings(), seed=0,
                     oracle_batches={"xx": oracle_batch(tokenizer, "xx"), "yy": oracle_batch(tokenizer, "yy")},
                     surgery=T.SurgerySettings(alpha=1.0), progress=False)
    counters = result.surgery_counters
    assert set(counters) <= {"xx", "yy"}
    assert sum(c["steps"] for c in counters.values()) == 4
    assert sum(c["oracle_runs"] for c in counters.values()) == 4  # alpha 1: the oracle runs every step
    assert all(c["projections"] == c["conflicts"] for c in counters.values())


def test_no_weight_decay_on_bias_and_layernorm(tokenizer):
    model = tiny_model(tokenizer)
    decay, plain = T.parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    plain_names = {names[id(p)] for p in plain["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert all(n.endswith("bias") or "LayerNorm" in n for n in plain_names)
    assert "roberta.embeddings.LayerNorm.weight" in plain_names
    assert "classifier.bias" in plain_names
    assert "classifier.weight" in decay_names and "roberta.embeddings.word_embeddings.weight" in decay_names
    assert len(plain_names) + len(decay_names) == len(names)


def test_linear_schedule_with_warmup():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = T.linear_schedule(opt, warmup_steps=2, total_steps=6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1 / 3, 2 / 3, 1.0, 0.75, 0.5, 0.25])
    opt = torch.optim.SGD([param], lr=1.0)
    sched = T.linear_schedule(opt, warmup_steps=0, total_steps=4)
    assert opt.param_groups[0]["lr"] == 1.0


def test_frozen_word_embedding_does_not_move(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 16, 0))
    model = tiny_model(tokenizer)
    frozen = T.freeze_word_embeddings(model)
    assert frozen == model.get_input_embeddings().weight.numel()
    before = params_of(model)
    T.train(model, data, settings(), seed=0, progress=False)
    after = params_of(model)
    name = "roberta.embeddings.word_embeddings.weight"
    assert torch.equal(before[name], after[name])
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])


def test_count_steps():
    assert T.count_steps(100, settings(micro_batch_size=32)) == (4, 4)
    assert T.count_steps(100, settings(micro_batch_size=16, grad_accum_steps=2, epochs=3)) == (4, 12)
    assert T.count_steps(100, settings(micro_batch_size=32, epochs=2.5)) == (4, 10)
    assert T.count_steps(100, settings(micro_batch_size=32, epochs=10, max_steps=7)) == (4, 7)


def test_epoch_ending_mid_accumulation_still_steps(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 20, 0))  # 5 micro-batches of 4, accumulation 2: 3 steps/epoch
    result = T.train(tiny_model(tokenizer), data, settings(micro_batch_size=4, grad_accum_steps=2, epochs=2),
                     seed=0, progress=False)
    assert result.steps == 6


def test_non_finite_loss_is_an_error(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 8, 0))
    model = tiny_model(tokenizer)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="step 1"):
        T.train(model, data, settings(), seed=0, progress=False)


def test_mixed_set_concatenates_and_collates(tokenizer):
    a = ToyTagging(tokenizer, H.sentences("en", 3, 0))
    b = ToyTagging(tokenizer, H.sentences("xx", 2, 0))
    mixed = T.MixedSet([a, b])
    assert len(mixed) == 5
    assert torch.equal(mixed[3]["input_ids"], b[0]["input_ids"])
    batch = mixed.collate([mixed[i] for i in range(5)])
    assert batch["input_ids"].shape[0] == 5
    with pytest.raises(ValueError, match="empty"):
        T.MixedSet([ToyTagging(tokenizer, [])])


class ObservingSurgery(RecordingSurgery):
    """Runs the oracle forward passes (train mode: dropout) and leaves the gradient alone."""

    def step(self, closures):
        for fn in closures.values():
            fn()
        return types.SimpleNamespace(oracle_ran=True, cos_before=0.0, language="xx", projected=False)


def _final_params(tokenizer, surgery):
    data = ToyTagging(tokenizer, H.sentences("en", 32, 0))
    model = tiny_model(tokenizer, hidden_dropout_prob=0.3)
    T.train(model, data, settings(), seed=0, oracle_batches={"xx": oracle_batch(tokenizer)}, surgery=surgery,
            progress=False)
    return params_of(model)


def test_oracle_passes_do_not_shift_the_training_randomness(tokenizer, monkeypatch):
    # with dropout on, a run whose surgery never changes the gradient equals the run without
    # surgery: gradient-mix and naive-mix differ only where the surgery projected
    monkeypatch.setitem(sys.modules, "sgs_ext", types.SimpleNamespace(StochasticGradientSurgery=ObservingSurgery))
    plain = _final_params(tokenizer, None)
    observed = _final_params(tokenizer, T.SurgerySettings(alpha=1.0))
    assert all(torch.equal(plain[n], observed[n]) for n in plain)
    # without the private stream the oracle's dropout masks would shift training's
    monkeypatch.setattr(T.IsolatedRNG, "run", lambda self, fn: fn())
    shifted = _final_params(tokenizer, T.SurgerySettings(alpha=1.0))
    assert not all(torch.equal(plain[n], shifted[n]) for n in plain)


def test_naive_mix_train_in_observe_mode_trains_exactly_as_without_surgery(tokenizer):
    # the real library: mode "off" + observe runs every oracle pass and counts conflicts,
    # and the trained parameters are bit for bit those of plain training
    plain = _final_params(tokenizer, None)
    observed = _final_params(tokenizer, T.SurgerySettings(alpha=1.0, mode="off", observe=True))
    assert all(torch.equal(plain[n], observed[n]) for n in plain)


def test_isolated_rng_is_its_own_reproducible_stream():
    rng = T.IsolatedRNG(0, "cpu")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    inside = rng.run(lambda: torch.rand(3))
    assert torch.equal(torch.rand(3), expected)  # the global stream did not move
    assert not torch.equal(inside, expected)
    assert torch.equal(T.IsolatedRNG(0, "cpu").run(lambda: torch.rand(3)), inside)  # reproducible from the seed
    assert not torch.equal(rng.run(lambda: torch.rand(3)), inside)  # and it advances


# ----------------------------------------------------------------------------- checkpoint averaging

@pytest.mark.parametrize("steps", [1, 2, 7, 10])
def test_average_start_covers_the_last_fraction_of_the_steps(steps):
    first = T.average_start(steps)
    assert 1 <= first <= steps
    assert steps - first + 1 == max(1, math.ceil(T.AVERAGE_FRACTION * steps))


def test_averaging_returns_the_mean_of_the_last_half_and_the_rule_and_last_beside_it(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 56, 0))  # 7 steps of 8
    scores = iter([1.0, 5.0, 2.0, 3.0, 0.0, 4.0, 1.0])  # the selector's best: step 2
    after_step = {}  # the parameters after every step, seen by a selector evaluating at each one

    def evaluate(model):
        after_step[len(after_step) + 1] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return next(scores)

    model = tiny_model(tokenizer)
    result = T.train(model, data, settings(), seed=3, selector=T.Selector(evaluate, every=1), progress=False,
                     keep_last=True, average=True)
    first = T.average_start(7)
    assert (result.average_from_step, result.rule_step, result.selected_step, result.steps) == (first, 2, 7, 7)
    final = dict(model.named_parameters())
    for name, p in final.items():
        terms = [after_step[s][name].double() for s in range(first, 8)]
        oracle = torch.stack(terms).mean(0)
        # a running mean of n float32 terms: each of its n - 1 updates rounds once or twice
        bound = 4 * len(terms) * torch.finfo(torch.float32).eps * max(t.abs().max().item() for t in terms) + 1e-30
        assert (p.detach().double() - oracle).abs().max().item() <= bound, name
    assert all(torch.equal(result.rule_state[n], after_step[2][n]) for n in final if n in result.rule_state)
    assert all(torch.equal(result.last_state[n], after_step[7][n]) for n in final if n in result.last_state)
    assert not all(torch.equal(final[n].detach(), after_step[7][n]) for n in final)  # it is not the last


def test_averaging_does_not_change_the_training(tokenizer):
    data = ToyTagging(tokenizer, H.sentences("en", 48, 0))
    plain, averaged = tiny_model(tokenizer), tiny_model(tokenizer)
    a = T.train(plain, data, settings(epochs=2), seed=5, progress=False)
    b = T.train(averaged, data, settings(epochs=2), seed=5, progress=False, keep_last=True, average=True)
    assert [r for r in a.curve] == [r for r in b.curve]
    assert b.rule_state is None and b.rule_step == b.steps  # no selector: the rule keeps the last
    assert all(torch.equal(p.detach(), b.last_state[n]) for n, p in plain.named_parameters())
    assert a.to_dict().keys() < b.to_dict().keys()  # the average's steps recorded only when averaging
