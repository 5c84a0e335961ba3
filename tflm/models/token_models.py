"""Models with an output per position: `TokenTagger` (a label per word) and `SpanExtractor` (a start and an end
score per position, for extractive question answering). Both read `[CLS] ... [SEP]` token ids with any encoder
that gives a state per position: a pretrained or new BERT-family backbone or tflm GPT (`bert`, `gpt`; see
`tflm.models.classifier.BACKBONE_ENCODERS`), or, for tagging, a recurrent or Transformer encoder over a new
embedding (`bilstm`, `bigru`, `transformer`, or a user's layer as `module:Class`).
"""

import keras
from keras import ops

from tflm.models.classifier import resolve_encoder


def make_sequence_encoder(encoder, encoder_params, vocabulary_size, embedding_dim, backbone, dtype):
    """`(embedding or None, encoder layer, reads_token_ids)` for a model that needs a state per position."""
    cls, fixed, _ = resolve_encoder(encoder)
    params = dict(encoder_params or {})
    if getattr(cls, "reads_token_ids", False):
        return None, cls(vocabulary_size=vocabulary_size, backbone=backbone, **params, dtype=dtype,
                         name="encoder"), True
    if getattr(cls, "pools", False):
        raise ValueError(f"model.type={encoder!r} gives one vector per text (it pools); a tagger needs a state per "
                         "token: use bilstm, bigru, transformer, bert or gpt.")
    embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, dtype=dtype, name="embedding")
    return embedding, cls(**{**params, **fixed}, dtype=dtype, name="encoder"), False


class _PositionModel(keras.Model):
    """What `TokenTagger` and `SpanExtractor` share: the encoder and a state per position."""

    def _make_encoder(self, vocabulary_size, encoder, encoder_params, embedding_dim, backbone):
        self.vocabulary_size, self.encoder_name = vocabulary_size, encoder
        self.embedding, self.encoder, self.reads_token_ids = make_sequence_encoder(
            encoder, encoder_params, vocabulary_size, embedding_dim, backbone, self.dtype_policy)

    def build(self, input_shape=None):
        self.call(self.dummy_inputs())  # (the sub-layers create their weights on a first call)
        self.built = True

    def states(self, inputs, training=False):
        """float `(batch, length, features)`: the encoder's state of every position."""
        if self.reads_token_ids:
            return self.encoder.sequence_output({key: inputs[key] for key in ("token_ids", "segment_ids",
                                                                              "padding_mask")}, training=training)
        mask = ops.not_equal(inputs["token_ids"], 0)
        states = self.encoder(self.embedding(inputs["token_ids"]), padding_mask=mask, training=training)
        if len(states.shape) != 3:
            raise ValueError(f"The encoder {self.encoder_name!r} gives {len(states.shape)}-D outputs; a tagger needs "
                             "(batch, length, features): one state per token.")
        return states

    def _dummy_ids(self):
        ids = ops.convert_to_tensor([[2, 5, 6, 7, 3]], "int32")
        return {"token_ids": ids, "segment_ids": ops.zeros_like(ids), "padding_mask": ops.ones_like(ids, dtype="bool")}


class TokenTagger(_PositionModel):
    """A label per word: the state of each word's first piece -> dropout -> a dense layer (the other pieces of a
    word are read by the encoder but given no label).

    Inputs: `token_ids`, `segment_ids`, `padding_mask` `(batch, length)` and `word_starts` `(batch, words)`,
    the position of each word's first piece (padding words point anywhere: their labels are -1).
    Output: float32 logits `(batch, words, labels)`.

    Args:
        vocabulary_size: int.
        num_labels: int.
        encoder: an encoder name (see the module docstring).
        encoder_params: its constructor arguments.
        embedding_dim: the new embedding's size (an encoder that does not read token ids itself).
        dropout: before the output layer.
        backbone: a keras-hub backbone for `bert` (e.g. a Hugging Face folder's), or None for a new one.
    """

    def __init__(self, vocabulary_size, num_labels, encoder="bert", encoder_params=None, embedding_dim=128,
                 dropout=0.1, backbone=None, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = num_labels
        self._make_encoder(vocabulary_size, encoder, encoder_params, embedding_dim, backbone)
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.labels = keras.layers.Dense(num_labels, dtype="float32", name="labels")

    def call(self, inputs, training=False):
        states = self.states(inputs, training=training)
        starts = ops.cast(inputs["word_starts"], "int32")
        words = ops.take_along_axis(states, ops.expand_dims(starts, -1), axis=1)  # (batch, words, features)
        return self.labels(self.dropout(words, training=training))

    def dummy_inputs(self):
        return {**self._dummy_ids(), "word_starts": ops.convert_to_tensor([[1, 2, 3]], "int32")}


class SpanExtractor(_PositionModel):
    """A start and an end score for every position (BERT's SQuAD head: one dense layer of 2 outputs). Padding
    positions get -1e9, so that a softmax over positions never chooses them.

    Inputs: `token_ids`, `segment_ids`, `padding_mask` `(batch, length)`.
    Output: `{"start_logits", "end_logits"}`, float32 `(batch, length)`.
    """

    def __init__(self, vocabulary_size, encoder="bert", encoder_params=None, embedding_dim=128, backbone=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._make_encoder(vocabulary_size, encoder, encoder_params, embedding_dim, backbone)
        self.spans = keras.layers.Dense(2, dtype="float32", name="spans")

    def call(self, inputs, training=False):
        logits = self.spans(self.states(inputs, training=training))
        padding = (1.0 - ops.cast(inputs["padding_mask"], "float32")) * -1e9
        return {"start_logits": logits[..., 0] + padding, "end_logits": logits[..., 1] + padding}

    def dummy_inputs(self):
        return self._dummy_ids()
