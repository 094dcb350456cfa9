"""The four tasks: split roles, encoding, models and evaluation, on a tiny offline XLM-R.

The tokenizer is a small BPE model trained here on a few sentences (Metaspace
pre-tokenizer and ``<s> A </s></s> B </s>`` template, as XLM-R's), the model a randomly
initialised 2-layer XLM-R; both are built into a temporary directory. To check the
plumbing of evaluation (features -> words/spans -> metrics) independently of model
quality, ``OracleModel`` returns logits peaked at the gold labels of the batch it is given:
any mis-mapping shows up as a score below 100.
"""
import json
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from transfer.config import PAPER_SETTINGS, TASKS
from transfer.data import Answer, DataFormatError, NLIExample, QAExample, TaggingExample
from transfer.tasks import EncodedSet, get_task, in_selection_part

CORPUS = [
    "Paris is the capital of France .", "The quick brown fox jumps over the lazy dog .",
    "John Smith works at Google in London .", "Where does John work ?", "What is the capital of France ?",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # drop zero-width spaces, as XLM-R's normaliser drops some characters: a word of only
    # those has no sub-word at all
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("\u200b", "")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS * 3, trainers.BpeTrainer(
        vocab_size=120, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tokenizer):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=512 + 2, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2)
    path = tmp_path_factory.mktemp("tiny-xlmr")
    XLMRobertaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


class OracleModel(torch.nn.Module):
    """Logits peaked at the batch's gold labels; records the mode it ran in."""

    def __init__(self, num_labels=None):
        super().__init__()
        self.num_labels = num_labels
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, input_ids, attention_mask, labels=None, start_positions=None, end_positions=None):
        self.seen.append((self.training, torch.is_grad_enabled()))
        batch, width = input_ids.shape
        if start_positions is not None:
            start = torch.zeros(batch, width)
            end = torch.zeros(batch, width)
            start[torch.arange(batch), start_positions] = 10.0
            end[torch.arange(batch), end_positions] = 10.0
            return SimpleNamespace(start_logits=start, end_logits=end)
        if labels.dim() == 1:
            return SimpleNamespace(logits=torch.nn.functional.one_hot(labels, self.num_labels).float())
        logits = torch.zeros(batch, width, self.num_labels)
        mask = labels != -100
        logits[mask] = torch.nn.functional.one_hot(labels[mask], self.num_labels).float()
        return SimpleNamespace(logits=logits)


class ConstantModel(torch.nn.Module):
    """Always predicts label id ``label_id``."""

    def __init__(self, num_labels, label_id):
        super().__init__()
        self.num_labels, self.label_id = num_labels, label_id

    def forward(self, input_ids, attention_mask, labels=None, **_):
        shape = (*input_ids.shape, self.num_labels) if labels is not None and labels.dim() == 2 else \
            (input_ids.shape[0], self.num_labels)
        logits = torch.zeros(shape)
        logits[..., self.label_id] = 1.0
        return SimpleNamespace(logits=logits)


# --- a small data dir in the real layout ---------------------------------------------------------

def _tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rows, encoding="utf-8")


def _tagged(n, tags, words=("Paris", "is", "the", "capital")):
    return "".join("".join(f"{w}{i}\t{t}\n" for w, t in zip(words, tags)) + "\n" for i in range(n))


