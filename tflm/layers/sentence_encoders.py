"""Sentence encoders for classification: embedded tokens in, one vector per text (or one per token) out.

Every sentence encoder is a Keras layer called as `encoder(embedded, padding_mask=mask, training=...)`:

- `embedded`: float `(batch, length, dim)`, the token embeddings (padding positions are zero);
- `padding_mask`: bool `(batch, length)`, False on padding;
- returns float `(batch, features)` (a pooled vector, as `KimCNN` gives), or `(batch, length, features)`, which
  the classifier pools with `SequencePooling` (max, mean or attention over the real tokens only).

So a user's own encoder is any layer with that call, e.g. (`model.type: mymodule:MeanEncoder`):

    class MeanEncoder(keras.layers.Layer):
        def __init__(self, hidden_dim=64, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(hidden_dim, activation="tanh")

        def call(self, embedded, padding_mask=None, training=False):
            return self.dense(embedded)  # (batch, length, hidden_dim): the classifier pools it

Padding never changes an encoder's output: a text alone and the same text padded in a batch with longer ones
give the same vector (tests/test_classification.py checks it for every built-in encoder).
"""

import keras
from keras import ops
from keras_hub.layers import SinePositionEncoding

from tflm.layers.lstm_encoder import RecurrentStack
from tflm.layers.masking import masked_softmax
from tflm.layers.transformer_encoder_block import TransformerEncoderBlock

POOLINGS = ("max", "mean", "attention")


def _zero_padding(x, padding_mask):
    if padding_mask is None:
        return x
    return x * ops.expand_dims(ops.cast(padding_mask, x.dtype), -1)


def masked_max(x, padding_mask):
    """The maximum over the real positions of `x` `(batch, length, dim)`; 0 for a row without any."""
    if padding_mask is None:
        return ops.max(x, axis=1)
    mask = ops.expand_dims(ops.cast(padding_mask, "bool"), -1)
    lowest = ops.cast(-65000.0 if x.dtype == "float16" else -1e9, x.dtype)
    pooled = ops.max(ops.where(mask, x, lowest), axis=1)
    any_real = ops.any(mask, axis=1)  # (batch, 1)
    return ops.where(any_real, pooled, ops.zeros_like(pooled))


def masked_mean(x, padding_mask):
    """The mean over the real positions of `x` `(batch, length, dim)`; 0 for a row without any."""
    if padding_mask is None:
        return ops.mean(x, axis=1)
    weights = ops.expand_dims(ops.cast(padding_mask, x.dtype), -1)
    return ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, x.dtype))


@keras.saving.register_keras_serializable(package="tflm")
class SequencePooling(keras.layers.Layer):
    """One vector per text from one per token: `"max"`, `"mean"` or `"attention"` (a learned query scores each
    token, Yang et al. 2016), over the real tokens only.

    Example:
    >>> pooling = SequencePooling("attention")
    >>> pooling(np.random.rand(2, 5, 8).astype("float32"), padding_mask=np.array([[1] * 5, [1, 1, 0, 0, 0]], bool)).shape
    TensorShape([2, 8])
    """

    def __init__(self, mode="max", attention_dim=64, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLINGS:
            raise ValueError(f"pooling={mode!r} must be one of {', '.join(POOLINGS)}.")
        self.mode, self.attention_dim = mode, attention_dim
        if mode == "attention":
            self.projection = keras.layers.Dense(attention_dim, activation="tanh", dtype=self.dtype_policy,
                                                 name="attention_projection")
            self.query = keras.layers.Dense(1, use_bias=False, dtype=self.dtype_policy, name="attention_query")

    def build(self, input_shape):
        if self.mode == "attention":
            self.projection.build(input_shape)
            self.query.build(tuple(input_shape[:-1]) + (self.attention_dim,))
        self.built = True

    def call(self, x, padding_mask=None):
        if self.mode == "max":
            return masked_max(x, padding_mask)
        if self.mode == "mean":
            return masked_mean(x, padding_mask)
        scores = ops.squeeze(self.query(self.projection(x)), -1)  # (batch, length)
        mask = ops.ones_like(scores, dtype="bool") if padding_mask is None else ops.cast(padding_mask, "bool")
        weights = masked_softmax(ops.cast(scores, "float32"), mask)  # 0 on padding (and for an empty row)
        return ops.einsum("bl,bld->bd", ops.cast(weights, x.dtype), x)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "attention_dim": self.attention_dim}


