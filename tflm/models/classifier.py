"""`TextClassifier`: token ids of a text (or a text pair) in, class logits out, over any sentence encoder.

    embedding (word vectors: static, fine-tuned or both) [+ segment embedding for a joint pair]
      -> sentence encoder (`tflm.layers.SENTENCE_ENCODERS`: cnn, bilstm, bigru, transformer, or a user's layer)
      -> pooling of per-token outputs (max, mean, attention) -> [u, v, |u-v|, u*v] for a siamese pair
      -> dropout -> optional hidden layer -> logits

Inputs (a dict of int `(batch, length)` tensors, 0 is padding):
- one text: `token_ids`;
- a joint pair (`pair_mode="joint"`): `token_ids` of `a </s> b` and `segment_ids` (0 for a and the separator,
  1 for b), one encoder reading both texts (as BERT reads `[CLS] a [SEP] b`);
- a siamese pair (`pair_mode="siamese"`): `token_ids_a` and `token_ids_b`, each encoded alone by the same
  encoder (Conneau et al. 2017's InferSent features).
"""

import importlib
import inspect

import keras
from keras import ops

from tflm.layers.pretrained_embedding import PretrainedEmbedding
from tflm.layers.sentence_encoders import SENTENCE_ENCODERS, SequencePooling
from tflm.models.bert import BackboneEncoder
from tflm.models.gpt import GPTEncoder

PAIR_MODES = ("joint", "siamese")
# Encoders that read token ids themselves (their own embeddings): `[CLS] a [SEP] (b [SEP])`, segment ids, mask.
BACKBONE_ENCODERS = {"bert": (BackboneEncoder, {}, None), "gpt": (GPTEncoder, {}, None)}


class EncoderNotFoundError(ValueError):
    """A `model.type` that names no built-in encoder and no importable layer class."""


def resolve_encoder(name):
    """`(class, fixed arguments, default pooling)` of an encoder name: a built-in one (`SENTENCE_ENCODERS`) or
    `package.module:Class`, a Keras layer of a user's module (found on PYTHONPATH)."""
    if name in SENTENCE_ENCODERS:
        return SENTENCE_ENCODERS[name]
    if name in BACKBONE_ENCODERS:
        return BACKBONE_ENCODERS[name]
    module_name, _, class_name = str(name).partition(":")
    if not class_name:
        raise EncoderNotFoundError(f"model.type={name!r} is no classification encoder: use one of "
                                   f"{', '.join([*SENTENCE_ENCODERS, *BACKBONE_ENCODERS])}, or a layer of your own "
                                   "as module:Class.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EncoderNotFoundError(f"model.type={name!r}: cannot import module {module_name!r} ({error}); put its "
                                   "folder on PYTHONPATH or install its package.") from None
    cls = getattr(module, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, keras.layers.Layer)):
        raise EncoderNotFoundError(f"model.type={name!r}: {module_name} has no Keras layer class {class_name!r}.")
    return cls, {}, "max"


def encoder_arguments(name):
    """The constructor arguments an encoder takes (for checking `model.params`)."""
    cls, fixed, _ = resolve_encoder(name)
    parameters = inspect.signature(cls.__init__).parameters
    return [p for p in parameters if p not in ("self", "kwargs", "vocabulary_size", "backbone", *fixed)]


def reads_token_ids(name):
    """Whether the encoder `name` reads token ids itself (a backbone with its own embeddings)."""
    return bool(getattr(resolve_encoder(name)[0], "reads_token_ids", False))