def _squad(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [{"title": "t", "paragraphs": [{"context": c, "qas": [
        {"id": f"id{i}", "question": q, "answers": [{"text": a, "answer_start": c.index(a) if a else 0}]}]}]}
        for i, (q, c, a) in enumerate(items)]
    path.write_text(json.dumps({"version": "test", "data": data}), encoding="utf-8")


QA_CONTEXT = " ".join(CORPUS[:3])
QA_ITEMS = [("Where does John work ?", QA_CONTEXT, "Google"), ("What is the capital of France ?", QA_CONTEXT, "Paris")]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("xtreme")
    ner_tags = ("B-LOC", "O", "O", "O")
    for lang, n_train in (("en", 30), ("hi", 12)):
        _tsv(root / "panx" / lang / "train.tsv", _tagged(n_train, ner_tags))
        _tsv(root / "panx" / lang / "dev.tsv", _tagged(40, ner_tags))
    pos_tags = ("PROPN", "AUX", "DET", "NOUN")
    for split, n in (("train", 20), ("dev", 8), ("test", 9)):
        _tsv(root / "udpos" / "en" / f"{split}.tsv", _tagged(n, pos_tags))
    _tsv(root / "udpos" / "hi" / "dev.tsv", _tagged(10, pos_tags))
    _tsv(root / "udpos" / "hi" / "test.tsv", _tagged(6, pos_tags))
    _tsv(root / "udpos" / "th" / "test.tsv", _tagged(3, pos_tags))
    labels = ["entailment", "neutral", "contradiction"]
    for lang in ("en", "hi"):
        for split, n in (("dev", 12), ("test", 9)):
            _tsv(root / "xnli" / lang / f"{split}.tsv",
                 "".join(f"premise {i}\thypothesis {i}\t{labels[i % 3]}\n" for i in range(n)))
    _tsv(root / "xnli" / "en" / "train.tsv", "".join(f"p{i}\th{i}\t{labels[i % 3]}\n" for i in range(15)))
    _squad(root / "tydiqa" / "en" / "train.json", QA_ITEMS * 3)
    _squad(root / "tydiqa" / "en" / "dev.json", QA_ITEMS * 10)
    _squad(root / "tydiqa" / "fi" / "dev.json", QA_ITEMS * 10)
    # 80 questions on 40 passages: the hold-out cuts by passage
    _squad(root / "tydiqa" / "ko" / "train.json", [(q, f"{c} Item {i}.", a) for i in range(40) for q, c, a in QA_ITEMS])
    _squad(root / "tydiqa" / "ko" / "dev.json", [(q, c, "") for q, c, _ in QA_ITEMS])  # unlabelled placeholders
    return root


# --- the interface ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,metrics,max_len", [
    ("ner", ("f1",), 128), ("pos", ("f1", "accuracy"), 128),
    ("tydiqa", ("f1", "exact_match"), 384), ("xnli", ("accuracy",), 128),
])
def test_task_attributes(name, metrics, max_len):
    task = get_task(name)
    assert (task.name, task.metrics, task.default_max_seq_length) == (name, metrics, max_len)
    assert task.default_max_seq_length == PAPER_SETTINGS[name].max_seq_length   # read from there
    assert name in TASKS


def test_task_labels_and_unknown_task():
    assert TASKS == ("ner", "pos", "tydiqa", "xnli")
    assert [get_task(name).name for name in TASKS] == list(TASKS)   # every task config names exists
    assert get_task("ner").labels == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    assert len(get_task("pos").labels) == 17
    assert get_task("xnli").labels == ["entailment", "neutral", "contradiction"]
    assert get_task("tydiqa").labels is None
    with pytest.raises(ValueError, match="unknown task 'qa'"):
        get_task("qa")


# --- which split plays which role ----------------------------------------------------------------------

def test_ner_dev_is_split_into_selection_and_evaluation(data_dir):
    task = get_task("ner")
    assert task.languages(data_dir) == ["en", "hi"]
    split, pool = task.shot_pool("hi", data_dir)
    assert (split, len(pool)) == ("train", 12)
    select, evaluation = task.target_dev("hi", data_dir), task.eval_set("hi", data_dir)
    assert select and evaluation
    assert {ex.uid for ex in select}.isdisjoint(ex.uid for ex in evaluation)
    assert sorted(ex.uid for ex in select + evaluation) == sorted(ex.uid for ex in task.read_split("hi", "dev", data_dir))
    assert all(in_selection_part(ex.uid) for ex in select) and not any(in_selection_part(ex.uid) for ex in evaluation)
    assert task.source_dev("en", data_dir) == task.target_dev("en", data_dir)
    assert len(task.source_train("en", data_dir)) == 30


