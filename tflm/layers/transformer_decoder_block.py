import keras
from keras import ops

from tflm.layers.feedforward import FeedForward, residual
from tflm.layers.multi_head_attention import MultiHeadAttention


def causal_mask(query_length, key_length, start=0):
    """bool `(query_length, key_length)`: query i (at position start + i) sees keys 0..start + i."""
    query_positions = ops.arange(query_length)[:, None] + start
    return ops.arange(key_length)[None, :] <= query_positions


@keras.saving.register_keras_serializable(package="tflm")
class TransformerDecoderBlock(keras.layers.Layer):
    """A Transformer decoder block: causal self-attention, optional cross-attention, feed-forward.

    keras-hub's `TransformerDecoder` runs the same computation but cannot return its cross-attention
    weights (needed for attention heatmaps) nor compute the cross-attention keys/values of a source
    without a dummy query, and its attention projections are slow to train on CPU (see
    `MultiHeadAttention`); this block uses tflm's `MultiHeadAttention`, so decoding keeps a key/value cache
    for self-attention and computes cross-attention keys/values once per source.

    Args:
        intermediate_dim: int. Feed-forward size.
        num_heads: int.
        dropout: float. On attention outputs, feed-forward and residual branches.
        activation: feed-forward activation.
        normalize_first: bool. Pre-LN (True, the default) or post-LN.
        cross_attention: bool. False gives a decoder-only (GPT) block.
        rotary: bool. Rotary position embeddings in the self-attention.
        layer_norm_epsilon: float.
    Call arguments:
        inputs: float `(batch_size, length, hidden_dim)`.
        memory: float `(batch_size, source_length, hidden_dim)`, encoder outputs (for cross-attention;
            not needed when `cross_cache` is given).
        memory_mask: bool `(batch_size, source_length)`.
        self_cache: optional float `(batch_size, 2, num_heads, max_length, head_dim)`, keys and values of the
            previous positions; with it, `inputs` are the positions starting at `cache_index`.
        cache_index: int scalar, the position of the first input when `self_cache` is given.
        cross_cache: optional float `(batch_size, 2, num_heads, source_length, head_dim)` from
            `cross_attention_cache(memory)`.
        return_attention: bool. Also return the cross-attention weights.
    Returns:
        `(outputs, self_cache, cross_weights)`; `self_cache` is the updated cache (None without one),
        `cross_weights` float `(batch_size, num_heads, length, source_length)` or None.
    Example:
    >>> block = TransformerDecoderBlock(intermediate_dim=32, num_heads=2)
    >>> outputs, _, weights = block(np.random.rand(2, 4, 16), memory=np.random.rand(2, 5, 16),
    ...                             return_attention=True)
    >>> outputs.shape, weights.shape
    (TensorShape([2, 4, 16]), TensorShape([2, 2, 4, 5]))
    """

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="relu", normalize_first=True,
                 cross_attention=True, rotary=False, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = activation
        self.normalize_first = normalize_first
        self.cross_attention = cross_attention
        self.rotary = rotary
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, inputs_shape, *args, **kwargs):
        hidden_dim = inputs_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim={hidden_dim} must be divisible by num_heads={self.num_heads}, e.g. num_heads=4 for 256."
            )
        self.head_dim = hidden_dim // self.num_heads
        policy = self.dtype_policy

        def attention(name, rotary=False):
            layer = MultiHeadAttention(self.num_heads, self.head_dim, dropout=self.dropout, rotary=rotary,
                                       dtype=policy, name=name)
            layer.build(inputs_shape, inputs_shape)
            return layer

        def norm(name):
            layer = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy, name=name)
            layer.build(inputs_shape)
            return layer

        self.self_attention = attention("self_attention", self.rotary)
        self.self_attention_norm = norm("self_attention_norm")
        if self.cross_attention:
            self.cross_attention_layer = attention("cross_attention")
            self.cross_attention_norm = norm("cross_attention_norm")
        self.feedforward_norm = norm("feedforward_norm")
        self.feedforward = FeedForward(self.intermediate_dim, self.activation, dtype=policy, name="feedforward")
        self.feedforward.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.built = True

    def cross_attention_cache(self, memory):
        """Keys and values of the encoder outputs, computed once per source: `(B, 2, heads, S, head_dim)`."""
        return self.cross_attention_layer.project_key_value(memory)

    def _residual(self, x, norm, sublayer, training):
        return residual(x, norm, sublayer, self.dropout_layer, self.normalize_first, training)

    def call(self, inputs, memory=None, memory_mask=None, self_cache=None, cache_index=None, cross_cache=None,
             return_attention=False, training=False):
        length = ops.shape(inputs)[1]
        if self_cache is None:
            mask = causal_mask(length, length)
        else:
            mask = causal_mask(length, ops.shape(self_cache)[3], cache_index)

        def self_attend(x):
            output, cache, _ = self.self_attention(x, attention_mask=mask[None], cache=self_cache,
                                                   cache_index=cache_index, training=training)
            return output, cache

        x, new_cache = self._residual(inputs, self.self_attention_norm, self_attend, training)

        weights = None
        if self.cross_attention:
            cross_mask = None if memory_mask is None else ops.cast(memory_mask, "bool")[:, None, :]

            def cross_attend(x):
                output, _, scores = self.cross_attention_layer(
                    x, memory, attention_mask=cross_mask, cache=cross_cache, return_attention_scores=return_attention,
                    training=training,
                )
                return output, scores

            x, weights = self._residual(x, self.cross_attention_norm, cross_attend, training)

        x, _ = self._residual(x, self.feedforward_norm, lambda h: (self.feedforward(h), None), training)
        return x, new_cache, weights

    def get_config(self):
        config = super().get_config()
        config.update({
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "activation": self.activation,
            "normalize_first": self.normalize_first,
            "cross_attention": self.cross_attention,
            "rotary": self.rotary,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config
