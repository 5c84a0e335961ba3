"""The Transformer encoder and decoder of the encoder-decoder models (`tflm.models.EncoderDecoder`)."""

import keras
from keras import ops
from keras_hub.layers import PositionEmbedding, SinePositionEncoding

from tflm.layers.copy_attention import CopyAttention
from tflm.layers.encoder_decoder import Decoder, Encoder
from tflm.layers.masking import padding_mask
from tflm.layers.transformer_decoder_block import TransformerDecoderBlock
from tflm.layers.transformer_encoder_block import TransformerEncoderBlock
from tflm.text.special_tokens import PAD_ID

POSITION_EMBEDDINGS = ("sinusoidal", "learned")


class _TransformerStack:
    """What the Transformer encoder and decoder share: sizes, positions, embedding and the final norm."""

    def _setup(self, vocabulary_size, hidden_dim, intermediate_dim, num_heads, num_layers, dropout, normalize_first,
               position_embedding, max_sequence_length):
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(f"position_embedding={position_embedding!r} must be one of {POSITION_EMBEDDINGS}.")
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.dropout = dropout
        self.normalize_first = normalize_first
        self.position_embedding = position_embedding
        self.max_sequence_length = max_sequence_length

    def _make_positions(self):
        if self.position_embedding == "sinusoidal":
            return SinePositionEncoding(dtype=self.dtype_policy, name="positions")
        return PositionEmbedding(self.max_sequence_length, dtype=self.dtype_policy, name="positions")

    def _embedding_initializer(self):
        return keras.initializers.RandomNormal(stddev=self.hidden_dim**-0.5)

    def _embed(self, token_ids, start_index=0, training=False):
        x = self.embedding(token_ids) * ops.cast(self.hidden_dim**0.5, self.compute_dtype)
        x = x + self.positions(x, start_index=start_index)
        return self.embedding_dropout(x, training=training)

    def _stack_config(self):
        return {
            "vocabulary_size": self.vocabulary_size,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "normalize_first": self.normalize_first,
            "position_embedding": self.position_embedding,
            "max_sequence_length": self.max_sequence_length,
        }


@keras.saving.register_keras_serializable(package="tflm")
class TransformerEncoder(_TransformerStack, Encoder):
    """A Transformer encoder: scaled token embedding plus positions, `TransformerEncoderBlock`s, a final layer
    norm (pre-LN stacks; post-LN blocks already end with one).

    Args:
        vocabulary_size: int.
        hidden_dim: int. Model width (the memory's).
        intermediate_dim: int. Feed-forward width.
        num_heads: int.
        num_layers: int.
        dropout: float.
        normalize_first: bool. Pre-LN (True) or post-LN (False).
        position_embedding: `"sinusoidal"` or `"learned"`.
        max_sequence_length: int. Longest source (the table size of learned positions).
    Call arguments:
        source_ids: int `(batch, source_length)`, PAD-padded.
        training: bool.
    Returns:
        `{"memory", "memory_mask"}` (see `Encoder`).
    Example:
    >>> encoder = TransformerEncoder(100, hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=1)
    >>> encoder(np.array([[5, 6, 3, 0]]))["memory"].shape
    TensorShape([1, 4, 16])
    """

    def __init__(self, vocabulary_size, hidden_dim=256, intermediate_dim=1024, num_heads=4, num_layers=3,
                 dropout=0.1, normalize_first=True, position_embedding="sinusoidal", max_sequence_length=256,
                 **kwargs):
        super().__init__(**kwargs)
        self._setup(vocabulary_size, hidden_dim, intermediate_dim, num_heads, num_layers, dropout, normalize_first,
                    position_embedding, max_sequence_length)
        self.output_dim = hidden_dim
        policy = self.dtype_policy
        self.embedding = keras.layers.Embedding(vocabulary_size, hidden_dim, dtype=policy, name="embedding",
                                                embeddings_initializer=self._embedding_initializer())
        self.positions = self._make_positions()
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.blocks = [
            TransformerEncoderBlock(intermediate_dim, num_heads, dropout=dropout, normalize_first=normalize_first,
                                    dtype=policy, name=f"layer_{i}")
            for i in range(num_layers)
        ]
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="norm")

    def call(self, source_ids, training=False):
        mask = padding_mask(source_ids)
        x = self._embed(source_ids, training=training)
        for block in self.blocks:
            x = block(x, padding_mask=mask, training=training)
        if self.normalize_first:
            x = self.norm(x)
        return {"memory": x, "memory_mask": mask}

    def get_config(self):
        config = super().get_config()
        config.update(self._stack_config())
        return config