def test_pos_uses_test_and_draws_hindi_shots_from_dev(data_dir):
    task = get_task("pos")
    assert task.languages(data_dir) == ["en", "hi", "th"]
    split, pool = task.shot_pool("hi", data_dir)
    assert split == "dev" and len(pool) == 10
    shots = {pool[i].uid for i in task.sample_shots(pool, 3, seed=1)}
    select = task.target_dev("hi", data_dir, exclude=shots)
    assert len(select) == 7 and shots.isdisjoint(ex.uid for ex in select)
    evaluation = task.eval_set("hi", data_dir, exclude=shots)
    assert [ex.uid for ex in evaluation] == [f"udpos/hi/test/{i}" for i in range(6)]
    assert len(task.eval_set("th", data_dir)) == 3
    with pytest.raises(DataFormatError, match=r"neither a train nor a dev split \(splits present: test\)"):
        task.shot_pool("th", data_dir)
    with pytest.raises(DataFormatError, match=r"no data for language 'yo'.*languages with data: en, hi, th"):
        task.shot_pool("yo", data_dir)


def test_xnli_shots_come_from_dev_and_eval_from_test(data_dir):
    task = get_task("xnli")
    split, pool = task.shot_pool("en", data_dir)  # even English, which has train
    assert split == "dev"
    picked = task.sample_shots(pool, 2, seed=4)
    assert Counter(pool[i].label for i in picked) == {"entailment": 2, "neutral": 2, "contradiction": 2}
    exclude = {pool[i].uid for i in picked}
    assert len(task.target_dev("hi", data_dir, exclude={u.replace("/en/", "/hi/") for u in exclude})) == 6
    assert [ex.uid for ex in task.eval_set("hi", data_dir)][:2] == ["xnli/hi/test/0", "xnli/hi/test/1"]
    assert len(task.source_train("en", data_dir)) == 15 and len(task.source_dev("en", data_dir)) == 12


def test_tydiqa_shots_from_dev_never_reach_evaluation(data_dir):
    task = get_task("tydiqa")
    split, pool = task.shot_pool("fi", data_dir)
    assert split == "dev" and len(pool) == 20
    evaluation_all = task.eval_set("fi", data_dir)
    shots = {ex.uid for ex in evaluation_all[:3]} | {ex.uid for ex in task.target_dev("fi", data_dir)[:2]}
    evaluation = task.eval_set("fi", data_dir, exclude=shots)
    assert len(evaluation) == len(evaluation_all) - 3 and shots.isdisjoint(ex.uid for ex in evaluation)
    assert task.shot_pool("ko", data_dir)[0] == "train"


def test_tydiqa_unlabelled_dev_uses_a_hold_out_of_train(data_dir):
    task = get_task("tydiqa")
    train = {ex.uid for ex in task.read_split("ko", "train", data_dir)}
    for role in (task.eval_set, task.target_dev):
        assert {ex.uid for ex in role("ko", data_dir)} <= train  # never the placeholder dev questions


def test_exclusion_that_empties_a_set_is_an_error(data_dir):
    task = get_task("pos")
    everything = {ex.uid for ex in task.read_split("hi", "test", data_dir)}
    with pytest.raises(DataFormatError, match="empty after removing"):
        task.eval_set("hi", data_dir, exclude=everything)


# --- tagging: encoding ------------------------------------------------------------------------------

SENTENCE = TaggingExample("s/0", "en", ("Paris", "is", "beautiful", ";", "Smithsonian", "dog"),
                          ("PROPN", "AUX", "ADJ", "PUNCT", "PROPN", "NOUN"))
LONG = TaggingExample("s/1", "en", tuple(("John Smith works at Google in London . " * 4).split()),
                      tuple(["PROPN", "PROPN", "VERB", "ADP", "PROPN", "ADP", "PROPN", "PUNCT"] * 4))


def _check_first_subword_labels(task, encoded, examples, tokenizer):
    for f, feature in enumerate(encoded.features):
        meta, example = encoded.meta[f], examples[encoded.example_index[f]]
        labels = feature["labels"].tolist()
        labelled = [i for i, label in enumerate(labels) if label != -100]
        assert labelled == meta["first_positions"]
        tokens = tokenizer.convert_ids_to_tokens(feature["input_ids"].tolist())
        assert all(tokens[i].startswith("▁") or tokens[i] == tokenizer.unk_token for i in labelled)
        words = range(meta["word_offset"], meta["word_offset"] + len(labelled))
        assert [task.labels[labels[i]] for i in labelled] == [example.tags[w] for w in words]


