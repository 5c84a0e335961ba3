"""The convolutional encoder (`ConvEncoder`, encoder "cnn" of model type seq2seq): padding never changes the
memory at real positions, it composes with the Transformer and recurrent decoders (training, step-by-step
decoding as teacher forcing), serializes, runs under mixed precision, and trains and translates from the CLI."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tflm import layers, models
from tflm.decoding.common import SearchSettings
from tflm.decoding.greedy import greedy_search
from tflm.text.special_tokens import BOS_ID, EOS_ID, PAD_ID

SOURCE = np.array([[5, 6, 7, 8, 9, 10, 3], [11, 12, 13, 3, 0, 0, 0]], "int32")
TARGET = np.array([[2, 11, 12, 13], [2, 14, 15, 0]], "int32")
ROOT = os.path.join(os.path.dirname(__file__), "..")


def composed(decoder, **kwargs):
    params = dict(encoder="cnn", decoder=decoder, hidden_dim=16, intermediate_dim=32, num_heads=2,
                  num_encoder_layers=2, num_decoder_layers=1, dropout=0.0, kernel_sizes=[3, 4, 5], filters=8)
    params.update(kwargs)
    return models.ComposedSeq2Seq(24, 24, **params)


@pytest.mark.parametrize("position_embedding", ["sinusoidal", "learned"])
def test_padding_never_changes_the_memory_at_real_positions(position_embedding):
    keras.utils.set_random_seed(1)
    encoder = layers.ConvEncoder(40, hidden_dim=8, num_layers=3, kernel_sizes=[3, 4, 5], filters=4, dropout=0.0,
                                 position_embedding=position_embedding, max_sequence_length=16)
    batched = encoder(SOURCE)
    alone = encoder(SOURCE[1:, :4])  # the short sentence without its padding
    assert batched["memory"].shape == (2, 7, 8) and encoder.output_dim == 8
    np.testing.assert_array_equal(np.asarray(batched["memory_mask"]), SOURCE != PAD_ID)
    np.testing.assert_allclose(np.asarray(batched["memory"])[1, :4], np.asarray(alone["memory"])[0], atol=1e-5)
    assert not np.asarray(batched["memory"])[1, 4:].any()  # the memory is zero at padding

    # the control: a 'same' convolution reads the padding's embeddings (PAD's vector is not zero) ...
    convolution = keras.layers.Conv1D(4, 3, padding="same")
    embedded = encoder.embedding(SOURCE)
    moved = np.asarray(convolution(embedded))[1, :4] - np.asarray(convolution(embedded[1:, :4]))[0]
    assert np.abs(moved).max() > 1e-3
    # ... and so would the encoder's own blocks, were the padded positions not zeroed before them
    x = encoder._embed(SOURCE)
    y = encoder._embed(SOURCE[1:, :4])
    for block in encoder.blocks:
        x, y = block(x), block(y)
    assert np.abs(np.asarray(x)[1, :4] - np.asarray(y)[0]).max() > 1e-3


def _copy_batches(seed, count, batch_size=16):
    """A toy copy task: the target repeats the source (ids 4..23, 3 to 6 tokens)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        lengths = rng.integers(3, 7, batch_size)
        source = np.full((batch_size, 7), PAD_ID, "int32")
        target = np.full((batch_size, 8), PAD_ID, "int32")
        for row, length in enumerate(lengths):
            tokens = rng.integers(4, 24, length)
            source[row, :length + 1] = [*tokens, EOS_ID]
            target[row, :length + 2] = [BOS_ID, *tokens, EOS_ID]
        yield {"source_ids": source, "target_ids": target[:, :-1]}, target[:, 1:]


