"""Readers of the three file formats, the data-dir layout, and (realdata) every real file."""
import json
from collections import Counter

import pytest

from transfer.data import (
    DataFormatError, XNLI_LABELS, available_languages, read_squad_json, read_tagging_tsv, read_xnli_tsv,
    split_file,
)
from transfer.tasks.ner import PANX_LABELS
from transfer.tasks.pos import UPOS_LABELS


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


# --- token<TAB>tag ---------------------------------------------------------------------------------

def test_tagging_reader_splits_sentences_on_blank_lines(tmp_path):
    path = _write(tmp_path / "train.tsv",
                  "John\tB-PER\r\nSmith\tI-PER\r\n\r\n\n  \nParis\tB-LOC\nis\tO\nnice\tO")  # CRLF, runs of blanks, no final newline
    examples = read_tagging_tsv(path, task_dir="panx", lang="en", split="train", labels=PANX_LABELS)
    assert [ex.tokens for ex in examples] == [("John", "Smith"), ("Paris", "is", "nice")]
    assert [ex.tags for ex in examples] == [("B-PER", "I-PER"), ("B-LOC", "O", "O")]
    assert [ex.uid for ex in examples] == ["panx/en/train/0", "panx/en/train/1"]
    assert {ex.lang for ex in examples} == {"en"}


@pytest.mark.parametrize("text,line,match", [
    ("a\tO\nb O\n", 2, "no tab"),
    ("a\tO\n\nb\tO\textra\n", 3, "2 tabs"),
    ("a\tO\nb\tB-MISC\n", 2, r"unknown tag 'B-MISC' \(allowed: B-LOC, B-ORG"),
    ("a\tO\n\tO\n", 2, "empty token"),
    ("a\t\n", 1, "empty tag"),
])
def test_tagging_reader_names_file_and_line(tmp_path, text, line, match):
    path = _write(tmp_path / "dev.tsv", text)
    with pytest.raises(DataFormatError, match=match) as err:
        read_tagging_tsv(path, task_dir="panx", lang="hi", split="dev", labels=PANX_LABELS)
    assert f"{path}:{line}:" in str(err.value)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_tagging_reader_rejects_files_without_sentences(tmp_path, text):
    path = _write(tmp_path / "test.tsv", text)
    with pytest.raises(DataFormatError, match="no sentences"):
        read_tagging_tsv(path, task_dir="udpos", lang="yo", split="test", labels=UPOS_LABELS)


# --- premise<TAB>hypothesis<TAB>label ---------------------------------------------------------------

def test_xnli_reader(tmp_path):
    path = _write(tmp_path / "dev.tsv", "A man sleeps.\tA person rests.\tentailment\n"
                                        "\n"
                                        "It rains.\tIt is sunny.\tcontradictory\r\n")
    examples = read_xnli_tsv(path, lang="sw", split="dev")
    assert [(ex.premise, ex.hypothesis, ex.label) for ex in examples] == [
        ("A man sleeps.", "A person rests.", "entailment"), ("It rains.", "It is sunny.", "contradiction")]
    assert [ex.uid for ex in examples] == ["xnli/sw/dev/0", "xnli/sw/dev/1"]


@pytest.mark.parametrize("text,line,match", [
    ("p\th\tneutral\np\th\n", 2, "3 fields"),
    ("p\th\tmaybe\n", 1, r"unknown label 'maybe' \(allowed: entailment, neutral, contradiction\)"),
    ("p\th\tneutral\n\t h\tneutral\n", 2, "empty premise"),
    ("p\t\tneutral\n", 1, "empty hypothesis"),
])
def test_xnli_reader_names_file_and_line(tmp_path, text, line, match):
    path = _write(tmp_path / "test.tsv", text)
    with pytest.raises(DataFormatError, match=match) as err:
        read_xnli_tsv(path, lang="ur", split="test")
    assert f"{path}:{line}:" in str(err.value)


def test_xnli_reader_rejects_empty_file(tmp_path):
    with pytest.raises(DataFormatError, match="no examples"):
        read_xnli_tsv(_write(tmp_path / "dev.tsv", ""), lang="ur", split="dev")


# --- SQuAD v1.1 JSON ----------------------------------------------------------------------------------

CONTEXT = "Wolves live in packs. A pack has about eight wolves."


