"""Tagging data and metrics: CoNLL files and BIO/BIOES tags, the punctuation/case corpus, entity and token
scores, and the in-graph alignment of words with subword pieces. Every test writes its own small files."""

import gzip
import json
import os
import re

import pytest
import tensorflow as tf
from seqeval import metrics as seqeval_metrics
from seqeval.scheme import IOBES

from tflm.data.punctuation import (
    derive,
    derive_corpus,
    detokenize_wikitext,
    prepare_punctuation_corpus,
    punctuation_case_families,
    restore,
)
from tflm.data.tagging import (
    TaggingData,
    TaggingDataError,
    align_text,
    align_words,
    convert_scheme,
    label_set,
    pad_aligned,
    read_conll,
    write_conll,
)
from tflm.metrics import tagging_scores

from conftest import SHARED_DATA


def write(path, text):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(path)


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


# CoNLL files and tags


def test_conll_label_in_any_column_with_docstart_skipped(tmp_path):
    path = write(tmp_path / "train.conll", CONLL)
    data = read_conll(path, scheme="bio")
    assert data.words == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    assert data.labels == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]]
    assert data.line_numbers == [3, 8] and data.path == path and len(data) == 2
    assert read_conll(path, label_column=1).labels == [["NNP", "VBZ", "JJ", "NN"], ["NNP", "NNP"]]
    assert read_conll(path, label_column=-2, word_column=1).words[1] == ["NNP", "NNP"]
    assert read_conll(path, label_column=-2).labels[0] == ["B-NP", "B-VP", "B-NP", "I-NP"]
    assert label_set(data) == ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]
    assert data.head(1).words == [data.words[0]] and data.head(1).line_numbers == [3]


def test_conll_gzip_and_write_round_trip(tmp_path):
    path = write(tmp_path / "train.conll.gz", "a\tO\r\nb \t B-X\n\n\n\nc O\n")  # tabs, CRLF, runs of blank lines
    data = read_conll(path)
    assert data.words == [["a", "b"], ["c"]] and data.labels == [["O", "B-X"], ["O"]]
    for name in ("copy.conll", "copy.conll.gz"):
        write_conll(tmp_path / name, data)
        again = read_conll(str(tmp_path / name))
        assert (again.words, again.labels) == (data.words, data.labels)
    assert (tmp_path / "copy.conll").read_text() == "a O\nb B-X\n\nc O\n\n"
    with pytest.raises(ValueError, match=r"sentence 0, word 1: the word 'a b'"):
        write_conll(tmp_path / "bad.conll", TaggingData([["x", "a b"]], [["O", "O"]]))


@pytest.mark.parametrize("text, options, message", [
    ("EU B-ORG\nrejects\n", {}, r"bad\.conll:2: 1 column\(s\) \('rejects'\).*word_column=/label_column="),
    ("EU NNP B-ORG\n", {"label_column": 3}, r"bad\.conll:1: 3 column\(s\).*label column 3"),
    ("EU B-ORG\n\nPeter B_PER\n", {"scheme": "bio"}, r"bad\.conll:3: label 'B_PER' is not a BIO tag.*B-<type>"),
    ("EU S-ORG\n", {"scheme": "bio"}, r"bad\.conll:1: label 'S-ORG' is not a BIO tag.*scheme="),
    ("EU X-ORG\n", {"scheme": "bioes"}, r"bad\.conll:1: label 'X-ORG' is not a BIOES tag.*S-<type>"),
    ("EU B-\n", {"scheme": "bio"}, r"bad\.conll:1: label 'B-' is not a BIO tag"),
    ("", {}, r"bad\.conll: the file is empty"),
    ("-DOCSTART- O\n\n\n", {}, r"bad\.conll: the file is empty"),
])
def test_conll_errors_name_the_file_line_value_and_fix(tmp_path, text, options, message):
    path = write(tmp_path / "bad.conll", text)
    with pytest.raises(TaggingDataError, match=message):
        read_conll(path, **options)


