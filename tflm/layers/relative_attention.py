import keras
from keras import ops

from tflm.layers.feedforward import FeedForward
from tflm.layers.masking import masked_softmax


def sinusoid(positions, dim):
    """Sinusoidal encodings of (float) positions: `(len(positions), dim)`, sines then cosines."""
    inverse_frequency = 1.0 / (10000.0 ** (ops.arange(0, dim, 2, dtype="float32") / dim))
    angles = ops.cast(positions, "float32")[:, None] * inverse_frequency[None, :]
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


def relative_shift(x):
    """`(B, H, T, K)` scores by distance `K-1 .. 0` -> by key: `out[..., i, j] = x[..., i, T - 1 - i + j]`.

    With queries at `K - T + i` and keys at `j`, entry `(i, j)` gets the score of distance `K - T + i - j`
    (Dai et al. 2019, appendix B): pad a zero column on the left, view the `(T, K + 1)` matrix as
    `(K + 1, T)`, drop its first row and view the rest as `(T, K)`. Entries of keys after the query
    (negative distances) hold other scores and must be masked.
    """
    shape = ops.shape(x)
    padded = ops.pad(x, [[0, 0], [0, 0], [0, 0], [1, 0]])
    padded = ops.reshape(padded, (shape[0], shape[1], shape[3] + 1, shape[2]))
    return ops.reshape(padded[:, :, 1:], shape)


@keras.saving.register_keras_serializable(package="tflm")
class RelativeMultiHeadAttention(keras.layers.Layer):
    """Transformer-XL attention (Dai et al. 2019) with relative positions and content/position biases.

    For a query at position i and a key at position j (keys: the memory, then the segment):
    `score(i, j) = (q_i + u) . k_j  +  (q_i + v) . W_r R(i - j)`, with `R` the sinusoidal encoding of the
    distance and `u`, `v` learned per head. Only distances enter, so the output is invariant to shifting
    every position by the same amount (tested). keras-hub has no such layer (its XLNet attention is
    two-stream), hence this one.

    Steps: project queries (from the segment) and keys/values (from memory + segment); compute the content
    term; compute the position term for every distance 0..K-1 once and place it per (i, j); mask keys
    in the future of each query; softmax; weighted sum; output projection. Placing is a gather for any
    positions; for the layout of training and evaluation (`memory_length` given: keys at 0..K-1, queries
    at memory_length + i) it is the paper's "relative shift" (pad, reshape, slice), whose gradient is a
    copy where the gather's is a scatter (faster training: docs/benchmarks.md).

    Args:
        num_heads: int.
        key_dim: int. Size of each head.
        dropout: float. On the attention weights.
    Call arguments:
        inputs: float `(batch, length, dim)`, the segment.
        context: float `(batch, memory_length + length, dim)`, the memory followed by the segment.
        query_positions: int `(length,)`, positions of the segment's tokens.
        key_positions: int `(memory_length + length,)`, positions of the context's tokens.
        memory_length: optional int: the positions are `memory_length + arange(length)` and
            `arange(memory_length + length)` (the relative shift applies).
        key_mask: optional bool `(batch, memory_length + length)`: keys each row may attend to.
    Returns:
        float `(batch, length, dim)`.
    """

    def __init__(self, num_heads, key_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout

    def build(self, inputs_shape, *args, **kwargs):
        dim = inputs_shape[-1]
        width = self.num_heads * self.key_dim
        policy = self.dtype_policy

        def dense(name, units, input_dim):
            layer = keras.layers.Dense(units, use_bias=False, dtype=policy, name=name)
            layer.build((None, input_dim))
            return layer

        # 2-D projections (see `MultiHeadAttention` for why not EinsumDense)
        self.query_dense = dense("query", width, dim)
        self.key_value_dense = dense("key_value", 2 * width, dim)
        self.position_dense = dense("position", width, dim)
        self.content_bias = self.add_weight(name="content_bias", shape=(self.num_heads, 1, self.key_dim),
                                            initializer="zeros")  # u
        self.position_bias = self.add_weight(name="position_bias", shape=(self.num_heads, 1, self.key_dim),
                                             initializer="zeros")  # v
        self.output_dense = dense("output", dim, width)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.dim = dim
        self.built = True

    def _heads(self, x):
        """`(..., length, heads * key_dim)` -> `(..., heads, length, key_dim)`."""
        shape = ops.shape(x)
        x = ops.reshape(x, tuple(shape[:-1]) + (self.num_heads, self.key_dim))
        return ops.swapaxes(x, -2, -3)

    def call(self, inputs, context, query_positions, key_positions, memory_length=None, key_mask=None,
             training=False):
        query = self._heads(self.query_dense(inputs))  # (B, H, T, D)
        key, value = ops.split(self.key_value_dense(context), 2, axis=-1)
        key, value = self._heads(key), self._heads(value)  # (B, H, K, D)
        key_length = ops.shape(context)[1]
        distance = query_positions[:, None] - key_positions[None, :]  # (T, K)
        content = ops.matmul(query + ops.cast(self.content_bias, query.dtype), ops.swapaxes(key, -1, -2))
        # the position term for every distance, then placed for each (query, key) pair
        shift = memory_length is not None
        distances = ops.arange(key_length - 1, -1, -1) if shift else ops.arange(key_length)  # K-1..0 to shift
        r = self._heads(self.position_dense(ops.cast(sinusoid(distances, self.dim), self.compute_dtype)))  # (H, K, D)
        by_distance = ops.matmul(query + ops.cast(self.position_bias, query.dtype), ops.swapaxes(r, -1, -2))
        if shift:
            position = relative_shift(by_distance)
        else:
            index = ops.clip(distance, 0, key_length - 1)  # (T, K); negative distances are masked below
            position = ops.take_along_axis(by_distance, ops.broadcast_to(index[None, None], ops.shape(content)),
                                           axis=-1)
        scores = (content + position) / ops.sqrt(ops.cast(self.key_dim, content.dtype))  # (B, H, T, K)
        mask = (distance >= 0)[None, None]  # (1, 1, T, K): no key after its query
        if key_mask is not None:  # (B, K): keys a row may not attend to (emptied memory slots)
            mask = ops.logical_and(mask, key_mask[:, None, None, :])
        weights = masked_softmax(scores, mask)
        attended = ops.matmul(self.dropout_layer(weights, training=training), value)  # (B, H, T, D)
        shape = ops.shape(attended)
        merged = ops.reshape(ops.swapaxes(attended, 1, 2), (shape[0], shape[2], self.num_heads * self.key_dim))
        return self.output_dense(merged)

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "key_dim": self.key_dim, "dropout": self.dropout})
        return config