def test_tagging_labels_only_first_subwords(tokenizer):
    task = get_task("pos")
    encoded = task.encode([SENTENCE], tokenizer, 128)
    assert len(encoded) == 1 and encoded.example_index == [0]
    _check_first_subword_labels(task, encoded, [SENTENCE], tokenizer)
    labels = encoded[0]["labels"].tolist()
    assert sum(label != -100 for label in labels) == len(SENTENCE.tokens)
    assert len(labels) > len(SENTENCE.tokens) + 2  # several words have more than one sub-word


def test_tagging_splits_long_sentences_into_chunks(tokenizer):
    task = get_task("pos")
    encoded = task.encode([SENTENCE, LONG], tokenizer, 16)
    assert max(encoded.lengths()) <= 16
    assert encoded.example_index.count(1) > 1
    _check_first_subword_labels(task, encoded, [SENTENCE, LONG], tokenizer)
    for e, example in enumerate([SENTENCE, LONG]):
        covered = [encoded.meta[f]["word_offset"] + w for f in range(len(encoded)) if encoded.example_index[f] == e
                   for w in range(len(encoded.meta[f]["first_positions"]))]
        assert covered == list(range(len(example.tokens)))  # every word exactly once, in order


def test_tagging_truncation_keeps_the_first_chunk(tokenizer):
    task = get_task("pos")
    encoded = task.encode([LONG], tokenizer, 16, long_sentences="truncate")
    assert len(encoded) == 1 and encoded.lengths()[0] <= 16
    assert encoded.meta[0]["word_offset"] == 0 and 0 < len(encoded.meta[0]["first_positions"]) < len(LONG.tokens)
    with pytest.raises(ValueError, match="long_sentences"):
        task.encode([LONG], tokenizer, 16, long_sentences="chunk")


def test_tagging_word_without_subwords_becomes_unk(tokenizer):
    task = get_task("ner")
    example = TaggingExample("s/2", "en", ("Paris", "\u200b", "is"), ("B-LOC", "O", "O"))
    encoded = task.encode([example], tokenizer, 128)
    tokens = tokenizer.convert_ids_to_tokens(encoded[0]["input_ids"].tolist())
    assert len(encoded.meta[0]["first_positions"]) == 3
    assert tokens[encoded.meta[0]["first_positions"][1]] == tokenizer.unk_token


def test_collate_pads_per_key(tokenizer):
    encoded = get_task("pos").encode([SENTENCE, LONG], tokenizer, 128)
    batch = encoded.collate([encoded[0], encoded[1]])
    short, long_ = encoded.lengths()
    assert batch["input_ids"].shape == (2, long_) and short < long_
    assert (batch["input_ids"][0, short:] == tokenizer.pad_token_id).all()
    assert (batch["attention_mask"][0, short:] == 0).all() and (batch["labels"][0, short:] == -100).all()
    assert set(batch) == {"input_ids", "attention_mask", "labels"}


# --- tagging: evaluation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("long_sentences", ["split", "truncate"])
def test_pos_evaluation_maps_predictions_back_to_words(tokenizer, long_sentences):
    task = get_task("pos")
    examples = [SENTENCE, LONG, SENTENCE]
    oracle = OracleModel(len(task.labels))
    scores = task.evaluate(oracle, examples, tokenizer, max_seq_length=16, batch_size=2, device="cpu",
                           progress=False, long_sentences=long_sentences)
    assert scores == {"f1": pytest.approx(100.0), "accuracy": pytest.approx(100.0)}
    assert oracle.seen and all(mode == (False, False) for mode in oracle.seen)  # eval mode, no grad
    assert oracle.training  # the mode is restored

    gold, pred = task.predict_words(ConstantModel(len(task.labels), task.labels.index("PROPN")), examples,
                                    tokenizer, max_seq_length=16, batch_size=3, device="cpu", progress=False,
                                    long_sentences=long_sentences)
    n_words = [len(g) for g in gold]
    if long_sentences == "split":
        assert n_words == [6, 32, 6]
    else:  # only the words of the kept (first) chunk of each sentence
        kept = task.encode(examples, tokenizer, 16, long_sentences="truncate")
        assert n_words == [len(meta["first_positions"]) for meta in kept.meta]
        assert 0 < n_words[1] < 32
    propn = sum(tag == "PROPN" for g in gold for tag in g)
    constant = task.score(gold, pred)
    assert constant["accuracy"] == pytest.approx(100 * propn / sum(n_words))
    assert all(p == ["PROPN"] * len(g) for g, p in zip(gold, pred))


