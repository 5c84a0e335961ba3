import keras
from keras import ops

from tflm.layers.masking import masked_softmax


@keras.saving.register_keras_serializable(package="tflm")
class AdditiveAttention(keras.layers.Layer):
    """Bahdanau (additive) attention over encoder outputs.

    Steps:
    1. Project the values to keys, `W_k v + b` (`project_keys`; done once per source when decoding).
    2. Score each query against each key: `score(q, k) = w^T tanh(W_q q + k)`.
    3. Softmax the scores over the unmasked values; padding gets exactly zero weight.
    4. The context is the weighted sum of the values.

    Keras' own `AdditiveAttention` has no learned projections and a list-style call, hence this layer.

    Args:
        hidden_dim: int. Size of the score projection.
    Call arguments:
        query: float `(batch_size, query_length, query_dim)`.
        value: float `(batch_size, value_length, value_dim)`.
        value_mask: bool `(batch_size, value_length)`, False on padding. Optional.
        keys: float `(batch_size, value_length, hidden_dim)`, the output of `project_keys(value)`.
            Optional; pass it to avoid projecting the values again at every decoding step.
    Returns:
        `(context, weights)`: float `(batch_size, query_length, value_dim)` and
        `(batch_size, query_length, value_length)`.
    Example:
    >>> attention = AdditiveAttention(hidden_dim=16)
    >>> query = np.random.rand(2, 3, 8).astype("float32")
    >>> value = np.random.rand(2, 5, 8).astype("float32")
    >>> context, weights = attention(query, value, value_mask=np.array([[1] * 5, [1] * 3 + [0] * 2], bool))
    >>> context.shape, weights.shape
    (TensorShape([2, 3, 8]), TensorShape([2, 3, 5]))
    """

    def __init__(self, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.query_dense = keras.layers.Dense(hidden_dim, use_bias=False, dtype=self.dtype_policy, name="query")
        self.key_dense = keras.layers.Dense(hidden_dim, dtype=self.dtype_policy, name="key")
        self.score_dense = keras.layers.Dense(1, use_bias=False, dtype=self.dtype_policy, name="score")

    def build(self, query_shape, value_shape=None, *args, **kwargs):
        value_shape = value_shape or query_shape
        self.query_dense.build(query_shape)
        self.key_dense.build(value_shape)
        self.score_dense.build(tuple(query_shape[:-1]) + (self.hidden_dim,))
        self.built = True

    def project_keys(self, value):
        return self.key_dense(value)

    def _calculate_scores(self, query, keys):
        projected = self.query_dense(query)  # (B, Tq, H)
        hidden = ops.tanh(ops.expand_dims(projected, 2) + ops.expand_dims(keys, 1))  # (B, Tq, Tv, H)
        return ops.squeeze(self.score_dense(hidden), -1)  # (B, Tq, Tv)

    def call(self, query, value, value_mask=None, keys=None):
        if keys is None:
            keys = self.project_keys(value)
        scores = self._calculate_scores(query, keys)
        mask = None if value_mask is None else ops.expand_dims(ops.cast(value_mask, "bool"), 1)
        weights = masked_softmax(scores, mask)
        return ops.matmul(weights, value), weights

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim})
        return config
