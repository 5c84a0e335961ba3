"""Subword tokenizers that run inside tf.data, inside a `tf.function` and inside an exported SavedModel.

Every tokenizer maps a string tensor to int32 ids and back with TensorFlow and tensorflow-text ops only (no
Python per example), so the same object serves the training pipeline, in-graph decoding and TF Serving.

Special ids are fixed for every tokenizer kind:

| id | token  | meaning |
|----|--------|---------|
| 0  | `<pad>` | padding; never predicted |
| 1  | `<unk>` | unknown piece |
| 2  | `<s>`   | beginning of sequence (decoder start) |
| 3  | `</s>`  | end of sequence |

Two kinds are provided:

- `SentencePieceTokenizer`: a SentencePiece model (unigram or BPE), run by
  `tensorflow_text.SentencepieceTokenizer`. Detokenization is exact up to SentencePiece's normalization.
- `WordPieceTokenizer`: WordPiece pieces run by `tensorflow_text.FastWordpieceTokenizer`. BERT's
  pre-tokenization drops whitespace, so its output cannot be turned back into normal text ("Hello , world .").
  We pre-tokenize reversibly instead: every word that follows whitespace starts with the marker `▁`
  (as SentencePiece does), punctuation is split off as its own pre-token, and detokenization concatenates the
  pieces and turns `▁` back into a space.
"""

import hashlib
import json
import os

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops import sentencepiece_tokenizer as _tf_text_sentencepiece

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")

WORD_MARKER = "\u2581"  # "▁", as in SentencePiece
# Punctuation is split off as its own pre-token (ASCII symbols and Unicode punctuation, as BERT does).
_PUNCTUATION = r"[!-/:-@\[-`{-~\p{P}]"


def strip_special(token_ids):
    """Returns the ids of each row up to (not including) the first EOS, without PAD and BOS.

    Args:
        token_ids: int `(batch_size, length)`, dense or ragged.
    Returns:
        A ragged int32 tensor `(batch_size, None)`.
    """
    if isinstance(token_ids, tf.RaggedTensor):
        token_ids = token_ids.to_tensor(default_value=PAD_ID)
    token_ids = tf.cast(token_ids, tf.int32)
    before_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(token_ids, EOS_ID), tf.int32), axis=-1), 0)
    keep = before_eos & tf.not_equal(token_ids, PAD_ID) & tf.not_equal(token_ids, BOS_ID)
    return tf.ragged.boolean_mask(token_ids, keep)


class Tokenizer(tf.Module):
    """Base class: `tokenize` strings to ids, `detokenize` ids to strings.

    Subclasses set `kind`, implement `_tokenize(text)` for a rank-1 string tensor and
    `_detokenize(ids)` for a ragged rank-2 id tensor already cleaned of special ids, and `save(path)`.
    """

    kind = None
    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    @property
    def vocabulary_size(self):
        raise NotImplementedError

    def tokenize(self, text):
        """Tokenizes strings.

        Args:
            text: string tensor, a scalar or `(batch_size,)`.
        Returns:
            int32 ids: `(None,)` for a scalar, a ragged `(batch_size, None)` for a vector. No BOS/EOS added.
        """
        text = tf.convert_to_tensor(text, dtype=tf.string)
        if text.shape.rank == 0:
            return self._tokenize(tf.expand_dims(text, 0))[0]
        return self._tokenize(text)

    def detokenize(self, token_ids):
        """Turns ids back into text: stops at the first EOS, drops PAD and BOS.

        Args:
            token_ids: int `(length,)` or `(batch_size, length)`, dense or ragged.
        Returns:
            A string scalar or `(batch_size,)`.
        """
        if token_ids.shape.rank == 1:
            return self.detokenize(tf.expand_dims(token_ids, 0))[0]
        return self._detokenize(strip_special(token_ids))

    def id_to_token(self, token_ids):
        """Returns the piece string of each id (same shape as `token_ids`)."""
        return tf.gather(self._pieces, token_ids)

    def token_to_id(self, token):
        """Returns the id of a piece, or `unk_id` if the vocabulary lacks it (Python-side helper)."""
        return self._piece_ids.get(token, self.unk_id)

    @property
    def pieces(self):
        """The vocabulary as a list of Python strings, indexed by id."""
        return list(self._piece_list)

    def _set_pieces(self, pieces):
        self._piece_list = tuple(pieces)
        self._piece_ids = {piece: index for index, piece in enumerate(pieces)}
        self._pieces = tf.constant(list(pieces), dtype=tf.string)

    def save(self, path):
        raise NotImplementedError