def _squad(qas, context=CONTEXT):
    return json.dumps({"version": "test", "data": [{"title": "Wolf", "paragraphs": [{"context": context, "qas": qas}]}]})


def test_squad_reader(tmp_path):
    qas = [
        {"id": "q-a", "question": "Where do wolves live?", "answers": [{"text": "in packs", "answer_start": 12}]},
        {"id": "q-b", "question": "How many?", "answers": [{"text": "about eight", "answer_start": 33},
                                                            {"text": "eight", "answer_start": 39}]},
        {"id": "q-a", "question": "Unlabelled?", "answers": [{"text": "", "answer_start": 0}]},
    ]
    examples = read_squad_json(_write(tmp_path / "dev.json", _squad(qas)), lang="en", split="dev")
    assert [ex.uid for ex in examples] == ["tydiqa/en/dev/0", "tydiqa/en/dev/1", "tydiqa/en/dev/2"]
    assert [ex.qid for ex in examples] == ["q-a", "q-b", "q-a"]  # ids may repeat; uids do not
    assert [a.text for a in examples[1].answers] == ["about eight", "eight"]
    assert examples[0].context == CONTEXT and examples[0].title == "Wolf"
    assert [ex.has_gold for ex in examples] == [True, True, False]


@pytest.mark.parametrize("qa,match", [
    ({"id": "q1", "question": "?"}, r"data\[0\]\.paragraphs\[0\]\.qas\[0\] has no 'answers'"),
    ({"id": "q1", "question": "?", "answers": {"text": "x"}}, r"qas\[0\]\.answers should be list"),
    ({"id": "q1", "answers": []}, "has no 'question'"),
    ({"id": "q1", "question": "?", "answers": [{"text": "packs"}]}, r"answers\[0\] \(question id 'q1'\) has no 'answer_start'"),
    ({"id": "q1", "question": "?", "answers": [{"text": "packs", "answer_start": 3}]}, "not found at answer_start=3"),
])
def test_squad_reader_names_the_bad_item(tmp_path, qa, match):
    path = _write(tmp_path / "train.json", _squad([qa]))
    with pytest.raises(DataFormatError, match=match) as err:
        read_squad_json(path, lang="ko", split="train")
    assert str(path) in str(err.value)


def test_squad_reader_reports_invalid_json_position(tmp_path):
    path = _write(tmp_path / "dev.json", '{"data": [\n  {"paragraphs": [}\n]}')
    with pytest.raises(DataFormatError, match=rf"{path}:2:\d+: invalid JSON"):
        read_squad_json(path, lang="fi", split="dev")


@pytest.mark.parametrize("text,match", [('{"version": 1}', "has no 'data'"), ('{"data": []}', "no questions")])
def test_squad_reader_rejects_files_without_questions(tmp_path, text, match):
    with pytest.raises(DataFormatError, match=match):
        read_squad_json(_write(tmp_path / "dev.json", text), lang="fi", split="dev")


# --- layout ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reader, name, text", [
    ("tagging", "train.tsv", b"Hello\tB-PER\nw\xe9rld\tO\n\n"),
    ("xnli", "dev.tsv", b"a b\tc d\tentailment\ne\tf \xff\tneutral\n"),
    ("squad", "dev.json", b'{"data": [\n  {"title": "\xc3("}]}'),
])
def test_invalid_utf8_names_file_line_and_column(tmp_path, reader, name, text):
    path = tmp_path / name
    path.write_bytes(text)
    read = {"tagging": lambda: read_tagging_tsv(path, task_dir="panx", lang="fi", split="train"),
            "xnli": lambda: read_xnli_tsv(path, lang="fi", split="dev"),
            "squad": lambda: read_squad_json(path, lang="fi", split="dev")}[reader]
    with pytest.raises(DataFormatError, match=rf"{path}:2: not valid UTF-8 \(byte 0x[0-9a-f]{{2}} at column \d+\)"):
        read()


