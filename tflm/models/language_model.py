import keras
from keras import ops

from tflm.text.special_tokens import PAD_ID


class LanguageModel(keras.Model):
    """Base class of the decoder-only language models, with the decoding interface of `Seq2Seq`.

    It holds what GPT and Transformer-XL share: the tied token embedding (`token_embedding`, which is also the
    output projection), the embedding dropout, the stack of `blocks` and the `final_norm`, the step loop and
    the common constructor arguments. A subclass implements:

    - `forward_hidden(token_ids, memory=None, training=False, memory_mask=None)` -> `(hidden, new_memory)`:
      the last block's normalized outputs `(batch, length, hidden_dim)`, and the memory for the next segment
      (None for a model without one);
    - `initial_state(batch_size, max_length)` -> the decoding state before the first step (a key/value cache,
      ...; `max_length` sizes it);
    - `_block_step(block, x, cache, step, training)` -> `(x, cache)`, one block on one position.

    and gets `call({"token_ids"}, training=False)` -> logits `(batch, length, vocabulary_size)` for the next
    token at every position, and `decode_step(token_ids, state, step, training=False)` -> `(logits, state)`:
    `token_ids` int `(batch,)` is the token at position `step`; the logits predict position `step + 1`.
    Applying `decode_step` position by position gives the logits of `call` (tested), so every decoding
    strategy of `tflm.decoding` generates with every language model.

    What differs between the models is behind these, so that task code never asks which model it has:
    `reads_contiguous_streams` (train and evaluate on contiguous segments, carrying a memory),
    `enable_memory_state`, `reset_memory`, `carried_state_variables`, `supports_prefill` / `prefill`.

    Args:
        vocabulary_size: int.
        hidden_dim: int.
        intermediate_dim: int. Feed-forward width (usually 4 * hidden_dim).
        num_heads: int.
        num_layers: int.
        dropout: float.
        activation: feed-forward activation.
    """

    positions = None  # a position embedding added to the token embedding (GPT's learned positions)
    state_key = "caches"  # the decoding state's entry holding one cache per block
    supports_prefill = False  # whether it has `prefill(token_ids, state)`, reading a prompt in one pass

    def __init__(self, vocabulary_size, hidden_dim=256, intermediate_dim=1024, num_heads=4, num_layers=4,
                 dropout=0.1, activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.dropout = dropout
        self.activation = activation
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=True, dtype=self.dtype_policy,
            reverse_dtype=self.dtype_policy.compute_dtype,  # the output projection in the compute dtype
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02), name="token_embedding",
        )

    def _add_blocks(self, make_block):
        """Creates the embedding dropout, the blocks (`make_block(index)`) and the final norm, in the order of
        the variables (checkpoints are keyed by it): after the token embedding and any positions."""
        self.embedding_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.blocks = [make_block(index) for index in range(self.num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="final_norm")

    def _embed(self, token_ids, start_index=0, training=False):
        x = self.token_embedding(token_ids)
        if self.positions is not None:
            x = x + self.positions(x, start_index=start_index)
        return self.embedding_dropout(x, training=training)

    def output_logits(self, hidden):
        """float32 logits `(..., vocabulary_size)` from the last layer's normalized outputs `(..., hidden_dim)`
        (the tied output embedding)."""
        return ops.cast(self.token_embedding(hidden, reverse=True), "float32")

    def forward_hidden(self, token_ids, memory=None, training=False, memory_mask=None):
        raise NotImplementedError

    def hidden_states(self, token_ids, training=False):
        """The last block's normalized outputs `(batch, length, hidden_dim)` (of a segment without memory), which
        `output_logits` reads the logits from."""
        return self.forward_hidden(token_ids, None, training=training)[0]

    def call(self, inputs, training=False):
        return self.output_logits(self.hidden_states(inputs["token_ids"], training=training))  # (B, T, V)

    # Streams carried from batch to batch (Transformer-XL's memory); nothing for a model without memory.

    @property
    def reads_contiguous_streams(self):
        """Whether the model carries a memory from one segment to the next: it trains on contiguous batches
        (`enable_memory_state`, `reset_memory` at each epoch) and evaluates segment after segment."""
        return False

    def enable_memory_state(self, batch_size):
        """Makes `call` carry the memory from one batch to the next (a no-op without memory)."""

    def reset_memory(self):
        """Empties the carried memory (a no-op without memory)."""

    def carried_state_variables(self):
        """The state carried between training batches, for the training checkpoint (none without memory)."""
        return []

    # Decoding

    def initial_state(self, batch_size, max_length):
        raise NotImplementedError

    def _block_step(self, block, x, cache, step, training):
        raise NotImplementedError

    def decode_step(self, token_ids, state, step, training=False):
        x = self._embed(ops.cast(token_ids, "int32")[:, None], start_index=step, training=training)  # (B, 1, d)
        caches = []
        for block, cache in zip(self.blocks, state[self.state_key]):
            x, cache = self._block_step(block, x, cache, step, training)
            caches.append(cache)
        return self.output_logits(self.final_norm(x[:, 0])), {self.state_key: caches}

    def uncached_decoding(self, batch_size, max_length):
        """A step function recomputing the whole prefix at every step, and its initial state (the
        baseline that caching is measured against)."""
        state = {"prefix": ops.full((batch_size, max_length), PAD_ID, dtype="int32")}

        def step_fn(token_ids, state, step):
            at_step = ops.equal(ops.arange(max_length), step)[None, :]
            prefix = ops.where(at_step, ops.cast(token_ids, "int32")[:, None], state["prefix"])
            logits = self({"token_ids": prefix[:, : step + 1]})
            return logits[:, -1], dict(state, prefix=prefix)

        return step_fn, state

    def build(self, input_shape=None):
        if self.built:
            return
        self.call({"token_ids": ops.full((1, 2), PAD_ID + 4, dtype="int32")})
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary_size": self.vocabulary_size,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "activation": self.activation,
        })
        return config
