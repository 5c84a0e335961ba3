import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tflm")
class LSTMEncoder(keras.layers.Layer):
    """A stack of LSTM layers over embedded tokens, optionally bidirectional.

    Args:
        hidden_dim: int. Output size; a bidirectional layer uses `hidden_dim // 2` units per direction
            and concatenates them.
        num_layers: int.
        bidirectional: bool.
        dropout: float. Dropout between layers (and on the output).
    Call arguments:
        inputs: float `(batch_size, length, input_dim)`.
        padding_mask: bool `(batch_size, length)`, False on padding. Padding never changes the outputs
            or final states of the real tokens (the backward direction starts at each row's last token).
        training: bool.
    Returns:
        `(outputs, states)`: float `(batch_size, length, hidden_dim)` and, per layer, a list `[h, c]` of
        final states, each `(batch_size, hidden_dim)`.
    Example:
    >>> encoder = LSTMEncoder(hidden_dim=16, num_layers=2, bidirectional=True)
    >>> outputs, states = encoder(np.random.rand(2, 7, 8).astype("float32"))
    >>> outputs.shape, len(states), states[0][0].shape
    (TensorShape([2, 7, 16]), 2, TensorShape([2, 16]))
    """

    def __init__(self, hidden_dim, num_layers=1, bidirectional=False, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if bidirectional and hidden_dim % 2:
            raise ValueError(f"A bidirectional LSTMEncoder needs an even hidden_dim; got hidden_dim={hidden_dim}.")
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        units = hidden_dim // 2 if bidirectional else hidden_dim
        self.lstm_layers = []
        for index in range(num_layers):
            lstm = keras.layers.LSTM(
                units, return_sequences=True, return_state=True, dtype=self.dtype_policy, name=f"lstm_{index}"
            )
            if bidirectional:
                lstm = keras.layers.Bidirectional(lstm, dtype=self.dtype_policy, name=f"bidirectional_{index}")
            self.lstm_layers.append(lstm)
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, inputs_shape, *args, **kwargs):
        shape = tuple(inputs_shape)
        for lstm in self.lstm_layers:
            lstm.build(shape)
            shape = shape[:-1] + (self.hidden_dim,)
        self.built = True

    def call(self, inputs, padding_mask=None, training=False):
        outputs, states = inputs, []
        for index, lstm in enumerate(self.lstm_layers):
            if index:
                outputs = self.dropout_layer(outputs, training=training)
            results = lstm(outputs, mask=padding_mask, training=training)
            outputs = results[0]
            if self.bidirectional:
                forward_h, forward_c, backward_h, backward_c = results[1:]
                states.append([ops.concatenate([forward_h, backward_h], -1),
                               ops.concatenate([forward_c, backward_c], -1)])
            else:
                states.append(list(results[1:]))
        if padding_mask is not None:
            outputs = outputs * ops.expand_dims(ops.cast(padding_mask, outputs.dtype), -1)
        return self.dropout_layer(outputs, training=training), states

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
        })
        return config
