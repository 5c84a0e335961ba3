"""Copy attention decoded step by step: for the Transformer and the recurrent attention decoders with copy
attention, `initial_state` + `decode_step` gives the teacher-forced log-probabilities at every position; and a
tiny LSTM pointer-generator (the README's `--model lstm --set model.params.copy_attention=true`) learns to
copy a word no target showed it, which greedy search and beam search then produce."""

import numpy as np
import pytest
import tensorflow as tf

from tflm.decoding import SearchSettings, beam_search, greedy_search
from tflm.models import GRUAttentionSeq2Seq, LSTMAttentionSeq2Seq, TransformerSeq2Seq
from tflm.text import EOS_ID
from tflm.training.losses import token_cross_entropy

# the same token (7, 9) at several source positions: their copy weights add up
SOURCE = np.array([[5, 7, 9, 7, 8, EOS_ID], [9, 10, 9, EOS_ID, 0, 0]], "int32")
TARGET = np.array([[2, 7, 12, 9, 7], [2, 14, 9, 10, 0]], "int32")


def copy_model(kind, **kwargs):
    if kind == "transformer":
        return TransformerSeq2Seq(40, 40, hidden_dim=16, intermediate_dim=32, num_heads=2, num_encoder_layers=2,
                                  num_decoder_layers=2, dropout=0.0, copy_attention=True, **kwargs)
    cls = LSTMAttentionSeq2Seq if kind == "lstm" else GRUAttentionSeq2Seq
    return cls(40, 40, embedding_dim=8, hidden_dim=12, num_encoder_layers=2, num_decoder_layers=2, dropout=0.0,
               copy_attention=True, **kwargs)


def step_by_step(model, source_ids, target_ids):
    state = model.initial_state(model.encode(source_ids), max_length=8)
    outputs = []
    for t in range(target_ids.shape[1]):
        log_probs, state = model.decode_step(target_ids[:, t], state, t)
        outputs.append(np.asarray(log_probs))
    return np.stack(outputs, 1)


@pytest.mark.parametrize("kind, kwargs", [("transformer", {}), ("transformer", dict(share_embeddings=True)),
                                          ("lstm", dict(attention="bahdanau")),
                                          ("lstm", dict(attention="luong_general", input_feeding=False)),
                                          ("gru", dict(attention="luong_dot"))])
def test_copy_decode_step_matches_teacher_forcing(kind, kwargs):
    model = copy_model(kind, **kwargs)
    teacher = np.asarray(model({"source_ids": SOURCE, "target_ids": TARGET}))
    assert teacher.shape == (2, 5, 40)
    np.testing.assert_allclose(np.exp(teacher).sum(-1), 1.0, atol=1e-5)  # log-probabilities of the mixture
    steps = step_by_step(model, SOURCE, TARGET)
    real = TARGET != 0
    np.testing.assert_allclose(steps[real], teacher[real], atol=1e-5)
    # the control: the copy part matters, so a step whose copy state holds the other row's source (the same
    # memory, another `source_ids`) gives other log-probabilities: the comparison above could fail
    state = model.initial_state(model.encode(SOURCE), max_length=8)
    copy_static = state["static"]["copy"]
    state["static"] = dict(state["static"], copy=dict(copy_static, source_ids=SOURCE[::-1].copy()))
    swapped, _ = model.decode_step(TARGET[:, 0], state, 0)
    assert np.abs(np.asarray(swapped) - teacher[:, 0]).max() > 1e-3


def test_copy_decode_step_inside_a_tf_function():
    model = copy_model("lstm", attention="bahdanau")
    teacher = np.asarray(model({"source_ids": SOURCE, "target_ids": TARGET}))

    @tf.function
    def first_two(source_ids, target_ids):
        state = model.initial_state(model.encode(source_ids), max_length=8)
        first, state = model.decode_step(target_ids[:, 0], state, 0)
        second, _ = model.decode_step(target_ids[:, 1], state, 1)
        return tf.stack([first, second], 1)

    np.testing.assert_allclose(np.asarray(first_two(SOURCE, TARGET)), teacher[:, :2], atol=1e-5)


# ------------------------------------------------------------------------ an LSTM pointer-generator that copies


def test_an_lstm_pointer_generator_decodes_a_word_it_never_saw_in_a_target():
    from test_summarization import TRAINING_WORDS, _copy_batch

    tf.keras.utils.set_random_seed(1)
    model = LSTMAttentionSeq2Seq(260, 260, embedding_dim=32, hidden_dim=64, num_encoder_layers=1,
                                 num_decoder_layers=1, attention="luong_general", dropout=0.0,
                                 share_embeddings=True, copy_attention=True)
    optimizer = tf.keras.optimizers.Adam(1e-2)
    rng = np.random.default_rng(0)

    @tf.function
    def train_step(inputs, labels):
        with tf.GradientTape() as tape:
            loss, _, count = token_cross_entropy(labels, model(inputs, training=True))
            loss = loss / count
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    for _ in range(60):
        train_step(*_copy_batch(rng, TRAINING_WORDS))
    # words 210..259 are in no target and in no source of training
    inputs, labels = _copy_batch(np.random.default_rng(1), np.arange(210, 260), size=64)
    source_ids = tf.constant(inputs["source_ids"])
    settings = dict(max_length=4, length_penalty=0.0)
    state = model.initial_state(model.encode(source_ids), max_length=4)
    greedy = greedy_search(model.decode_step, state, 64, SearchSettings(**settings)).token_ids.numpy()[:, 0]
    state = model.initial_state(model.encode(source_ids), max_length=4)
    beam = beam_search(model.decode_step, state, 64, SearchSettings(beam_size=3, **settings)).token_ids.numpy()[:, 0]
    for name, tokens in (("greedy", greedy), ("beam", beam)):
        copied = (tokens[:, 0] == labels[:, 0]).mean()
        assert copied >= 0.8, (name, copied)  # measured: 1.0 for both (60 steps, 2-core CPU)
        assert (tokens[:, 1] == EOS_ID).mean() >= 0.8, (name, tokens[:8])  # the word, then the end
    # the control: every copied word is outside what the generator was ever trained to emit
    assert not set(labels[:, 0]) & set(TRAINING_WORDS)
