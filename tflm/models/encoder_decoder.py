import inspect

import keras

from tflm.layers.conv_encoder import ConvEncoder
from tflm.layers.rnn_parts import RNNAttentionDecoder, RNNEncoder
from tflm.layers.transformer_parts import TransformerDecoder, TransformerEncoder
from tflm.models.seq2seq import Seq2Seq

# The parts `ComposedSeq2Seq` (model type "seq2seq") picks by name: (class, fixed constructor arguments).
ENCODERS = {"transformer": (TransformerEncoder, {}), "lstm": (RNNEncoder, {"cell": "lstm"}),
            "gru": (RNNEncoder, {"cell": "gru"}), "cnn": (ConvEncoder, {})}
DECODERS = {"transformer": (TransformerDecoder, {}), "lstm": (RNNAttentionDecoder, {"cell": "lstm"}),
            "gru": (RNNAttentionDecoder, {"cell": "gru"})}


def serialize_part(layer):
    """A part's serialized config without its build config: the parts build on the model's first call (and a
    built part could no longer share its embedding)."""
    config = keras.saving.serialize_keras_object(layer)
    config.pop("build_config", None)
    return config


def part_dtype(kwargs):
    """The dtype policy a model's constructor `kwargs` give, for parts built before `keras.Model.__init__`."""
    return None if kwargs.get("dtype") is None else keras.dtype_policies.get(kwargs["dtype"])


@keras.saving.register_keras_serializable(package="tflm")
class EncoderDecoder(Seq2Seq):
    """Any encoder with any decoder: the `Seq2Seq` interface from an `Encoder` and a `Decoder` layer.

    `encode` is the encoder, `decode`, `initial_state`, `decode_step` and `cross_attention` are the decoder's
    (see `tflm.layers.Encoder` and `tflm.layers.Decoder`). Where the encoder's memory is not as wide as the
    memory the decoder attends to (`encoder.output_dim != decoder.memory_dim`), a learned linear projection
    (`memory_projection`) maps it; the encoder's final states are then left out, so a recurrent decoder starts
    from zeros, as after a Transformer encoder.

    Args:
        encoder: an `Encoder` layer (or its serialized config).
        decoder: a `Decoder` layer (or its serialized config).
        share_embeddings: bool. The encoder embeds with the decoder's embedding table (one joint vocabulary,
            one embedding width).
    Example:
    >>> encoder = TransformerEncoder(100, hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=1)
    >>> decoder = RNNAttentionDecoder(100, embedding_dim=8, hidden_dim=16, num_layers=1, cell="gru")
    >>> model = EncoderDecoder(encoder, decoder)
    >>> model({"source_ids": np.array([[5, 6, 3]]), "target_ids": np.array([[2, 7]])}).shape
    TensorShape([1, 2, 100])
    """

    def __init__(self, encoder, decoder, share_embeddings=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if isinstance(decoder, dict):
            decoder = keras.saving.deserialize_keras_object(decoder)
        if share_embeddings:
            source, target = encoder.embedding, decoder.embedding
            if (source.input_dim, source.output_dim) != (target.input_dim, target.output_dim):
                raise ValueError(
                    f"share_embeddings=True needs one joint vocabulary and one embedding width, but the encoder "
                    f"embeds {source.input_dim} tokens in {source.output_dim} and the decoder {target.input_dim} "
                    f"in {target.output_dim}."
                )
            encoder.share(embedding=decoder.embedding)
        self.share_embeddings = share_embeddings
        for name, layer in self._tracked_first(encoder, decoder):
            setattr(self, name, layer)
        self.encoder = encoder
        self.decoder = decoder
        self.memory_projection = None
        if encoder.output_dim != decoder.memory_dim:
            self.memory_projection = keras.layers.Dense(decoder.memory_dim, use_bias=False, dtype=self.dtype_policy,
                                                        name="memory_projection")
        # What limits the target length (translation reads them): the decoder's positions.
        self.position_embedding = getattr(decoder, "position_embedding", None)
        self.max_sequence_length = getattr(decoder, "max_sequence_length", None)

    def _tracked_first(self, encoder, decoder):
        """`(attribute, layer)` pairs tracked before the encoder and decoder: they fix the order of the
        variables in `weights` (checkpoints are keyed by it), for models whose checkpoints predate composition."""
        return []

    def encode(self, source_ids, training=False):
        """The encoder's outputs (see `Encoder`), with the source ids (`"source_ids"`, which a decoder with copy
        attention copies from)."""
        encoded = dict(self.encoder(source_ids, training=training), source_ids=source_ids)
        if self.memory_projection is None:
            return encoded
        return {"memory": self.memory_projection(encoded["memory"]), "memory_mask": encoded["memory_mask"],
                "source_ids": source_ids}

    def initial_state(self, encoded, max_length):
        return self.decoder.initial_state(encoded, max_length)

    def decode(self, target_ids, encoded, training=False):
        return self.decoder(target_ids, encoded, training=training)

    def decode_step(self, token_ids, state, step, training=False):
        return self.decoder.step(token_ids, state, step, training=training)

    def cross_attention(self, source_ids, target_ids):
        """The decoder's attention over the source: float32 `(batch, target, source)`."""
        return self.decoder.cross_attention(target_ids, self.encode(source_ids))

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": serialize_part(self.encoder),
            "decoder": serialize_part(self.decoder),
            "share_embeddings": self.share_embeddings,
        })
        return config


