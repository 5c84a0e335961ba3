import os

import pytest
import tensorflow as tf

from tflm.text import (
    SPECIAL_TOKENS,
    UNK_ID,
    TOKENIZER_KINDS,
    WordTokenizer,
    count_words,
    load_tokenizer,
    split_words,
    train_words,
)

TEXTS = ["The cat sat on the mat.", "The dog didn't sit.", "Where's the U.S. Army?", "A cat, a dog."]


def words(text):
    return [w.decode() for w in split_words(tf.constant([text])).to_list()[0]]


@pytest.mark.parametrize("text, expected", [
    ("Don't stop, U.S. Army!", ["do", "n't", "stop", ",", "u.s.", "army", "!"]),
    ("It's 10:30 p.m. and Mr. Smith paid $1,000,000 (3.5%).",
     ["it", "'s", "10:30", "p.m.", "and", "mr.", "smith", "paid", "$", "1,000,000", "(", "3.5", "%", ")", "."]),
    ("Can't, won't: I'm sure we'll see they're well-known -- ok...",
     ["ca", "n't", ",", "wo", "n't", ":", "i", "'m", "sure", "we", "'ll", "see", "they", "'re", "well-known",
      "--", "ok", "..."]),
    ("The dogs' \u201cbones\u201d and 'quotes' etc.", ["the", "dogs", "'", '"', "bones", '"', "and", "'", "quotes",
                                                     "'", "etc."]),
    ("\u00c9L EST\u00c1 AQU\u00cd.", ["\u00e9l", "est\u00e1", "aqu\u00ed", "."]),
    ("I shan 't stop , it is n't o 'clock", ["i", "sha", "n't", "stop", ",", "it", "is", "n't", "o", "'clock"]),
    ("", []),
])
def test_split_words_follows_glove_tokens(text, expected):
    assert words(text) == expected


def test_train_words_by_frequency_min_count_and_max_size():
    tokenizer = train_words(TEXTS, min_count=2)
    assert tokenizer.pieces[:4] == list(SPECIAL_TOKENS)
    assert tokenizer.pieces[4:] == ["the", ".", "a", "cat", "dog"]  # 4, 3, then ties alphabetical
    assert train_words(TEXTS, max_size=2).pieces[4:] == ["the", "."]
    assert count_words(TEXTS)["the"] == 4
    with pytest.raises(ValueError, match="min_count=0"):
        train_words(TEXTS, min_count=0)


def test_train_words_adds_the_first_words_of_a_vectors_file(tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("the 1 2\nkangaroo 3 4\nkoala 5 6\nwombat 7 8\n")
    tokenizer = train_words(TEXTS, min_count=2, vectors_path=str(vectors), max_vector_words=3)
    assert tokenizer.pieces[4:] == ["the", ".", "a", "cat", "dog", "kangaroo", "koala"]


def test_tokenize_maps_unknown_words_to_unk_and_never_makes_special_ids():
    tokenizer = WordTokenizer(list(SPECIAL_TOKENS) + ["the", "cat", ".", "do", "n't"])
    assert tokenizer.tokenize("The cat don't purr.").numpy().tolist() == [4, 5, 7, 8, UNK_ID, 6]
    assert tokenizer.tokenize(["<s> </s> <pad>", ""]).to_list() == [[UNK_ID] * 3, []]
    assert tokenizer.detokenize(tf.constant([[2, 4, 5, 7, 8, 6, 3, 0]])).numpy()[0].decode() == "the cat don't."


def test_invalid_vocabularies_are_refused():
    with pytest.raises(ValueError, match="must start with"):
        WordTokenizer(["the", "cat"])
    with pytest.raises(ValueError, match="'the' is there twice"):
        WordTokenizer(list(SPECIAL_TOKENS) + ["the", "the"])
    with pytest.raises(ValueError, match="'a b' is not one"):
        WordTokenizer(list(SPECIAL_TOKENS) + ["a b"])


def test_save_and_load_tokenizer(tmp_path):
    assert TOKENIZER_KINDS["word"] is WordTokenizer
    tokenizer = train_words(TEXTS)
    path = os.path.join(tmp_path, "vocab" + WordTokenizer.file_suffix)
    tokenizer.save(path)
    loaded = load_tokenizer(path)
    assert isinstance(loaded, WordTokenizer) and loaded.pieces == tokenizer.pieces
    assert loaded.tokenize(TEXTS).to_list() == tokenizer.tokenize(TEXTS).to_list()


def test_eager_equals_tf_function_equals_reloaded_saved_model(tmp_path):
    tokenizer = train_words(TEXTS)
    module = tf.Module()
    module.tokenizer = tokenizer
    module.tokenize = tf.function(
        lambda text: tokenizer.tokenize(text).to_tensor(0), input_signature=[tf.TensorSpec([None], tf.string)]
    )
    module.detokenize = tf.function(
        lambda ids: tokenizer.detokenize(ids), input_signature=[tf.TensorSpec([None, None], tf.int32)]
    )
    texts = TEXTS + ["An unseen word."]
    eager = tokenizer.tokenize(texts).to_tensor(0).numpy()
    assert (module.tokenize(tf.constant(texts)).numpy() == eager).all()
    tf.saved_model.save(module, str(tmp_path / "saved"))
    del module
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert (reloaded.tokenize(tf.constant(texts)).numpy() == eager).all()
    assert (reloaded.detokenize(tf.constant(eager)).numpy() == tokenizer.detokenize(tf.constant(eager)).numpy()).all()
