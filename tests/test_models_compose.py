"""Encoder-decoder composition (any encoder with any decoder), and the variable order of the models whose
checkpoints predate it (`tests/test_old_runs.py` restores real old runs; this checks more configurations)."""

import itertools

import keras
import numpy as np
import pytest

from tflm import layers, models

SOURCE = np.array([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]], "int32")
TARGET = np.array([[2, 11, 12, 13], [2, 14, 15, 0]], "int32")
PARTS = ("transformer", "lstm", "gru")


def composed(encoder, decoder, **kwargs):
    params = dict(encoder=encoder, decoder=decoder, hidden_dim=8, intermediate_dim=16, num_heads=2,
                  num_encoder_layers=1, num_decoder_layers=2, dropout=0.0)
    params.update(kwargs)
    return models.ComposedSeq2Seq(40, 30, **params)


@pytest.mark.parametrize("encoder,decoder", list(itertools.product(PARTS, PARTS)))
def test_every_pair_decodes_step_by_step_as_teacher_forcing(encoder, decoder):
    model = composed(encoder, decoder)
    logits = np.asarray(model({"source_ids": SOURCE, "target_ids": TARGET}))
    assert logits.shape == (2, 4, 30) and logits.dtype == np.float32
    encoded = model.encode(SOURCE)
    state = model.initial_state(encoded, max_length=6)
    for t in range(4):
        step_logits, state = model.decode_step(TARGET[:, t], state, t)
        np.testing.assert_allclose(np.asarray(step_logits), logits[:, t], atol=1e-5)
    step_fn, state = model.uncached_decoding(encoded, max_length=6)
    for t in range(4):
        step_logits, state = step_fn(TARGET[:, t], state, t)
        np.testing.assert_allclose(np.asarray(step_logits), logits[:, t], atol=1e-5)
    alone = np.asarray(model({"source_ids": SOURCE[1:, :3], "target_ids": TARGET[1:, :3]}))
    np.testing.assert_allclose(alone[0], logits[1, :3], atol=1e-5)  # padding is inert
    weights = np.asarray(model.cross_attention(SOURCE, TARGET))
    assert weights.shape == (2, 4, 5) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert (weights[1, :, 3:] == 0).all()


def test_recurrent_decoder_starts_from_the_encoder_states_or_zeros():
    after_gru = composed("gru", "lstm")
    state = after_gru.initial_state(after_gru.encode(SOURCE), max_length=4)
    h = after_gru.encode(SOURCE)["states"][0][0]
    np.testing.assert_allclose(np.asarray(state["h"][1]), np.asarray(h))  # decoder layer 1 <- the last encoder layer
    assert not np.asarray(state["c"][0]).any()  # a GRU has no c: the LSTM starts with c = 0
    after_transformer = composed("transformer", "gru")
    state = after_transformer.initial_state(after_transformer.encode(SOURCE), max_length=4)
    assert "c" not in state and not any(np.asarray(h).any() for h in state["h"])


def test_other_memory_widths_are_projected_and_the_states_left_out():
    model = composed("lstm", "gru", decoder_params={"hidden_dim": 6})
    logits = np.asarray(model({"source_ids": SOURCE, "target_ids": TARGET}))
    encoded = model.encode(SOURCE)
    assert encoded["memory"].shape == (2, 5, 6) and "states" not in encoded
    assert model.memory_projection.kernel.shape == (8, 6)
    state = model.initial_state(encoded, max_length=4)
    step_logits, _ = model.decode_step(TARGET[:, 0], state, 0)
    np.testing.assert_allclose(np.asarray(step_logits), logits[:, 0], atol=1e-5)
    assert composed("lstm", "gru").memory_projection is None


def test_unknown_parts_and_fields_are_errors():
    with pytest.raises(ValueError, match="encoder='mamba' must be one of transformer, lstm, gru, cnn"):
        composed("mamba", "gru")
    with pytest.raises(ValueError, match="decoder_params has unknown field.*bidirectional"):
        composed("gru", "gru", decoder_params={"bidirectional": False})
    with pytest.raises(ValueError, match="decoder_params has unknown field.*cell"):
        composed("gru", "gru", decoder_params={"cell": "lstm"})


