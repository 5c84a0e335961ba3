import keras
import tensorflow as tf
from keras import ops

from tflm.layers.additive_attention import AdditiveAttention
from tflm.layers.lstm_encoder import RNN_CELLS
from tflm.layers.luong_attention import LuongAttention

ATTENTION_TYPES = ("bahdanau", "luong_dot", "luong_general")


def make_attention(attention, hidden_dim, dtype=None):
    """The attention layer named `attention` (one of `ATTENTION_TYPES`)."""
    if attention == "bahdanau":
        return AdditiveAttention(hidden_dim, dtype=dtype, name="attention")
    if attention in ("luong_dot", "luong_general"):
        return LuongAttention(score=attention.split("_")[1], dtype=dtype, name="attention")
    raise ValueError(f"attention={attention!r} must be one of {ATTENTION_TYPES}.")


@keras.saving.register_keras_serializable(package="tflm")
class AttentionDecoder(keras.layers.Layer):
    """An LSTM or GRU decoder attending over encoder outputs, with input feeding (Luong et al., 2015).

    At each step t:
    1. `x_t = [y_{t-1}; h~_{t-1}]` (input feeding: the previous attentional vector joins the input);
    2. the LSTM (or GRU) stack maps `x_t` to `h_t`;
    3. attention with `h_t` as the query gives the context `c_t` and the weights `a_t`;
    4. the attentional vector `h~_t = tanh(W_c [c_t; h_t])` is the step's output.

    The score is pluggable: Bahdanau's additive score or Luong's dot/general score. Without input feeding
    the cells run over the whole target at once and attention is computed for all steps in one go.

    Args:
        hidden_dim: int. LSTM/GRU units and output size.
        num_layers: int.
        attention: `"bahdanau"`, `"luong_dot"` or `"luong_general"`.
        input_feeding: bool.
        cell: `"lstm"` or `"gru"`. A GRU state has no `"c"`.
        dropout: float. Dropout between LSTM layers and on the attentional vector.
    Call arguments (teacher forcing, `call`):
        inputs: float `(batch_size, target_length, input_dim)`, embedded target tokens.
        state: the dict from `initial_state`.
        training: bool.
    Returns:
        `(outputs, weights)`: float `(batch_size, target_length, hidden_dim)` and attention weights
        `(batch_size, target_length, source_length)`.
    Example:
    >>> decoder = AttentionDecoder(hidden_dim=16, attention="bahdanau")
    >>> memory = np.random.rand(2, 5, 16).astype("float32")
    >>> state = decoder.initial_state(memory, memory_mask=np.ones((2, 5), bool))
    >>> outputs, weights = decoder(np.random.rand(2, 4, 8).astype("float32"), state)
    >>> outputs.shape, weights.shape
    (TensorShape([2, 4, 16]), TensorShape([2, 4, 5]))
    >>> output, state, step_weights = decoder.step(np.random.rand(2, 8).astype("float32"), state)
    """

    def __init__(self, hidden_dim, num_layers=1, attention="luong_general", input_feeding=True, dropout=0.0,
                 cell="lstm", **kwargs):
        super().__init__(**kwargs)
        if cell not in RNN_CELLS:
            raise ValueError(f"cell={cell!r} must be one of {RNN_CELLS}.")
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.attention_type = attention
        self.input_feeding = input_feeding
        self.dropout = dropout
        self.cell = cell
        cell_class = keras.layers.LSTMCell if cell == "lstm" else keras.layers.GRUCell
        self.cells = [
            cell_class(hidden_dim, dtype=self.dtype_policy, name=f"{cell}_cell_{i}") for i in range(num_layers)
        ]
        self.attention = make_attention(attention, hidden_dim, dtype=self.dtype_policy)
        self.output_dense = keras.layers.Dense(
            hidden_dim, activation="tanh", use_bias=False, dtype=self.dtype_policy, name="attentional"
        )
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, inputs_shape, *args, **kwargs):
        input_dim = inputs_shape[-1] + (self.hidden_dim if self.input_feeding else 0)
        for cell in self.cells:
            cell.build((None, input_dim))
            input_dim = self.hidden_dim
        if not self.attention.built:
            self.attention.build((None, None, self.hidden_dim), (None, None, self.hidden_dim))
        self.output_dense.build((None, 2 * self.hidden_dim))
        self.built = True

    def initial_state(self, memory, memory_mask=None, encoder_states=None):
        """The decoding state before the first step: the cells' states `"h"` (and `"c"`, LSTM), the previous
        attentional vector and, under `"static"`, the memory with its precomputed attention keys and mask.
        Every entry is batch-major; beam search reorders all but the `"static"` ones (see `tflm.decoding`).

        Args:
            memory: float `(batch_size, source_length, hidden_dim)`, encoder outputs.
            memory_mask: bool `(batch_size, source_length)`.
            encoder_states: optional list of `[h, c]` (LSTM) or `[h]` (GRU) per encoder layer; decoder layer i
                starts from encoder layer min(i, last): its `h`, and its `c` where both have one (an LSTM decoder
                after a GRU encoder starts with `c` = 0). Without them (e.g. after a Transformer encoder) every
                state starts at zeros.
        """
        batch_size = ops.shape(memory)[0]
        if memory_mask is None:
            memory_mask = ops.ones(ops.shape(memory)[:2], dtype="bool")
        zeros = ops.zeros((batch_size, self.hidden_dim), dtype=memory.dtype)
        if encoder_states:
            chosen = [encoder_states[min(i, len(encoder_states) - 1)] for i in range(self.num_layers)]
            h = [ops.cast(s[0], memory.dtype) for s in chosen]
            c = [ops.cast(s[1], memory.dtype) if len(s) > 1 else zeros for s in chosen]
        else:
            h, c = [zeros] * self.num_layers, [zeros] * self.num_layers
        if not self.attention.built:
            self.attention.build((None, None, self.hidden_dim), tuple(memory.shape))
        cell_states = {"h": h, "c": c} if self.cell == "lstm" else {"h": h}
        return {
            **cell_states,
            "attentional": zeros,
            "static": {
                "memory": memory,
                "memory_keys": self.attention.project_keys(memory),
                "memory_mask": ops.cast(memory_mask, "bool"),
            },
        }

    def _attend(self, query, state, training):
        """query `(B, T, H)` -> attentional vectors `(B, T, H)` and weights `(B, T, S)`."""
        static = state["static"]
        context, weights = self.attention(
            query, static["memory"], value_mask=static["memory_mask"], keys=static["memory_keys"]
        )
        attentional = self.output_dense(ops.concatenate([context, query], axis=-1))
        return self.dropout_layer(attentional, training=training), weights

    def _run_cells(self, x, cell_states, training):
        """One step of the stack: `cell_states` holds `"h"` (and `"c"`) lists, one entry per layer."""
        new = {key: [] for key in cell_states}
        for index, cell in enumerate(self.cells):
            if index:
                x = self.dropout_layer(x, training=training)
            if self.cell == "lstm":
                x, (h_i, c_i) = cell(x, [cell_states["h"][index], cell_states["c"][index]], training=training)
                new["c"].append(c_i)
            else:
                x, (h_i,) = cell(x, [cell_states["h"][index]], training=training)
            new["h"].append(h_i)
        return x, new

    def _cell_states(self, state):
        return {key: state[key] for key in ("h", "c") if key in state}

    def step(self, inputs, state, training=False):
        """One decoding step: inputs `(batch_size, input_dim)` -> `(output, new_state, weights)`."""
        x = ops.concatenate([inputs, state["attentional"]], -1) if self.input_feeding else inputs
        x, cell_states = self._run_cells(x, self._cell_states(state), training)
        attentional, weights = self._attend(ops.expand_dims(x, 1), state, training)
        attentional, weights = attentional[:, 0], weights[:, 0]
        return attentional, dict(state, **cell_states, attentional=attentional), weights

    def call(self, inputs, state, training=False):
        # Input feeding makes each step depend on the previous step's attention, so the whole step runs
        # inside the time loop; without it only the cells do, and attention runs once for all steps.
        steps = tf.shape(inputs)[1]
        time_major = tf.transpose(inputs, [1, 0, 2])
        outputs = tf.TensorArray(self.compute_dtype, size=steps)
        all_weights = tf.TensorArray(self.compute_dtype, size=steps if self.input_feeding else 0)
        recurrent = dict(self._cell_states(state), attentional=state["attentional"])

        def body(t, recurrent, outputs, all_weights):
            if self.input_feeding:
                output, new_state, weights = self.step(time_major[t], dict(state, **recurrent), training)
                all_weights = all_weights.write(t, weights)
            else:
                output, cell_states = self._run_cells(time_major[t], self._cell_states(recurrent), training)
                new_state = dict(recurrent, **cell_states)
            recurrent = {key: new_state[key] for key in recurrent}
            return t + 1, recurrent, outputs.write(t, output), all_weights

        _, _, outputs, all_weights = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), recurrent, outputs, all_weights)
        )
        outputs = tf.transpose(outputs.stack(), [1, 0, 2])
        if not self.input_feeding:
            return self._attend(outputs, state, training)
        return outputs, tf.transpose(all_weights.stack(), [1, 0, 2])

    def get_config(self):
        config = super().get_config()
        config.update({
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "attention": self.attention_type,
            "input_feeding": self.input_feeding,
            "dropout": self.dropout,
            "cell": self.cell,
        })
        return config