@keras.saving.register_keras_serializable(package="tflm")
class TransformerXLBlock(keras.layers.Layer):
    """A pre-LN Transformer-XL block: relative attention over [memory; segment], then feed-forward.

    Args:
        intermediate_dim, num_heads, dropout: as `TransformerDecoderBlock`.
    Call arguments:
        inputs: float `(batch, length, dim)`.
        memory: optional float `(batch, memory_length, dim)`: this block's inputs of the previous segment(s)
            (constants: no gradient flows into them).
        memory_mask: optional bool `(batch, memory_length)`: the memory slots each row may attend to.
        training: bool.
    """

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="gelu", layer_norm_epsilon=1e-5,
                 **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, inputs_shape, *args, **kwargs):
        dim = inputs_shape[-1]
        policy = self.dtype_policy
        self.attention = RelativeMultiHeadAttention(self.num_heads, dim // self.num_heads, self.dropout, dtype=policy,
                                                    name="attention")
        self.attention.build(inputs_shape)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy)
        self.attention_norm.build(inputs_shape)
        self.feedforward_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy)
        self.feedforward_norm.build(inputs_shape)
        self.feedforward = FeedForward(self.intermediate_dim, self.activation, dtype=policy, name="feedforward")
        self.feedforward.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.built = True

    def call(self, inputs, memory=None, memory_mask=None, training=False):
        length = ops.shape(inputs)[1]
        normed = self.attention_norm(inputs)
        key_mask = None
        if memory is None:
            context, memory_length = normed, 0
        else:
            context = ops.concatenate([self.attention_norm(ops.stop_gradient(memory)), normed], axis=1)
            memory_length = ops.shape(memory)[1]
            if memory_mask is not None:
                segment = ops.ones((ops.shape(inputs)[0], length), dtype="bool")
                key_mask = ops.concatenate([ops.cast(memory_mask, "bool"), segment], axis=1)
        query_positions = ops.arange(length) + memory_length
        key_positions = ops.arange(length + memory_length)
        attended = self.attention(normed, context, query_positions, key_positions, memory_length=memory_length,
                                  key_mask=key_mask, training=training)
        x = inputs + self.dropout_layer(attended, training=training)
        hidden = self.feedforward(self.feedforward_norm(x))
        return x + self.dropout_layer(hidden, training=training)

    def step(self, inputs, buffer, position, training=False):
        """One position of incremental decoding: `inputs` `(batch, 1, dim)` at `position`, attending over
        `buffer` `(batch, max_length, dim)`, this block's inputs at every earlier position (positions after
        `position` are masked). Returns `(outputs, buffer with inputs written at position)`."""
        max_length = ops.shape(buffer)[1]
        at_position = ops.equal(ops.arange(max_length), position)[None, :, None]
        buffer = ops.where(at_position, ops.cast(inputs, buffer.dtype), buffer)
        normed = self.attention_norm(inputs)
        attended = self.attention(normed, self.attention_norm(buffer), ops.reshape(position, (1,)),
                                  ops.arange(max_length), training=training)
        x = inputs + self.dropout_layer(attended, training=training)
        hidden = self.feedforward(self.feedforward_norm(x))
        return x + self.dropout_layer(hidden, training=training), buffer

    def get_config(self):
        config = super().get_config()
        config.update({
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        })
        return config