def test_shared_embeddings_are_one_table_across_a_mixed_pair():
    model = models.ComposedSeq2Seq(40, 40, encoder="gru", decoder="transformer", hidden_dim=8, intermediate_dim=16,
                                   num_heads=2, num_encoder_layers=1, num_decoder_layers=1, share_embeddings=True)
    model.build()
    assert model.encoder.embedding is model.decoder.embedding
    assert sum(w.shape == (40, 8) for w in model.weights) == 1
    with pytest.raises(ValueError, match="one embedding width"):
        models.ComposedSeq2Seq(40, 40, encoder="gru", decoder="transformer", hidden_dim=8, embedding_dim=6,
                               share_embeddings=True)


def test_encoder_decoder_of_instances_round_trips_through_config_and_keras_file(tmp_path):
    model = models.EncoderDecoder(
        layers.TransformerEncoder(40, hidden_dim=8, intermediate_dim=16, num_heads=2, num_layers=1, dropout=0.0),
        layers.RNNAttentionDecoder(30, embedding_dim=6, hidden_dim=8, num_layers=1, cell="gru", dropout=0.0),
    )
    logits = np.asarray(model({"source_ids": SOURCE, "target_ids": TARGET}))
    clone = models.EncoderDecoder.from_config(model.get_config())
    clone.build()
    assert clone.get_config() == model.get_config()
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    path = str(tmp_path / "composed.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded({"source_ids": SOURCE, "target_ids": TARGET})), logits)


@pytest.mark.parametrize("model_type", ["seq2seq", "gru"])
def test_new_model_types_build_from_the_registry_and_presets(model_type):
    cls = models.get_model_class(model_type)
    params = {**models.preset_params(model_type, "tiny"), "hidden_dim": 8, "embedding_dim": 8}
    if model_type == "seq2seq":
        params.update(encoder="gru", decoder="transformer", intermediate_dim=16)
    model = cls(40, 30, dtype="float32", **params)
    model.build()
    assert isinstance(model, models.Seq2Seq) and set(models.PRESETS[model_type]) == {"tiny", "small"}
    assert type(model).from_config(model.get_config()).get_config() == model.get_config()


def test_decode_returns_logits_alone():
    model = models.TransformerSeq2Seq(40, 30, hidden_dim=8, intermediate_dim=16, num_heads=2, num_encoder_layers=1,
                                      num_decoder_layers=1)
    logits = model.decode(TARGET, model.encode(SOURCE))
    assert not isinstance(logits, tuple) and logits.shape == (2, 4, 30)


# ---------------------------------------------------------------------------------- old variable order

# model.variables of each configuration as made by the code before composition (commit 5e6ab39): shapes in
# order; "*" marks a variable outside model.weights (a dropout's seed), "~" a non-trainable weight. The values:
# tests/test_old_runs.py loads old runs and compares each variable's sum and norm with the old code's.
OLD_VARIABLES = {
    "transformer": (
        "30x16 40x16 2* 16x16 16 16x32 32 16x16 16 2* 16 16 16 16 16x32 32 32x16 16 2* 16x16 16 16x32 32 "
        "16x16 16 2* 16 16 16 16 16x32 32 32x16 16 2* 16x16 16 16x32 32 16x16 16 2* 16 16 16x16 16 16x32 32 "
        "16x16 16 2* 16 16 16 16 16x32 32 32x16 16 2* 16x16 16 16x32 32 16x16 16 2* 16 16 16x16 16 16x32 32 "
        "16x16 16 2* 16 16 16 16 16x32 32 32x16 16 2* 16 16 16 16 "
    ),
    "transformer_learned_shared": (
        "40x16 16x40 32x16 2* 16x16 16 16x32 32 16x16 16 2* 16 16 16 16 16x24 24 24x16 16 2* 16x16 16 16x32 "
        "32 16x16 16 2* 16 16 16x16 16 16x32 32 16x16 16 2* 16 16 16 16 16x24 24 24x16 16 2* 16x16 16 16x32 "
        "32 16x16 16 2* 16 16 16x16 16 16x32 32 16x16 16 2* 16 16 16 16 16x24 24 24x16 16 2* "
    ),
    "lstm": (
        "40x8 30x8 2* 8x24 6x24 24 2* 8x24 6x24 24 2* 12x24 6x24 24 2* 12x24 6x24 24 2* 2* 20x48 12x48 48 2* "
        "12x48 12x48 48 2* 12x12 12x12 12 12x1 24x12 2* 12x30 30 "
    ),
    "lstm_shared": "40x8 2* 8x48 12x48 48 2* 2* 8x48 12x48 48 2* 24x12 2* 12x40 40 ",
    "lstm_general": (
        "40x8 30x8 2* 8x24 6x24 24 2* 8x24 6x24 24 2* 2* 20x48 12x48 48 2* 12x48 12x48 48 2* 12x12 24x12 2* "
        "12x30 30 "
    ),
    "gpt": (
        "40x16 512x16 2* 16x16 16 16x32 32 16x16 16 2* 16 16 16 16 16x32 32 32x16 16 2* 16x16 16 16x32 32 "
        "16x16 16 2* 16 16 16 16 16x32 32 32x16 16 2* 16 16 "
    ),
    "gpt_rotary": "40x16 2* 16x16 16 16x32 32 16x16 16 2* 16 16 16 16 16x24 24 24x16 16 2* 16 16 ",
    "transformer_xl": (
        "40x16 2* 2x1x8 2x1x8 16x16 16x32 16x16 16x16 2* 16 16 16 16 16x32 32 32x16 16 2* 2x1x8 2x1x8 16x16 "
        "16x32 16x16 16x16 2* 16 16 16 16 16x32 32 32x16 16 2* 16 16 "
    ),
}
CONFIGURATIONS = {
    "transformer": ("transformer", dict(hidden_dim=16, intermediate_dim=32, num_heads=2, num_encoder_layers=2,
                                        num_decoder_layers=2)),
    "transformer_learned_shared": ("transformer", dict(
        hidden_dim=16, intermediate_dim=24, num_heads=2, num_encoder_layers=1, num_decoder_layers=2,
        normalize_first=False, position_embedding="learned", max_sequence_length=32, share_embeddings=True,
        tie_output_embeddings=False, dropout=0.1)),
    "lstm": ("lstm", dict(embedding_dim=8, hidden_dim=12, num_encoder_layers=2, num_decoder_layers=2,
                          attention="bahdanau")),
    "lstm_shared": ("lstm", dict(embedding_dim=8, hidden_dim=12, num_encoder_layers=1, num_decoder_layers=1,
                                 bidirectional=False, attention="luong_dot", input_feeding=False,
                                 share_embeddings=True)),
    "lstm_general": ("lstm", dict(embedding_dim=8, hidden_dim=12, num_encoder_layers=1, num_decoder_layers=2,
                                  attention="luong_general")),
    "gpt": ("gpt", dict(hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=2)),
    "gpt_rotary": ("gpt", dict(hidden_dim=16, intermediate_dim=24, num_heads=2, num_layers=1,
                               position_embedding="rotary")),
    "transformer_xl": ("transformer_xl", dict(hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=2,
                                              memory_length=8)),
}


def _variables(model):
    weights = {id(w) for w in model.weights}
    tokens = []
    for v in model.variables:
        token = "x".join(str(d) for d in v.shape)
        tokens.append(token + ("*" if id(v) not in weights else "" if v.trainable else "~"))
    return " ".join(tokens) + " "


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_variables_keep_the_order_of_the_models_before_composition(name):
    model_type, params = CONFIGURATIONS[name]
    cls = models.get_model_class(model_type)
    if model_type in ("gpt", "transformer_xl"):
        model = cls(40, **params)
    else:
        model = cls(40, 40 if params.get("share_embeddings") else 30, **params)
    model.build()
    assert _variables(model) == OLD_VARIABLES[name]


def test_language_models_answer_for_their_differences():
    gpt = models.GPT(40, hidden_dim=8, intermediate_dim=16, num_heads=2, num_layers=1)
    xl = models.TransformerXL(40, hidden_dim=8, intermediate_dim=16, num_heads=2, num_layers=1, memory_length=4)
    no_memory = models.TransformerXL(40, hidden_dim=8, intermediate_dim=16, num_heads=2, num_layers=1,
                                     memory_length=0)
    assert (gpt.reads_contiguous_streams, xl.reads_contiguous_streams, no_memory.reads_contiguous_streams) == \
        (False, True, False)
    assert (gpt.supports_prefill, xl.supports_prefill) == (True, False) and not hasattr(xl, "prefill")
    hidden, memory = gpt.forward_hidden(SOURCE)
    assert hidden.shape == (2, 5, 8) and memory is None
    np.testing.assert_allclose(np.asarray(gpt.output_logits(hidden)), np.asarray(gpt({"token_ids": SOURCE})))
    gpt.enable_memory_state(2)
    gpt.reset_memory()
    assert gpt.carried_state_variables() == []
    hidden, memory = xl.forward_hidden(SOURCE)
    assert hidden.shape == (2, 5, 8) and [m.shape for m in memory] == [(2, 4, 8)]
