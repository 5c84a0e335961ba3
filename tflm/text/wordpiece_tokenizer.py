"""`WordPieceTokenizer`: WordPiece pieces run by `tensorflow_text.FastWordpieceTokenizer`, over reversible
pre-tokens.

BERT's pre-tokenization drops whitespace, so its output cannot be turned back into normal text
("Hello , world ."). We pre-tokenize reversibly instead (`pretokenize_words`): every word that follows
whitespace starts with the marker `▁` (as SentencePiece does), punctuation is split off as its own
pre-token, and detokenization concatenates the pieces and turns `▁` back into a space.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from tflm.text.special_tokens import SPECIAL_TOKENS, UNK_ID
from tflm.text.tokenizer import Tokenizer

WORD_MARKER = "\u2581"  # "▁", as in SentencePiece
# Punctuation is split off as its own pre-token (ASCII symbols and Unicode punctuation, as BERT does).
_PUNCTUATION = r"[!-/:-@\[-`{-~\p{P}]"


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

    def tokenize_attached(self, words):
        """A word continuing the text without whitespace has no `▁` (see `pretokenize_words`): its pieces as in
        running text ("(1990)," gives `▁`, `(`, `1`, `##99`, `##0`, `)`, `,`; "1990" alone would give `▁1990`)."""
        words = tf_text.normalize_utf8(tf.convert_to_tensor(words, tf.string), "NFC")
        return tf.cast(self._tokenizer.tokenize(words), tf.int32)

    def _detokenize(self, token_ids):
        pieces = tf.gather(self._pieces, token_ids)
        pieces = tf.strings.regex_replace(pieces, "^" + self.suffix_indicator, "")
        text = tf.strings.reduce_join(pieces, axis=-1)
        return tf.strings.strip(tf.strings.regex_replace(text, WORD_MARKER, " "))

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(piece + "\n" for piece in self._piece_list)
