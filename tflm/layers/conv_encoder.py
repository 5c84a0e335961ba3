"""A convolutional encoder for the encoder-decoder models (`tflm.models.EncoderDecoder`): 1-D convolutions over
time of several widths per layer, in the spirit of Gehring et al. (2017) and Kim (2014)."""

import keras
from keras import ops

from tflm.layers.encoder_decoder import Encoder
from tflm.layers.masking import padding_mask
from tflm.layers.transformer_parts import POSITION_EMBEDDINGS, _TransformerStack

CONV_ACTIVATIONS = ("glu", "relu")


def _check_sizes(kernel_sizes, filters, activation):
    """The convolution settings as stored (kernel widths a list of ints), or a ValueError naming the field."""
    if isinstance(kernel_sizes, int):
        kernel_sizes = [kernel_sizes]
    kernel_sizes = list(kernel_sizes or [])
    if not kernel_sizes or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in kernel_sizes):
        raise ValueError(f"kernel_sizes={kernel_sizes!r} must be a non-empty list of positive ints (convolution "
                         f"widths), e.g. [3, 5] or Kim's [3, 4, 5].")
    if not isinstance(filters, int) or isinstance(filters, bool) or filters <= 0:
        raise ValueError(f"filters={filters!r} must be a positive int (feature maps per kernel width), e.g. 128.")
    if activation not in CONV_ACTIVATIONS:
        raise ValueError(f"activation={activation!r} must be one of {', '.join(CONV_ACTIVATIONS)}.")
    return kernel_sizes


@keras.saving.register_keras_serializable(package="tflm")
class ConvBlock(keras.layers.Layer):
    """One convolutional layer of `ConvEncoder`: 'same' 1-D convolutions of each kernel width over the
    sequence, each with `filters` maps and a gated (GLU) or ReLU activation, concatenated, projected back to the
    input width, dropout, a residual connection and a layer norm (post-LN).

    The padded positions are zeroed before the convolutions, so a real position reads zeros beyond its
    sentence whatever the padding holds, as it reads the convolution's own zero padding when unpadded: the
    outputs at real positions never depend on the padding.

    Args:
        kernel_sizes: list of int. Convolution widths.
        filters: int. Feature maps per width.
        activation: `"glu"` (a convolution of twice the maps, one half gating the other with a sigmoid) or
            `"relu"`.
        dropout: float. On the projected convolution outputs.
    Call arguments:
        x: float `(batch, length, width)`.
        padding_mask: bool `(batch, length)`, False on padding, or None.
        training: bool.
    Returns:
        float `(batch, length, width)`.
    Example:
    >>> block = ConvBlock([3, 5], filters=8)
    >>> block(np.random.rand(2, 6, 16).astype("float32"), padding_mask=np.ones((2, 6), bool)).shape
    TensorShape([2, 6, 16])
    """

    def __init__(self, kernel_sizes=(3, 5), filters=128, activation="glu", dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.kernel_sizes = _check_sizes(kernel_sizes, filters, activation)
        self.filters = filters
        self.activation = activation
        self.dropout = dropout

    def build(self, inputs_shape, *args, **kwargs):
        policy = self.dtype_policy
        channels = 2 * self.filters if self.activation == "glu" else self.filters
        self.convolutions = []
        for i, width in enumerate(self.kernel_sizes):
            convolution = keras.layers.Conv1D(channels, width, padding="same", dtype=policy, name=f"conv_{i}")
            convolution.build(inputs_shape)
            self.convolutions.append(convolution)
        self.projection = keras.layers.Dense(inputs_shape[-1], dtype=policy, name="projection")
        self.projection.build(tuple(inputs_shape[:-1]) + (self.filters * len(self.kernel_sizes),))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="norm")
        self.norm.build(inputs_shape)
        self.built = True

    def call(self, x, padding_mask=None, training=False):
        h = x if padding_mask is None else x * ops.cast(padding_mask, x.dtype)[..., None]
        outputs = []
        for convolution in self.convolutions:
            y = convolution(h)
            if self.activation == "glu":
                value, gate = ops.split(y, 2, axis=-1)
                y = value * ops.sigmoid(gate)
            else:
                y = ops.relu(y)
            outputs.append(y)
        h = outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)
        h = self.dropout_layer(self.projection(h), training=training)
        return self.norm(x + h)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_sizes": list(self.kernel_sizes), "filters": self.filters,
                       "activation": self.activation, "dropout": self.dropout})
        return config


