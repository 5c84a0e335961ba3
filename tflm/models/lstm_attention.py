import keras
from keras import ops

from tflm.layers.attention_decoder import AttentionDecoder
from tflm.layers.lstm_encoder import LSTMEncoder
from tflm.layers.token_embedding import TokenEmbedding
from tflm.models.seq2seq import Seq2Seq, padding_mask


@keras.saving.register_keras_serializable(package="tflm")
class LSTMAttentionSeq2Seq(Seq2Seq):
    """LSTM encoder-decoder with attention and input feeding (Bahdanau et al. 2015; Luong et al. 2015).

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
    Example:
    >>> model = LSTMAttentionSeq2Seq(100, 100, embedding_dim=16, hidden_dim=32)
    >>> logits = model({"source_ids": np.array([[5, 6, 3]]), "target_ids": np.array([[2, 7]])})
    >>> logits.shape
    TensorShape([1, 2, 100])
    """

    def __init__(self, source_vocabulary_size, target_vocabulary_size, embedding_dim=256, hidden_dim=512,
                 num_encoder_layers=2, num_decoder_layers=2, bidirectional=True, attention="luong_general",
                 input_feeding=True, dropout=0.2, share_embeddings=False, **kwargs):
        super().__init__(**kwargs)
        if share_embeddings and source_vocabulary_size != target_vocabulary_size:
            raise ValueError(
                f"share_embeddings=True needs one joint vocabulary, but source_vocabulary_size="
                f"{source_vocabulary_size} and target_vocabulary_size={target_vocabulary_size}."
            )
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
        self.share_embeddings = share_embeddings

        policy = self.dtype_policy
        self.source_embedding = TokenEmbedding(
            source_vocabulary_size, embedding_dim, dtype=policy, name="source_embedding"
        )
        self.target_embedding = self.source_embedding if share_embeddings else TokenEmbedding(
            target_vocabulary_size, embedding_dim, dtype=policy, name="target_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.encoder = LSTMEncoder(
            hidden_dim, num_encoder_layers, bidirectional=bidirectional, dropout=dropout, dtype=policy,
            name="encoder",
        )
        self.decoder = AttentionDecoder(
            hidden_dim, num_decoder_layers, attention=attention, input_feeding=input_feeding, dropout=dropout,
            dtype=policy, name="decoder",
        )
        # Logits are float32 even under mixed precision, for a stable softmax and loss.
        self.output_projection = keras.layers.Dense(target_vocabulary_size, dtype="float32", name="logits")

    def encode(self, source_ids, training=False):
        mask = padding_mask(source_ids)
        embedded = self.embedding_dropout(self.source_embedding(source_ids), training=training)
        memory, states = self.encoder(embedded, padding_mask=mask, training=training)
        return {"memory": memory, "memory_mask": mask, "states": states}

    def initial_state(self, encoded, max_length=None):
        return self.decoder.initial_state(encoded["memory"], encoded["memory_mask"], encoded["states"])

    def decode(self, target_ids, encoded, training=False):
        embedded = self.embedding_dropout(self.target_embedding(target_ids), training=training)
        outputs, _ = self.decoder(embedded, self.initial_state(encoded), training=training)
        return self.output_projection(outputs)

    def decode_step(self, token_ids, state, step, training=False):
        embedded = self.target_embedding(token_ids)
        output, state, _ = self.decoder.step(embedded, state, training=training)
        return self.output_projection(output), state

    def cross_attention(self, source_ids, target_ids):
        encoded = self.encode(source_ids)
        _, weights = self.decoder(self.target_embedding(target_ids), self.initial_state(encoded))
        return ops.cast(weights, "float32")

    def get_config(self):
        config = super().get_config()
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
        })
        return config