def test_bioes_labels_are_accepted_in_the_bioes_scheme(tmp_path):
    path = write(tmp_path / "train.conll", "New B-LOC\nYork E-LOC\nis O\nbig S-MISC\n")
    assert read_conll(path, scheme="bioes").labels == [["B-LOC", "E-LOC", "O", "S-MISC"]]


def test_convert_scheme_between_bio_and_bioes():
    bio = ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-ORG", "I-ORG", "B-PER", "I-LOC"]
    bioes = ["B-PER", "I-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "B-ORG", "E-ORG", "S-PER", "S-LOC"]
    assert convert_scheme(bio, "bio", "bioes") == bioes
    assert convert_scheme(bioes, "bioes", "bio") == ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC",
                                                    "B-ORG", "I-ORG", "B-PER", "B-LOC"]
    assert convert_scheme(bio, "bio", "bio") == bio
    with pytest.raises(ValueError, match=r"tag 1 \('E-PER'\) is not a BIO tag"):
        convert_scheme(["B-PER", "E-PER"], "bio", "bioes")


# Entity and token scores

BIO_TRUE = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],
    ["O", "B-MISC", "I-MISC", "O"],
    ["B-LOC", "O", "B-LOC", "I-LOC"],
]
BIO_PRED = [
    ["B-PER", "I-PER", "O", "B-ORG", "O"],  # a hit; a wrong type
    ["B-ORG", "I-ORG", "O", "O", "I-PER"],  # a partial match (too short); I- without B- (read as an entity)
    ["O", "B-MISC", "I-MISC", "I-MISC"],  # too long
    ["B-LOC", "O", "O", "I-LOC"],  # a hit; I- without B- ending too early
]


def _seqeval(true, pred, **options):
    report = seqeval_metrics.classification_report(true, pred, output_dict=True, zero_division=0, **options)
    scores = {name: round(100 * getattr(seqeval_metrics, f"{name}_score")(true, pred, zero_division=0, **options), 2)
              for name in ("precision", "recall", "f1")}
    scores["per_label"] = {
        label: {"precision": round(100 * v["precision"], 2), "recall": round(100 * v["recall"], 2),
                "f1": round(100 * v["f1-score"], 2), "support": int(v["support"])}
        for label, v in report.items() if not label.endswith("avg")}
    return scores


