import keras


@keras.saving.register_keras_serializable(package="tflm")
class FeedForward(keras.layers.Layer):
    """The position-wise feed-forward network of Transformer blocks: `Dense(intermediate) -> Dense(dim)`.

    Args:
        intermediate_dim: int.
        activation: the inner activation ("relu", "gelu", ...).
    Call arguments:
        inputs: float `(batch, length, dim)`.
    Returns:
        float `(batch, length, dim)`.
    Example:
    >>> FeedForward(32)(np.ones((2, 3, 8), "float32")).shape
    TensorShape([2, 3, 8])
    """

    def __init__(self, intermediate_dim, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.activation = activation

    def build(self, inputs_shape):
        self.intermediate = keras.layers.Dense(self.intermediate_dim, activation=self.activation,
                                               dtype=self.dtype_policy, name="intermediate")
        self.intermediate.build(inputs_shape)
        self.output_dense = keras.layers.Dense(inputs_shape[-1], dtype=self.dtype_policy, name="output")
        self.output_dense.build(tuple(inputs_shape[:-1]) + (self.intermediate_dim,))
        self.built = True

    def call(self, inputs):
        return self.output_dense(self.intermediate(inputs))

    def get_config(self):
        config = super().get_config()
        config.update({"intermediate_dim": self.intermediate_dim, "activation": self.activation})
        return config


def residual(x, norm, function, dropout, normalize_first, training):
    """A residual sublayer: pre-LN `x + dropout(f(norm(x)))` or post-LN `norm(x + dropout(f(x)))`.

    `function` returns `(output, extras)`; returns `(new x, extras)`.
    """
    if normalize_first:
        output, extras = function(norm(x))
        return x + dropout(output, training=training), extras
    output, extras = function(x)
    return norm(x + dropout(output, training=training)), extras
