"""The recurrent encoder and decoder of the encoder-decoder models (`tflm.models.EncoderDecoder`)."""

import keras
from keras import ops

from tflm.layers.attention_decoder import AttentionDecoder
from tflm.layers.copy_attention import CopyAttention
from tflm.layers.encoder_decoder import Decoder, Encoder
from tflm.layers.lstm_encoder import RecurrentStack
from tflm.layers.masking import padding_mask
from tflm.layers.token_embedding import TokenEmbedding
from tflm.text.special_tokens import PAD_ID


@keras.saving.register_keras_serializable(package="tflm")
class RNNEncoder(Encoder):
    """A (bidirectional) LSTM or GRU encoder: token embedding, dropout, `RecurrentStack`.

    Its outputs carry the final states of each layer (`"states"`), which a recurrent decoder starts from.

    Args:
        vocabulary_size: int.
        embedding_dim: int.
        hidden_dim: int. Output size (a bidirectional layer has hidden_dim // 2 units per direction).
        num_layers: int.
        bidirectional: bool.
        cell: `"lstm"` or `"gru"`.
        dropout: float. On the embeddings, between layers and on the outputs.
    Call arguments:
        source_ids: int `(batch, source_length)`, PAD-padded.
        training: bool.
    Returns:
        `{"memory", "memory_mask", "states"}` (see `Encoder`).
    Example:
    >>> encoder = RNNEncoder(100, embedding_dim=8, hidden_dim=16, num_layers=1, cell="gru")
    >>> encoded = encoder(np.array([[5, 6, 3, 0]]))
    >>> encoded["memory"].shape, encoded["states"][0][0].shape
    (TensorShape([1, 4, 16]), TensorShape([1, 16]))
    """

    def __init__(self, vocabulary_size, embedding_dim=256, hidden_dim=512, num_layers=2, bidirectional=True,
                 cell="lstm", dropout=0.2, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.cell = cell
        self.dropout = dropout
        self.output_dim = hidden_dim
        policy = self.dtype_policy
        self.embedding = TokenEmbedding(vocabulary_size, embedding_dim, dtype=policy, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.rnn = RecurrentStack(hidden_dim, num_layers, bidirectional=bidirectional, cell=cell, dropout=dropout,
                                  dtype=policy, name="rnn")

    def call(self, source_ids, training=False):
        mask = padding_mask(source_ids)
        embedded = self.embedding_dropout(self.embedding(source_ids), training=training)
        memory, states = self.rnn(embedded, padding_mask=mask, training=training)
        return {"memory": memory, "memory_mask": mask, "states": states}

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "cell": self.cell,
            "dropout": self.dropout,
        })
        return config


@keras.saving.register_keras_serializable(package="tflm")
class RNNAttentionDecoder(Decoder):
    """An LSTM or GRU decoder with attention and input feeding: token embedding, `AttentionDecoder`, logits.

    Its initial state (`initial_state`) comes from the encoder's final states where the encoder has them (a
    recurrent encoder): decoder layer i starts from encoder layer min(i, last), `h` (and `c` when both are
    LSTMs; an LSTM decoder after a GRU encoder starts with `c` = 0). After an encoder without states (a
    Transformer) every state starts at zeros: attention reads the source from the first step on, and zeros add
    no weights, so any encoder pairs with this decoder.

    Args:
        vocabulary_size: int. Target vocabulary.
        embedding_dim: int.
        hidden_dim: int. Cell size, attentional vector size, and the memory width it attends to.
        num_layers: int.
        attention: `"bahdanau"`, `"luong_dot"` or `"luong_general"`.
        input_feeding: bool.
        cell: `"lstm"` or `"gru"`.
        dropout: float.
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
    >>> decoder = RNNAttentionDecoder(100, embedding_dim=8, hidden_dim=16, num_layers=1, cell="gru")
    >>> encoded = {"memory": np.random.rand(1, 4, 16).astype("float32"), "memory_mask": np.ones((1, 4), bool)}
    >>> decoder(np.array([[2, 7]]), encoded).shape
    TensorShape([1, 2, 100])
    >>> logits, state = decoder.step(np.array([2]), decoder.initial_state(encoded, max_length=8), 0)
    """

    def __init__(self, vocabulary_size, embedding_dim=256, hidden_dim=512, num_layers=2, attention="luong_general",
                 input_feeding=True, cell="lstm", dropout=0.2, copy_attention=False, coverage_loss_weight=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.copy_attention = copy_attention
        self.coverage_loss_weight = coverage_loss_weight
        self.attention = attention
        self.input_feeding = input_feeding
        self.cell = cell
        self.dropout = dropout
        self.memory_dim = hidden_dim
        policy = self.dtype_policy
        self.embedding = TokenEmbedding(vocabulary_size, embedding_dim, dtype=policy, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.rnn = AttentionDecoder(hidden_dim, num_layers, attention=attention, input_feeding=input_feeding,
                                    dropout=dropout, cell=cell, dtype=policy, name="rnn")
        # Logits are float32 even under mixed precision, for a stable softmax and loss.
        self.output_projection = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")
        # last, so the variables of a model without copy keep their order
        self.copy = CopyAttention(hidden_dim, coverage_loss_weight, dtype=policy, name="copy") if copy_attention \
            else None

    def initial_state(self, encoded, max_length=None):
        """The state before the first step (`max_length` is not needed: nothing grows with the target)."""
        state = self.rnn.initial_state(encoded["memory"], encoded["memory_mask"], encoded.get("states"))
        if self.copy is not None:
            state["static"] = dict(state["static"], copy=self.copy.static_state(encoded))
        return state

    def _embed(self, token_ids, training):
        return self.embedding_dropout(self.embedding(token_ids), training=training)

    def call(self, target_ids, encoded, training=False):
        embedded = self._embed(target_ids, training)
        state = self.initial_state(encoded)
        outputs, _ = self.rnn(embedded, state, training=training)
        logits = self.output_projection(outputs)
        if self.copy is None:
            return logits
        return self.copy(outputs, embedded, logits, state["static"]["copy"],
                         target_mask=ops.not_equal(target_ids, PAD_ID), training=training)

    def step(self, token_ids, state, step, training=False):
        embedded = self._embed(token_ids, training)
        output, state, _ = self.rnn.step(embedded, state, training=training)
        logits = self.output_projection(output)
        if self.copy is None:
            return logits, state
        return self.copy(output[:, None], embedded[:, None], logits[:, None], state["static"]["copy"],
                         training=training)[:, 0], state

    def cross_attention(self, target_ids, encoded):
        _, weights = self.rnn(self._embed(target_ids, False), self.initial_state(encoded))
        return ops.cast(weights, "float32")

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "attention": self.attention,
            "input_feeding": self.input_feeding,
            "cell": self.cell,
            "dropout": self.dropout,
            "copy_attention": self.copy_attention,
            "coverage_loss_weight": self.coverage_loss_weight,
        })
        return config
