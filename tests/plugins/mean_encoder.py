"""A user's own sentence encoder for classification, in a module of its own (tests/test_classification.py runs it
through the console script with this folder on PYTHONPATH: `--model mean_encoder:MeanEncoder`)."""

import keras


class MeanEncoder(keras.layers.Layer):
    """A tanh layer over each embedded token; the classifier pools its outputs (max by default)."""

    def __init__(self, hidden_dim=32, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.dense = keras.layers.Dense(hidden_dim, activation="tanh")

    def call(self, embedded, padding_mask=None, training=False):
        return self.dense(embedded)  # (batch, length, hidden_dim)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}