def test_ner_evaluation_with_oracle_and_constant_models(tokenizer):
    task = get_task("ner")
    examples = [TaggingExample("n/0", "en", ("John", "Smith", "works", "in", "London"),
                               ("B-PER", "I-PER", "O", "O", "B-LOC"))]
    assert task.evaluate(OracleModel(7), examples, tokenizer, max_seq_length=128, batch_size=4, device="cpu",
                         progress=False) == {"f1": pytest.approx(100.0)}
    assert task.evaluate(ConstantModel(7, 0), examples, tokenizer, max_seq_length=128, batch_size=4, device="cpu",
                         progress=False) == {"f1": 0.0}


# --- XNLI -------------------------------------------------------------------------------------------

NLI = [NLIExample(f"x/{i}", "en", p, h, label) for i, (p, h, label) in enumerate([
    ("Paris is the capital of France .", "Paris is in France .", "entailment"),
    ("The quick brown fox jumps .", "The dog is quick .", "neutral"),
    ("John works at Google .", "John works in London .", "neutral"),
    ("The dog is lazy .", "The dog jumps over the fox .", "contradiction"),
])]


def test_xnli_encode_and_evaluate(tokenizer):
    task = get_task("xnli")
    encoded = task.encode(NLI, tokenizer, 12)
    assert max(encoded.lengths()) <= 12 and encoded.example_index == [0, 1, 2, 3]
    assert [int(f["labels"]) for f in encoded.features] == [0, 1, 1, 2]
    assert encoded[0]["input_ids"][0] == tokenizer.cls_token_id
    assert task.evaluate(OracleModel(3), NLI, tokenizer, max_seq_length=128, batch_size=3, device="cpu",
                         progress=False) == {"accuracy": pytest.approx(100.0)}
    assert task.evaluate(ConstantModel(3, 1), NLI, tokenizer, max_seq_length=128, batch_size=3, device="cpu",
                         progress=False) == {"accuracy": pytest.approx(50.0)}


# --- TyDiQA -------------------------------------------------------------------------------------------

def _qa(i, question, context, answer):
    return QAExample(f"q/{i}", "en", str(i), question, context, (Answer(answer, context.index(answer)),))


LONG_CONTEXT = " ".join(CORPUS[:3] * 3) + " The answer is Smithsonian ."
QA = [_qa(0, *QA_ITEMS[0]), _qa(1, *QA_ITEMS[1]), _qa(2, "Where does John work ?", LONG_CONTEXT, "Smithsonian")]


def test_tydiqa_features_point_at_the_answer(tokenizer):
    task = get_task("tydiqa")
    encoded = task.encode(QA, tokenizer, 48, doc_stride=16)
    assert max(encoded.lengths()) <= 48
    assert encoded.example_index.count(2) > 1 and encoded.example_index[:2] == [0, 1]
    hits = Counter()
    for f, feature in enumerate(encoded.features):
        example = QA[encoded.example_index[f]]
        start, end = int(feature["start_positions"]), int(feature["end_positions"])
        offsets = encoded.meta[f]["offsets"]
        if start == 0:
            assert end == 0  # answer not in this window
            continue
        hits[encoded.example_index[f]] += 1
        assert example.context[offsets[start][0]:offsets[end][1]].strip() == example.answers[0].text
    assert set(hits) == {0, 1, 2}
    # consecutive windows of the long context overlap by doc_stride tokens
    windows = [encoded.meta[f]["offsets"] for f in range(len(encoded)) if encoded.example_index[f] == 2]
    first, second = ([o for o in w if o is not None] for w in windows[:2])
    assert first[-16:] == second[:16]


def test_tydiqa_answer_inside_the_last_context_token(tokenizer):
    # run_qa.py's start scan would run past the context into the special tokens here
    context = "Paris is the capital of France"
    assert tokenizer.tokenize(context)[-1] == "▁France"
    example = QAExample("q/7", "en", "7", "Where ?", context, (Answer("rance", context.index("rance")),))
    encoded = get_task("tydiqa").encode([example], tokenizer, 48, doc_stride=8)
    start, end = int(encoded[0]["start_positions"]), int(encoded[0]["end_positions"])
    offsets = encoded.meta[0]["offsets"]
    assert start == end and offsets[start] is not None
    assert context[offsets[start][0]:offsets[end][1]].strip() == "France"