def make_part(kind, name, vocabulary_size, sizes, params, dtype):
    """The encoder (`kind="encoder"`) or decoder named `name`, from the `sizes` its constructor takes (None:
    its default) and `params` (any of its arguments; an unknown one is an error)."""
    table = ENCODERS if kind == "encoder" else DECODERS
    if name not in table:
        raise ValueError(f"{kind}={name!r} must be one of {', '.join(table)}.")
    cls, fixed = table[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    unknown = [p for p in params if p not in accepted or p in fixed or p == "vocabulary_size"]
    if unknown:
        raise ValueError(f"{kind}_params has unknown field(s) {', '.join(unknown)} for a {name!r} {kind}; "
                         f"known: {', '.join(p for p in accepted if p not in fixed and p != 'vocabulary_size')}.")
    arguments = {key: value for key, value in sizes.items() if key in accepted and value is not None}
    return cls(vocabulary_size, **{**arguments, **params, **fixed}, dtype=dtype, name=kind)


@keras.saving.register_keras_serializable(package="tflm")
class ComposedSeq2Seq(EncoderDecoder):
    """An `EncoderDecoder` whose encoder and decoder are chosen by name (model type `"seq2seq"`).

    Each part takes the sizes below that its constructor has (`TransformerEncoder`, `RNNEncoder`, `ConvEncoder`,
    `TransformerDecoder`, `RNNAttentionDecoder`), then its own `encoder_params` / `decoder_params`, which
    override them and set anything else (`attention`, `bidirectional`, `position_embedding`, ...; even another
    `hidden_dim`: a memory of another width is projected).

    Args:
        source_vocabulary_size, target_vocabulary_size: int.
        encoder: `"transformer"`, `"lstm"`, `"gru"` (a bidirectional one by default) or `"cnn"` (convolutions
            over time, `ConvEncoder`).
        decoder: `"transformer"`, `"lstm"` or `"gru"` (with attention and input feeding).
        hidden_dim: int. Both parts' width.
        embedding_dim: int. Token embedding size of the recurrent parts (default: hidden_dim).
        intermediate_dim, num_heads: int. Of the Transformer parts.
        num_encoder_layers, num_decoder_layers: int.
        kernel_sizes: list of int. Convolution widths of the `"cnn"` encoder (None: its default, [3, 5]).
        filters: int. Feature maps per convolution width of the `"cnn"` encoder (None: hidden_dim).
        dropout: float.
        share_embeddings: bool. One embedding table for source and target (joint vocabulary).
        encoder_params, decoder_params: dicts of further constructor arguments of each part.
    Example:
    >>> model = ComposedSeq2Seq(100, 100, encoder="transformer", decoder="gru", hidden_dim=16, intermediate_dim=32,
    ...                         num_heads=2, decoder_params={"attention": "bahdanau"})
    >>> model({"source_ids": np.array([[5, 6, 3]]), "target_ids": np.array([[2, 7]])}).shape
    TensorShape([1, 2, 100])
    """

    def __init__(self, source_vocabulary_size, target_vocabulary_size, encoder="transformer", decoder="transformer",
                 hidden_dim=256, embedding_dim=None, intermediate_dim=1024, num_heads=4, num_encoder_layers=2,
                 num_decoder_layers=2, dropout=0.1, share_embeddings=False, encoder_params=None, decoder_params=None,
                 kernel_sizes=None, filters=None, **kwargs):
        sizes = dict(hidden_dim=hidden_dim, embedding_dim=embedding_dim or hidden_dim,
                     intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout,
                     kernel_sizes=kernel_sizes, filters=filters)
        dtype = part_dtype(kwargs)
        parts = (
            make_part("encoder", encoder, source_vocabulary_size, dict(sizes, num_layers=num_encoder_layers),
                      dict(encoder_params or {}), dtype),
            make_part("decoder", decoder, target_vocabulary_size, dict(sizes, num_layers=num_decoder_layers),
                      dict(decoder_params or {}), dtype),
        )
        super().__init__(*parts, share_embeddings=share_embeddings, **kwargs)
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.encoder_type = encoder
        self.decoder_type = decoder
        self.hidden_dim = hidden_dim
        self.embedding_dim = embedding_dim
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.dropout = dropout
        self.kernel_sizes = list(kernel_sizes) if isinstance(kernel_sizes, (list, tuple)) else kernel_sizes
        self.filters = filters
        self.encoder_params = dict(encoder_params or {})
        self.decoder_params = dict(decoder_params or {})

    def get_config(self):
        config = super().get_config()
        config.update({
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "encoder": self.encoder_type,
            "decoder": self.decoder_type,
            "hidden_dim": self.hidden_dim,
            "embedding_dim": self.embedding_dim,
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "dropout": self.dropout,
            "kernel_sizes": self.kernel_sizes,
            "filters": self.filters,
            "share_embeddings": self.share_embeddings,
            "encoder_params": dict(self.encoder_params),
            "decoder_params": dict(self.decoder_params),
        })
        return config