def test_entity_scores_equal_seqeval_and_a_hand_count():
    scores = tagging_scores(BIO_TRUE, BIO_PRED, "bio")
    expected = _seqeval(BIO_TRUE, BIO_PRED)
    assert {k: scores[k] for k in expected} == expected
    assert scores["accuracy"] == round(100 * seqeval_metrics.accuracy_score(BIO_TRUE, BIO_PRED), 2)
    # By hand: 7 true entities (PER, LOC | ORG, PER | MISC | LOC, LOC); 7 predicted (PER, ORG | ORG (0-1),
    # PER (I-PER) | MISC (1-3) | LOC, LOC (I-LOC at 3)). Correct (type and both ends): PER (s0), PER (s1, I-PER
    # read as its start), LOC (s3, 0) = 3. Precision 3/7, recall 3/7, F1 42.86. PER: 2 of 2 both ways (100).
    # Words: 18, of which 13 are right (s0: 4/5, s1: 3/5, s2: 3/4, s3: 3/4): accuracy 72.22.
    assert (scores["precision"], scores["recall"], scores["f1"], scores["accuracy"]) == (42.86, 42.86, 42.86, 72.22)
    assert scores["per_label"]["PER"] == {"precision": 100.0, "recall": 100.0, "f1": 100.0, "support": 2}
    assert scores["per_label"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert list(scores["per_label"]) == ["LOC", "MISC", "ORG", "PER"]
    assert scores["sentences"] == 4 and scores["words"] == 18


def test_bioes_entity_scores_equal_seqeval_and_the_bio_scores():
    true = [convert_scheme(s, "bio", "bioes") for s in BIO_TRUE]
    pred = [convert_scheme(s, "bio", "bioes") for s in BIO_PRED]
    scores = tagging_scores(true, pred, "bioes")
    expected = _seqeval(true, pred)
    assert {k: scores[k] for k in expected} == expected
    bio = tagging_scores(BIO_TRUE, BIO_PRED, "bio")  # seqeval's default mode reads E-/S- as the same entities
    assert {k: scores[k] for k in expected} == {k: bio[k] for k in expected}
    strict = tagging_scores(true, pred, "bioes", strict=True)
    assert {k: strict[k] for k in expected} == _seqeval(true, pred, mode="strict", scheme=IOBES)
    # ill-formed BIOES (E- without B-): default mode is lenient, strict mode ignores the entity
    ill_true, ill_pred = [["S-PER", "O", "B-LOC", "E-LOC"]], [["S-PER", "O", "O", "E-LOC"]]
    assert tagging_scores(ill_true, ill_pred, "bioes")["precision"] == 50.0
    assert tagging_scores(ill_true, ill_pred, "bioes", strict=True)["precision"] == 100.0


def test_token_scores_per_label_micro_and_families():
    true = [["C", "O", "O", "."], ["C", "O", "?"]]
    pred = [["C", "O", ".", "."], ["O", "O", "C?"]]
    scores = tagging_scores(true, pred, "tokens")
    # labels but O: C (true 2, pred 1, hit 1), "." (true 1, pred 2, hit 1), "?" (true 1, pred 0), "C?" (pred 1).
    # micro: 2 hits of 4 predicted, of 4 true: 50 / 50 / 50. accuracy: 4 of 7 words right.
    assert scores["per_label"]["C"] == {"precision": 100.0, "recall": 50.0, "f1": 66.67, "support": 2}
    assert scores["per_label"]["."] == {"precision": 50.0, "recall": 100.0, "f1": 66.67, "support": 1}
    assert scores["per_label"]["C?"]["support"] == 0 and "O" not in scores["per_label"]
    assert (scores["precision"], scores["recall"], scores["f1"], scores["accuracy"]) == (50.0, 50.0, 50.0, 57.14)
    case, punctuation = scores["families"]["case"], scores["families"]["punctuation"]
    # case alone: true C O O O | C O O, pred C O O O | O O C: C 1 hit of 2 predicted, 2 true
    assert case["per_label"] == {"C": {"precision": 50.0, "recall": 50.0, "f1": 50.0, "support": 2}}
    assert case["accuracy"] == 71.43
    # punctuation alone: true O O O . | O O ?, pred O O . . | O O ?
    assert punctuation["per_label"]["?"] == {"precision": 100.0, "recall": 100.0, "f1": 100.0, "support": 1}
    assert punctuation["per_label"]["."]["precision"] == 50.0 and punctuation["accuracy"] == 85.71
    assert "families" not in tagging_scores([["NN", "VB"]], [["NN", "NN"]], "tokens")
    assert "families" not in tagging_scores(true, pred, "tokens", families=False)


def test_scores_reject_sentences_of_different_lengths():
    with pytest.raises(ValueError, match=r"sentence 1: 2 predicted labels for 3 words"):
        tagging_scores([["O"], ["O", "O", "O"]], [["O"], ["O", "O"]], "bio")
    with pytest.raises(ValueError, match=r"1 predicted sentences for 2 references"):
        tagging_scores([["O"], ["O"]], [["O"]], "tokens")
    with pytest.raises(ValueError, match=r"scheme='iob'"):
        tagging_scores([["O"]], [["O"]], "iob")


# The punctuation/case corpus

TRICKY = {
    "Hello, world.": (["hello", "world"], ["C,", "."]),
    "I think NASA's rover works.": None,  # "NASA's" is mixed case (its letters: NASAs)
    "I think NASA rover works... no; USA?!": (
        ["i", "think", "nasa", "rover", "works", "no", "usa"], ["C", "O", "U", "O", "...", ";", "U?!"]),
    "A \"quoted\" word, (brackets) - and 3.5 kg.": (
        ["a", '"quoted"', "word", "(brackets)", "-", "and", "3.5", "kg"], ["C", "O", ",", "O", "O", "O", "O", "."]),
    "  Spaces   collapse\there. ": (["spaces", "collapse", "here"], ["C", "O", "."]),
    "Café Über ÉCOLE.": (["café", "über", "école"], ["C", "C", "U."]),
    "He said: \"fine,\" and left.": (["he", "said", '"fine,"', "and", "left"], ["C", ":", "O", "O", "."]),
    "I bought an iPhone.": None,
    "We ate at McDonald's.": None,
    "Hello , world .": None,  # punctuation-only tokens
    ". Leading": None,
    "Wi-Fi is here.": None,  # "Wi-Fi": two capitals, not all upper
    "STRASSE vs Straße.": (["strasse", "vs", "straße"], ["U", "O", "C."]),
    "GROẞE": None,  # "ẞ" lower-cases to "ß", which upper-cases to "SS"
    "": None,
    "   ": None,
}


@pytest.mark.parametrize("line", list(TRICKY))
def test_derive_and_restore_on_tricky_lines(line):
    assert derive(line) == TRICKY[line]
    if TRICKY[line] is not None:
        assert restore(*derive(line)) == " ".join(line.split())


def test_derive_corpus_counts_dropped_lines():
    data, dropped = derive_corpus(list(TRICKY) + ["", "Go."])
    kept = [line for line, derived in TRICKY.items() if derived is not None] + ["Go."]
    assert [restore(w, lab) for w, lab in zip(data.words, data.labels)] == [" ".join(line.split()) for line in kept]
    assert dropped == sum(1 for line, derived in TRICKY.items() if derived is None and line.strip())


def _representable(token):
    """An independent oracle for ASCII text: the token's letters (after its trailing punctuation run is cut) are
    lower, Capitalised or UPPER, and something is left."""
    core = token.rstrip(",.?!:;")
    letters = re.sub(r"[^A-Za-z]", "", core)
    return bool(core) and (letters == letters.lower() or letters == letters.upper()
                           or (letters[0].isupper() and letters[1:] == letters[1:].lower()))


def test_tatoeba_lines_round_trip_and_only_unrepresentable_lines_drop():
    path = os.path.join(SHARED_DATA, "tatoeba-es-en", "train.en")
    if not os.path.exists(path):
        pytest.skip(f"{path} is not here")
    with open(path, encoding="utf-8") as f:
        lines = [next(f) for _ in range(2000)]
    kept = 0
    for line in lines:
        derived = derive(line)
        if derived is not None:
            kept += 1
            assert restore(*derived) == " ".join(line.split())
            assert all(word == word.lower() for word in derived[0])
        if line.isascii():
            assert (derived is not None) == all(_representable(t) for t in line.split()), line
    assert kept > 1900


def test_punctuation_case_families():
    assert punctuation_case_families("O") == ("", "")
    assert punctuation_case_families("C") == ("C", "")
    assert punctuation_case_families("U?!") == ("U", "?!")
    assert punctuation_case_families("...") == ("", "...")
    for bad in ("B-PER", "C-", "X", "", "CU"):
        with pytest.raises(ValueError, match="not a punctuation/case label"):
            punctuation_case_families(bad)


def _fake_corpora(root):
    tatoeba = root / "tatoeba-es-en"
    tatoeba.mkdir()
    splits = {"train": ["Go.", "Go.", "Hi, Tom!", "Buy an iPhone.", "I SAID NO."],
              "valid": ["Who's there?", "Call me Ishmael."], "test": ["Stop , now.", "Run!"]}
    for split, lines in splits.items():
        write(tatoeba / f"{split}.en", "".join(line + "\n" for line in lines))
        write(tatoeba / f"{split}.es", "x\n" * len(lines))
    wikitext = root / "wikitext-2-raw"
    wikitext.mkdir()
    for split in ("train", "valid", "test"):
        write(wikitext / f"{split}.txt", f" \n = Title {split} = \n \n = = Section = = \n The state @-@ of @-@ the "
              "art , 1 @,@ 000 items . \n It 's an iPhone . \n")


def test_prepare_punctuation_corpus_keeps_the_split_and_is_deterministic(tmp_path):
    _fake_corpora(tmp_path)
    counts = prepare_punctuation_corpus("tatoeba-es-en", str(tmp_path), str(tmp_path / "out1"))
    prepare_punctuation_corpus("tatoeba-es-en", str(tmp_path), str(tmp_path / "out2"))
    names = sorted(os.listdir(tmp_path / "out1"))
    assert names == ["SOURCE.md", "counts.json", "test.conll", "train.conll", "valid.conll"]
    for name in names:
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes(), name
    train = read_conll(str(tmp_path / "out1" / "train.conll"))
    assert [restore(w, lab) for w, lab in zip(train.words, train.labels)] == ["Go.", "Hi, Tom!", "I SAID NO."]
    valid = read_conll(str(tmp_path / "out1" / "valid.conll"))
    assert [restore(w, lab) for w, lab in zip(valid.words, valid.labels)] == ["Who's there?", "Call me Ishmael."]
    assert read_conll(str(tmp_path / "out1" / "test.conll")).words == [["run"]]
    assert counts["splits"]["train"] == {"lines": 5, "duplicates": 1, "dropped": 1, "kept": 3, "words": 6,
                                         "labels": {"C": 1, "C!": 1, "C,": 1, "C.": 1, "U": 1, "U.": 1}}
    assert counts["splits"]["test"]["dropped"] == 1
    assert json.loads((tmp_path / "out1" / "counts.json").read_text()) == counts
    with pytest.raises(ValueError, match="language='de'"):
        prepare_punctuation_corpus("tatoeba-es-en", str(tmp_path), str(tmp_path / "out3"), language="de")


def test_prepare_punctuation_corpus_from_wikitext(tmp_path):
    _fake_corpora(tmp_path)
    assert detokenize_wikitext(" The state @-@ of , 1 @,@ 000 . It 's \" so \" ") == \
        "The state-of, 1,000. It's \" so \""
    counts = prepare_punctuation_corpus("wikitext-2-raw", str(tmp_path), str(tmp_path / "out"))
    data = read_conll(str(tmp_path / "out" / "valid.conll"))
    assert [restore(w, lab) for w, lab in zip(data.words, data.labels)] == ["The state-of-the art, 1,000 items."]
    assert counts["splits"]["valid"] == {"lines": 2, "duplicates": 0, "dropped": 1, "kept": 1, "words": 5,
                                         "labels": {",": 1, ".": 1, "C": 1, "O": 2}}
    assert counts["language"] is None


# Words and subword pieces

FIXTURE_TEXT = ["the cat sat on the mat", "internationalization is unbelievably hard", "a dog ran to the park",
                "counterrevolutionary ideas spread fast", "the quick brown fox jumps over the lazy dog"] * 3


@pytest.fixture(scope="module")
def tokenizer():
    from tflm.text.vocab import train_wordpiece

    return train_wordpiece(FIXTURE_TEXT, vocabulary_size=100)


def _pieces(tokenizer, word):
    return tokenizer.tokenize(tf.constant([word]))[0].numpy().tolist()


def _expected(tokenizer, words, max_length):
    """The layout by hand: the first words whose pieces fit in max_length - 2, each word tokenized alone."""
    token_ids, starts = [2], []
    for word in words:
        pieces = _pieces(tokenizer, word) or [tokenizer.unk_id]
        if len(token_ids) - 1 + len(pieces) > max_length - 2:
            break
        starts.append(len(token_ids))
        token_ids += pieces
    return token_ids + [3], starts


SENTENCES = [["the", "internationalization", "cat", "sat"], ["counterrevolutionary", "a", "dog"], [],
             ["unbelievably", "hard"]]


def test_align_words_points_each_word_at_its_first_piece(tokenizer):
    long_word = _pieces(tokenizer, "internationalization")
    assert len(long_word) >= 3  # the fixture vocabulary splits it
    aligned = align_words(tokenizer, tf.ragged.constant(SENTENCES), max_length=64)
    assert set(aligned) == {"token_ids", "segment_ids", "padding_mask", "word_starts"}
    for row, words in enumerate(SENTENCES):
        token_ids = aligned["token_ids"][row].numpy().tolist()
        starts = aligned["word_starts"][row].numpy().tolist()
        assert len(starts) == len(words)  # one entry per word, however many pieces it has
        ends = starts[1:] + [len(token_ids) - 1]
        for word, start, end in zip(words, starts, ends):
            assert token_ids[start:end] == _pieces(tokenizer, word)  # the start is the word's first piece
        assert token_ids[0] == 2 and token_ids[-1] == 3
        assert (token_ids, starts) == _expected(tokenizer, words, 64)
        assert aligned["segment_ids"][row].numpy().tolist() == [0] * len(token_ids)
        assert aligned["padding_mask"][row].numpy().tolist() == [1] * len(token_ids)
    assert all(value.dtype == tf.int32 for value in aligned.values())


@pytest.mark.parametrize("max_length", [3, 4, 6, 9, 14, 25])
def test_align_words_truncation_keeps_whole_words(tokenizer, max_length):
    aligned = align_words(tokenizer, tf.ragged.constant(SENTENCES), max_length=max_length)
    for row, words in enumerate(SENTENCES):
        token_ids = aligned["token_ids"][row].numpy().tolist()
        assert (token_ids, aligned["word_starts"][row].numpy().tolist()) == _expected(tokenizer, words, max_length)
        assert len(token_ids) <= max_length
    if max_length == 3:
        assert aligned["word_starts"].row_lengths().numpy().tolist() == [1, 0, 0, 0]  # "the": one piece, the
        # other first words several


def test_a_word_without_pieces_gets_unk(tokenizer):
    aligned = align_words(tokenizer, tf.ragged.constant([["the", "", "cat"], [""]]), max_length=32)
    assert aligned["token_ids"].to_list() == [[2] + _pieces(tokenizer, "the") + [1] + _pieces(tokenizer, "cat") + [3],
                                              [2, 1, 3]]
    assert aligned["word_starts"].to_list() == [[1, 2, 3], [1]]
    with pytest.raises(ValueError, match="max_length=2"):
        align_words(tokenizer, tf.ragged.constant([["the"]]), max_length=2)


def test_align_in_tf_function_with_unknown_batch_and_padding(tokenizer, tmp_path):
    words_fn = tf.function(lambda words: align_words(tokenizer, words, 12), input_signature=[
        tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1)])
    text_fn = tf.function(lambda text: pad_aligned(align_text(tokenizer, text, 12), 12),
                          input_signature=[tf.TensorSpec([None], tf.string)])
    eager = align_words(tokenizer, tf.ragged.constant(SENTENCES), 12)
    traced = words_fn(tf.ragged.constant(SENTENCES))
    assert {k: v.to_list() for k, v in traced.items()} == {k: v.to_list() for k, v in eager.items()}
    graph = text_fn.get_concrete_function().graph
    assert not {op.type for op in graph.get_operations()} & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}

    texts = [" ".join(words) for words in SENTENCES] + ["  the\tcat  "]
    dense = text_fn(tf.constant(texts))
    assert dense["token_ids"].shape[1] == 12 and dense["word_starts"].shape[1] == 10
    for row, words in enumerate(SENTENCES + [["the", "cat"]]):
        token_ids, starts = _expected(tokenizer, words, 12)
        assert dense["token_ids"][row].numpy().tolist() == token_ids + [0] * (12 - len(token_ids))
        assert dense["padding_mask"][row].numpy().tolist() == [1] * len(token_ids) + [0] * (12 - len(token_ids))
        assert dense["word_starts"][row].numpy().tolist() == starts + [0] * (10 - len(starts))
        assert [w.decode() for w in dense["words"][row].numpy() if w] == words[:len(starts)]
    assert text_fn(tf.constant(["the cat"]))["token_ids"].shape == (1, 12)  # another batch size, same trace

    # it also saves and runs as a SavedModel
    module = tf.Module()
    module.tokenizer = tokenizer
    module.align = text_fn
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert loaded.align(tf.constant(texts))["token_ids"].numpy().tolist() == dense["token_ids"].numpy().tolist()

    unpadded = pad_aligned(align_text(tokenizer, tf.constant(["", "the"]), 12))
    assert unpadded["word_starts"].numpy().tolist() == [[0], [1]] and unpadded["token_ids"].shape[1] == 3