def test_tydiqa_evaluate_picks_the_best_span_across_features(tokenizer):
    task = get_task("tydiqa")
    oracle = OracleModel()
    scores = task.evaluate(oracle, QA, tokenizer, max_seq_length=48, batch_size=2, device="cpu", doc_stride=16,
                           progress=False)
    assert scores == {"exact_match": pytest.approx(100.0), "f1": pytest.approx(100.0)}
    assert all(mode == (False, False) for mode in oracle.seen)


def test_tydiqa_rejects_bad_settings_and_unlabelled_examples(tokenizer):
    task = get_task("tydiqa")
    with pytest.raises(ValueError, match="doc_stride=40 must be smaller"):
        task.encode(QA, tokenizer, 48, doc_stride=40)
    unlabelled = QAExample("q/9", "en", "9", "Where ?", QA_CONTEXT, ())
    with pytest.raises(DataFormatError, match="no gold answer"):
        task.evaluate(OracleModel(), [unlabelled], tokenizer, max_seq_length=48, batch_size=2, device="cpu")
    assert task.predict(OracleModel(), [unlabelled], tokenizer, max_seq_length=48, batch_size=2, device="cpu",
                        doc_stride=16, progress=False).keys() == {"q/9"}


def test_tydiqa_shots_counted_in_features(tokenizer):
    task = get_task("tydiqa")
    pool = QA + [_qa(3 + i, *QA_ITEMS[i % 2]) for i in range(6)]
    n_features = len(task.encode(pool, tokenizer, 48, doc_stride=16))
    assert n_features > len(pool)
    for k in (1, 3, 5):
        picked = task.sample_shots(pool, k, seed=1, unit="features", tokenizer=tokenizer, max_seq_length=48,
                                   doc_stride=16)
        assert 1 <= len(picked) <= k and picked == sorted(set(picked))
        assert picked == task.sample_shots(pool, k, seed=1, unit="features", tokenizer=tokenizer,
                                           max_seq_length=48, doc_stride=16)
    every = task.sample_shots(pool, n_features, seed=1, unit="features", tokenizer=tokenizer, max_seq_length=48,
                              doc_stride=16)
    assert every == list(range(len(pool)))
    assert len(task.sample_shots(pool, 4, seed=1)) == 4  # default: examples
    with pytest.raises(ValueError, match="needs the tokenizer"):
        task.sample_shots(pool, 2, seed=1, unit="features")


# --- real models ---------------------------------------------------------------------------------

TASK_EXAMPLES = {"ner": [TaggingExample("n/0", "en", ("John", "works", "in", "London"), ("B-PER", "O", "O", "B-LOC"))],
                 "pos": [SENTENCE, LONG], "xnli": NLI, "tydiqa": QA}


@pytest.mark.parametrize("name,head", [
    ("ner", "XLMRobertaForTokenClassification"), ("pos", "XLMRobertaForTokenClassification"),
    ("xnli", "XLMRobertaForSequenceClassification"), ("tydiqa", "XLMRobertaForQuestionAnswering"),
])
def test_build_model_train_step_and_evaluate(name, head, tiny_model_dir, tokenizer):
    task = get_task(name)
    model = task.build_model(tiny_model_dir)
    assert type(model).__name__ == head
    if task.labels is not None:
        assert model.config.num_labels == len(task.labels)
        assert model.config.id2label == dict(enumerate(task.labels))
    model.train()  # from_pretrained returns eval mode
    examples = TASK_EXAMPLES[name]
    max_len = 48 if name == "tydiqa" else 32
    encoded = task.encode(examples, tokenizer, max_len, doc_stride=16)
    assert isinstance(encoded, EncodedSet) and len(encoded.example_index) == len(encoded)
    batch = encoded.collate([encoded[i] for i in range(min(3, len(encoded)))])
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert model.base_model.embeddings.word_embeddings.weight.grad is not None
    kwargs = {"doc_stride": 16} if name == "tydiqa" else {}
    scores = task.evaluate(model, examples, tokenizer, max_seq_length=max_len, batch_size=2, device="cpu",
                           progress=False, **kwargs)
    assert set(scores) == set(task.metrics) and all(0.0 <= v <= 100.0 for v in scores.values())
    assert model.training