@keras.saving.register_keras_serializable(package="tflm")
class ConvEncoder(_TransformerStack, Encoder):
    """A convolutional encoder (encoder `"cnn"` of `ComposedSeq2Seq`): scaled token embedding plus positions
    (as `TransformerEncoder`), dropout, then `num_layers` `ConvBlock`s (convolutions of each of `kernel_sizes`,
    concatenated and projected back to `hidden_dim`, residual, layer norm).

    Padding never changes the memory at real positions: every block zeroes the padded positions before its
    convolutions. The memory is zero at padding.

    Args:
        vocabulary_size: int.
        hidden_dim: int. Embedding and model width (the memory's).
        num_layers: int. Convolutional blocks.
        kernel_sizes: list of int. Convolution widths of each block (Kim's classifier: [3, 4, 5]).
        filters: int. Feature maps per width (default: hidden_dim).
        activation: `"glu"` (gated, as Gehring et al.) or `"relu"` (as Kim).
        dropout: float. On the embeddings and on each block's output.
        position_embedding: `"sinusoidal"` or `"learned"`.
        max_sequence_length: int. Longest source (the table size of learned positions).
    Call arguments:
        source_ids: int `(batch, source_length)`, PAD-padded.
        training: bool.
    Returns:
        `{"memory", "memory_mask"}` (see `Encoder`).
    Example:
    >>> encoder = ConvEncoder(100, hidden_dim=16, num_layers=2, kernel_sizes=[3, 4, 5], filters=8)
    >>> encoder(np.array([[5, 6, 3, 0]]))["memory"].shape
    TensorShape([1, 4, 16])
    """

    def __init__(self, vocabulary_size, hidden_dim=256, num_layers=2, kernel_sizes=(3, 5), filters=None,
                 activation="glu", dropout=0.1, position_embedding="sinusoidal", max_sequence_length=256, **kwargs):
        super().__init__(**kwargs)
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(f"position_embedding={position_embedding!r} must be one of {POSITION_EMBEDDINGS}.")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers={num_layers!r} must be a positive int (convolutional blocks), e.g. 2.")
        filters = hidden_dim if filters is None else filters
        self.kernel_sizes = _check_sizes(kernel_sizes, filters, activation)
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.filters = filters
        self.activation = activation
        self.dropout = dropout
        self.position_embedding = position_embedding
        self.max_sequence_length = max_sequence_length
        self.output_dim = hidden_dim
        policy = self.dtype_policy
        self.embedding = keras.layers.Embedding(vocabulary_size, hidden_dim, dtype=policy, name="embedding",
                                                embeddings_initializer=self._embedding_initializer())
        self.positions = self._make_positions()
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.blocks = [ConvBlock(self.kernel_sizes, filters, activation=activation, dropout=dropout, dtype=policy,
                                 name=f"layer_{i}") for i in range(num_layers)]

    def call(self, source_ids, training=False):
        mask = padding_mask(source_ids)
        x = self._embed(source_ids, training=training)
        for block in self.blocks:
            x = block(x, padding_mask=mask, training=training)
        return {"memory": x * ops.cast(mask, x.dtype)[..., None], "memory_mask": mask}

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary_size": self.vocabulary_size,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "kernel_sizes": list(self.kernel_sizes),
            "filters": self.filters,
            "activation": self.activation,
            "dropout": self.dropout,
            "position_embedding": self.position_embedding,
            "max_sequence_length": self.max_sequence_length,
        })
        return config
