import os

import pytest
import tensorflow as tf

from tflm.text import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    load_tokenizer,
    pretokenize_words,
    strip_special,
    train_tokenizer,
)

TEXTS = ["¿Dónde está el baño?", "Tom isn't here!", '"Hola", dijo ella.', "Él tiene 3 gatos.", "Hi."]


@pytest.fixture(scope="module", params=["unigram", "bpe", "wordpiece"])
def tokenizer(request, sample_corpus):
    texts = sample_corpus.source + sample_corpus.target
    return train_tokenizer(texts, request.param, 600)


def test_special_ids_are_fixed(tokenizer):
    assert tokenizer.pieces[:4] == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    ids = tokenizer.tokenize(TEXTS).flat_values.numpy()
    assert ids.min() >= 1 and ids.max() < tokenizer.vocabulary_size
    assert not set(ids) & {PAD_ID, BOS_ID, EOS_ID}


def test_round_trip_inside_tf_data(tokenizer):
    dataset = tf.data.Dataset.from_tensor_slices(TEXTS).batch(2)
    dataset = dataset.map(tokenizer.tokenize).map(tokenizer.detokenize).unbatch()
    decoded = [t.decode("utf-8") for t in dataset.as_numpy_iterator()]
    assert decoded == TEXTS


def test_round_trip_inside_tf_function(tokenizer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(text):
        return tokenizer.detokenize(tokenizer.tokenize(text))

    assert [t.decode() for t in round_trip(tf.constant(TEXTS)).numpy()] == TEXTS


def test_detokenize_stops_at_eos_and_drops_padding(tokenizer):
    ids = tokenizer.tokenize(["Hi.", "Él tiene 3 gatos."]).to_list()
    rows = [[BOS_ID] + ids[0] + [EOS_ID, 7, 8, PAD_ID], [BOS_ID] + ids[1][:4] + [PAD_ID, PAD_ID]]
    dense = tf.ragged.constant(rows).to_tensor(PAD_ID)
    out = tokenizer.detokenize(dense).numpy()
    assert out[0].decode() == "Hi."
    assert out[1].decode() == tokenizer.detokenize(tf.constant([ids[1][:4]])).numpy()[0].decode()
    assert strip_special(tf.constant([[5, 3, 6]])).to_list() == [[5]]


def test_save_and_load(tokenizer, tmp_path):
    path = os.path.join(tmp_path, "vocab" + tokenizer.file_suffix)
    tokenizer.save(path)
    loaded = load_tokenizer(path)
    assert loaded.pieces == tokenizer.pieces
    assert loaded.tokenize(TEXTS).to_list() == tokenizer.tokenize(TEXTS).to_list()


def test_wordpiece_pretokens_are_reversible():
    words = pretokenize_words(tf.constant(["Hola,  mundo.", ' "Sí"'])).to_list()
    assert [w.decode() for w in words[0]] == ["▁Hola", ",", "▁mundo", "."]
    assert [w.decode() for w in words[1]] == ["▁", '"', "Sí", '"']


def test_unknown_vocabulary_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tflm vocab"):
        load_tokenizer(str(tmp_path / "missing.model"))
    bad = tmp_path / "vocab.txt"
    bad.write_text("a\n")
    with pytest.raises(ValueError, match=".model"):
        load_tokenizer(str(bad))


def test_sentencepiece_survives_reseeding(sample_corpus):
    """tensorflow-text's kernel-owned SentencePiece resource dies when TF clears its kernel cache."""
    import keras

    tokenizer = train_tokenizer(sample_corpus.source[:500], "unigram", 300)
    before = tokenizer.tokenize(TEXTS).to_list()
    keras.utils.set_random_seed(3)
    assert tokenizer.tokenize(TEXTS).to_list() == before
