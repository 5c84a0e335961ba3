"""`get_config` round trips that can notice an argument left out: every constructor argument of every layer and
model class is in its config, and a copy rebuilt from the config (with non-default arguments), given the
original's weights, computes exactly what the original does."""

import inspect

import keras
import numpy as np
import pytest

from tflm import layers, models

rng = np.random.default_rng(0)
X = rng.normal(size=(2, 5, 8)).astype("float32")
MEMORY = rng.normal(size=(2, 3, 8)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
IDS = np.array([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]], "int32")
TARGETS = np.array([[2, 11, 12, 13], [2, 14, 15, 0]], "int32")


def _first(outputs):
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _decoder_outputs(decoder):
    state = decoder.initial_state(X, MASK)
    return decoder(X[:, :4], state)[0]


def _encoded(width):
    return {"memory": rng.normal(size=(2, 5, width)).astype("float32"), "memory_mask": MASK}


ENCODED_8, ENCODED_16 = _encoded(8), _encoded(16)
LOGITS_40 = rng.normal(size=(2, 4, 40)).astype("float32") * 3
SEQ2SEQ_INPUTS = {"source_ids": IDS, "target_ids": TARGETS}


# (an instance with non-default arguments, how to call it): every public layer and model class
CASES = {
    "KimCNN": (lambda: layers.KimCNN(filter_widths=[2, 3], filters=4, activation="tanh"),
               lambda m: m(X, padding_mask=MASK)),
    "RecurrentSentenceEncoder": (lambda: layers.RecurrentSentenceEncoder(8, num_layers=2, cell="gru", dropout=0.1),
                                 lambda m: m(X, padding_mask=MASK)),
    "TransformerSentenceEncoder": (lambda: layers.TransformerSentenceEncoder(8, 16, num_heads=2, num_layers=1,
                                                                             dropout=0.1, normalize_first=False),
                                   lambda m: m(X, padding_mask=MASK)),
    "SequencePooling": (lambda: layers.SequencePooling("attention", attention_dim=5),
                        lambda m: m(X, padding_mask=MASK)),
    "AdditiveAttention": (lambda: layers.AdditiveAttention(hidden_dim=6), lambda m: m(X[:, :3], X, MASK)[0]),
    "LuongAttention": (lambda: layers.LuongAttention("general", scale=True), lambda m: m(X[:, :3], X, MASK)[0]),
    "LSTMEncoder": (lambda: layers.LSTMEncoder(8, 2, bidirectional=True, dropout=0.1),
                    lambda m: m(X, MASK)[0]),
    "RecurrentStack": (lambda: layers.RecurrentStack(8, 2, bidirectional=True, cell="gru", dropout=0.1),
                       lambda m: m(X, MASK)[0]),
    "RNNEncoder": (lambda: layers.RNNEncoder(40, embedding_dim=6, hidden_dim=8, num_layers=2, bidirectional=False,
                                             cell="gru", dropout=0.1), lambda m: m(IDS)["memory"]),
    "RNNAttentionDecoder": (lambda: layers.RNNAttentionDecoder(40, embedding_dim=6, hidden_dim=8, num_layers=2,
                                                               attention="bahdanau", input_feeding=False, cell="gru",
                                                               dropout=0.1), lambda m: m(TARGETS, ENCODED_8)),
    "TransformerEncoder": (lambda: layers.TransformerEncoder(40, hidden_dim=16, intermediate_dim=24, num_heads=2,
                                                             num_layers=1, dropout=0.1, normalize_first=False,
                                                             position_embedding="learned", max_sequence_length=32),
                           lambda m: m(IDS)["memory"]),
    "ConvBlock": (lambda: layers.ConvBlock([2, 3], filters=4, activation="relu", dropout=0.1),
                  lambda m: m(X, padding_mask=MASK)),
    "ConvEncoder": (lambda: layers.ConvEncoder(40, hidden_dim=8, num_layers=2, kernel_sizes=[3, 4, 5], filters=4,
                                               activation="relu", dropout=0.1, position_embedding="learned",
                                               max_sequence_length=32), lambda m: m(IDS)["memory"]),
    "TransformerDecoder": (lambda: layers.TransformerDecoder(40, hidden_dim=16, intermediate_dim=24, num_heads=2,
                                                             num_layers=1, dropout=0.1, normalize_first=False,
                                                             position_embedding="learned", max_sequence_length=32,
                                                             tie_output_embeddings=False),
                           lambda m: m(TARGETS, ENCODED_16)),
    "CopyAttention": (lambda: layers.CopyAttention(6, coverage_loss_weight=0.5),
                      lambda m: m(X[:, :4], X[:, :4, :5], LOGITS_40, m.static_state(
                          {"memory": X, "memory_mask": MASK, "source_ids": IDS}))),
    "AttentionDecoder": (lambda: layers.AttentionDecoder(8, num_layers=2, attention="bahdanau", input_feeding=False,
                                                         dropout=0.1), _decoder_outputs),
    "TokenEmbedding": (lambda: layers.TokenEmbedding(50, 8, scale=True), lambda m: m(IDS)),
    "PretrainedEmbedding": (lambda: layers.PretrainedEmbedding(50, 8, mode="multichannel", merge="stack",
                                                               mask_zero=True, embeddings_initializer="normal"),
                            lambda m: m(IDS)),
    "FeedForward": (lambda: layers.FeedForward(12, activation="gelu"), lambda m: m(X)),
    "MultiHeadAttention": (lambda: layers.MultiHeadAttention(2, 4, dropout=0.1, rotary=True, max_wavelength=500),
                           lambda m: _first(m(X))),
    "RelativeMultiHeadAttention": (lambda: layers.RelativeMultiHeadAttention(2, 4, dropout=0.1),
                                   lambda m: m(X, np.concatenate([MEMORY, X], 1), np.arange(3, 8), np.arange(8),
                                               memory_length=3)),
    "TransformerXLBlock": (lambda: layers.TransformerXLBlock(16, 2, dropout=0.1, activation="relu",
                                                             layer_norm_epsilon=1e-3), lambda m: m(X, MEMORY)),
    "TransformerEncoderBlock": (lambda: layers.TransformerEncoderBlock(16, 2, dropout=0.1, activation="gelu",
                                                                       normalize_first=False, layer_norm_epsilon=1e-3),
                                lambda m: m(X, MASK)),
    "TransformerDecoderBlock": (lambda: layers.TransformerDecoderBlock(16, 2, dropout=0.1, activation="gelu",
                                                                       normalize_first=False, cross_attention=True,
                                                                       rotary=True, layer_norm_epsilon=1e-3),
                                lambda m: _first(m(X[:, :4], X, MASK))),
    "LSTMAttentionSeq2Seq": (lambda: models.LSTMAttentionSeq2Seq(40, 40, embedding_dim=8, hidden_dim=12,
                                                                 num_encoder_layers=2, num_decoder_layers=1,
                                                                 bidirectional=False, attention="luong_dot",
                                                                 input_feeding=False, dropout=0.1,
                                                                 share_embeddings=True, copy_attention=True,
                                                                 coverage_loss_weight=0.5),
                             lambda m: m({"source_ids": IDS, "target_ids": TARGETS})),
    "TransformerSeq2Seq": (lambda: models.TransformerSeq2Seq(40, 40, hidden_dim=16, intermediate_dim=24, num_heads=2,
                                                             num_encoder_layers=1, num_decoder_layers=2, dropout=0.1,
                                                             normalize_first=False, position_embedding="learned",
                                                             max_sequence_length=32, share_embeddings=True,
                                                             tie_output_embeddings=False, copy_attention=True,
                                                             coverage_loss_weight=0.5),
                           lambda m: m({"source_ids": IDS, "target_ids": TARGETS})),
    "GRUAttentionSeq2Seq": (lambda: models.GRUAttentionSeq2Seq(40, 40, embedding_dim=8, hidden_dim=12,
                                                               num_encoder_layers=1, num_decoder_layers=2,
                                                               bidirectional=False, attention="bahdanau",
                                                               input_feeding=False, dropout=0.1, share_embeddings=True),
                            lambda m: m(SEQ2SEQ_INPUTS)),
    "EncoderDecoder": (lambda: models.EncoderDecoder(
        layers.RNNEncoder(40, embedding_dim=16, hidden_dim=8, num_layers=1, cell="gru"),
        layers.TransformerDecoder(40, hidden_dim=16, intermediate_dim=24, num_heads=2, num_layers=1),
        share_embeddings=True), lambda m: m(SEQ2SEQ_INPUTS)),
    "ComposedSeq2Seq": (lambda: models.ComposedSeq2Seq(40, 40, encoder="transformer", decoder="gru", hidden_dim=16,
                                                       embedding_dim=16, intermediate_dim=24, num_heads=2,
                                                       num_encoder_layers=1, num_decoder_layers=1, dropout=0.1,
                                                       share_embeddings=True,
                                                       encoder_params={"position_embedding": "learned"},
                                                       decoder_params={"hidden_dim": 12, "attention": "bahdanau"}),
                        lambda m: m(SEQ2SEQ_INPUTS)),
    "GPT": (lambda: models.GPT(40, hidden_dim=16, intermediate_dim=24, num_heads=2, num_layers=1, dropout=0.1,
                               max_sequence_length=32, position_embedding="rotary", activation="relu"),
            lambda m: m({"token_ids": IDS})),
    "TransformerXL": (lambda: models.TransformerXL(40, hidden_dim=16, intermediate_dim=24, num_heads=2, num_layers=1,
                                                   dropout=0.1, memory_length=3, activation="relu"),
                      lambda m: m.forward(IDS, [MEMORY[..., :1].repeat(16, -1)])[0]),
}


