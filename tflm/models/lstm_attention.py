import keras

from tflm.layers.rnn_parts import RNNAttentionDecoder, RNNEncoder
from tflm.models.encoder_decoder import EncoderDecoder, part_dtype


class _RecurrentAttentionSeq2Seq(EncoderDecoder):
    """A recurrent encoder-decoder with attention: an `RNNEncoder` with an `RNNAttentionDecoder` of one cell."""

    CELL = None

    def __init__(self, source_vocabulary_size, target_vocabulary_size, embedding_dim=256, hidden_dim=512,
                 num_encoder_layers=2, num_decoder_layers=2, bidirectional=True, attention="luong_general",
                 input_feeding=True, dropout=0.2, share_embeddings=False, copy_attention=False,
                 coverage_loss_weight=0.0, **kwargs):
        if share_embeddings and source_vocabulary_size != target_vocabulary_size:
            raise ValueError(
                f"share_embeddings=True needs one joint vocabulary, but source_vocabulary_size="
                f"{source_vocabulary_size} and target_vocabulary_size={target_vocabulary_size}."
            )
        dtype = part_dtype(kwargs)
        encoder = RNNEncoder(source_vocabulary_size, embedding_dim, hidden_dim, num_encoder_layers,
                             bidirectional=bidirectional, cell=self.CELL, dropout=dropout, dtype=dtype, name="encoder")
        decoder = RNNAttentionDecoder(target_vocabulary_size, embedding_dim, hidden_dim, num_decoder_layers,
                                      attention=attention, input_feeding=input_feeding, cell=self.CELL,
                                      dropout=dropout, copy_attention=copy_attention,
                                      coverage_loss_weight=coverage_loss_weight, dtype=dtype, name="decoder")
        encoder.share(embedding_dropout=decoder.embedding_dropout)  # one embedding dropout, as before
        super().__init__(encoder, decoder, share_embeddings=share_embeddings, **kwargs)
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.bidirectional = bidirectional
        self.attention = attention
        self.input_feeding = input_feeding
        self.dropout = dropout
        self.copy_attention = copy_attention
        self.coverage_loss_weight = coverage_loss_weight

    def _tracked_first(self, encoder, decoder):
        # The order of the variables of LSTMAttentionSeq2Seq before it was composed (its old checkpoints are
        # keyed by it): both embeddings, then the encoder's stack, the decoder's, the output projection.
        return [("source_embedding", encoder.embedding), ("target_embedding", decoder.embedding),
                ("embedding_dropout", decoder.embedding_dropout)]

    def get_config(self):
        config = super().get_config()
        del config["encoder"], config["decoder"]  # the parts follow from the arguments below
        config.update({
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "bidirectional": self.bidirectional,
            "attention": self.attention,
            "input_feeding": self.input_feeding,
            "dropout": self.dropout,
            "share_embeddings": self.share_embeddings,
            "copy_attention": self.copy_attention,
            "coverage_loss_weight": self.coverage_loss_weight,
        })
        return config


@keras.saving.register_keras_serializable(package="tflm")
class LSTMAttentionSeq2Seq(_RecurrentAttentionSeq2Seq):
    """LSTM encoder-decoder with attention and input feeding (Bahdanau et al. 2015; Luong et al. 2015): an
    `RNNEncoder` with an `RNNAttentionDecoder`, both of LSTM cells.

    Args:
        source_vocabulary_size: int.
        target_vocabulary_size: int.
        embedding_dim: int.
        hidden_dim: int. Encoder output and decoder size.
        num_encoder_layers, num_decoder_layers: int.
        bidirectional: bool. Bidirectional encoder (hidden_dim // 2 per direction).
        attention: `"bahdanau"`, `"luong_dot"` or `"luong_general"`.
        input_feeding: bool.
        dropout: float.
        share_embeddings: bool. One embedding table for source and target (needs a joint vocabulary).
        copy_attention: bool. Copy attention (pointer-generator, `tflm.layers.CopyAttention`) in the decoder:
            the outputs are log-probabilities of the mixture.
        coverage_loss_weight: float. With copy attention: its coverage loss's weight in training.
    Example:
    >>> model = LSTMAttentionSeq2Seq(100, 100, embedding_dim=16, hidden_dim=32)
    >>> logits = model({"source_ids": np.array([[5, 6, 3]]), "target_ids": np.array([[2, 7]])})
    >>> logits.shape
    TensorShape([1, 2, 100])
    """

    CELL = "lstm"


@keras.saving.register_keras_serializable(package="tflm")
class GRUAttentionSeq2Seq(_RecurrentAttentionSeq2Seq):
    """GRU encoder-decoder with attention and input feeding: `LSTMAttentionSeq2Seq` with GRU cells (fewer
    weights and a state of `h` alone).

    Args:
        As `LSTMAttentionSeq2Seq`.
    Example:
    >>> model = GRUAttentionSeq2Seq(100, 100, embedding_dim=16, hidden_dim=32)
    >>> model({"source_ids": np.array([[5, 6, 3]]), "target_ids": np.array([[2, 7]])}).shape
    TensorShape([1, 2, 100])
    """

    CELL = "gru"
