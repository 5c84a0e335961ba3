"""The two halves of an encoder-decoder model, as layers any pair of which `tflm.models.EncoderDecoder` composes."""

import keras


class _SharesLayers:
    def build(self, *args, **kwargs):
        # the sub-layers create their weights on their first call (a model builds with a dummy batch)
        self.built = True

    def share(self, **layers):
        """Uses other layers in place of its own sub-layers of those names, e.g. `share(embedding=...)` for one
        embedding table for source and target. Only before the replaced sub-layers have weights (before the
        first call); they are dropped from the layer's tracking, so that no unused variable (a dropout's seed)
        stays in `weights` or `variables`."""
        for name, layer in layers.items():
            own = getattr(self, name)
            if own is layer:
                continue
            if own.weights:
                raise ValueError(f"{self.name}.share({name}=...) must come before the layer is first called.")
            self._tracker.untrack(own)
            setattr(self, name, layer)


class Encoder(_SharesLayers, keras.layers.Layer):
    """Base class of the encoders: source token ids in, what the decoder attends to out.

    A subclass implements `call(source_ids, training=False)` -> a dict of batch-major tensors:

    - `"memory"`: float `(batch, source_length, output_dim)`, one vector per source position;
    - `"memory_mask"`: bool `(batch, source_length)`, False on padding;
    - optionally `"states"`: a list (one per layer) of final recurrent states, `[h]` (GRU) or `[h, c]` (LSTM),
      each `(batch, output_dim)`; a recurrent decoder starts from them.

    It has `output_dim` (the memory's width) and `embedding` (its token embedding, which `share` can replace).
    """

    output_dim = None


class Decoder(_SharesLayers, keras.layers.Layer):
    """Base class of the decoders: target token ids and an encoder's outputs in, next-token logits out.

    A subclass implements:

    - `call(target_ids, encoded, training=False)` -> float32 logits `(batch, target_length, vocabulary_size)`
      (teacher forcing; position t predicts token t + 1 from tokens 0..t);
    - `initial_state(encoded, max_length)` -> the decoding state before the first step (a nest of batch-major
      tensors; entries under `"static"` stay the same at every step, and beam search does not reorder them;
      `max_length` sizes any key/value cache);
    - `step(token_ids, state, step, training=False)` -> `(logits, state)`: `token_ids` int `(batch,)` is the
      token at position `step`; the float32 logits `(batch, vocabulary_size)` are those `call` gives there;
    - `cross_attention(target_ids, encoded)` -> float32 `(batch, target_length, source_length)`, the weights of
      each target position over the source (each row sums to 1 over the real source tokens).

    It has `memory_dim` (the memory width it attends to), `vocabulary_size` and `embedding` (its target token
    embedding, which `share` can replace).
    """

    memory_dim = None

    def initial_state(self, encoded, max_length):
        raise NotImplementedError

    def step(self, token_ids, state, step, training=False):
        raise NotImplementedError

    def cross_attention(self, target_ids, encoded):
        raise NotImplementedError
