"""Pretrained word vectors (GloVe, word2vec, fastText `.vec`) read for a run's vocabulary.

This module lives in `tflm.text` because it is about words, not layers: it reads files into NumPy, with no
Keras in sight, so a vocabulary trainer (`train_words`) and any layer (`tflm.layers.PretrainedEmbedding`,
`TokenEmbedding`) can both use it.

Formats, chosen by the file name (or `binary=`):
- text: one `word v1 ... vdim` a line (GloVe), optionally after a word2vec header line `count dim`; plain,
  `.gz` or `.bz2`, streamed line by line (never the whole file in memory).
- word2vec binary (`.bin`, also `.bin.gz`): a header line `count dim`, then per word its UTF-8 bytes, a space
  and `dim` little-endian float32 values.
"""

import bz2
import dataclasses
import gzip
import logging
import os

import numpy as np

from tflm.text.special_tokens import PAD_ID, SPECIAL_TOKENS

logger = logging.getLogger("tflm")


class VectorFileError(ValueError):
    """A word vectors file is malformed or does not fit (the message names file and line)."""


@dataclasses.dataclass
class VectorCoverage:
    """How much of a vocabulary (and of the training text) a vectors file covers.

    Attributes:
        path: str. The vectors file.
        vocabulary_words: int. Words looked up (the vocabulary without its special tokens).
        found_words: int. Those with a vector in the file.
        missing: tuple of str. The words without a vector, in vocabulary (id) order.
        total_tokens: int or None. Training tokens counted (when `token_counts` was given).
        covered_tokens: int or None. Those whose word has a vector (words outside the vocabulary count as
            not covered: they become `<unk>`).
    """

    path: str
    vocabulary_words: int
    found_words: int
    missing: tuple
    total_tokens: int = None
    covered_tokens: int = None

    @property
    def word_share(self):
        """Share of the vocabulary's words found in the file."""
        return self.found_words / max(self.vocabulary_words, 1)

    @property
    def token_share(self):
        """Share of the training tokens covered, or None without token counts."""
        return None if self.total_tokens is None else self.covered_tokens / max(self.total_tokens, 1)

    def summary(self, examples=8):
        """One line for the log, e.g. `glove.txt: vectors for 95 of 100 vocabulary words (95.0%), ...`."""
        line = (f"{self.path}: vectors for {self.found_words:,} of {self.vocabulary_words:,} vocabulary words "
                f"({100 * self.word_share:.1f}%)")
        if self.total_tokens is not None:
            line += f", {100 * self.token_share:.1f}% of {self.total_tokens:,} training tokens"
        if self.missing:
            line += "; missing e.g. " + ", ".join(repr(w) for w in self.missing[:examples])
        return line


