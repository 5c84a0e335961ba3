import keras
from keras import ops
from keras_hub.layers import PositionEmbedding, SinePositionEncoding

from tflm.layers.transformer_decoder_block import TransformerDecoderBlock
from tflm.layers.transformer_encoder_block import TransformerEncoderBlock
from tflm.models.seq2seq import Seq2Seq, padding_mask

POSITION_EMBEDDINGS = ("sinusoidal", "learned")


@keras.saving.register_keras_serializable(package="tflm")
class TransformerSeq2Seq(Seq2Seq):
    """Transformer encoder-decoder (Vaswani et al. 2017), pre-LN by default.

    The encoder stacks tflm `TransformerEncoderBlock`s and the decoder `TransformerDecoderBlock`s (tflm's
    `MultiHeadAttention`: 2-D projections, a key/value cache, cross-attention weights). Positions are
    keras-hub's `SinePositionEncoding` or `PositionEmbedding`. Decoding keeps a self-attention cache per
    layer and computes the cross-attention keys and values once per source, so a step costs one position.

    Args:
        source_vocabulary_size, target_vocabulary_size: int.
        hidden_dim: int. Model width.
        intermediate_dim: int. Feed-forward width.
        num_heads: int.
        num_encoder_layers, num_decoder_layers: int.
        dropout: float.
        normalize_first: bool. Pre-LN (True) or post-LN (False).
        position_embedding: `"sinusoidal"` or `"learned"`.
        max_sequence_length: int. Longest sequence (the table size of learned positions).
        share_embeddings: bool. One embedding table for source and target (joint vocabulary).
        tie_output_embeddings: bool. The output projection is the transposed target embedding.
    Example:
    >>> model = TransformerSeq2Seq(100, 100, hidden_dim=16, intermediate_dim=32, num_heads=2)
    >>> model({"source_ids": np.array([[5, 6, 3]]), "target_ids": np.array([[2, 7]])}).shape
    TensorShape([1, 2, 100])
    """

    def __init__(self, source_vocabulary_size, target_vocabulary_size, hidden_dim=256, intermediate_dim=1024,
                 num_heads=4, num_encoder_layers=3, num_decoder_layers=3, dropout=0.1, normalize_first=True,
                 position_embedding="sinusoidal", max_sequence_length=256, share_embeddings=False,
                 tie_output_embeddings=True, **kwargs):
        super().__init__(**kwargs)
        if share_embeddings and source_vocabulary_size != target_vocabulary_size:
            raise ValueError(
                f"share_embeddings=True needs one joint vocabulary, but source_vocabulary_size="
                f"{source_vocabulary_size} and target_vocabulary_size={target_vocabulary_size}."
            )
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(f"position_embedding={position_embedding!r} must be one of {POSITION_EMBEDDINGS}.")
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.dropout = dropout
        self.normalize_first = normalize_first
        self.position_embedding = position_embedding
        self.max_sequence_length = max_sequence_length
        self.share_embeddings = share_embeddings
        self.tie_output_embeddings = tie_output_embeddings

        policy = self.dtype_policy
        self.target_embedding = keras.layers.ReversibleEmbedding(
            target_vocabulary_size, hidden_dim, tie_weights=tie_output_embeddings, dtype=policy,
            # the output projection (the largest matmul) in the compute dtype, bfloat16 under mixed precision
            reverse_dtype=self.dtype_policy.compute_dtype,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_dim**-0.5),
            name="target_embedding",
        )
        self.source_embedding = self.target_embedding if share_embeddings else keras.layers.Embedding(
            source_vocabulary_size, hidden_dim, dtype=policy,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_dim**-0.5),
            name="source_embedding",
        )
        if position_embedding == "sinusoidal":
            self.positions = SinePositionEncoding(dtype=policy, name="positions")
        else:
            self.positions = PositionEmbedding(max_sequence_length, dtype=policy, name="positions")
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.encoder_layers = [
            TransformerEncoderBlock(intermediate_dim, num_heads, dropout=dropout, normalize_first=normalize_first,
                                    dtype=policy, name=f"encoder_layer_{i}")
            for i in range(num_encoder_layers)
        ]
        self.decoder_layers = [
            TransformerDecoderBlock(intermediate_dim, num_heads, dropout=dropout, normalize_first=normalize_first,
                                    dtype=policy, name=f"decoder_layer_{i}")
            for i in range(num_decoder_layers)
        ]
        # Pre-LN stacks end with a layer norm (post-LN blocks already end with one).
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="encoder_norm")
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="decoder_norm")

    def _embed(self, embedding, token_ids, start_index=0, training=False):
        x = embedding(token_ids) * ops.cast(self.hidden_dim**0.5, self.compute_dtype)
        x = x + self.positions(x, start_index=start_index)
        return self.embedding_dropout(x, training=training)

    def _logits(self, x):
        # The output projection runs in the compute dtype; the softmax and the loss get float32 logits.
        return ops.cast(self.target_embedding(x, reverse=True), "float32")

    def encode(self, source_ids, training=False):
        mask = padding_mask(source_ids)
        x = self._embed(self.source_embedding, source_ids, training=training)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=mask, training=training)
        if self.normalize_first:
            x = self.encoder_norm(x)
        return {"memory": x, "memory_mask": mask}

    def decode(self, target_ids, encoded, training=False, return_attention=False):
        x = self._embed(self.target_embedding, target_ids, training=training)
        weights = None
        for layer in self.decoder_layers:
            x, _, weights = layer(x, memory=encoded["memory"], memory_mask=encoded["memory_mask"],
                                  return_attention=return_attention, training=training)
        if self.normalize_first:
            x = self.decoder_norm(x)
        logits = self._logits(x)
        return (logits, weights) if return_attention else logits

    def initial_state(self, encoded, max_length):
        memory = encoded["memory"]
        batch_size = ops.shape(memory)[0]
        head_dim = self.hidden_dim // self.num_heads
        empty = ops.zeros((batch_size, 2, self.num_heads, max_length, head_dim), dtype=memory.dtype)
        return {
            "self_caches": [empty for _ in self.decoder_layers],
            "static": {
                "memory_mask": encoded["memory_mask"],
                "cross_caches": [layer.cross_attention_cache(memory) for layer in self.decoder_layers],
            },
        }

    def decode_step(self, token_ids, state, step, training=False):
        x = self._embed(self.target_embedding, token_ids[:, None], start_index=step, training=training)
        static = state["static"]
        caches = []
        for layer, cache, cross_cache in zip(self.decoder_layers, state["self_caches"], static["cross_caches"]):
            x, cache, _ = layer(x, memory_mask=static["memory_mask"], self_cache=cache, cache_index=step,
                                cross_cache=cross_cache, training=training)
            caches.append(cache)
        if self.normalize_first:
            x = self.decoder_norm(x)
        return self._logits(x[:, 0]), dict(state, self_caches=caches)

    def cross_attention(self, source_ids, target_ids):
        """Cross-attention of the last decoder layer, averaged over heads: float `(batch, target, source)`."""
        _, weights = self.decode(target_ids, self.encode(source_ids), return_attention=True)
        return ops.mean(ops.cast(weights, "float32"), axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "dropout": self.dropout,
            "normalize_first": self.normalize_first,
            "position_embedding": self.position_embedding,
            "max_sequence_length": self.max_sequence_length,
            "share_embeddings": self.share_embeddings,
            "tie_output_embeddings": self.tie_output_embeddings,
        })
        return config
