import logging

import keras
import numpy as np

from tflm.text.word_vectors import read_vectors
from tflm.text.wordpiece_tokenizer import WORD_MARKER

logger = logging.getLogger("tflm")


def read_word_vectors(path, vocabulary, embedding_dim=None):
    """Reads word vectors in word2vec or GloVe text format for the pieces of `vocabulary`.

    A piece matches a word after dropping SentencePiece's `▁` word marker; exact case first, then
    lower case. WordPiece continuation pieces (`##...`) and special tokens never match.

    Args:
        path: a GloVe/word2vec text file (plain, `.gz`, `.bz2`; a word2vec header line `count dim` is
            skipped) or a word2vec binary file, streamed by `tflm.text.read_vectors`.
        vocabulary: list of str, the pieces in id order.
        embedding_dim: int, optional. The expected vector size.
    Returns:
        `(vectors, found)`: a dict {piece id: float32 vector} and the number of pieces found.
    """
    wanted = {}
    for index, piece in enumerate(vocabulary):
        if piece.startswith("<") and piece.endswith(">") or piece.startswith("##"):
            continue
        word = piece.lstrip(WORD_MARKER)
        if word:
            wanted.setdefault(word, []).append(index)
    lowered = {}
    for word, ids in wanted.items():
        lowered.setdefault(word.lower(), []).extend(ids)
    exact, folded = {}, {}
    for word, vector in read_vectors(path, embedding_dim):
        if word in wanted:
            for index in wanted[word]:
                exact[index] = vector
        elif word.lower() in lowered:
            for index in lowered[word.lower()]:
                folded.setdefault(index, vector)
    vectors = {**folded, **exact}
    return vectors, len(vectors)


@keras.saving.register_keras_serializable(package="tflm")
class TokenEmbedding(keras.layers.Embedding):
    """A token embedding that can start from pretrained word vectors.

    Args:
        vocabulary_size: int.
        embedding_dim: int.
        scale: bool. Multiply outputs by sqrt(embedding_dim) (as Transformers do).
        **kwargs: passed to `keras.layers.Embedding`.
    Call arguments:
        token_ids: int `(batch_size, length)`.
    Returns:
        float `(batch_size, length, embedding_dim)`.
    Example:
    >>> embedding = TokenEmbedding(vocabulary_size=100, embedding_dim=8)
    >>> embedding(np.array([[4, 5, 0]])).shape
    TensorShape([1, 3, 8])
    >>> found = embedding.load_pretrained("glove.6B.50d.txt", tokenizer.pieces)  # doctest: +SKIP
    """

    def __init__(self, vocabulary_size, embedding_dim, scale=False, **kwargs):
        kwargs.pop("input_dim", None)
        kwargs.pop("output_dim", None)
        super().__init__(input_dim=vocabulary_size, output_dim=embedding_dim, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.scale = scale

    def call(self, token_ids):
        outputs = super().call(token_ids)
        if self.scale:
            outputs = outputs * (self.embedding_dim**0.5)
        return outputs

    def load_pretrained(self, path, vocabulary):
        """Overwrites the rows of the pieces found in a word2vec/GloVe text file; returns how many."""
        if not self.built:
            self.build((None, None))
        vectors, found = read_word_vectors(path, vocabulary, self.embedding_dim)
        if vectors:
            matrix = np.array(keras.ops.convert_to_numpy(self.embeddings))
            for index, vector in vectors.items():
                matrix[index] = vector
            self.embeddings.assign(matrix)
        logger.info("%s: found vectors for %d of %d vocabulary pieces", path, found, len(vocabulary))
        return found

    def get_config(self):
        config = super().get_config()
        for key in ("input_dim", "output_dim"):
            config.pop(key, None)
        config.update(
            {"vocabulary_size": self.vocabulary_size, "embedding_dim": self.embedding_dim, "scale": self.scale}
        )
        return config
