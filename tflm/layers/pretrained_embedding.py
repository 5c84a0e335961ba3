"""`PretrainedEmbedding`: word vectors used frozen, fine-tuned, or both (Kim 2014's embedding modes)."""

import logging

import keras
import numpy as np

from tflm.text.word_vectors import load_vectors

logger = logging.getLogger("tflm")

EMBEDDING_MODES = ("static", "non_static", "multichannel")
CHANNEL_MERGES = ("concat", "stack")


@keras.saving.register_keras_serializable(package="tflm")
class PretrainedEmbedding(keras.layers.Layer):
    """A word embedding that starts from pretrained vectors and is frozen, fine-tuned, or both.

    The modes are those of Kim (2014), "Convolutional Neural Networks for Sentence Classification":

    - `"static"`: one table, frozen (`static_embeddings`, not trainable).
    - `"non_static"`: one table, fine-tuned with the model (`embeddings`).
    - `"multichannel"`: both: a frozen copy and a fine-tuned copy of the same vectors, merged by `merge`:
      `"concat"` on the feature axis, or `"stack"` as two channels on a new last axis (for a `Conv2D`).

    Without vectors (`load_vectors` or `set_vectors` never called) the tables keep their random initial
    values, which is Kim's "rand" with `mode="non_static"`.

    Args:
        vocabulary_size: int.
        embedding_dim: int. The vectors' size.
        mode: str. One of `EMBEDDING_MODES`.
        merge: str. One of `CHANNEL_MERGES`; only used by `"multichannel"`.
        mask_zero: bool. Whether id 0 (`<pad>`) is masked for the layers after this one.
        embeddings_initializer: the initializer of the tables before vectors are set.
        **kwargs: passed to `keras.layers.Layer`.
    Call arguments:
        token_ids: int `(batch_size, length)`.
    Returns:
        float `(batch_size, length, output_dim)`: `output_dim` is `embedding_dim`, or `2 * embedding_dim` for
        `"multichannel"` with `merge="concat"`; with `merge="stack"`, `(batch_size, length, embedding_dim, 2)`
        (channel 0 static, channel 1 fine-tuned).
    Example:
    >>> embedding = PretrainedEmbedding(vocabulary_size=10, embedding_dim=3, mode="multichannel")
    >>> embedding.set_vectors(np.ones((10, 3), "float32"))
    >>> embedding(np.array([[4, 5, 0]])).shape
    TensorShape([1, 3, 6])
    >>> coverage = embedding.load_vectors("glove.6B.50d.txt.bz2", tokenizer.pieces)  # doctest: +SKIP
    """

    def __init__(self, vocabulary_size, embedding_dim, mode="non_static", merge="concat", mask_zero=False,
                 embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        if mode not in EMBEDDING_MODES:
            raise ValueError(f"PretrainedEmbedding mode={mode!r} is not one of {', '.join(EMBEDDING_MODES)}.")
        if merge not in CHANNEL_MERGES:
            raise ValueError(f"PretrainedEmbedding merge={merge!r} is not one of {', '.join(CHANNEL_MERGES)}.")
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.mode = mode
        self.merge = merge
        self.mask_zero = mask_zero
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.supports_masking = mask_zero

    @property
    def output_dim(self):
        """The size of the last output axis (`embedding_dim`, doubled by a concatenated multichannel)."""
        if self.mode == "multichannel" and self.merge == "concat":
            return 2 * self.embedding_dim
        return self.embedding_dim

    @property
    def tables(self):
        """The embedding tables, frozen one first: `[static_embeddings]`, `[embeddings]` or both."""
        return [t for t in (self.static_embeddings, self.embeddings) if t is not None]

    def build(self, input_shape=None):
        shape = (self.vocabulary_size, self.embedding_dim)
        self.static_embeddings = self.embeddings = None
        if self.mode in ("static", "multichannel"):
            self.static_embeddings = self.add_weight(shape=shape, initializer=self.embeddings_initializer,
                                                     trainable=False, name="static_embeddings")
        if self.mode in ("non_static", "multichannel"):
            self.embeddings = self.add_weight(shape=shape, initializer=self.embeddings_initializer,
                                              trainable=True, name="embeddings")
        self.built = True

    def call(self, token_ids):
        token_ids = keras.ops.cast(token_ids, "int32")
        channels = [keras.ops.cast(keras.ops.take(table, token_ids, axis=0), self.compute_dtype)
                    for table in self.tables]  # each (batch, length, embedding_dim)
        if len(channels) == 1:
            return channels[0]
        if self.merge == "concat":
            return keras.ops.concatenate(channels, axis=-1)  # (batch, length, 2 * embedding_dim)
        return keras.ops.stack(channels, axis=-1)  # (batch, length, embedding_dim, 2)

    def compute_mask(self, token_ids, mask=None):
        if not self.mask_zero:
            return None
        return keras.ops.not_equal(token_ids, 0)

    def compute_output_shape(self, input_shape):
        if self.mode == "multichannel" and self.merge == "stack":
            return (*input_shape, self.embedding_dim, 2)
        return (*input_shape, self.output_dim)

    def set_vectors(self, matrix):
        """Sets every table to `matrix`, float `(vocabulary_size, embedding_dim)`."""
        if not self.built:
            self.build()
        matrix = np.asarray(matrix, dtype="float32")
        if matrix.shape != (self.vocabulary_size, self.embedding_dim):
            raise ValueError(
                f"PretrainedEmbedding.set_vectors: a matrix of shape {matrix.shape} does not fit vocabulary_size="
                f"{self.vocabulary_size}, embedding_dim={self.embedding_dim}; build it for the same vocabulary "
                "with vectors of the same size."
            )
        for table in self.tables:
            table.assign(matrix)

    def load_vectors(self, path, vocabulary, token_counts=None, seed=0):
        """Sets the tables from a vectors file (`tflm.text.load_vectors`) and logs the coverage.

        Args:
            path: str. A GloVe/word2vec file.
            vocabulary: list of str. The words in id order (`tokenizer.pieces`).
            token_counts: mapping {word: count}, optional. For the share of training tokens covered.
            seed: int. Seed of the rows of words missing from the file.
        Returns:
            The `tflm.text.VectorCoverage` (its `missing` lists the words without a vector).
        """
        if len(vocabulary) != self.vocabulary_size:
            raise ValueError(f"PretrainedEmbedding.load_vectors: the vocabulary has {len(vocabulary)} words but "
                             f"vocabulary_size={self.vocabulary_size}; pass the run tokenizer's pieces.")
        matrix, coverage = load_vectors(path, vocabulary, token_counts, self.embedding_dim, seed)
        self.set_vectors(matrix)
        logger.info("%s", coverage.summary())
        return coverage

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "mode": self.mode,
            "merge": self.merge,
            "mask_zero": self.mask_zero,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        })
        return config
