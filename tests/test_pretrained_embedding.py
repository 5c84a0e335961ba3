import keras
import numpy as np
import pytest

numpy = keras.ops.convert_to_numpy

from tflm.layers import PretrainedEmbedding
from tflm.text import SPECIAL_TOKENS, train_words

TEXTS = ["the cat sat on the mat .", "a dog sat ."]
FILE_ROWS = {"the": [1.0, 2.0, 3.0, 4.0], "cat": [-1.0, 0.5, 0.25, 8.0], "sat": [0.0, 0.0, 1.0, -2.0],
             "dog": [3.0, 3.0, 3.0, 3.0], "zebra": [7.0, 7.0, 7.0, 7.0]}


@pytest.fixture
def vectors_path(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in FILE_ROWS.items()))
    return str(path)


@pytest.fixture
def tokenizer():
    return train_words(TEXTS)


def classifier(embedding):
    model = keras.Sequential([keras.Input((None,), dtype="int32"), embedding,
                              keras.layers.Reshape((-1, embedding.output_dim)) if embedding.merge == "stack"
                              else keras.layers.Identity(),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("mode", ["static", "non_static", "multichannel"])
def test_frozen_table_stays_frozen_and_trained_copy_moves(mode, vectors_path, tokenizer):
    embedding = PretrainedEmbedding(tokenizer.vocabulary_size, 4, mode=mode)
    model = classifier(embedding)
    coverage = embedding.load_vectors(vectors_path, tokenizer.pieces)
    before = [numpy(t) for t in embedding.tables]
    ids = tokenizer.tokenize(TEXTS).to_tensor(0)
    model.train_on_batch(ids, np.array([0, 1]))
    after = [numpy(t) for t in embedding.tables]
    if mode in ("static", "multichannel"):
        np.testing.assert_array_equal(after[0], before[0])  # the frozen table, exactly
        assert not embedding.static_embeddings.trainable
    if mode in ("non_static", "multichannel"):
        assert not np.allclose(after[-1], before[-1])  # the fine-tuned one moved
        assert embedding.embeddings.trainable
    assert len(model.trainable_weights) == (2 if mode == "static" else 3)  # the table(s) + Dense kernel, bias
    assert coverage.found_words == 4


def test_vectors_land_on_their_file_rows_and_missing_words_are_reported(vectors_path, tokenizer):
    embedding = PretrainedEmbedding(tokenizer.vocabulary_size, 4, mode="multichannel")
    coverage = embedding.load_vectors(vectors_path, tokenizer.pieces)
    for table in embedding.tables:
        table = numpy(table)
        for word in ("the", "cat", "sat", "dog"):
            np.testing.assert_array_equal(table[tokenizer.token_to_id(word)], np.float32(FILE_ROWS[word]))
        np.testing.assert_array_equal(table[0], 0.0)
    assert coverage.missing == (".", "a", "mat", "on")  # vocabulary order: "." is the most frequent
    assert "zebra" not in tokenizer.pieces


@pytest.mark.parametrize("mode, merge, shape", [
    ("static", "concat", (2, 7, 4)), ("non_static", "concat", (2, 7, 4)),
    ("multichannel", "concat", (2, 7, 8)), ("multichannel", "stack", (2, 7, 4, 2)),
])
def test_output_shapes_and_config_round_trip(mode, merge, shape):
    embedding = PretrainedEmbedding(20, 4, mode=mode, merge=merge, mask_zero=True)
    ids = np.array([[4, 5, 6, 0, 0, 0, 0], [7, 8, 9, 10, 11, 12, 13]])
    outputs = embedding(ids)
    assert tuple(outputs.shape) == shape
    assert embedding.compute_output_shape((2, 7)) == shape
    assert numpy(embedding.compute_mask(ids)).tolist()[0] == [True] * 3 + [False] * 4
    clone = PretrainedEmbedding.from_config(embedding.get_config())
    assert clone.get_config() == embedding.get_config()
    clone.build()
    clone.set_weights(embedding.get_weights())
    np.testing.assert_array_equal(numpy(clone(ids)), numpy(outputs))
    if mode == "multichannel" and merge == "stack":
        np.testing.assert_array_equal(numpy(outputs)[..., 0], numpy(embedding.static_embeddings)[ids])


def test_keras_file_round_trip_keeps_both_tables(tmp_path, vectors_path, tokenizer):
    embedding = PretrainedEmbedding(tokenizer.vocabulary_size, 4, mode="multichannel")
    model = classifier(embedding)
    embedding.load_vectors(vectors_path, tokenizer.pieces)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    ids = tokenizer.tokenize(TEXTS).to_tensor(0)
    np.testing.assert_allclose(numpy(loaded(ids)), numpy(model(ids)))
    assert {w.name: w.trainable for w in loaded.layers[0].weights} == {"static_embeddings": False, "embeddings": True}


def test_bad_arguments_are_refused(vectors_path):
    with pytest.raises(ValueError, match="mode='dynamic' is not one of static, non_static, multichannel"):
        PretrainedEmbedding(10, 4, mode="dynamic")
    embedding = PretrainedEmbedding(10, 4)
    with pytest.raises(ValueError, match=r"shape \(10, 3\) does not fit vocabulary_size=10, embedding_dim=4"):
        embedding.set_vectors(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="the vocabulary has 5 words but vocabulary_size=10"):
        embedding.load_vectors(vectors_path, list(SPECIAL_TOKENS) + ["the"])