@keras.saving.register_keras_serializable(package="tflm")
class KimCNN(keras.layers.Layer):
    """Kim (2014)'s CNN for sentence classification: for each filter width, `filters` feature maps of a ReLU
    convolution over time, max-over-time pooled, concatenated (300 features with the defaults).

    Padding never changes the result: padded positions are zeroed before the convolutions ('same' padding
    reads zeros beyond a text's end whether or not other texts of the batch are longer), and the maximum is
    taken over the real positions only. A text shorter than a filter gets that filter's windows over its
    tokens and zeros (Kim pads short sentences with zero vectors the same way).

    Args:
        filter_widths: tuple of int. The convolution widths (Kim: 3, 4, 5).
        filters: int. Feature maps per width (Kim: 100).
        activation: the convolutions' activation.
    Example:
    >>> KimCNN()(np.random.rand(2, 9, 50).astype("float32")).shape
    TensorShape([2, 300])
    """

    pools = True  # one vector per text (not a state per token: no tagger reads it)

    def __init__(self, filter_widths=(3, 4, 5), filters=100, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.filter_widths, self.filters, self.activation = tuple(filter_widths), filters, activation
        self.convolutions = [keras.layers.Conv1D(filters, width, padding="same", activation=activation,
                                                 dtype=self.dtype_policy, name=f"conv_{width}")
                             for width in self.filter_widths]

    @property
    def output_dim(self):
        return self.filters * len(self.filter_widths)

    def build(self, input_shape):
        for convolution in self.convolutions:
            convolution.build(input_shape)
        self.built = True

    def call(self, embedded, padding_mask=None, training=False):
        embedded = _zero_padding(embedded, padding_mask)
        return ops.concatenate([masked_max(convolution(embedded), padding_mask)
                                for convolution in self.convolutions], axis=-1)

    def get_config(self):
        return {**super().get_config(), "filter_widths": list(self.filter_widths), "filters": self.filters,
                "activation": self.activation}


@keras.saving.register_keras_serializable(package="tflm")
class RecurrentSentenceEncoder(keras.layers.Layer):
    """A bidirectional LSTM or GRU stack (`RecurrentStack`: the backward direction starts at each text's last
    real token, so padding changes nothing); one output per token, which the classifier pools.

    Args:
        hidden_dim: int. Output size (both directions together).
        num_layers: int.
        cell: "lstm" or "gru".
        bidirectional: bool.
        dropout: float, between layers.
    """

    def __init__(self, hidden_dim=256, num_layers=1, cell="lstm", bidirectional=True, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim, self.num_layers, self.cell = hidden_dim, num_layers, cell
        self.bidirectional, self.dropout = bidirectional, dropout
        self.stack = RecurrentStack(hidden_dim, num_layers, bidirectional=bidirectional, cell=cell, dropout=dropout,
                                    dtype=self.dtype_policy, name="stack")

    def build(self, input_shape):
        self.stack.build(input_shape)
        self.built = True

    def call(self, embedded, padding_mask=None, training=False):
        outputs, _ = self.stack(embedded, padding_mask=padding_mask, training=training)
        return outputs

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "num_layers": self.num_layers,
                "cell": self.cell, "bidirectional": self.bidirectional, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="tflm")
class TransformerSentenceEncoder(keras.layers.Layer):
    """tflm's Transformer encoder blocks over the embedded text (projected to `hidden_dim`, with sinusoidal
    positions); one output per token, which the classifier pools (mean by default).

    Args:
        hidden_dim, intermediate_dim, num_heads, num_layers, dropout: the blocks' sizes.
        normalize_first: bool. Pre-LN blocks (a final layer norm follows them).
    """

    def __init__(self, hidden_dim=128, intermediate_dim=512, num_heads=4, num_layers=2, dropout=0.1,
                 normalize_first=True, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim, self.intermediate_dim, self.num_heads = hidden_dim, intermediate_dim, num_heads
        self.num_layers, self.dropout, self.normalize_first = num_layers, dropout, normalize_first
        self.projection = keras.layers.Dense(hidden_dim, dtype=self.dtype_policy, name="input_projection")
        self.positions = SinePositionEncoding(dtype=self.dtype_policy, name="positions")
        self.input_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.blocks = [TransformerEncoderBlock(intermediate_dim, num_heads, dropout=dropout,
                                               normalize_first=normalize_first, dtype=self.dtype_policy,
                                               name=f"block_{index}") for index in range(num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="final_norm")

    def build(self, input_shape):
        self.projection.build(input_shape)
        shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)
        self.built = True

    def call(self, embedded, padding_mask=None, training=False):
        x = self.projection(embedded)
        x = self.input_dropout(x + self.positions(x), training=training)
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        if self.normalize_first:
            x = self.final_norm(x)
        return _zero_padding(x, padding_mask)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads, "num_layers": self.num_layers, "dropout": self.dropout,
                "normalize_first": self.normalize_first}


# The built-in sentence encoders by name (`model.type` of a classification run): (class, fixed arguments,
# the pooling of its per-token outputs by default).
SENTENCE_ENCODERS = {
    "cnn": (KimCNN, {}, None),
    "bilstm": (RecurrentSentenceEncoder, {"cell": "lstm"}, "max"),
    "bigru": (RecurrentSentenceEncoder, {"cell": "gru"}, "max"),
    "transformer": (TransformerSentenceEncoder, {}, "mean"),
}
