"""ROUGE with rouge-score on Unicode text (tflm.metrics.rouge) and the lead / first-words baselines."""

import numpy as np
import pytest
from rouge_score import rouge_scorer, tokenizers

from tflm.metrics.rouge import (
    BASELINES,
    RougeTokenizer,
    baseline_summaries,
    corpus_rouge,
    first_words,
    lead_sentences,
    rouge_scorer_for_corpus,
    split_sentences,
)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")

# (hypothesis, reference): ASCII pairs with stemming, punctuation, numbers, repeats, underscores and an empty side.
ASCII_PAIRS = [
    ("The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log."),
    ("Libraries for running parsers, compiled with GCC 12.2", "library to run the parser (compiled by gcc-12)"),
    ("command-line tool for converting files to PostScript", "GNU a2ps - 'Anything to PostScript' converter"),
    ("the the the cat", "the cat sat on the mat with the hat"),
    ("Python 3 bindings for libfoo_bar (development files)", "libfoo_bar: Python3 bindings -- dev files"),
    ("", "monitor ABI of shared libraries"),
    ("Seven Kingdoms: real-time strategy game; it's fun!!", "Seven Kingdoms Ancient Adversaries: strategy game"),
    ("Generalizations and generalized relational operations", "general relations operated generally"),
]


def default_scorer():
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def corpus_mean(scores, rouge_type, measure="fmeasure"):
    return round(100 * float(np.mean([getattr(score[rouge_type], measure) for score in scores])), 2)


@pytest.mark.parametrize("text", [
    "The quick brown fox jumps over the lazy dog.",
    "Müller's café serves naïve crêpes, à la carte.",
    "El niño pequeño comió una manzana; die Straße ist schön; η γρήγορη καφέ αλεπού.",
])
def test_text_against_itself_scores_100(text):
    scores = corpus_rouge([text], [text])
    for rouge_type in ROUGE_TYPES:
        assert scores[rouge_type] == 100.0
        assert scores[f"{rouge_type}_ci"] == [100.0, 100.0]
        assert scores["precision"][rouge_type] == scores["recall"][rouge_type] == 100.0


@pytest.mark.parametrize("text", [text for pair in ASCII_PAIRS for text in pair] + [
    "snake_case_names and under__scores", "Version 3.5, e.g. v2.0.1-rc3!", "  tabs\tand\nnewlines  ", "",
    "ALL CAPS RUNNING JUMPED happily", "generously fly flies dying agreed",
])
def test_tokens_on_ascii_are_those_of_the_default_tokenizer(text):
    assert RougeTokenizer().tokenize(text) == tokenizers.DefaultTokenizer(use_stemmer=True).tokenize(text)
    assert RougeTokenizer(use_stemmer=False).tokenize(text) == tokenizers.DefaultTokenizer().tokenize(text)


@pytest.mark.parametrize("hypothesis, reference", ASCII_PAIRS)
def test_per_example_scores_equal_rouge_score(hypothesis, reference):
    assert rouge_scorer_for_corpus().score(reference, hypothesis) == default_scorer().score(reference, hypothesis)


def test_corpus_scores_equal_rouge_score_means():
    hypotheses, references = zip(*ASCII_PAIRS)
    expected = [default_scorer().score(reference, hypothesis) for hypothesis, reference in ASCII_PAIRS]
    scores = corpus_rouge(list(hypotheses), list(references))
    assert scores["examples"] == len(ASCII_PAIRS)
    for rouge_type in ROUGE_TYPES:
        assert scores[rouge_type] == corpus_mean(expected, rouge_type)
        assert scores["precision"][rouge_type] == corpus_mean(expected, rouge_type, "precision")
        assert scores["recall"][rouge_type] == corpus_mean(expected, rouge_type, "recall")
    assert 0 < scores["rouge2"] < scores["rouge1"] < 100


def test_non_ascii_text_is_scored_on_its_letters():
    default = tokenizers.DefaultTokenizer(use_stemmer=True)
    greek = "η γρήγορη καφέ αλεπού"
    assert default.tokenize(greek) == []  # the shortfall RougeTokenizer exists for
    assert RougeTokenizer().tokenize(greek) == ["η", "γρήγορη", "καφέ", "αλεπού"]
    assert default_scorer().score(greek, greek)["rouge1"].fmeasure == 0.0
    assert corpus_rouge([greek], [greek])["rouge1"] == 100.0

    assert default.tokenize("Müller's café") == ["m", "ller", "s", "caf"]
    assert RougeTokenizer().tokenize("Müller's café") == ["müller", "s", "café"]
    # Words differing only in a non-ASCII letter: the default tokenizer cannot tell them apart.
    hypothesis, reference = "Frau Müller", "Frau Möller"
    assert default.tokenize(hypothesis) == default.tokenize(reference) == ["frau", "m", "ller"]
    assert default_scorer().score(reference, hypothesis)["rouge1"].fmeasure == 1.0
    assert corpus_rouge([hypothesis], [reference])["rouge1"] == 50.0
    spanish = corpus_rouge(["el niño y la niña"], ["el nino y la nina"])
    assert spanish["rouge1"] == 60.0 and spanish["rouge2"] == 25.0
    # Stemming still applies to Latin-script words; Spanish, German and Greek words of a copy match.
    assert RougeTokenizer().tokenize("Cafés running") == ["café", "run"]
    mixed = "Die Straße, el corazón, τα βιβλία: Größe über alles"
    assert corpus_rouge([mixed], [mixed])["rougeL"] == 100.0
    assert default.tokenize("Τα βιβλία") == []