def _train(model, steps):
    optimizer = keras.optimizers.Adam(0.01)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)

    @tf.function
    def train_step(inputs, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(inputs, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return [float(train_step(inputs, labels)) for inputs, labels in _copy_batches(0, steps)]


def _assert_steps_match_teacher_forcing(model, source, target):
    """As tests/test_models_compose.py checks every pair: `decode_step` position by position (cached and
    uncached) gives the logits of teacher forcing."""
    logits = np.asarray(model({"source_ids": source, "target_ids": target}))
    encoded = model.encode(source)
    state = model.initial_state(encoded, max_length=target.shape[1] + 2)
    step_fn, uncached = model.uncached_decoding(encoded, max_length=target.shape[1] + 2)
    for t in range(target.shape[1]):
        step_logits, state = model.decode_step(target[:, t], state, t)
        np.testing.assert_allclose(np.asarray(step_logits), logits[:, t], atol=1e-5)
        step_logits, uncached = step_fn(target[:, t], uncached, t)
        np.testing.assert_allclose(np.asarray(step_logits), logits[:, t], atol=1e-5)


@pytest.mark.parametrize("decoder", ["transformer", "lstm"])
def test_composed_model_trains_and_decodes_greedily_as_teacher_forcing(decoder):
    keras.utils.set_random_seed(0)
    model = composed(decoder)
    assert isinstance(model.encoder, layers.ConvEncoder) and model.memory_projection is None
    losses = _train(model, 120)
    assert np.mean(losses[-5:]) < 0.4 * np.mean(losses[:5]), losses
    _assert_steps_match_teacher_forcing(model, SOURCE, TARGET)

    # greedy decoding (decode_step in tflm's decoding loop) picks what teacher forcing on its output ranks first
    inputs, labels = next(_copy_batches(1, 1, batch_size=4))
    source = inputs["source_ids"]
    encoded = model.encode(source)
    result = greedy_search(model.decode_step, model.initial_state(encoded, 9), 4, SearchSettings(max_length=9))
    tokens = np.asarray(result.token_ids)[:, 0]
    lengths = np.asarray(result.lengths)[:, 0]
    teacher = np.concatenate([np.full((4, 1), BOS_ID, "int32"), tokens[:, :-1]], axis=1)
    logits = np.asarray(model({"source_ids": source, "target_ids": teacher}))
    for row in range(4):
        np.testing.assert_array_equal(logits[row, :lengths[row]].argmax(-1), tokens[row, :lengths[row]])
    log_probs = tf.gather(tf.nn.log_softmax(logits), tokens, batch_dims=2).numpy()
    scores = [log_probs[row, :lengths[row]].sum() for row in range(4)]
    np.testing.assert_allclose(np.asarray(result.scores)[:, 0], scores, rtol=1e-4)
    real = labels != PAD_ID
    assert np.mean(tokens[:, :7][real] == labels[real]) > 0.3  # it learned to copy (chance: 1 in 20)


def test_a_composed_model_with_the_cnn_encoder_round_trips_through_serialization(tmp_path):
    model = composed("gru", kernel_sizes=[3, 5], filters=6, encoder_params={"activation": "relu"})
    logits = np.asarray(model({"source_ids": SOURCE, "target_ids": TARGET}))
    config = keras.saving.serialize_keras_object(model)
    clone = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    clone.build()
    assert type(clone) is models.ComposedSeq2Seq and clone.get_config() == model.get_config()
    assert (clone.encoder.kernel_sizes, clone.encoder.filters, clone.encoder.activation) == ([3, 5], 6, "relu")
    assert [w.path for w in clone.weights] == [w.path for w in model.weights]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(clone({"source_ids": SOURCE, "target_ids": TARGET})), logits, atol=1e-6)
    # and the parts given as instances, through a .keras file
    pair = models.EncoderDecoder(layers.ConvEncoder(24, hidden_dim=8, num_layers=1, filters=4, dropout=0.0),
                                 layers.TransformerDecoder(24, hidden_dim=8, intermediate_dim=16, num_heads=2,
                                                           num_layers=1, dropout=0.0))
    logits = np.asarray(pair({"source_ids": SOURCE, "target_ids": TARGET}))
    path = str(tmp_path / "cnn.keras")
    pair.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded({"source_ids": SOURCE, "target_ids": TARGET})), logits)


def test_mixed_precision_shared_embeddings_and_clear_errors():
    model = composed("transformer", dtype="mixed_bfloat16", share_embeddings=True)
    logits = model({"source_ids": SOURCE, "target_ids": TARGET})
    assert logits.dtype == "float32" and model.encode(SOURCE)["memory"].dtype == "bfloat16"
    assert {w.dtype for w in model.weights} == {"float32"}
    assert {layer.dtype_policy.name for layer in model.encoder._flatten_layers()} == {"mixed_bfloat16"}
    assert model.encoder.embedding is model.decoder.embedding
    with pytest.raises(ValueError, match=r"kernel_sizes=\[3, 0\] must be a non-empty list of positive ints"):
        composed("gru", kernel_sizes=[3, 0])
    with pytest.raises(ValueError, match="filters=0 must be a positive int"):
        composed("gru", filters=0)
    with pytest.raises(ValueError, match="activation='tanh' must be one of glu, relu"):
        composed("gru", encoder_params={"activation": "tanh"})
    with pytest.raises(ValueError, match="encoder_params has unknown field.*num_heads.*known: .*kernel_sizes"):
        composed("gru", encoder_params={"num_heads": 2})


def test_cli_trains_a_cnn_encoder_and_translates(tmp_path):
    run_dir = str(tmp_path / "run")
    environment = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT))

    def tflm(*args):
        return subprocess.run([sys.executable, "-m", "tflm", *args], capture_output=True, text=True,
                              env=environment, cwd=ROOT, timeout=300)

    trained = tflm("train", "--task", "translation", "--run-dir", run_dir, "--model", "seq2seq", "--preset", "tiny",
                   "--set", "model.params.encoder=cnn", "--set", "model.params.kernel_sizes=[3,4,5]",
                   "--set", "model.params.filters=32", "--learning-rate", "0.003", "--vocab-size", "300",
                   "--max-train-pairs", "400", "--batch-tokens", "600", "--set", "training.samples=0",
                   "--set", "data.max_target_length=40", "--set", "data.max_source_length=40",
                   "--set", "decoding.max_length=24", "--max-steps", "20", "--quiet")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads(trained.stdout.strip().splitlines()[-1])["step"] == 20
    params = json.load(open(os.path.join(run_dir, "config.json")))["model"]["params"]
    assert params["encoder"] == "cnn" and params["kernel_sizes"] == [3, 4, 5]
    translated = tflm("translate", "--run-dir", run_dir, "Hello.")
    assert translated.returncode == 0, translated.stderr[-3000:]
    assert translated.stdout.count("\n") == 1 and translated.stdout.strip()
