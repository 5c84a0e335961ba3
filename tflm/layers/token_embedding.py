import logging

import keras
import numpy as np

from tflm.text.wordpiece_tokenizer import WORD_MARKER

logger = logging.getLogger("tflm")


def read_word_vectors(path, vocabulary, embedding_dim=None):
    """Reads word vectors in word2vec or GloVe text format for the pieces of `vocabulary`.

    A piece matches a word after dropping SentencePiece's `▁` word marker; exact case first, then
    lower case. WordPiece continuation pieces (`##...`) and special tokens never match.

    Args:
        path: a text file, one `word v1 v2 ...` per line; a word2vec header line `count dim` is skipped.
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
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if embedding_dim is None:
                embedding_dim = len(values)
            if len(values) != embedding_dim:
                raise ValueError(
                    f"{path}:{number}: the vector of {word!r} has {len(values)} values, expected "
                    f"{embedding_dim} (the embedding size). Use vectors of the model's embedding_dim."
                )
            if word in wanted:
                for index in wanted[word]:
                    exact[index] = np.asarray(values, dtype="float32")
            elif word.lower() in lowered:
                for index in lowered[word.lower()]:
                    folded.setdefault(index, np.asarray(values, dtype="float32"))
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