def test_layout_lists_what_is_available(tmp_path):
    _write(tmp_path / "panx" / "hi" / "train.tsv", "a\tO\n")
    _write(tmp_path / "panx" / "hi" / "dev.tsv", "a\tO\n")
    _write(tmp_path / "panx" / "sw" / "dev.tsv", "")            # empty file: no data
    (tmp_path / "panx" / "ta").mkdir()                            # empty folder: no data
    assert available_languages(tmp_path, "panx", "tsv") == ["hi"]
    assert split_file(tmp_path, "panx", "hi", "dev", "tsv") == tmp_path / "panx" / "hi" / "dev.tsv"
    with pytest.raises(DataFormatError, match=r"language 'mr'.*\(languages with data: hi\)"):
        split_file(tmp_path, "panx", "mr", "dev", "tsv")
    with pytest.raises(DataFormatError, match=r"no 'test' split for panx/hi.*\(splits for hi: dev, train\)"):
        split_file(tmp_path, "panx", "hi", "test", "tsv")
    with pytest.raises(DataFormatError, match=r"has no 'udpos' folder \(found: panx\)"):
        split_file(tmp_path, "udpos", "hi", "dev", "tsv")
    with pytest.raises(DataFormatError, match="does not exist"):
        available_languages(tmp_path / "nowhere", "panx", "tsv")


# --- the real data (read-only, ../shared/data/xtreme) ------------------------------------------------------

def _real_files(root, task_dir, ext):
    return sorted((root / task_dir).glob(f"*/*.{ext}"))


def _blocks(path):
    """Independent count: sentences = runs of non-blank lines, tokens = non-blank lines."""
    sentences = tokens = 0
    in_sentence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            tokens += 1
            sentences += not in_sentence
            in_sentence = True
        else:
            in_sentence = False
    return sentences, tokens


@pytest.mark.realdata
@pytest.mark.parametrize("task_dir,labels", [("panx", PANX_LABELS), ("udpos", UPOS_LABELS)])
def test_real_tagging_files(xtreme_dir, task_dir, labels):
    files = _real_files(xtreme_dir, task_dir, "tsv")
    assert len(files) >= 9
    for path in files:
        lang, split = path.parent.name, path.stem
        examples = read_tagging_tsv(path, task_dir=task_dir, lang=lang, split=split, labels=labels)
        sentences, tokens = _blocks(path)
        assert len(examples) == sentences, path
        assert sum(len(ex.tokens) for ex in examples) == tokens, path
        assert len({ex.uid for ex in examples}) == len(examples)
        tags = Counter(t for ex in examples for t in ex.tags)
        if task_dir == "panx":
            assert all(any(t != "O" for t in ex.tags) for ex in examples), path  # WikiANN: an entity per sentence
            assert {"B-PER", "B-ORG", "B-LOC"} <= set(tags), path
        else:
            assert {"NOUN", "VERB", "PUNCT"} <= set(tags) or lang == "mr", path


@pytest.mark.realdata
@pytest.mark.parametrize("task_dir,lang,split,expected", [
    ("panx", "en", "train", 20000), ("panx", "en", "dev", 10000), ("panx", "hi", "train", 5000),
    ("udpos", "en", "train", 21253), ("udpos", "hi", "dev", 1659), ("udpos", "hi", "test", 2684),
])
def test_real_tagging_sizes(xtreme_dir, task_dir, lang, split, expected):
    labels = PANX_LABELS if task_dir == "panx" else UPOS_LABELS
    path = xtreme_dir / task_dir / lang / f"{split}.tsv"
    assert len(read_tagging_tsv(path, task_dir=task_dir, lang=lang, split=split, labels=labels)) == expected


@pytest.mark.realdata
def test_real_xnli_files(xtreme_dir):
    files = _real_files(xtreme_dir, "xnli", "tsv")
    assert len(files) == 13
    for path in files:
        lang, split = path.parent.name, path.stem
        examples = read_xnli_tsv(path, lang=lang, split=split)
        labels = Counter(ex.label for ex in examples)
        assert set(labels) == set(XNLI_LABELS), path
        if split == "train":
            assert (lang, len(examples)) == ("en", 8999)
            assert min(labels.values()) > 2900
        else:  # XNLI dev/test are balanced: 830 / 1670 per class
            per_class = {"dev": 830, "test": 1670}[split]
            assert labels == {label: per_class for label in XNLI_LABELS}, path