# --- the real data ---------------------------------------------------------------------------------

@pytest.mark.realdata
def test_real_ner_dev_files_split_in_two_halves(xtreme_dir):
    task = get_task("ner")
    assert task.languages(xtreme_dir) == ["ar", "en", "hi", "mr", "sw", "ta", "te", "ur", "zh"]
    for lang in task.languages(xtreme_dir):
        dev = task.read_split(lang, "dev", xtreme_dir)
        select, evaluation = task.target_dev(lang, xtreme_dir), task.eval_set(lang, xtreme_dir)
        assert len(select) + len(evaluation) == len(dev)
        assert {ex.uid for ex in select}.isdisjoint(ex.uid for ex in evaluation)
        assert 0.4 < len(select) / len(dev) < 0.6, lang
        assert task.shot_pool(lang, xtreme_dir)[0] == "train"


@pytest.mark.realdata
def test_real_pos_roles(xtreme_dir):
    task = get_task("pos")
    split, pool = task.shot_pool("hi", xtreme_dir)
    assert (split, len(pool)) == ("dev", 1659)
    shots = {pool[i].uid for i in task.sample_shots(pool, 10, seed=1)}
    assert len(task.target_dev("hi", xtreme_dir, exclude=shots)) == 1649
    assert len(task.eval_set("hi", xtreme_dir, exclude=shots)) == 2684
    for lang in ("th", "yo"):
        assert task.eval_set(lang, xtreme_dir)
        with pytest.raises(DataFormatError, match="neither a train nor a dev split"):
            task.shot_pool(lang, xtreme_dir)


@pytest.mark.realdata
def test_real_xnli_roles(xtreme_dir):
    task = get_task("xnli")
    assert len(task.source_train("en", xtreme_dir)) == 8999
    for lang in ("ar", "hi", "sw", "ur", "zh"):
        split, pool = task.shot_pool(lang, xtreme_dir)
        picked = task.sample_shots(pool, 10, seed=5)
        assert split == "dev" and Counter(pool[i].label for i in picked) == {l: 10 for l in task.labels}
        assert len(task.target_dev(lang, xtreme_dir, exclude={pool[i].uid for i in picked})) == 2490 - 30
        assert len(task.eval_set(lang, xtreme_dir)) == 5010


@pytest.mark.realdata
def test_real_tydiqa_roles(xtreme_dir):
    task = get_task("tydiqa")
    assert len(task.read_split("en", "train", xtreme_dir)) == 3696
    for lang in task.languages(xtreme_dir):
        dev_labelled = all(ex.has_gold for ex in task.read_split(lang, "dev", xtreme_dir))
        has_train = task.has_split(lang, "train", xtreme_dir)
        if has_train:
            assert task.shot_pool(lang, xtreme_dir)[0] == "train"
        if dev_labelled or has_train:  # an unlabelled dev with a labelled train: the train.json hold-out
            select, evaluation = task.target_dev(lang, xtreme_dir), task.eval_set(lang, xtreme_dir)
            assert {ex.uid for ex in select}.isdisjoint(ex.uid for ex in evaluation)
        else:  # unlabelled placeholders: every role that needs gold answers says so
            with pytest.raises(DataFormatError, match="no gold answer"):
                task.eval_set(lang, xtreme_dir)
            if not has_train:
                with pytest.raises(DataFormatError, match="no gold answer"):
                    task.shot_pool(lang, xtreme_dir)


@pytest.mark.realdata
def test_real_long_sentences_are_chunked_without_losing_words(xtreme_dir, tokenizer):
    task = get_task("ner")
    examples = task.read_split("zh", "dev", xtreme_dir)  # sentences up to 732 characters
    examples = sorted(examples, key=lambda ex: -len(ex.tokens))[:200]
    encoded = task.encode(examples, tokenizer, 128)
    assert max(encoded.lengths()) <= 128 and len(encoded) > len(examples)
    covered = Counter()
    for f in range(len(encoded)):
        covered[encoded.example_index[f]] += len(encoded.meta[f]["first_positions"])
    assert [covered[e] for e in range(len(examples))] == [len(ex.tokens) for ex in examples]
