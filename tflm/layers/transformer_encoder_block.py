import keras

from tflm.layers.feedforward import FeedForward, residual
from tflm.layers.multi_head_attention import MultiHeadAttention


@keras.saving.register_keras_serializable(package="tflm")
class TransformerEncoderBlock(keras.layers.Layer):
    """A Transformer encoder block: self-attention over the unpadded tokens, then feed-forward.

    The computation of keras-hub's `TransformerEncoder`, on tflm's `MultiHeadAttention` (whose 2-D
    projections train much faster on CPU than Keras' einsum ones, see its docstring).

    Args:
        intermediate_dim: int. Feed-forward size.
        num_heads: int.
        dropout: float.
        activation: feed-forward activation.
        normalize_first: bool. Pre-LN (True) or post-LN.
        layer_norm_epsilon: float.
    Call arguments:
        inputs: float `(batch, length, dim)`.
        padding_mask: bool `(batch, length)`, False on padding (never attended to).
        training: bool.
    Example:
    >>> block = TransformerEncoderBlock(intermediate_dim=32, num_heads=2)
    >>> block(np.random.rand(2, 5, 16), padding_mask=np.array([[1] * 5, [1] * 3 + [0] * 2], bool)).shape
    TensorShape([2, 5, 16])
    """

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="relu", normalize_first=True,
                 layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = activation
        self.normalize_first = normalize_first
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, inputs_shape, *args, **kwargs):
        dim = inputs_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"hidden_dim={dim} must be divisible by num_heads={self.num_heads}.")
        policy = self.dtype_policy
        self.attention = MultiHeadAttention(self.num_heads, dim // self.num_heads, dropout=self.dropout,
                                            dtype=policy, name="self_attention")
        self.attention.build(inputs_shape)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy)
        self.attention_norm.build(inputs_shape)
        self.feedforward_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy)
        self.feedforward_norm.build(inputs_shape)
        self.feedforward = FeedForward(self.intermediate_dim, self.activation, dtype=policy, name="feedforward")
        self.feedforward.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.built = True

    def call(self, inputs, padding_mask=None, training=False):
        mask = None if padding_mask is None else keras.ops.cast(padding_mask, "bool")[:, None, :]
        x, _ = residual(inputs, self.attention_norm,
                        lambda h: (self.attention(h, attention_mask=mask, training=training)[0], None),
                        self.dropout_layer, self.normalize_first, training)
        x, _ = residual(x, self.feedforward_norm, lambda h: (self.feedforward(h), None), self.dropout_layer,
                        self.normalize_first, training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "activation": self.activation,
            "normalize_first": self.normalize_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config
