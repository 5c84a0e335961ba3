import keras
from keras import ops

from tflm.layers.masking import padding_mask  # noqa: F401 (re-exported: tflm.models.padding_mask)
from tflm.text.special_tokens import PAD_ID


class Seq2Seq(keras.Model):
    """Base class of the encoder-decoder models: the interface decoding and export use for every model.

    A subclass implements:

    - `encode(source_ids, training=False)` -> a dict of batch-major tensors (the encoder's outputs, at least
      `"memory"` and `"memory_mask"`);
    - `initial_state(encoded, max_length)` -> the decoding state before the first step (a nest of batch-major
      tensors; entries under `"static"` are the same at every step; `max_length` sizes any key/value cache);
    - `decode_step(token_ids, state, step, training=False)` -> `(logits, state)` for one target position:
      `token_ids` int `(batch_size,)` is the previous token, `step` the 0-based position being predicted;
    - `decode(target_ids, encoded, training=False)` -> float32 logits for a whole target (teacher forcing);
    - `cross_attention(source_ids, target_ids)` -> float32 `(batch, target, source)` attention weights.

    `call({"source_ids", "target_ids"})` is teacher forcing from `encode` and `decode`.
    `decode_step` applied position by position gives the same logits as `decode` (tested), which is what
    lets the decoding toolkit (greedy, beam search, sampling) run every model. `EncoderDecoder` implements all
    of it from an encoder and a decoder layer.
    """

    def call(self, inputs, training=False):
        encoded = self.encode(inputs["source_ids"], training=training)
        return self.decode(inputs["target_ids"], encoded, training=training)

    def encode(self, source_ids, training=False):
        raise NotImplementedError

    def initial_state(self, encoded, max_length):
        # the default: the encoder's outputs are all the state (a model whose steps carry nothing else)
        return encoded

    def decode_step(self, token_ids, state, step, training=False):
        raise NotImplementedError

    def decode(self, target_ids, encoded, training=False):
        raise NotImplementedError

    def uncached_decoding(self, encoded, max_length):
        """A step function that recomputes the whole prefix at every step, and its initial state.

        It gives the same logits as `decode_step` (tested) at a cost that grows with the prefix: the
        baseline that caching is measured against.
        """
        batch_size = ops.shape(encoded["memory"])[0]
        state = {"prefix": ops.full((batch_size, max_length), PAD_ID, dtype="int32"), "static": encoded}

        def step_fn(token_ids, state, step):
            at_step = ops.equal(ops.arange(max_length), step)[None, :]
            prefix = ops.where(at_step, ops.cast(token_ids, "int32")[:, None], state["prefix"])
            logits = self.decode(prefix[:, : step + 1], state["static"])
            return logits[:, -1], dict(state, prefix=prefix)

        return step_fn, state

    def cross_attention(self, source_ids, target_ids):
        """Attention weights of each target position over the source, float `(batch, target, source)`."""
        raise NotImplementedError

    def build(self, input_shape=None):
        # Subclassed models create their weights on a first call; a tiny dummy batch does it, so that a
        # model rebuilt from its config (`.keras` loading, checkpoint restoring) has all its variables.
        if self.built:
            return
        dummy = ops.full((1, 2), PAD_ID + 4, dtype="int32")
        self.call({"source_ids": dummy, "target_ids": dummy})
        self.built = True
