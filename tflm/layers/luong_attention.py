import keras
from keras import ops

from tflm.layers.masking import masked_softmax

LUONG_SCORES = ("dot", "general")


@keras.saving.register_keras_serializable(package="tflm")
class LuongAttention(keras.layers.Layer):
    """Luong (multiplicative) attention over encoder outputs, with the "dot" or "general" score.

    Steps:
    1. Keys: the values themselves ("dot") or `W v` ("general"; `project_keys`, once per source).
    2. Scores: `q . k`, optionally divided by sqrt(query_dim) (`scale=True`).
    3. Softmax over the unmasked values; padding gets exactly zero weight.
    4. The context is the weighted sum of the values.

    Keras' `Attention` layer has no "general" projection and a list-style call, hence this layer.

    Args:
        score: `"dot"` (needs query_dim == value_dim) or `"general"`.
        scale: bool. Divide scores by sqrt(query_dim).
    Call arguments:
        query: float `(batch_size, query_length, query_dim)`.
        value: float `(batch_size, value_length, value_dim)`.
        value_mask: bool `(batch_size, value_length)`, False on padding. Optional.
        keys: float `(batch_size, value_length, query_dim)` from `project_keys(value)`. Optional.
    Returns:
        `(context, weights)`: float `(batch_size, query_length, value_dim)` and
        `(batch_size, query_length, value_length)`.
    Example:
    >>> attention = LuongAttention(score="general")
    >>> context, weights = attention(np.ones((2, 3, 8), "float32"), np.ones((2, 5, 6), "float32"))
    >>> context.shape, weights.shape
    (TensorShape([2, 3, 6]), TensorShape([2, 3, 5]))
    """

    def __init__(self, score="general", scale=False, **kwargs):
        super().__init__(**kwargs)
        if score not in LUONG_SCORES:
            raise ValueError(f"score={score!r} must be one of {LUONG_SCORES}.")
        self.score = score
        self.scale = scale
        self.key_dense = None

    def build(self, query_shape, value_shape=None, *args, **kwargs):
        value_shape = value_shape or query_shape
        if self.score == "general":
            self.key_dense = keras.layers.Dense(
                query_shape[-1], use_bias=False, dtype=self.dtype_policy, name="key"
            )
            self.key_dense.build(value_shape)
        elif query_shape[-1] != value_shape[-1]:
            raise ValueError(
                f"LuongAttention(score='dot') needs equal query and value sizes; got query_dim="
                f"{query_shape[-1]} and value_dim={value_shape[-1]}. Use score='general'."
            )
        self.built = True

    def project_keys(self, value):
        return value if self.key_dense is None else self.key_dense(value)

    def call(self, query, value, value_mask=None, keys=None):
        if keys is None:
            keys = self.project_keys(value)
        scores = ops.matmul(query, ops.swapaxes(keys, 1, 2))  # (B, Tq, Tv)
        if self.scale:
            scores = scores / ops.sqrt(ops.cast(ops.shape(query)[-1], scores.dtype))
        mask = None if value_mask is None else ops.expand_dims(ops.cast(value_mask, "bool"), 1)
        weights = masked_softmax(scores, mask)
        return ops.matmul(weights, value), weights

    def get_config(self):
        config = super().get_config()
        config.update({"score": self.score, "scale": self.scale})
        return config