@pytest.mark.realdata
def test_real_squad_files(xtreme_dir):
    files = _real_files(xtreme_dir, "tydiqa", "json")
    assert len(files) == 11
    for path in files:
        lang, split = path.parent.name, path.stem
        examples = read_squad_json(path, lang=lang, split=split)
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert len(examples) == sum(len(p["qas"]) for a in raw["data"] for p in a["paragraphs"]), path
        labelled = sum(ex.has_gold for ex in examples)
        if split == "train":
            assert labelled == len(examples), path
            for ex in examples:
                assert ex.context[ex.answers[0].start:].startswith(ex.answers[0].text)
        else:  # a file is either labelled or an unlabelled copy with placeholder answers, never mixed
            assert labelled in (0, len(examples)), path
    en_train = read_squad_json(xtreme_dir / "tydiqa" / "en" / "train.json", lang="en", split="train")
    assert len(en_train) == 3696


# --- the hub loader, against in-memory stand-ins for the hub datasets ---------------------------------

def _fake_hub(monkeypatch, tables):
    """Make ``datasets.load_dataset(name, config, split=...)`` return in-memory tables."""
    import datasets

    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return tables[(name, config, split)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_loader_maps_xtreme_tables_to_examples(monkeypatch):
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    from transfer.data.hub import hub_has_split, load_hub_split

    panx = Dataset.from_dict(
        {"tokens": [["John", "lives", "in", "Paris"]], "ner_tags": [[1, 0, 0, 5]], "langs": [["hi"] * 4]},
        features=Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=PANX_LABELS)),
                           "langs": Sequence(Value("string"))}))
    udpos = Dataset.from_dict({"tokens": [["Dogs", "bark"]], "pos_tags": [[7, 15]]},
                              features=Features({"tokens": Sequence(Value("string")),
                                                 "pos_tags": Sequence(ClassLabel(names=UPOS_LABELS))}))
    xnli = Dataset.from_dict({"language": ["hi", "ur", "hi"], "sentence1": ["p1", "p2", "p3"],
                              "sentence2": ["h1", "h2", "h3"], "gold_label": ["neutral", "entailment", "contradiction"]})
    mnli = Dataset.from_dict({"premise": ["p", "q"], "hypothesis": ["h", "i"], "label": [2, -1]},
                             features=Features({"premise": Value("string"), "hypothesis": Value("string"),
                                                "label": ClassLabel(names=list(XNLI_LABELS))}))
    tydiqa = Dataset.from_dict({
        "id": ["korean-1", "swahili-2"], "title": ["t", "u"], "context": ["Seoul is big.", "Nairobi"],
        "question": ["Where?", "Wapi?"], "answers": [{"answer_start": [0], "text": ["Seoul"]},
                                                     {"answer_start": [0], "text": ["Nairobi"]}]})
    calls = _fake_hub(monkeypatch, {
        ("google/xtreme", "PAN-X.hi", "validation"): panx,
        ("google/xtreme", "udpos.English", "test"): udpos,
        ("google/xtreme", "XNLI", "test"): xnli,
        ("nyu-mll/multi_nli", None, "train"): mnli,
        ("google/xtreme", "tydiqa", "train"): tydiqa,
    })
    ner = load_hub_split("panx", "hi", "dev")
    assert [(ex.uid, ex.tokens, ex.tags) for ex in ner] == [
        ("hub:panx/hi/dev/0", ("John", "lives", "in", "Paris"), ("B-PER", "O", "O", "B-LOC"))]
    assert load_hub_split("udpos", "en", "test")[0].tags == ("NOUN", "VERB")
    assert [(ex.premise, ex.label) for ex in load_hub_split("xnli", "hi", "test")] == [("p1", "neutral"), ("p3", "contradiction")]
    assert [(ex.premise, ex.label) for ex in load_hub_split("xnli", "en", "train")] == [("p", "contradiction")]
    qa = load_hub_split("tydiqa", "ko", "train")
    assert [(ex.qid, ex.answers[0].text, ex.answers[0].start) for ex in qa] == [("korean-1", "Seoul", 0)]
    assert ("google/xtreme", "udpos.English", "test") in calls
    assert hub_has_split("panx", "sw", "test") and not hub_has_split("udpos", "yo", "train")
    assert not hub_has_split("xnli", "hi", "train") and not hub_has_split("tydiqa", "en", "test")
    with pytest.raises(DataFormatError, match="the hub has no 'train' split of udpos for language 'th'"):
        load_hub_split("udpos", "th", "train")
