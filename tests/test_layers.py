import keras
import numpy as np
import pytest

from tflm.layers import AdditiveAttention, AttentionDecoder, LSTMEncoder, LuongAttention, TokenEmbedding

rng = np.random.default_rng(0)
QUERY = rng.normal(size=(2, 3, 8)).astype("float32")
VALUE = rng.normal(size=(2, 5, 8)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)


@pytest.mark.parametrize("layer", [AdditiveAttention(hidden_dim=6), LuongAttention("dot"),
                                   LuongAttention("general", scale=True)], ids=["bahdanau", "dot", "general"])
def test_attention_weights_sum_to_one_and_are_zero_on_padding(layer):
    context, weights = layer(QUERY, VALUE, value_mask=MASK)
    weights = np.asarray(weights)
    assert weights.shape == (2, 3, 5) and context.shape == (2, 3, 8)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert (weights[1, :, 2:] == 0).all()
    # the padded values do not matter at all
    noisy = VALUE.copy()
    noisy[1, 2:] = 100.0
    other_context, _ = layer(QUERY, noisy, value_mask=MASK)
    np.testing.assert_allclose(np.asarray(other_context)[1], np.asarray(context)[1], atol=1e-6)


@pytest.mark.parametrize("layer", [
    AdditiveAttention(hidden_dim=6), LuongAttention("general", scale=True), LSTMEncoder(8, 2, bidirectional=True),
    AttentionDecoder(8, num_layers=2, attention="bahdanau", input_feeding=False, dropout=0.1),
    TokenEmbedding(50, 8, scale=True),
])
def test_get_config_round_trips(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert type(keras.saving.deserialize_keras_object(serialized)) is type(layer)


def test_encoder_padding_does_not_change_real_tokens():
    encoder = LSTMEncoder(8, num_layers=2, bidirectional=True)
    inputs = rng.normal(size=(2, 6, 4)).astype("float32")
    mask = np.array([[1] * 6, [1] * 3 + [0] * 3], bool)
    outputs, states = encoder(inputs, padding_mask=mask)
    alone, alone_states = encoder(inputs[1:, :3])
    np.testing.assert_allclose(np.asarray(outputs)[1, :3], np.asarray(alone)[0], atol=1e-5)
    assert (np.asarray(outputs)[1, 3:] == 0).all()
    for (h, c), (h_alone, c_alone) in zip(states, alone_states):
        np.testing.assert_allclose(np.asarray(h)[1], np.asarray(h_alone)[0], atol=1e-5)


@pytest.mark.parametrize("input_feeding", [True, False])
def test_decoder_steps_equal_teacher_forcing(input_feeding):
    decoder = AttentionDecoder(8, num_layers=2, attention="luong_general", input_feeding=input_feeding)
    memory = rng.normal(size=(2, 5, 8)).astype("float32")
    inputs = rng.normal(size=(2, 4, 3)).astype("float32")
    state = decoder.initial_state(memory, MASK)
    outputs, weights = decoder(inputs, state)
    for t in range(4):
        output, state, step_weights = decoder.step(inputs[:, t], state)
        np.testing.assert_allclose(np.asarray(output), np.asarray(outputs)[:, t], atol=1e-5)
        np.testing.assert_allclose(np.asarray(step_weights), np.asarray(weights)[:, t], atol=1e-5)


def test_pretrained_vectors_are_loaded_and_counted(tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("3 4\nhola 1 2 3 4\nMundo 5 6 7 8\nperro 9 9 9 9\n")  # word2vec header
    pieces = ["<pad>", "<unk>", "<s>", "</s>", "▁hola", "▁mundo", "##s", "gato"]
    embedding = TokenEmbedding(len(pieces), 4)
    found = embedding.load_pretrained(str(vectors), pieces)
    assert found == 2
    table = np.asarray(embedding.embeddings)
    np.testing.assert_array_equal(table[4], [1, 2, 3, 4])
    np.testing.assert_array_equal(table[5], [5, 6, 7, 8])  # matched case-insensitively
    glove = tmp_path / "glove.txt"
    glove.write_text("hola 1 2 3\n")
    with pytest.raises(ValueError, match="glove.txt:1"):
        embedding.load_pretrained(str(glove), pieces)
