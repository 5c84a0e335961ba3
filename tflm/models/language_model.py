import keras
from keras import ops

from tflm.text.tokenizers import PAD_ID


class LanguageModel(keras.Model):
    """Base class of the decoder-only language models, with the decoding interface of `Seq2Seq`.

    A subclass implements:

    - `call({"token_ids"}, training=False)` -> logits `(batch, length, vocabulary_size)` for the next token
      at every position;
    - `initial_state(batch_size, max_length)` -> the decoding state (a key/value cache, ...);
    - `decode_step(token_ids, state, step, training=False)` -> `(logits, state)`: `token_ids` int
      `(batch,)` is the token at position `step`; the logits predict position `step + 1`.

    Applying `decode_step` position by position gives the logits of `call` (tested), so every decoding
    strategy of `tflm.decoding` generates with every language model.
    """

    def output_logits(self, hidden):
        """float32 logits `(..., vocabulary_size)` from the last layer's normalized outputs `(..., hidden_dim)`
        (the tied output embedding)."""
        return ops.cast(self.token_embedding(hidden, reverse=True), "float32")

    def initial_state(self, batch_size, max_length):
        raise NotImplementedError

    def decode_step(self, token_ids, state, step, training=False):
        raise NotImplementedError

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
