import keras
import tensorflow as tf
from keras import ops

from tflm.layers.relative_attention import TransformerXLBlock
from tflm.models.language_model import LanguageModel


class _MemoryState:
    """Transformer-XL memory carried from one training batch to the next (contiguous batches).

    A plain object, deliberately: its variables are training state, not model weights, so they stay out
    of `model.weights`, checkpoints and exports (whose models may use other batch sizes). Besides each
    block's memory it keeps which slots hold real hidden states (`valid`, `(batch, memory_length)`): an
    emptied row's slots are masked out of the attention, so that it attends to nothing before its segment,
    exactly as a segment read with no memory at all (zero-filled slots would still be attended to).
    """

    def __init__(self, num_layers, batch_size, memory_length, hidden_dim, dtype):
        self.variables = [tf.Variable(tf.zeros([batch_size, memory_length, hidden_dim], dtype), trainable=False,
                                      name=f"memory_{i}") for i in range(num_layers)]
        self.valid = tf.Variable(tf.zeros([batch_size, memory_length], tf.bool), trainable=False,
                                 name="memory_valid")

    def read(self):
        return [v.read_value() for v in self.variables], self.valid.read_value()

    def write(self, memories, valid):
        for variable, value in zip(self.variables, memories):
            variable.assign(value)
        self.valid.assign(valid)

    def reset(self):
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable))
        self.valid.assign(tf.zeros_like(self.valid))


@keras.saving.register_keras_serializable(package="tflm")
class TransformerXL(LanguageModel):
    """Transformer-XL (Dai et al. 2019): relative positions and segment-level recurrence.

    Each segment attends to the cached, stop-gradient hidden states of the previous segment(s) (`memory`,
    the last `memory_length` inputs of each block), so the context grows beyond a segment without
    backpropagating through it. `forward(token_ids, memory)` is the explicit form; for training on
    contiguous batches, `enable_memory_state(batch_size)` makes `call` carry the memory itself.

    Args:
        vocabulary_size, hidden_dim, intermediate_dim, num_heads, num_layers, dropout: as `GPT`.
        memory_length: int. Hidden states kept from previous segments (0: no recurrence).
    Example:
    >>> model = TransformerXL(65, hidden_dim=32, intermediate_dim=128, num_heads=4, num_layers=2, memory_length=16)
    >>> logits, memory = model.forward(np.array([[5, 6, 7]]))
    >>> logits, memory = model.forward(np.array([[8, 9, 10]]), memory)  # the second segment sees the first
    """

    state_key = "buffers"  # decoding keeps each block's inputs (relative attention recomputes its keys)

    def __init__(self, vocabulary_size, hidden_dim=256, intermediate_dim=1024, num_heads=4, num_layers=4,
                 dropout=0.1, memory_length=64, activation="gelu", **kwargs):
        super().__init__(vocabulary_size, hidden_dim, intermediate_dim, num_heads, num_layers, dropout, activation,
                         **kwargs)
        self.memory_length = memory_length
        self._add_blocks(lambda i: TransformerXLBlock(intermediate_dim, num_heads, dropout=dropout,
                                                      activation=activation, dtype=self.dtype_policy,
                                                      name=f"block_{i}"))
        self._memory_state = None

    @property
    def reads_contiguous_streams(self):
        return self.memory_length > 0

    def forward(self, token_ids, memory=None, training=False, memory_mask=None):
        """Logits of a segment given the memory of the previous ones, and the memory for the next segment.

        Args:
            token_ids: int `(batch, length)`.
            memory: None, or a list (one per block) of float `(batch, memory_length, hidden_dim)`.
            memory_mask: optional bool `(batch, memory_length)`: the memory slots each row may attend to
                (default: all of them); a row with none attends as if it had no memory.
        Returns:
            `(logits, new_memory)`: float32 `(batch, length, vocabulary_size)`, and the list of each block's
            last `memory_length` inputs (None when memory_length is 0).
        """
        hidden, new_memory = self.forward_hidden(token_ids, memory, training=training, memory_mask=memory_mask)
        return self.output_logits(hidden), new_memory

    def forward_hidden(self, token_ids, memory=None, training=False, memory_mask=None):
        """`forward` before the output layer: the last block's normalized outputs `(batch, length, hidden_dim)`
        (what `output_logits` reads the logits from), and the memory for the next segment."""
        x = self._embed(token_ids, training=training)  # (B, T, d)
        new_memory = []
        for index, block in enumerate(self.blocks):
            previous = None if memory is None or not self.memory_length else memory[index]
            if self.memory_length:
                joined = x if previous is None else ops.concatenate([ops.cast(previous, x.dtype), x], axis=1)
                new_memory.append(ops.stop_gradient(joined[:, -self.memory_length:]))
            x = block(x, memory=previous, memory_mask=None if previous is None else memory_mask, training=training)
        return self.final_norm(x), (new_memory if self.memory_length else None)

    def call(self, inputs, training=False):
        if self._memory_state is None:
            return self.forward(inputs["token_ids"], None, training=training)[0]
        memory, valid = self._memory_state.read()
        if "new_chunk" in inputs:  # rows that start a chunk start with an empty memory: nothing to attend to
            valid = ops.logical_and(valid, ops.logical_not(inputs["new_chunk"])[:, None])
        logits, new_memory = self.forward(inputs["token_ids"], memory, training=training, memory_mask=valid)
        # the new memory's slots: the old valid ones, then the segment's (all real), the last memory_length
        segment = ops.ones(ops.shape(inputs["token_ids"]), dtype="bool")
        self._memory_state.write(new_memory, ops.concatenate([valid, segment], axis=1)[:, -self.memory_length:])
        return logits

    def enable_memory_state(self, batch_size):
        """Makes `call` carry the memory from one batch to the next (for contiguous training batches of
        `batch_size` streams). Call `reset_memory()` where the streams restart (a new epoch); inputs with
        `new_chunk` (bool `(batch,)`) empty the memory of the rows it marks. An emptied memory is masked,
        not only zeroed: the row then attends exactly as a segment read with no memory."""
        if not self.memory_length:
            return
        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            raise ValueError("Transformer-XL's carried memory trains on one replica; use strategy 'default', or "
                             "memory_length=0.")
        self._memory_state = _MemoryState(self.num_layers, batch_size, self.memory_length, self.hidden_dim,
                                          self.compute_dtype)

    def carried_state_variables(self):
        """The memory carried between training batches (with its validity), for the training checkpoint:
        a run resumed in the middle of an epoch continues with the memory the interrupted one had."""
        if self._memory_state is None:
            return []
        return self._memory_state.variables + [self._memory_state.valid]

    def reset_memory(self):
        if self._memory_state is not None:
            self._memory_state.reset()

    def initial_state(self, batch_size, max_length):
        """Empty buffers of `max_length` positions, one per block: the inputs each block has seen."""
        empty = ops.zeros((batch_size, max_length, self.hidden_dim), dtype=self.compute_dtype)
        return {"buffers": [empty for _ in self.blocks]}

    def _block_step(self, block, x, buffer, step, training):
        return block.step(x, buffer, step, training=training)

    def get_config(self):
        config = super().get_config()
        config["memory_length"] = self.memory_length
        return config