class TextClassifier(keras.Model):
    """A text (or text pair) classifier (see the module docstring).

    Args:
        vocabulary_size: int.
        num_classes: int.
        encoder: str. A `SENTENCE_ENCODERS` name or `package.module:Class`.
        encoder_params: dict. The encoder's constructor arguments.
        embedding_dim: int. The word vectors' size.
        embedding_mode: "static", "non_static" or "multichannel" (`PretrainedEmbedding`).
        pooling: "max", "mean", "attention", or None for the encoder's default.
        pair_mode: None (one text), "joint" or "siamese".
        dropout: float. Dropout of the embeddings' output (half of it) and of the features before the output layer.
        hidden_units: int. A ReLU layer of this size before the output layer (0: none).
    Example:
    >>> model = TextClassifier(100, 3, encoder="cnn", encoder_params={"filters": 4}, embedding_dim=8)
    >>> model({"token_ids": np.array([[5, 6, 7, 0]])}).shape
    TensorShape([1, 3])
    """

    def __init__(self, vocabulary_size, num_classes, encoder="cnn", encoder_params=None, embedding_dim=128,
                 embedding_mode="non_static", pooling=None, pair_mode=None, dropout=0.5, hidden_units=0,
                 backbone=None, **kwargs):
        super().__init__(**kwargs)
        if pair_mode not in (None, *PAIR_MODES):
            raise ValueError(f"pair_mode={pair_mode!r} must be one of {', '.join(PAIR_MODES)} (or null for one text).")
        cls, fixed, default_pooling = resolve_encoder(encoder)
        self.vocabulary_size, self.num_classes, self.encoder_name = vocabulary_size, num_classes, encoder
        self.pair_mode, self.embedding_mode = pair_mode, embedding_mode
        self.reads_token_ids = bool(getattr(cls, "reads_token_ids", False))
        if self.reads_token_ids:  # a backbone: its own embeddings, `[CLS] a [SEP] b [SEP]` (pairs read jointly)
            if pair_mode == "siamese":
                raise ValueError(f"pair_mode='siamese' is not for a backbone encoder ({encoder}); pairs are read "
                                 "jointly as [CLS] a [SEP] b [SEP].")
            pooling_args = {"pooling": pooling} if pooling else {}
            self.embedding = self.segment_embedding = self.pooling = None
            self.encoder = cls(vocabulary_size=vocabulary_size, backbone=backbone, **{**(encoder_params or {}),
                                                                                     **pooling_args},
                               dtype=self.dtype_policy, name="encoder")
            self._make_head(num_classes, dropout, hidden_units)
            return
        self.embedding = PretrainedEmbedding(vocabulary_size, embedding_dim, mode=embedding_mode,
                                             embeddings_initializer=keras.initializers.RandomUniform(-0.25, 0.25),
                                             dtype=self.dtype_policy, name="embedding")
        self.segment_embedding = None
        if pair_mode == "joint":
            self.segment_embedding = keras.layers.Embedding(2, self.embedding.output_dim, dtype=self.dtype_policy,
                                                            name="segment_embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout / 2, dtype=self.dtype_policy)
        self.encoder = cls(**{**(encoder_params or {}), **fixed}, dtype=self.dtype_policy, name="encoder")
        pooling = pooling or default_pooling or "max"
        self.pooling = SequencePooling(pooling, dtype=self.dtype_policy, name="pooling")
        self._make_head(num_classes, dropout, hidden_units)

    def _make_head(self, num_classes, dropout, hidden_units):
        # (made after the encoder: a run's checkpoint holds the weights in the order they were made)
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.hidden = (keras.layers.Dense(hidden_units, activation="relu", dtype=self.dtype_policy, name="hidden")
                       if hidden_units else None)
        self.classes = keras.layers.Dense(num_classes, dtype="float32", name="classes")

    def build(self, input_shape=None):
        self.call(self.dummy_inputs())  # (the sub-layers create their weights on a first call)
        self.built = True

    def encode(self, token_ids, segment_ids=None, training=False):
        """One vector per text: float `(batch, features)`."""
        mask = ops.not_equal(token_ids, 0)
        x = self.embedding(token_ids)
        if segment_ids is not None:
            x = x + self.segment_embedding(segment_ids)
        x = self.embedding_dropout(x, training=training) * ops.expand_dims(ops.cast(mask, x.dtype), -1)
        encoded = self.encoder(x, padding_mask=mask, training=training)
        if len(encoded.shape) == 3:
            encoded = self.pooling(encoded, padding_mask=mask)
        return encoded

    def features(self, inputs, training=False):
        """What the output layer reads (before dropout): the text's vector, or a pair's."""
        if self.reads_token_ids:
            return self.encoder({key: inputs[key] for key in ("token_ids", "segment_ids", "padding_mask")},
                                training=training)
        if self.pair_mode == "siamese":
            u = self.encode(inputs["token_ids_a"], training=training)
            v = self.encode(inputs["token_ids_b"], training=training)
            return ops.concatenate([u, v, ops.abs(u - v), u * v], axis=-1)
        return self.encode(inputs["token_ids"], inputs.get("segment_ids"), training=training)

    def call(self, inputs, training=False):
        x = self.dropout(self.features(inputs, training=training), training=training)
        if self.hidden is not None:
            x = self.dropout(self.hidden(x), training=training)
        return self.classes(x)  # float32 logits (batch, num_classes)

    def dummy_inputs(self):
        """A batch to build the model with."""
        ids = ops.convert_to_tensor([[4, 5, 6]], "int32")
        if self.reads_token_ids:
            return {"token_ids": ids, "segment_ids": ops.convert_to_tensor([[0, 0, 1]], "int32"),
                    "padding_mask": ops.ones_like(ids, dtype="bool")}
        if self.pair_mode == "siamese":
            return {"token_ids_a": ids, "token_ids_b": ids}
        if self.pair_mode == "joint":
            return {"token_ids": ids, "segment_ids": ops.convert_to_tensor([[0, 0, 1]], "int32")}
        return {"token_ids": ids}
