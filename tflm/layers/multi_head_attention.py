import keras
from keras import ops
from keras_hub.layers import RotaryEmbedding

from tflm.layers.masking import masked_softmax


@keras.saving.register_keras_serializable(package="tflm")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention with a key/value cache and optional rotary positions, from 2-D matmuls.

    Keras' `MultiHeadAttention` (and keras-hub's `CachedMultiHeadAttention` on it) projects with
    `EinsumDense`, which Keras 3 lowers on TensorFlow to batched matmuls broadcast over the batch; their
    gradients then multiply per example and sum over the batch. On 2 CPU cores that made the projections a
    third of a Transformer training step (measured: `tools/bench/train_speed.py`). Here every projection
    is one `(batch * length, dim) x (dim, heads * head_dim)` matmul (the three of self-attention fused into
    one), and attention itself is two batched matmuls over `(batch, heads, ...)`.

    Steps:
    1. Project the queries, and the keys and values (or take them from `cache`), split into heads.
    2. Rotate queries and keys by their positions (`rotary=True`).
    3. Write the new keys/values into the cache at `cache_index` (incremental decoding).
    4. Scaled dot-product scores, masked softmax (exact zeros where `attention_mask` is False), dropout.
    5. Weighted sum of the values, heads merged, output projection.

    Args:
        num_heads: int.
        key_dim: int. Size of each head.
        dropout: float. On the attention weights.
        rotary: bool. Rotary position embeddings (Su et al. 2021) on queries and keys.
        max_wavelength: int. The rotary base.
    Call arguments:
        query: float `(batch, query_length, dim)`.
        value: float `(batch, value_length, dim)`; None (or `query` itself) for self-attention.
        attention_mask: bool, broadcastable to `(batch, query_length, key_length)`.
        cache: optional float `(batch, 2, num_heads, max_length, key_dim)`, keys and values.
        cache_index: int scalar: the position of the first query; with a self-attention `cache`, the new
            keys/values are written there. A cache given with `cache_index=None` is read as it is
            (cross-attention over precomputed keys/values, see `project_key_value`).
        return_attention_scores: bool. Also return the weights `(batch, num_heads, query_length, key_length)`.
    Returns:
        `(output, cache, weights)`: output float `(batch, query_length, dim)`; the (updated) cache or None;
        the weights or None.
    Example:
    >>> attention = MultiHeadAttention(num_heads=2, key_dim=8)
    >>> x = np.random.rand(2, 5, 16).astype("float32")
    >>> output, _, _ = attention(x, attention_mask=np.tril(np.ones((5, 5), bool)))
    >>> output.shape
    TensorShape([2, 5, 16])
    """

    def __init__(self, num_heads, key_dim, dropout=0.0, rotary=False, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.rotary = rotary
        self.max_wavelength = max_wavelength

    def build(self, query_shape, value_shape=None, *args, **kwargs):
        dim = query_shape[-1]
        width = self.num_heads * self.key_dim
        policy = self.dtype_policy
        self.query_dense = keras.layers.Dense(width, dtype=policy, name="query")
        self.query_dense.build((None, dim))
        self.key_value_dense = keras.layers.Dense(2 * width, dtype=policy, name="key_value")
        self.key_value_dense.build((None, dim if value_shape is None else value_shape[-1]))
        self.output_dense = keras.layers.Dense(dim, dtype=policy, name="output")
        self.output_dense.build((None, width))
        self.rotary_embedding = RotaryEmbedding(self.max_wavelength, sequence_axis=2, feature_axis=3,
                                                dtype=policy) if self.rotary else None
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy)
        self.built = True

    def _heads(self, x, count):
        """`(batch, length, count * heads * key_dim)` -> `count` tensors `(batch, heads, length, key_dim)`."""
        shape = ops.shape(x)
        parts = ops.split(x, count, axis=-1) if count > 1 else [x]  # split: its gradient is a cheap concat
        return [ops.transpose(ops.reshape(p, (shape[0], shape[1], self.num_heads, self.key_dim)), (0, 2, 1, 3))
                for p in parts]

    def project_key_value(self, value):
        """Keys and values of `value`, as a cache `(batch, 2, heads, length, key_dim)` to attend over."""
        key, value = self._heads(self.key_value_dense(value), 2)
        return ops.stack([key, value], axis=1)

    def call(self, query, value=None, attention_mask=None, cache=None, cache_index=None,
             return_attention_scores=False, training=False):
        start = 0 if cache_index is None else cache_index
        (q,) = self._heads(self.query_dense(query), 1)  # (B, H, T, D)
        if cache is not None and cache_index is None:  # precomputed keys/values (cross-attention)
            k, v = cache[:, 0], cache[:, 1]
        else:
            k, v = self._heads(self.key_value_dense(query if value is None else value), 2)  # (B, H, S, D)
        if self.rotary_embedding is not None:
            q = self.rotary_embedding(q, start_index=start)
            k = self.rotary_embedding(k, start_index=start)
        if cache is not None and cache_index is not None:  # write this step's keys/values
            # One update of the whole cache with the new positions' keys and values: updating keys and
            # values apart and stacking them again copied the whole cache at every decoding step.
            new = ops.cast(ops.stack([k, v], axis=1), cache.dtype)  # (B, 2, H, T, D)
            cache = ops.slice_update(cache, (0, 0, 0, start, 0), new)
            k, v = cache[:, 0], cache[:, 1]
        scores = ops.matmul(q, ops.swapaxes(k, 2, 3)) / ops.sqrt(ops.cast(self.key_dim, q.dtype))  # (B, H, T, S)
        mask = None if attention_mask is None else ops.expand_dims(ops.cast(attention_mask, "bool"), 1)
        weights = masked_softmax(scores, mask)
        attended = ops.matmul(self.dropout_layer(weights, training=training), v)  # (B, H, T, D)
        shape = ops.shape(attended)
        merged = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (shape[0], shape[2], self.num_heads * self.key_dim))
        return self.output_dense(merged), cache, (weights if return_attention_scores else None)

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "key_dim": self.key_dim, "dropout": self.dropout,
                       "rotary": self.rotary, "max_wavelength": self.max_wavelength})
        return config
