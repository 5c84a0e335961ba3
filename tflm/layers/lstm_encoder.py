import keras
from keras import ops

RNN_CELLS = ("lstm", "gru")


@keras.saving.register_keras_serializable(package="tflm")
class RecurrentStack(keras.layers.Layer):
    """A stack of LSTM or GRU layers over embedded tokens, optionally bidirectional.

    Args:
        hidden_dim: int. Output size; a bidirectional layer uses `hidden_dim // 2` units per direction
            and concatenates them.
        num_layers: int.
        bidirectional: bool.
        cell: `"lstm"` or `"gru"`.
        dropout: float. Dropout between layers (and on the output).
    Call arguments:
        inputs: float `(batch_size, length, input_dim)`.
        padding_mask: bool `(batch_size, length)`, False on padding. Padding never changes the outputs
            or final states of the real tokens (the backward direction starts at each row's last token).
        training: bool.
    Returns:
        `(outputs, states)`: float `(batch_size, length, hidden_dim)` and, per layer, a list of final states,
        `[h, c]` (LSTM) or `[h]` (GRU), each `(batch_size, hidden_dim)`.
    Example:
    >>> stack = RecurrentStack(hidden_dim=16, num_layers=2, bidirectional=True, cell="gru")
    >>> outputs, states = stack(np.random.rand(2, 7, 8).astype("float32"))
    >>> outputs.shape, len(states), len(states[0]), states[0][0].shape
    (TensorShape([2, 7, 16]), 2, 1, TensorShape([2, 16]))
    """

    def __init__(self, hidden_dim, num_layers=1, bidirectional=False, cell="lstm", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if cell not in RNN_CELLS:
            raise ValueError(f"cell={cell!r} must be one of {RNN_CELLS}.")
        if bidirectional and hidden_dim % 2:
            raise ValueError(f"A bidirectional encoder needs an even hidden_dim; got hidden_dim={hidden_dim}.")
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.cell = cell
        self.dropout = dropout
        units = hidden_dim // 2 if bidirectional else hidden_dim
        rnn_class = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        self.rnn_layers = []
        for index in range(num_layers):
            rnn = rnn_class(units, return_sequences=True, return_state=True, dtype=self.dtype_policy,
                            name=f"{cell}_{index}")
            if bidirectional:
                rnn = keras.layers.Bidirectional(rnn, dtype=self.dtype_policy, name=f"bidirectional_{index}")
            self.rnn_layers.append(rnn)
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, inputs_shape, *args, **kwargs):
        shape = tuple(inputs_shape)
        for rnn in self.rnn_layers:
            rnn.build(shape)
            shape = shape[:-1] + (self.hidden_dim,)
        self.built = True

    def call(self, inputs, padding_mask=None, training=False):
        outputs, states = inputs, []
        per_direction = 2 if self.cell == "lstm" else 1  # final states of one direction: h, c or h
        for index, rnn in enumerate(self.rnn_layers):
            if index:
                outputs = self.dropout_layer(outputs, training=training)
            results = rnn(outputs, mask=padding_mask, training=training)
            outputs = results[0]
            if self.bidirectional:
                forward, backward = results[1:1 + per_direction], results[1 + per_direction:]
                states.append([ops.concatenate([f, b], -1) for f, b in zip(forward, backward)])
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
            "cell": self.cell,
            "dropout": self.dropout,
        })
        return config


@keras.saving.register_keras_serializable(package="tflm")
class LSTMEncoder(RecurrentStack):
    """A `RecurrentStack` of LSTM layers (the encoder stack of `LSTMAttentionSeq2Seq` before `RNNEncoder`).

    Args:
        hidden_dim, num_layers, bidirectional, dropout: as `RecurrentStack`.
    Example:
    >>> encoder = LSTMEncoder(hidden_dim=16, num_layers=2, bidirectional=True)
    >>> outputs, states = encoder(np.random.rand(2, 7, 8).astype("float32"))
    >>> outputs.shape, len(states), states[0][0].shape
    (TensorShape([2, 7, 16]), 2, TensorShape([2, 16]))
    """

    def __init__(self, hidden_dim, num_layers=1, bidirectional=False, dropout=0.0, **kwargs):
        kwargs.pop("cell", None)
        super().__init__(hidden_dim, num_layers, bidirectional=bidirectional, cell="lstm", dropout=dropout, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        return config