def test_combining_accents_are_part_of_the_word():
    composed, decomposed = "caf\u00e9 na\u00efve", "cafe\u0301 nai\u0308ve"
    assert RougeTokenizer().tokenize(decomposed) == RougeTokenizer().tokenize(composed) == ["café", "naïv"]
    assert RougeTokenizer().tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]


def test_empty_hypothesis_scores_zero():
    scores = corpus_rouge(["", "   "], ["monitor ABI of shared libraries", "a b c"])
    assert [scores[rouge_type] for rouge_type in ROUGE_TYPES] == [0.0, 0.0, 0.0]
    assert scores["rouge1_ci"] == [0.0, 0.0]


def test_confidence_interval_brackets_the_mean_and_follows_the_seed():
    hypotheses, references = (list(side) for side in zip(*ASCII_PAIRS))
    state = np.random.get_state()
    first = corpus_rouge(hypotheses, references, bootstrap_samples=200, seed=3)
    assert corpus_rouge(hypotheses, references, bootstrap_samples=200, seed=3) == first
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    for rouge_type in ROUGE_TYPES:
        low, high = first[f"{rouge_type}_ci"]
        assert low < first[rouge_type] < high
    narrow = corpus_rouge(hypotheses, references, bootstrap_samples=200, confidence=0.5, seed=3)
    assert first["rouge1_ci"][0] <= narrow["rouge1_ci"][0] <= narrow["rouge1_ci"][1] <= first["rouge1_ci"][1]
    assert narrow["rouge1"] == first["rouge1"]


def test_signature_names_the_settings():
    signature = corpus_rouge(["a b"], ["a b"], bootstrap_samples=100, confidence=0.9, seed=7)["signature"]
    assert signature.startswith("rouge-score 0.1.")
    for part in ("F1", "porter stemmer", "unicode tokenizer", "bootstrap 100 @90%", "seed 7"):
        assert part in signature


def test_mismatched_lengths_name_both_counts():
    with pytest.raises(ValueError, match="3 hypotheses for 2 references"):
        corpus_rouge(["a", "b", "c"], ["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        corpus_rouge([], [])


@pytest.mark.parametrize("text, sentences", [
    ("One sentence. Another one! A third? Yes.", ["One sentence.", "Another one!", "A third?", "Yes."]),
    ("Tools, e.g. grep, i.e. a search tool. Next.", ["Tools, e.g. grep, i.e. a search tool.", "Next."]),
    ("Fonts, icons, etc. Also themes. Ask Mr. Smith vs. Dr. Jones.",
     ["Fonts, icons, etc. Also themes.", "Ask Mr. Smith vs. Dr. Jones."]),
    ("Founded 400 A.D. By monks. Made in the U.S. Today.", ["Founded 400 A.D. By monks.", "Made in the U.S. Today."]),
    ("Version 3.5 of example.org is out. 2 bugs fixed.", ["Version 3.5 of example.org is out.", "2 bugs fixed."]),
    ("A compiler for C. It is fast.", ["A compiler for C.", "It is fast."]),
    ('He said "stop." "Why?" she asked. (Really.) Then... “OK.”',
     ['He said "stop."', '"Why?" she asked. (Really.)', "Then...", "“OK.”"]),
    ("The library. libfoo is used by bar. Done", ["The library. libfoo is used by bar.", "Done"]),
    ("No final period", ["No final period"]),
    ("   ", []),
])
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences


def test_lead_sentences():
    text = "GNU a2ps converts files, e.g. manual pages, etc. into PostScript. It prints them. Really."
    assert lead_sentences(text) == "GNU a2ps converts files, e.g. manual pages, etc. into PostScript."
    assert lead_sentences(text, n=2) == text[:-len(" Really.")]
    assert lead_sentences(text, n=10) == text
    assert lead_sentences("") == ""
    with pytest.raises(ValueError, match="n=0"):
        lead_sentences(text, n=0)


def test_first_words():
    assert first_words("one two\tthree\n four  five", n=3) == "one two three"
    assert first_words("short text") == "short text"
    assert first_words(" ".join(str(i) for i in range(20))) == "0 1 2 3 4 5 6 7 8 9"
    with pytest.raises(ValueError, match="n=0"):
        first_words("a b", n=0)


def test_baseline_summaries():
    sources = ["First sentence here. Second one there.", "One two three four five six seven eight nine ten eleven."]
    assert set(BASELINES) == {"lead-1", "first-10"}
    assert baseline_summaries(sources, "lead-1") == ["First sentence here.", sources[1]]
    assert baseline_summaries(sources, "first-10") == [sources[0], " ".join(sources[1].split()[:10])]
    assert baseline_summaries(sources, "lead-2") == sources
    assert baseline_summaries(sources, "first-2") == ["First sentence", "One two"]
    for name in ("lead-0", "first", "lead-k", "last-3", "Lead-1", "first-10 "):
        with pytest.raises(ValueError, match="'lead-K'.*'first-N'"):
            baseline_summaries(sources, name)
