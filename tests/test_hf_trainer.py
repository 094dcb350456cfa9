"""The Hugging Face Trainer integration, with a tiny randomly initialised BERT."""
import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate", reason="the transformers Trainer needs accelerate (sgs-ext[hf] extra)")

from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments  # noqa: E402

from sgs_ext.integrations.transformers import SURGERY_STATE_NAME, GradientSurgeryTrainer  # noqa: E402

VOCAB, LEN = 40, 12


def make_model(dropout=0.1):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=LEN, num_labels=2,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(config)


def make_items(n, seed, flip=False):
    """Label = whether token 5 occurs (mostly 1); ``flip`` inverts the rule (a conflicting 'language')."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        ids = torch.randint(6, VOCAB, (LEN,), generator=g)
        label = int(torch.rand((), generator=g) < 0.8)
        if label:
            ids[int(torch.randint(1, LEN, (), generator=g))] = 5
        items.append({"input_ids": ids, "attention_mask": torch.ones(LEN, dtype=torch.long),
                      "labels": torch.tensor(label ^ int(flip))})
    return items


def training_args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=8, learning_rate=1e-3, max_steps=4,
                logging_steps=2, save_strategy="no", report_to=[], seed=0, use_cpu=True,
                dataloader_num_workers=0, disable_tqdm=True)
    base.update(kw)
    return TrainingArguments(**base)


ORACLES = {"ar": make_items(4, 2, flip=True), "hi": make_items(4, 3)}


def params_of(model):
    return [p.detach().clone() for p in model.parameters()]


def test_import_sgs_ext_does_not_import_transformers():
    code = ("import sys, sgs_ext, sgs_ext.integrations; "
            "assert 'transformers' not in sys.modules, 'transformers imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_alpha_zero_equals_the_plain_trainer(tmp_path):
    train = make_items(32, 1)
    plain = Trainer(model=make_model(), args=training_args(tmp_path / "plain"), train_dataset=train)
    plain.train()
    mixed = GradientSurgeryTrainer(model=make_model(), args=training_args(tmp_path / "zero"), train_dataset=train,
                                   oracle_datasets=ORACLES, surgery_alpha=0.0)
    mixed.train()
    assert sum(c.steps for c in mixed.surgery.counters.values()) == 4
    assert sum(c.oracle_runs for c in mixed.surgery.counters.values()) == 0
    assert all(torch.equal(a, b) for a, b in zip(params_of(plain.model), params_of(mixed.model)))


def test_surgery_runs_once_per_optimizer_step_before_clipping(tmp_path, monkeypatch):
    train = make_items(32, 1)
    trainer = GradientSurgeryTrainer(
        model=make_model(), args=training_args(tmp_path, gradient_accumulation_steps=2, per_device_train_batch_size=4,
                                               max_grad_norm=0.5),
        train_dataset=train, oracle_datasets=ORACLES, surgery_alpha=1.0)
    events = []
    real_clip = trainer._clip_grad_norm

    def clip(model):
        events.append("clip")
        return real_clip(model)

    monkeypatch.setattr(trainer, "_clip_grad_norm", clip)
    real_step = GradientSurgeryTrainer.training_step

    def step(self, *a, **k):
        out = real_step(self, *a, **k)
        if self.accelerator.sync_gradients:
            events.append("surgery")
        return out

    monkeypatch.setattr(GradientSurgeryTrainer, "training_step", step)
    trainer.train()
    assert events == ["surgery", "clip"] * 4
    counters = trainer.surgery.counters
    assert sum(c.steps for c in counters.values()) == 4 == sum(c.oracle_runs for c in counters.values())
    assert counters["ar"].conflicts >= 1       # the flipped-label language conflicts
    assert counters["ar"].projections == counters["ar"].conflicts
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and "surgery/ar/conflict_rate" in logged[-1] and "surgery/hi/mean_cos" in logged[-1]


def test_surgery_changes_training_and_is_reproducible(tmp_path):
    train = make_items(32, 1)

    def run(name, **kw):
        t = GradientSurgeryTrainer(model=make_model(), args=training_args(tmp_path / name), train_dataset=train,
                                   oracle_datasets=ORACLES, **kw)
        t.train()
        return params_of(t.model), t.surgery.log_dict()

    a, log_a = run("a", surgery_alpha=1.0)
    b, log_b = run("b", surgery_alpha=1.0)
    off, _ = run("off", surgery_alpha=1.0, surgery_mode="off")
    naive, _ = run("naive", surgery_alpha=0.0)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and log_a == log_b
    assert all(torch.equal(x, y) for x, y in zip(off, naive))
    assert log_a["surgery/ar/projections"] >= 1
    assert not all(torch.equal(x, y) for x, y in zip(a, naive))


def test_chunked_oracle_loss_is_the_mean_over_all_shots(tmp_path):
    model = make_model().eval()
    trainer = GradientSurgeryTrainer(model=model, args=training_args(tmp_path), train_dataset=make_items(8, 1),
                                     oracle_datasets=ORACLES, oracle_batch_size=3)
    chunks = list(trainer._oracle_losses(model, "ar"))
    assert len(chunks) == 2
    whole = GradientSurgeryTrainer(model=model, args=training_args(tmp_path), train_dataset=make_items(8, 1),
                                   oracle_datasets=ORACLES)
    (full,) = list(whole._oracle_losses(model, "ar"))
    torch.testing.assert_close(sum(chunks), full)


def test_checkpoint_resume_restores_the_surgery_draws(tmp_path):
    train = make_items(48, 1)
    args = dict(max_steps=6, save_strategy="steps", save_steps=3)
    full = GradientSurgeryTrainer(model=make_model(), args=training_args(tmp_path / "full", **args),
                                  train_dataset=train, oracle_datasets=ORACLES, surgery_alpha=0.5)
    full.train()
    ckpt = tmp_path / "full" / "checkpoint-3"
    assert (ckpt / SURGERY_STATE_NAME).is_file()
    resumed = GradientSurgeryTrainer(model=make_model(), args=training_args(tmp_path / "full", **args),
                                     train_dataset=train, oracle_datasets=ORACLES, surgery_alpha=0.5)
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert resumed.surgery.num_steps == 6
    assert resumed.surgery.log_dict() == full.surgery.log_dict()
    for a, b in zip(params_of(full.model), params_of(resumed.model)):
        torch.testing.assert_close(a, b)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="surgery_mode"):
        GradientSurgeryTrainer(model=make_model(), args=training_args(tmp_path), oracle_datasets=ORACLES,
                               surgery_mode="sometimes")
    with pytest.raises(ValueError, match="'te' is empty"):
        GradientSurgeryTrainer(model=make_model(), args=training_args(tmp_path), oracle_datasets={"te": []})


def ddp_trainer_worker(rank, port, out_dir):
    """One rank of a 2-process (gloo, MULTI_CPU) Trainer run, as torchrun would start it."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    torch.set_num_threads(1)
    model = make_model(dropout=0.0)
    # average_tokens_across_devices=False: BERT's classification loss ignores num_items_in_batch,
    # so the Trainer's world-size loss rescaling would double the gradients (a Trainer quirk)
    args = training_args(Path(out_dir) / "run", per_device_train_batch_size=4, average_tokens_across_devices=False)
    trainer = GradientSurgeryTrainer(model=model, args=args,
                                     train_dataset=make_items(32, 1), oracle_datasets=ORACLES, surgery_alpha=1.0)
    trainer.train()
    torch.save({"params": params_of(model), "counters": trainer.surgery.log_dict(),
                "ddp": trainer.surgery.ddp_module is not None, "kind": str(trainer.accelerator.distributed_type)},
               Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_ddp_trainer_matches_single_process(tmp_path):
    """2 ranks x batch 4 (gloo DDP through accelerate) == 1 process x batch 8, surgery included."""
    single = GradientSurgeryTrainer(model=make_model(dropout=0.0), args=training_args(tmp_path / "single"),
                                    train_dataset=make_items(32, 1), oracle_datasets=ORACLES, surgery_alpha=1.0)
    single.train()
    assert single.surgery.log_dict()["surgery/ar/projections"] >= 1

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    module = importlib.import_module(Path(__file__).stem)      # importable by name in the children
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(module.ddp_trainer_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        r = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert r["ddp"] and "MULTI_CPU" in r["kind"]
        want = single.surgery.log_dict()
        assert r["counters"].keys() == want.keys()
        for key, value in want.items():
            assert r["counters"][key] == pytest.approx(value, rel=1e-4), key
        for got, want in zip(r["params"], params_of(single.model)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
