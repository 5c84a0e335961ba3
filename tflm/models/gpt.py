import keras
from keras import ops
from keras_hub.layers import PositionEmbedding

from tflm.layers.transformer_decoder_block import TransformerDecoderBlock
from tflm.models.language_model import LanguageModel

GPT_POSITIONS = ("learned", "rotary")


@keras.saving.register_keras_serializable(package="tflm")
class GPT(LanguageModel):
    """A GPT-style decoder-only Transformer: causal self-attention, pre-LN, tied input/output embeddings.

    Built from tflm's `TransformerDecoderBlock` (without cross-attention), with the same key/value cache
    and `decode_step` interface as the translation models.

    Args:
        vocabulary_size: int.
        hidden_dim: int.
        intermediate_dim: int. Feed-forward width (usually 4 * hidden_dim).
        num_heads: int.
        num_layers: int.
        dropout: float.
        max_sequence_length: int. Longest sequence (the table size of learned positions).
        position_embedding: `"learned"` (GPT-2) or `"rotary"`.
        activation: feed-forward activation.
    Example:
    >>> model = GPT(vocabulary_size=65, hidden_dim=32, intermediate_dim=128, num_heads=4, num_layers=2)
    >>> model({"token_ids": np.array([[5, 6, 7]])}).shape
    TensorShape([1, 3, 65])
    """

    supports_prefill = True

    def __init__(self, vocabulary_size, hidden_dim=256, intermediate_dim=1024, num_heads=4, num_layers=4,
                 dropout=0.1, max_sequence_length=512, position_embedding="learned", activation="gelu", **kwargs):
        if position_embedding not in GPT_POSITIONS:
            raise ValueError(f"position_embedding={position_embedding!r} must be one of {GPT_POSITIONS}.")
        super().__init__(vocabulary_size, hidden_dim, intermediate_dim, num_heads, num_layers, dropout, activation,
                         **kwargs)
        self.max_sequence_length = max_sequence_length
        self.position_embedding = position_embedding
        if position_embedding == "learned":
            self.positions = PositionEmbedding(max_sequence_length, dtype=self.dtype_policy,
                                               initializer=keras.initializers.RandomNormal(stddev=0.02),
                                               name="positions")
        self._add_blocks(lambda i: TransformerDecoderBlock(
            intermediate_dim, num_heads, dropout=dropout, activation=activation, normalize_first=True,
            cross_attention=False, rotary=position_embedding == "rotary", dtype=self.dtype_policy, name=f"block_{i}"))

    def forward_hidden(self, token_ids, memory=None, training=False, memory_mask=None):
        """The last block's normalized outputs `(B, T, d)`, and None: GPT carries no memory (`memory` and
        `memory_mask` must be None)."""
        if memory is not None:
            raise ValueError("GPT carries no memory between segments; pass memory=None.")
        x = self._embed(token_ids, training=training)  # (B, T, d)
        for block in self.blocks:
            x, _, _ = block(x, training=training)
        return self.final_norm(x), None

    def initial_state(self, batch_size, max_length):
        """Empty key/value caches of `max_length` positions, one per block."""
        head_dim = self.hidden_dim // self.num_heads
        empty = ops.zeros((batch_size, 2, self.num_heads, max_length, head_dim), dtype=self.compute_dtype)
        return {"caches": [empty for _ in self.blocks]}

    def prefill(self, token_ids, state):
        """Reads the first positions of every row in one pass: their keys/values go into the cache.

        Decoding a prompt step by step runs the model once per prompt token; this runs it once for all of
        them (causal attention over the block), so a long prompt costs about one step.

        Args:
            token_ids: int `(batch, length)`, the tokens at positions `0 .. length - 1`.
            state: from `initial_state`.
        Returns:
            The state holding those positions; decoding goes on with `decode_step` at step `length`.
        """
        x = self._embed(ops.cast(token_ids, "int32"), start_index=0)
        caches = []
        for block, cache in zip(self.blocks, state["caches"]):
            x, cache, _ = block(x, self_cache=cache, cache_index=0)
            caches.append(cache)
        return {"caches": caches}

    def _block_step(self, block, x, cache, step, training):
        x, cache, _ = block(x, self_cache=cache, cache_index=step, training=training)
        return x, cache

    def get_config(self):
        config = super().get_config()
        config.update({
            "max_sequence_length": self.max_sequence_length,
            "position_embedding": self.position_embedding,
        })
        return config


class GPTEncoder(keras.layers.Layer):
    """A tflm GPT as the encoder of a classification (or tagging) model, as GPT-1 was fine-tuned: it reads token ids
    (`<s> a </s> (b </s>)`; `reads_token_ids`) with causal attention, and a text's vector is the last real token's
    state, the only one that has read the whole text. Segment ids are not read (GPT has no segment embedding; the
    separator tells the texts of a pair apart).

    Args:
        vocabulary_size: int. For a new GPT (when `backbone` is None).
        backbone: a `GPT` (e.g. a language-model run's, whose weights are copied into it), or None.
        pooling: "last" (the last real token) or "mean" (over the real tokens).
        **sizes: the arguments of a new `GPT`.
    """

    reads_token_ids = True

    def __init__(self, vocabulary_size=None, backbone=None, pooling="last", hidden_dim=256, intermediate_dim=1024,
                 num_heads=4, num_layers=4, dropout=0.1, max_sequence_length=512, position_embedding="learned",
                 **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling={pooling!r} must be 'last' or 'mean' for a GPT encoder.")
        self.pooling = pooling
        self.backbone = backbone if backbone is not None else GPT(
            vocabulary_size, hidden_dim, intermediate_dim, num_heads, num_layers, dropout, max_sequence_length,
            position_embedding, dtype=self.dtype_policy, name="gpt")

    @property
    def max_sequence_length(self):
        return self.backbone.max_sequence_length

    def build(self, input_shape=None):
        self.built = True

    def sequence_output(self, inputs, training=False):
        """The last block's normalized states `(batch, length, hidden_dim)` (each has read only what precedes it)."""
        return self.backbone.forward_hidden(ops.cast(inputs["token_ids"], "int32"), training=training)[0]

    def call(self, inputs, padding_mask=None, training=False):
        sequence = self.sequence_output(inputs, training=training)
        mask = ops.cast(inputs["padding_mask"], sequence.dtype)
        if self.pooling == "mean":
            return ops.sum(sequence * mask[..., None], 1) / ops.maximum(ops.sum(mask, 1, keepdims=True), 1.0)
        last = ops.maximum(ops.cast(ops.sum(mask, 1), "int32") - 1, 0)  # right padding: the last real position
        return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0]
