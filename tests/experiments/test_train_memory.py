"""What the training loop does for memory changes no number: recomputed layer activations give
bit-identical training, checkpoint copies hold the trainable state only, trimming the heap
and forgetting parsed files change nothing that is computed."""
import sys
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


class Tagged(Dataset):
    """One token per word, tags as in harness_helpers."""

    def __init__(self, tokenizer, sents):
        label2id = {t: i for i, t in enumerate(H.TAGS)}
        self.features = []
        for sent in sents:
            enc = tokenizer(" ".join(w for w, _ in sent))
            self.features.append({"input_ids": torch.tensor(enc["input_ids"]),
                                  "attention_mask": torch.tensor(enc["attention_mask"]),
                                  "labels": torch.tensor([-100] + [label2id[t] for _, t in sent] + [-100])})

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]

    def collate(self, items):
        width = max(len(it["input_ids"]) for it in items)
        return {key: torch.stack([torch.nn.functional.pad(it[key], (0, width - len(it[key])), value=pad)
                                  for it in items])
                for key, pad in (("input_ids", 1), ("attention_mask", 0), ("labels", -100))}


@pytest.fixture(scope="module")
def tokenizer():
    return H.make_tokenizer()


def dropout_model(tokenizer):
    """A tiny XLM-R with dropout everywhere (attention probabilities included) and SDPA attention."""
    from transformers import XLMRobertaForTokenClassification

    torch.manual_seed(0)
    config = H.tiny_config(len(tokenizer), num_labels=len(H.TAGS), hidden_dropout_prob=0.1,
                           attention_probs_dropout_prob=0.2)
    config._attn_implementation = "sdpa"
    return XLMRobertaForTokenClassification(config)


def run(tokenizer, monkeypatch, min_tokens, *, surgery=True):
    monkeypatch.setattr(T, "RECOMPUTE_LAYERS_MIN_TOKENS", min_tokens)
    data = Tagged(tokenizer, H.sentences("en", 40, 0) + H.sentences("xx", 8, 1))
    shots = Tagged(tokenizer, H.sentences("xx", 4, 2))
    model = dropout_model(tokenizer)
    T.freeze_word_embeddings(model)
    dev = Tagged(tokenizer, H.sentences("en", 8, 3))
    dev_batch = dev.collate(dev.features)

    evaluations = []

    def score(m):  # the dev loss, and a penalty that grows with every evaluation: an early step wins
        evaluations.append(1)
        with torch.no_grad():
            return -float(m(**dev_batch).loss) - 10.0 * len(evaluations)

    settings = T.OptimSettings(lr=3e-3, epochs=3, micro_batch_size=8, grad_accum_steps=2)
    kwargs = {}
    if surgery:
        kwargs = dict(oracle_batches={"xx": shots.collate(shots.features)},
                      surgery=T.SurgerySettings(alpha=1.0, mode="stochastic"))
    result = T.train(model, data, settings, seed=3, selector=T.Selector(score, every=2), keep_last=True,
                     progress=False, **kwargs)
    return model, result


@pytest.mark.parametrize("surgery", [False, True], ids=["plain", "surgery"])
def test_recomputed_layers_train_bit_identically(tokenizer, monkeypatch, surgery):
    if surgery:
        pytest.importorskip("sgs_ext")
    import torch.utils.checkpoint as ckpt

    calls = []
    real = ckpt.checkpoint
    monkeypatch.setattr(ckpt, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    kept, kept_result = run(tokenizer, monkeypatch, None, surgery=surgery)  # never recompute
    assert not calls
    again, again_result = run(tokenizer, monkeypatch, 0, surgery=surgery)  # every micro-batch recomputes
    assert calls, "the layers were not recomputed"
    assert not any("forward" in vars(layer) for layer in T.encoder_layers(again))  # unwrapped after each pass
    assert kept_result.curve == again_result.curve  # every loss, dev score and cosine, exactly
    assert kept_result.surgery_counters == again_result.surgery_counters
    assert kept_result.selected_step == again_result.selected_step
    for (name, a), (_, b) in zip(kept.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert kept_result.last_state.keys() == again_result.last_state.keys()
    for name in kept_result.last_state:
        assert torch.equal(kept_result.last_state[name], again_result.last_state[name]), name


def test_only_micro_batches_over_the_threshold_recompute(tokenizer, monkeypatch):
    import torch.utils.checkpoint as ckpt

    calls = []
    real = ckpt.checkpoint
    monkeypatch.setattr(ckpt, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = dropout_model(tokenizer)
    assert len(T.encoder_layers(model)) == model.config.num_hidden_layers
    data = Tagged(tokenizer, H.sentences("en", 8, 0))
    batch = data.collate(data.features)
    with T.recomputed_layers(model, enabled=False):
        model(**batch).loss.backward()
    assert not calls
    with T.recomputed_layers(model):
        model(**batch).loss.backward()
    assert len(calls) == model.config.num_hidden_layers  # one checkpoint per layer
    # and the loop's threshold: micro-batches of 8 short sentences are far below 10**6 tokens
    monkeypatch.setattr(T, "RECOMPUTE_LAYERS_MIN_TOKENS", 10**6)
    calls.clear()
    settings = T.OptimSettings(lr=1e-3, epochs=1, micro_batch_size=4, grad_accum_steps=1)
    T.train(dropout_model(tokenizer), data, settings, seed=0, progress=False)
    assert not calls


def test_checkpoint_copies_hold_the_trainable_state_only(tokenizer, monkeypatch):
    """Best and last checkpoints in memory: no copy of the frozen word embedding."""
    model, result = run(tokenizer, monkeypatch, None, surgery=False)
    assert result.last_state is not None  # selection kept an earlier step
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"roberta.embeddings.word_embeddings.weight"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in model.named_buffers()}
    assert set(result.last_state) == trainable | buffers


def test_release_free_heap_changes_nothing():
    x = torch.randn(1000, 1000)
    copy = x.clone()
    del x
    released = T.release_free_heap()
    assert isinstance(released, bool)
    if sys.platform.startswith("linux"):
        assert released  # glibc
    assert torch.equal(copy, copy.clone())


def test_forgotten_files_read_again_to_the_same_examples(tmp_path):
    from transfer.tasks import base, get_task

    root = H.write_pos_data(tmp_path)
    task = get_task("pos")
    first = task.read_split("en", "train", root)
    assert base.release_file_cache() >= 1
    assert not [key for key in base._FILE_CACHE if key[0] != "hub"]
    assert task.read_split("en", "train", root) == first