class _SharedSentencepieceResource(_tf_text_sentencepiece._SentencepieceModelResource):
    """tensorflow-text's SentencePiece model resource, made shared instead of kernel-owned.

    tensorflow-text creates the model resource with an empty `shared_name`, which makes it private to the
    op kernel that created it: when TensorFlow clears its kernel cache (as `tf.random.set_seed` and
    `keras.utils.set_random_seed` do), the resource is deleted and every later tokenization fails with
    "Resource ... SentencepieceResource does not exist" (tensorflow-text's own TODO b/318839908). A
    `shared_name` derived from the model's content keeps it in the resource manager instead; identical
    models share one resource. It is the same op, so exported graphs need nothing new.
    """

    def _create_resource(self):
        shared_name = "tflm_sentencepiece_" + hashlib.sha256(self._model).hexdigest()[:24]
        with tf.name_scope(self._name or "SentenceTokenizerInitializer"):
            return _tf_text_sentencepiece.gen_sentencepiece_tokenizer.sentencepiece_op(
                model=self._model, shared_name=shared_name
            )


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model (unigram or BPE) run by tensorflow-text.

    Args:
        model_proto: bytes. A serialized SentencePiece `ModelProto` whose ids 0-3 are
            `<pad>`, `<unk>`, `<s>`, `</s>` (as `train_sentencepiece` makes them).
    Example:
    >>> tokenizer = SentencePieceTokenizer.from_file("run/vocab/source.model")
    >>> ids = tokenizer.tokenize(["Hello, world."])
    >>> tokenizer.detokenize(ids)
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'Hello, world.'], dtype=object)>
    """

    kind = "sentencepiece"
    file_suffix = ".model"

    def __init__(self, model_proto, name=None):
        super().__init__(name=name)
        self.model_proto = bytes(model_proto)
        self._tokenizer = tf_text.SentencepieceTokenizer(model=self.model_proto, out_type=tf.int32)
        self._tokenizer._model_resource = _SharedSentencepieceResource(self.model_proto, None)
        pieces = self._pieces_from_proto(self.model_proto)
        if tuple(pieces[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"This SentencePiece model has {pieces[:4]} as ids 0-3, but tflm needs {list(SPECIAL_TOKENS)}. "
                "Train it with `tflm vocab` (or sentencepiece with pad_id=0 unk_id=1 bos_id=2 eos_id=3)."
            )
        self._set_pieces(pieces)

    @staticmethod
    def _pieces_from_proto(model_proto):
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]

    @classmethod
    def from_file(cls, path):
        with open(path, "rb") as f:
            return cls(f.read())

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    def _tokenize(self, text):
        return self._tokenizer.tokenize(text)

    def _detokenize(self, token_ids):
        return self._tokenizer.detokenize(token_ids)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.model_proto)


def pretokenize_words(text):
    """Splits text into reversible WordPiece pre-tokens.

    Each word that follows whitespace (and the first word) starts with `▁`; punctuation characters are
    pre-tokens of their own. Concatenating the pre-tokens and replacing `▁` by a space gives back the
    text with its whitespace collapsed.

    Args:
        text: string `(batch_size,)`.
    Returns:
        A ragged string tensor `(batch_size, None)`.
    """
    text = tf_text.normalize_utf8(text, "NFC")
    text = tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))
    marked = tf.strings.regex_replace(text, r"(^|\s)(\S)", r"\1" + WORD_MARKER + r"\2")
    return tf_text.regex_split(marked, r"\s+|" + _PUNCTUATION, _PUNCTUATION)


class WordPieceTokenizer(Tokenizer):
    """WordPiece pieces over reversible pre-tokens, run by tensorflow-text's `FastWordpieceTokenizer`.

    Args:
        vocabulary: list of str. The pieces; ids 0-3 must be `<pad>`, `<unk>`, `<s>`, `</s>`.
            Continuation pieces start with `##`; word-initial pieces with `▁` (see `pretokenize_words`).
    Example:
    >>> tokenizer = train_wordpiece(["Hello, world."] * 10, vocabulary_size=40)
    >>> tokenizer.detokenize(tokenizer.tokenize(["Hello, world."]))
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'Hello, world.'], dtype=object)>
    """

    kind = "wordpiece"
    file_suffix = ".vocab"
    suffix_indicator = "##"

    def __init__(self, vocabulary, name=None):
        super().__init__(name=name)
        vocabulary = list(vocabulary)
        if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"A WordPiece vocabulary must start with {list(SPECIAL_TOKENS)}; this one starts with "
                f"{vocabulary[:4]}. Build it with `tflm vocab --type wordpiece`."
            )
        self._set_pieces(vocabulary)
        self._tokenizer = tf_text.FastWordpieceTokenizer(
            vocab=vocabulary,
            suffix_indicator=self.suffix_indicator,
            max_bytes_per_word=200,
            token_out_type=tf.int32,
            unknown_token=SPECIAL_TOKENS[UNK_ID],
            no_pretokenization=True,
            support_detokenization=False,
        )

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls([line.rstrip("\n") for line in f if line.rstrip("\n")])

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    def _tokenize(self, text):
        words = pretokenize_words(text)  # (batch, words)
        return self._tokenizer.tokenize(words).merge_dims(1, 2)  # (batch, words, pieces) -> (batch, pieces)

    def _detokenize(self, token_ids):
        pieces = tf.gather(self._pieces, token_ids)
        pieces = tf.strings.regex_replace(pieces, "^" + self.suffix_indicator, "")
        text = tf.strings.reduce_join(pieces, axis=-1)
        return tf.strings.strip(tf.strings.regex_replace(text, WORD_MARKER, " "))

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(piece + "\n" for piece in self._piece_list)


class CharacterTokenizer(Tokenizer):
    """One id per Unicode character (character-level language models).

    The vocabulary is the special tokens followed by the characters of the training text; an unseen
    character maps to `<unk>`. Detokenization concatenates the characters, so it returns the text exactly
    (whitespace and newlines included).

    Args:
        characters: list of str, one character each (without the special tokens).
    Example:
    >>> tokenizer = CharacterTokenizer(sorted(set("hello world")))
    >>> tokenizer.detokenize(tokenizer.tokenize(["hello"]))
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'hello'], dtype=object)>
    """

    kind = "character"
    file_suffix = ".chars"

    def __init__(self, characters, name=None):
        super().__init__(name=name)
        characters = list(characters)
        if any(len(c) != 1 for c in characters) or len(set(characters)) != len(characters):
            raise ValueError("A CharacterTokenizer needs distinct single characters.")
        self._set_pieces(list(SPECIAL_TOKENS) + characters)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(characters, dtype=tf.string),
                                                tf.range(len(SPECIAL_TOKENS), len(self._piece_list), dtype=tf.int32)),
            default_value=UNK_ID,
        )

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f)["characters"])

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    def _tokenize(self, text):
        characters = tf.strings.unicode_split(text, "UTF-8")
        return tf.ragged.map_flat_values(self._table.lookup, characters)

    def _detokenize(self, token_ids):
        return tf.strings.reduce_join(tf.gather(self._pieces, token_ids), axis=-1)

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"characters": list(self._piece_list[len(SPECIAL_TOKENS):])}, f, ensure_ascii=False)


class ByteLevelBPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2's scheme), run by keras-hub's `BytePairTokenizer`: no unknown tokens, and
    detokenization gives the text back byte for byte.

    Args:
        vocabulary: dict piece -> id, with `<pad>`, `<unk>`, `<s>`, `</s>` as ids 0-3.
        merges: list of str, the merge rules (`"a b"`), in order.
    """

    kind = "byte_bpe"
    file_suffix = ".bpe.json"

    def __init__(self, vocabulary, merges, name=None):
        super().__init__(name=name)
        import keras_hub

        vocabulary, merges = dict(vocabulary), list(merges)
        by_id = sorted(vocabulary.items(), key=lambda item: item[1])
        pieces = [piece for piece, _ in by_id]
        if tuple(pieces[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS or [i for _, i in by_id] != list(range(len(by_id))):
            raise ValueError(f"A byte-level BPE vocabulary must number its pieces 0..n-1 with {list(SPECIAL_TOKENS)} "
                             "first; build it with `tflm vocab --type byte_bpe`.")
        self._set_pieces(pieces)
        # Kept as a JSON string: a dict attribute of a tf.Module would be wrapped for tracking.
        self._serialized = json.dumps({"vocabulary": vocabulary, "merges": merges}, ensure_ascii=False)
        # The TensorFlow path always (not keras-hub's eager Python path), so eager, graph and exported
        # tokenization are one and the same.
        self._tokenizer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=vocabulary, merges=merges, dtype="int32", _allow_python_workflow=False
        )

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return cls(data["vocabulary"], data["merges"])

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    # keras-hub returns Python lists when called eagerly; inside a tf.function it returns tensors.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def _tokenize(self, text):
        return tf.cast(self._tokenizer.tokenize(text), tf.int32)

    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32, row_splits_dtype=tf.int64)])
    def _detokenize_ragged(self, token_ids):
        return self._tokenizer.detokenize(token_ids)

    def _detokenize(self, token_ids):
        return self._detokenize_ragged(token_ids.with_row_splits_dtype(tf.int64))

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(self._serialized)


TOKENIZER_KINDS = {
    "sentencepiece": SentencePieceTokenizer,
    "wordpiece": WordPieceTokenizer,
    "character": CharacterTokenizer,
    "byte_bpe": ByteLevelBPETokenizer,
}


def load_tokenizer(path):
    """Loads a tokenizer saved by `Tokenizer.save`, choosing the kind by the file suffix."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such vocabulary file. Build one with `tflm vocab`.")
    for cls in TOKENIZER_KINDS.values():
        if path.endswith(cls.file_suffix):
            return cls.from_file(path)
    raise ValueError(
        f"{path}: unknown vocabulary file type; expected a SentencePiece '.model', a WordPiece '.vocab', a "
        "character '.chars' or a byte-level BPE '.bpe.json' file."
    )