def _public_classes():
    found = set()
    for module in (layers, models):
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, keras.layers.Layer) and \
                    value.__module__.startswith("tflm.") and not inspect.isabstract(value):
                found.add(name)
    return found


def test_every_public_layer_and_model_class_has_a_case():
    abstract = {"Seq2Seq", "LanguageModel", "Encoder", "Decoder"}  # interfaces: their subclasses are the cases
    assert _public_classes() - abstract == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_names_every_argument_and_rebuilds_the_same_function(name):
    make, run = CASES[name]
    keras.utils.set_random_seed(0)
    original = make()
    expected = np.asarray(run(original))
    config = original.get_config()
    arguments = [p for p, spec in inspect.signature(type(original).__init__).parameters.items()
                 if p != "self" and spec.kind not in (spec.VAR_KEYWORD, spec.VAR_POSITIONAL)]
    assert not [a for a in arguments if a not in config], f"{name}.get_config() leaves out constructor arguments"
    keras.utils.set_random_seed(1)  # other initial weights: all that matters must come from the config
    clone = type(original).from_config(config)
    run(clone)  # builds it
    assert clone.get_config() == config
    assert [w.shape for w in clone.weights] == [w.shape for w in original.weights]
    for target, source in zip(clone.weights, original.weights):
        target.assign(source)
    np.testing.assert_allclose(np.asarray(run(clone)), expected, rtol=1e-6, atol=1e-6)
