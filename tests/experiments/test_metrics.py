"""Metrics against hand-computed cases: seqeval on BIO and on raw UPOS tags, SQuAD v1.1, accuracy."""
import pytest

from transfer import metrics


# --- NER: seqeval default (conlleval-style) mode -----------------------------------------

def test_ner_f1_counts_whole_entities():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"]]
    # 1 of 2 predicted entities correct, 1 of 2 gold found: P = R = F1 = 0.5
    assert metrics.ner_scores(gold, pred) == {"f1": pytest.approx(50.0)}


def test_ner_partial_entity_is_wrong():
    gold = [["B-ORG", "I-ORG", "I-ORG"]]
    pred = [["B-ORG", "I-ORG", "O"]]
    assert metrics.ner_scores(gold, pred)["f1"] == pytest.approx(0.0)


def test_ner_i_without_b_starts_an_entity():
    # the default (non-strict) mode reads a leading I- as the start of an entity
    assert metrics.ner_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])["f1"] == pytest.approx(100.0)


def test_ner_entities_do_not_cross_sentences():
    gold = [["O", "B-LOC"], ["I-LOC", "O"]]
    # if sentences were concatenated the gold would be one LOC(1..2); it is two entities
    pred = [["O", "B-LOC"], ["B-LOC", "O"]]
    assert metrics.ner_scores(gold, pred)["f1"] == pytest.approx(100.0)


# --- POS: seqeval on raw UPOS tags, and token accuracy ---------------------------------------

def test_pos_equal_adjacent_tags_merge_into_one_chunk():
    gold = [["NOUN", "NOUN", "VERB"]]   # chunks: OUN(0-1), ERB(2)
    pred = [["NOUN", "VERB", "VERB"]]   # chunks: OUN(0), ERB(1-2)
    scores = metrics.pos_scores(gold, pred)
    assert scores["f1"] == pytest.approx(0.0)  # no chunk matches although 2 of 3 tokens are right
    assert scores["accuracy"] == pytest.approx(200 / 3)


def test_pos_different_types_with_same_first_letter_do_not_merge():
    gold = [["NOUN", "NUM", "ADP", "ADV"]]  # types OUN, UM, DP, DV: four chunks
    pred = [["NOUN", "NUM", "ADP", "AUX"]]  # last chunk type UX is wrong
    # 3 of 4 chunks on each side match: F1 = 0.75
    assert metrics.pos_scores(gold, pred) == {"f1": pytest.approx(75.0), "accuracy": pytest.approx(75.0)}


def test_pos_cconj_before_sconj_is_swallowed():
    # CCONJ and SCONJ share the chunk type "CONJ"; the S prefix restarts the chunk without
    # closing the CCONJ one, so the gold has a single chunk CONJ(1)
    gold = [["CCONJ", "SCONJ"]]
    pred = [["NOUN", "SCONJ"]]      # chunks OUN(0), CONJ(1)
    scores = metrics.pos_scores(gold, pred)
    # P = 1/2, R = 1/1, F1 = 2/3; accuracy 1/2
    assert scores["f1"] == pytest.approx(200 / 3)
    assert scores["accuracy"] == pytest.approx(50.0)


def test_pos_s_initial_tags_are_single_token_chunks():
    gold = [["SYM", "SYM", "NOUN"]]   # three chunks YM(0), YM(1), OUN(2)
    pred = [["SYM", "NOUN", "NOUN"]]  # two chunks YM(0), OUN(1-2)
    # 1 match: P = 1/2, R = 1/3, F1 = 2/5
    assert metrics.pos_scores(gold, pred)["f1"] == pytest.approx(40.0)


def test_pos_x_at_sentence_end_is_never_closed():
    # "X" has an empty type, read as "_", the same as the sentence-end sentinel "O": its
    # chunk never ends, so seqeval drops it; the gold has the single chunk OUN(0)
    gold = [["NOUN", "X"]]
    pred = [["NOUN", "VERB"]]         # OUN(0), ERB(1)
    scores = metrics.pos_scores(gold, pred)
    assert scores["f1"] == pytest.approx(200 / 3)   # P = 1/2, R = 1/1
    assert scores["accuracy"] == pytest.approx(50.0)


def test_token_accuracy_over_all_sentences():
    gold = [["NOUN", "VERB"], ["DET", "NOUN", "PUNCT"]]
    pred = [["NOUN", "NOUN"], ["DET", "NOUN", "PUNCT"]]
    assert metrics.token_accuracy(gold, pred) == pytest.approx(80.0)


@pytest.mark.parametrize("gold,pred", [
    ([["NOUN"]], [["NOUN"], ["VERB"]]),
    ([["NOUN", "VERB"]], [["NOUN"]]),
    ([], []),
])
def test_tagging_metrics_reject_misaligned_input(gold, pred):
    with pytest.raises(ValueError):
        metrics.pos_scores(gold, pred)


# --- SQuAD v1.1 --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,normalized", [
    ("The  Eiffel-Tower!", "eiffeltower"),
    ("An apple a day", "apple day"),
    ("theater anthem", "theater anthem"),      # articles only as whole words
    ("  Paris,\tFrance. ", "paris france"),
    ("¿Qué?", "¿qué"),                          # only ASCII punctuation is removed, as in the official script
])
def test_normalize_answer_matches_official_rules(text, normalized):
    assert metrics.normalize_answer(text) == normalized


def test_squad_f1_token_overlap():
    # pred {cat, sat} vs gold {cat, sat, on, mat}: P = 1, R = 1/2, F1 = 2/3
    assert metrics.squad_f1("the cat sat", "cat sat on the mat") == pytest.approx(2 / 3)
    assert metrics.squad_f1("dog", "cat") == 0.0
    assert metrics.squad_f1("", "cat") == 0.0


def test_squad_f1_counts_repeated_tokens_once_per_match():
    # pred [a_, b, b] vs gold [b]: common = 1, P = 1/2 (after dropping the article), R = 1
    assert metrics.squad_f1("b b", "b") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_squad_scores_take_max_over_gold_answers_and_average():
    predictions = {"q1": "Paris.", "q2": "in the year 1920", "q3": "nothing"}
    references = {"q1": ["paris"], "q2": ["1920s", "the year 1920"], "q3": ["something"]}
    scores = metrics.squad_scores(predictions, references)
    # q1: EM 1, F1 1; q2: best gold "the year 1920" -> EM 0 ("in year 1920" vs "year 1920"),
    #     F1: pred {in, year, 1920} vs gold {year, 1920}: P 2/3, R 1 -> 0.8; q3: 0
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)


def test_squad_scores_reject_missing_predictions():
    with pytest.raises(ValueError, match="no prediction"):
        metrics.squad_scores({}, {"q1": ["x"]})


# --- accuracy ----------------------------------------------------------------------------------

def test_accuracy():
    assert metrics.accuracy(["entailment", "neutral", "contradiction", "neutral"],
                            ["entailment", "neutral", "neutral", "neutral"]) == pytest.approx(75.0)
    with pytest.raises(ValueError):
        metrics.accuracy(["a"], [])