@keras.saving.register_keras_serializable(package="tflm")
class TransformerDecoder(_TransformerStack, Decoder):
    """A Transformer decoder: scaled token embedding plus positions, `TransformerDecoderBlock`s with
    cross-attention, a final layer norm (pre-LN), and the output projection (by default the transposed
    embedding).

    Decoding keeps a self-attention key/value cache per layer and computes the cross-attention keys and values
    once per source, so a step costs one position.

    Args:
        vocabulary_size: int. Target vocabulary.
        hidden_dim, intermediate_dim, num_heads, num_layers, dropout, normalize_first, position_embedding:
            as `TransformerEncoder`. The memory it attends to is `hidden_dim` wide.
        max_sequence_length: int. Longest target (the table size of learned positions).
        tie_output_embeddings: bool. The output projection is the transposed embedding.
        copy_attention: bool. Mix the vocabulary distribution with a copy distribution over the source
            (`CopyAttention`, pointer-generator); the outputs are then log-probabilities.
        coverage_loss_weight: float. With copy attention: the weight of its coverage loss in training.
    Call arguments:
        target_ids: int `(batch, target_length)`.
        encoded: an encoder's outputs (see `Encoder`).
        training: bool.
    Returns:
        float32 logits `(batch, target_length, vocabulary_size)`.
    Example:
    >>> decoder = TransformerDecoder(100, hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=1)
    >>> encoded = {"memory": np.random.rand(1, 4, 16).astype("float32"), "memory_mask": np.ones((1, 4), bool)}
    >>> decoder(np.array([[2, 7]]), encoded).shape
    TensorShape([1, 2, 100])
    """

    def __init__(self, vocabulary_size, hidden_dim=256, intermediate_dim=1024, num_heads=4, num_layers=3,
                 dropout=0.1, normalize_first=True, position_embedding="sinusoidal", max_sequence_length=256,
                 tie_output_embeddings=True, copy_attention=False, coverage_loss_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self._setup(vocabulary_size, hidden_dim, intermediate_dim, num_heads, num_layers, dropout, normalize_first,
                    position_embedding, max_sequence_length)
        self.tie_output_embeddings = tie_output_embeddings
        self.copy_attention = copy_attention
        self.coverage_loss_weight = coverage_loss_weight
        self.memory_dim = hidden_dim
        policy = self.dtype_policy
        self.embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=tie_output_embeddings, dtype=policy,
            # the output projection (the largest matmul) in the compute dtype, bfloat16 under mixed precision
            reverse_dtype=policy.compute_dtype, embeddings_initializer=self._embedding_initializer(),
            name="embedding",
        )
        self.positions = self._make_positions()
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.blocks = [
            TransformerDecoderBlock(intermediate_dim, num_heads, dropout=dropout, normalize_first=normalize_first,
                                    dtype=policy, name=f"layer_{i}")
            for i in range(num_layers)
        ]
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="norm")
        # last, so the variables of a model without copy keep their order
        self.copy = CopyAttention(hidden_dim, coverage_loss_weight, dtype=policy, name="copy") if copy_attention \
            else None

    def _logits(self, x, embedded=None, copy_static=None, target_mask=None, training=False):
        # The output projection runs in the compute dtype; the softmax and the loss get float32 logits.
        if self.normalize_first:
            x = self.norm(x)
        logits = ops.cast(self.embedding(x, reverse=True), "float32")
        if self.copy is None:
            return logits
        return self.copy(x, embedded, logits, copy_static, target_mask=target_mask, training=training)

    def _decode(self, target_ids, encoded, training=False, return_attention=False):
        x = embedded = self._embed(target_ids, training=training)
        weights = None
        for block in self.blocks:
            x, _, weights = block(x, memory=encoded["memory"], memory_mask=encoded["memory_mask"],
                                  return_attention=return_attention, training=training)
        if self.copy is None:
            return self._logits(x), weights
        return self._logits(x, embedded, self.copy.static_state(encoded), ops.not_equal(target_ids, PAD_ID),
                            training=training), weights

    def call(self, target_ids, encoded, training=False):
        return self._decode(target_ids, encoded, training=training)[0]

    def cross_attention(self, target_ids, encoded):
        """The last layer's cross-attention, averaged over heads: float32 `(batch, target, source)`."""
        _, weights = self._decode(target_ids, encoded, return_attention=True)
        return ops.mean(ops.cast(weights, "float32"), axis=1)

    def initial_state(self, encoded, max_length):
        """Empty self-attention caches of `max_length` positions, and (static) the cross-attention keys and
        values of the memory."""
        memory = encoded["memory"]
        batch_size = ops.shape(memory)[0]
        head_dim = self.hidden_dim // self.num_heads
        empty = ops.zeros((batch_size, 2, self.num_heads, max_length, head_dim), dtype=memory.dtype)
        static = {
            "memory_mask": encoded["memory_mask"],
            "cross_caches": [block.cross_attention_cache(memory) for block in self.blocks],
        }
        if self.copy is not None:
            static["copy"] = self.copy.static_state(encoded)
        return {"self_caches": [empty for _ in self.blocks], "static": static}

    def step(self, token_ids, state, step, training=False):
        x = embedded = self._embed(token_ids[:, None], start_index=step, training=training)
        static = state["static"]
        caches = []
        for block, cache, cross_cache in zip(self.blocks, state["self_caches"], static["cross_caches"]):
            x, cache, _ = block(x, memory_mask=static["memory_mask"], self_cache=cache, cache_index=step,
                                cross_cache=cross_cache, training=training)
            caches.append(cache)
        logits = self._logits(x, embedded, static.get("copy"), training=training)
        return logits[:, 0], dict(state, self_caches=caches)

    def get_config(self):
        config = super().get_config()
        config.update(self._stack_config())
        config["tie_output_embeddings"] = self.tie_output_embeddings
        config["copy_attention"] = self.copy_attention
        config["coverage_loss_weight"] = self.coverage_loss_weight
        return config
