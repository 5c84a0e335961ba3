import keras

from tflm.layers.transformer_parts import POSITION_EMBEDDINGS, TransformerDecoder, TransformerEncoder
from tflm.models.encoder_decoder import EncoderDecoder, part_dtype


@keras.saving.register_keras_serializable(package="tflm")
class TransformerSeq2Seq(EncoderDecoder):
    """Transformer encoder-decoder (Vaswani et al. 2017), pre-LN by default: a `TransformerEncoder` with a
    `TransformerDecoder`.

    The encoder stacks tflm `TransformerEncoderBlock`s and the decoder `TransformerDecoderBlock`s (tflm's
    `MultiHeadAttention`: 2-D projections, a key/value cache, cross-attention weights). Positions are
    keras-hub's `SinePositionEncoding` or `PositionEmbedding`, one table for source and target. Decoding keeps a
    self-attention cache per layer and computes the cross-attention keys and values once per source, so a step
    costs one position.

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
        copy_attention: bool. Copy attention (pointer-generator, `tflm.layers.CopyAttention`) in the decoder:
            the outputs are log-probabilities of the mixture.
        coverage_loss_weight: float. With copy attention: its coverage loss's weight in training.
    Example:
    >>> model = TransformerSeq2Seq(100, 100, hidden_dim=16, intermediate_dim=32, num_heads=2)
    >>> model({"source_ids": np.array([[5, 6, 3]]), "target_ids": np.array([[2, 7]])}).shape
    TensorShape([1, 2, 100])
    """

    def __init__(self, source_vocabulary_size, target_vocabulary_size, hidden_dim=256, intermediate_dim=1024,
                 num_heads=4, num_encoder_layers=3, num_decoder_layers=3, dropout=0.1, normalize_first=True,
                 position_embedding="sinusoidal", max_sequence_length=256, share_embeddings=False,
                 tie_output_embeddings=True, copy_attention=False, coverage_loss_weight=0.0, **kwargs):
        if share_embeddings and source_vocabulary_size != target_vocabulary_size:
            raise ValueError(
                f"share_embeddings=True needs one joint vocabulary, but source_vocabulary_size="
                f"{source_vocabulary_size} and target_vocabulary_size={target_vocabulary_size}."
            )
        if position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(f"position_embedding={position_embedding!r} must be one of {POSITION_EMBEDDINGS}.")
        common = dict(hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout,
                      normalize_first=normalize_first, position_embedding=position_embedding,
                      max_sequence_length=max_sequence_length, dtype=part_dtype(kwargs))
        decoder = TransformerDecoder(target_vocabulary_size, num_layers=num_decoder_layers,
                                     tie_output_embeddings=tie_output_embeddings, copy_attention=copy_attention,
                                     coverage_loss_weight=coverage_loss_weight, name="decoder", **common)
        encoder = TransformerEncoder(source_vocabulary_size, num_layers=num_encoder_layers, name="encoder", **common)
        # one position table and one embedding dropout for source and target, as before the composition
        encoder.share(positions=decoder.positions, embedding_dropout=decoder.embedding_dropout)
        super().__init__(encoder, decoder, share_embeddings=share_embeddings, **kwargs)
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.dropout = dropout
        self.normalize_first = normalize_first
        self.tie_output_embeddings = tie_output_embeddings
        self.copy_attention = copy_attention
        self.coverage_loss_weight = coverage_loss_weight

    def _tracked_first(self, encoder, decoder):
        # The order of the variables of this model before it was composed (its old checkpoints are keyed by it).
        return [("target_embedding", decoder.embedding), ("source_embedding", encoder.embedding),
                ("positions", decoder.positions), ("embedding_dropout", decoder.embedding_dropout),
                ("encoder_layers", encoder.blocks), ("decoder_layers", decoder.blocks),
                ("encoder_norm", encoder.norm), ("decoder_norm", decoder.norm)]

    def get_config(self):
        config = super().get_config()
        del config["encoder"], config["decoder"]  # the parts follow from the arguments below
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
            "copy_attention": self.copy_attention,
            "coverage_loss_weight": self.coverage_loss_weight,
        })
        return config