def is_binary_vectors(path):
    """Whether `path` names a word2vec binary file (`.bin`, `.bin.gz`, `.bin.bz2`)."""
    name = os.path.basename(path)
    for suffix in (".gz", ".bz2"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.endswith(".bin")


def read_vectors(path, embedding_dim=None, binary=None, words=None):
    """Streams the `(word, vector)` pairs of a vectors file, in file order.

    Args:
        path: str. A GloVe/word2vec text file (plain, `.gz`, `.bz2`) or a word2vec binary file.
        embedding_dim: int, optional. The expected vector size (an error names the first line that differs).
        binary: bool, optional. The format; by default `is_binary_vectors(path)`.
        words: set of str, optional. Only vectors of these words are parsed and yielded (every line is still
            checked for its size); much faster when the file is large and the vocabulary small.
    Returns:
        An iterator of `(word, float32 vector (dim,))`.
    Raises:
        FileNotFoundError: no such file.
        VectorFileError: a malformed line or a vector of another size (`path:line: ...`).
    Example:
    >>> for word, vector in read_vectors("glove.6B.50d.txt.bz2", words={"the", "cat"}):  # doctest: +SKIP
    ...     print(word, vector.shape)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such word vectors file. Give the path of a GloVe or word2vec file.")
    if is_binary_vectors(path) if binary is None else binary:
        return _read_binary(path, embedding_dim, words)
    return _read_text(path, embedding_dim, words)


def vector_file_words(path, limit=None, binary=None):
    """The words of a vectors file in file order (for GloVe and word2vec: most frequent first).

    Args:
        path: str. A vectors file (see `read_vectors`).
        limit: int, optional. Stop after this many words.
        binary: bool, optional. The format; by default from the file name.
    Returns:
        A list of str.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such word vectors file. Give the path of a GloVe or word2vec file.")
    read = _read_binary if (is_binary_vectors(path) if binary is None else binary) else _read_text
    result = []
    for word, _ in read(path, None, None, parse=False):
        if limit is not None and len(result) >= limit:
            break
        result.append(word)
    return result


def load_vectors(path, vocabulary, token_counts=None, embedding_dim=None, seed=0, binary=None):
    """An embedding matrix for `vocabulary` from a vectors file, and its coverage.

    1. Each vocabulary word (special tokens excluded) found in the file gets exactly the file's vector (the
       first one, if the file repeats a word).
    2. Every other row is drawn from a normal distribution (seeded) with the per-dimension mean and standard
       deviation of the found vectors, so that unknown words look like known ones (Kim 2014 does the same
       with a uniform distribution).
    3. The `<pad>` row is zero.

    Args:
        path: str. A vectors file (see `read_vectors`).
        vocabulary: list of str. The words in id order (`tokenizer.pieces`); entries equal to a special token
            (`<pad>`, `<unk>`, `<s>`, `</s>`) are not looked up.
        token_counts: mapping {word: count}, optional. The training text's word counts (`count_words`), for
            the share of training tokens covered.
        embedding_dim: int, optional. The expected vector size.
        seed: int. Seed of the random rows.
        binary: bool, optional. The format; by default from the file name.
    Returns:
        `(matrix, coverage)`: float32 `(len(vocabulary), dim)` and a `VectorCoverage`.
    Example:
    >>> matrix, coverage = load_vectors("glove.6B.50d.txt.bz2", tokenizer.pieces)  # doctest: +SKIP
    >>> logger.info(coverage.summary())  # doctest: +SKIP
    """
    wanted = {}
    for index, word in enumerate(vocabulary):
        if word not in SPECIAL_TOKENS:
            wanted.setdefault(word, []).append(index)
    found = {}
    dim = embedding_dim
    for word, vector in read_vectors(path, embedding_dim, binary, words=set(wanted)):
        dim = len(vector)
        found.setdefault(word, vector)
    if dim is None:  # nothing found and no size given: the file's first vector says it
        dim = next((len(v) for _, v in read_vectors(path, binary=binary)), None)
        if dim is None:
            raise VectorFileError(f"{path}: holds no vectors. Give a GloVe or word2vec file.")
    rng = np.random.default_rng(seed)
    if found:
        stacked = np.stack(list(found.values()))
        mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    else:
        logger.warning("%s: none of the %d vocabulary words has a vector; all rows are random.", path, len(wanted))
        mean, std = np.zeros(dim), np.full(dim, dim**-0.5)
    matrix = rng.normal(mean, std, size=(len(vocabulary), dim)).astype("float32")
    for word, vector in found.items():
        matrix[wanted[word]] = vector
    if vocabulary and vocabulary[PAD_ID] == SPECIAL_TOKENS[PAD_ID]:
        matrix[PAD_ID] = 0.0
    missing = tuple(word for word in wanted if word not in found)
    coverage = VectorCoverage(path, len(wanted), len(found), missing)
    if token_counts is not None:
        coverage.total_tokens = int(sum(token_counts.values()))
        coverage.covered_tokens = int(sum(count for word, count in token_counts.items() if word in found))
    return matrix, coverage


def _open_text(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if path.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _open_binary(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _header(fields):
    """(count, dim) if `fields` are a word2vec header line, else None."""
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[0]), int(fields[1])
    return None


def _check_dim(path, number, word, size, dim, expected):
    if expected is not None and size != expected:
        raise VectorFileError(
            f"{path}:{number}: the vector of {word!r} has {size} values, but embedding_dim={expected}. Use "
            f"vectors of size {expected}, or set embedding_dim={size}."
        )
    if size != dim:
        raise VectorFileError(
            f"{path}:{number}: the vector of {word!r} has {size} values, but the file's vectors have {dim} (from "
            "its first line). The file is damaged or mixes two files."
        )


def _read_text(path, expected, words, parse=True):
    dim = expected
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            stripped = line.rstrip()
            if not stripped:
                continue
            word, _, rest = stripped.partition(" ")
            if number == 1:
                header = _header(stripped.split())
                if header:
                    _check_dim(path, number, "(header)", header[1], header[1], expected)
                    dim = header[1]
                    continue
            if not rest:
                raise VectorFileError(f"{path}:{number}: malformed line {stripped[:60]!r}: expected a word and "
                                      "its vector's numbers, separated by spaces.")
            if dim is None:
                dim = len(rest.split())
            if rest.count(" ") + 1 != dim:  # rare: several spaces, a tab, or a word with spaces (GloVe 840B)
                fields = stripped.split()
                if len(fields) > dim + 1:
                    fields = [" ".join(fields[:-dim])] + fields[-dim:]
                word, values = fields[0], fields[1:]
                _check_dim(path, number, word, len(values), dim, expected)
                rest = " ".join(values)
            if words is not None and word not in words:
                continue
            if not parse:
                yield word, None
                continue
            try:
                vector = np.array(rest.split(), dtype="float32")
            except ValueError:
                raise VectorFileError(f"{path}:{number}: malformed vector of {word!r}: {rest[:60]!r}... are not "
                                      "all numbers.") from None
            yield word, vector


def _read_binary(path, expected, words, parse=True):
    with _open_binary(path) as f:
        header = f.readline().decode("utf-8", errors="replace")
        fields = _header(header.split())
        if fields is None:
            raise VectorFileError(f"{path}:1: a word2vec binary file starts with a line `count dim`, not "
                                  f"{header[:40]!r}. For a text file pass binary=False.")
        count, dim = fields
        _check_dim(path, 1, "(header)", dim, dim, expected)
        size = 4 * dim
        buffer, position = b"", 0
        for index in range(count):
            while True:  # the word: bytes up to a space (after the previous vector's optional newline)
                end = buffer.find(b" ", position)
                if end >= 0 and len(buffer) >= end + 1 + size:
                    break
                chunk = f.read(1 << 20)
                if not chunk:
                    raise VectorFileError(f"{path}: ends after {index} of the {count} vectors its header announces "
                                          "(a truncated file).")
                buffer, position = buffer[position:] + chunk, 0
            word = buffer[position:end].lstrip(b"\n").decode("utf-8", errors="replace")
            position = end + 1 + size
            if not parse:
                yield word, None
            elif words is None or word in words:
                yield word, np.frombuffer(buffer, dtype="<f4", count=dim, offset=end + 1).astype("float32")
