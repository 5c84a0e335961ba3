"""Word/piece alignment: which word each subword piece belongs to, and where each piece is in the text.

The building block of word-level tasks on subword models (tagging: a word's label on its first piece; extractive
QA: a character span from a piece span). Texts are split into words (on whitespace, or given already split),
each word is tokenized alone, and the pieces keep their word's index and their byte offsets in the text.

Offsets come from the tokenizer where it gives them (tensorflow-text's `tokenize_with_offsets` of a SentencePiece
model: exact, through its normalization), else from the pieces' own text: a WordPiece piece without its `▁`/`##`
marker, a byte-level BPE piece's bytes, a character. There the offsets assume the tokenizer keeps a word's bytes
(no normalization changes them: NFC text for WordPiece), and a word's last piece ends where the word ends (an
unknown piece, `<unk>`, has no length of its own).
"""

import tensorflow as tf
import tensorflow_text as tf_text

from tflm.text.special_tokens import SPECIAL_TOKENS
from tflm.text.wordpiece_tokenizer import WORD_MARKER


def _split_words(text):
    """Whitespace-separated words of `text` `(batch,)`: ragged words, starts, ends `(batch, words)`."""
    words, starts, ends = tf_text.regex_split_with_offsets(text, r"\s+")
    return words, tf.cast(starts, tf.int64), tf.cast(ends, tf.int64)


def starts_in_rows(lengths):
    """Exclusive cumulative sums of `lengths` within each row of its ragged partition: int64 `(n,)` flat."""
    flat = tf.cast(lengths.flat_values, tf.int64)
    before = tf.math.cumsum(flat, exclusive=True)
    row_first = tf.gather(tf.concat([before, tf.reduce_sum(flat, keepdims=True)], 0), lengths.row_splits[:-1])
    return before - tf.repeat(row_first, lengths.row_lengths())


def _joined_words(words):
    """Pre-split `words` `(batch, words)` as one text each, joined by single spaces, with their offsets in it."""
    lengths = words.with_flat_values(tf.cast(tf.strings.length(words.flat_values), tf.int64))  # bytes
    starts = words.with_flat_values(starts_in_rows(lengths + 1))  # the words and one space before each
    return tf.strings.reduce_join(words, axis=1, separator=" "), starts, starts + lengths


def _piece_lengths(tokenizer):
    """int64 `(vocabulary_size,)`: the bytes of text each piece stands for (0 for the special tokens)."""
    lengths = []
    for index, piece in enumerate(tokenizer.pieces):
        if index < len(SPECIAL_TOKENS):
            lengths.append(0)
        elif tokenizer.kind == "byte_bpe":
            lengths.append(len(piece))  # one character per byte (GPT-2's byte-to-unicode map)
        else:
            if piece.startswith(WORD_MARKER):
                piece = piece[len(WORD_MARKER):]
            elif tokenizer.kind == "wordpiece" and piece.startswith("##"):
                piece = piece[2:]
            lengths.append(len(piece.encode("utf-8")))
    return tf.constant(lengths, tf.int64)


def tokenize_words_with_offsets(tokenizer, words):
    """Tokenizes each word alone, with each piece's byte offsets in its word.

    Args:
        tokenizer: a `tflm.text.Tokenizer`.
        words: tf.string `(num_words,)`, words without whitespace.
    Returns:
        `(ids, starts, ends)`: ragged int32 ids and int64 offsets `(num_words, pieces)`.
    """
    if hasattr(tokenizer, "tokenize_with_offsets"):  # SentencePiece: tensorflow-text gives the offsets
        ids, starts, ends = tokenizer.tokenize_with_offsets(words)
        return tf.cast(ids, tf.int32), tf.cast(starts, tf.int64), tf.cast(ends, tf.int64)
    ids = tokenizer.tokenize(words)
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(ids)
    ids = tf.cast(ids, tf.int32)
    lengths = ids.with_flat_values(tf.gather(_piece_lengths(tokenizer), ids.flat_values))
    starts = starts_in_rows(lengths)
    ends = starts + lengths.flat_values
    # a word's last piece ends with the word (an <unk> piece has no length of its own)
    has_pieces = ids.row_lengths() > 0
    last = tf.boolean_mask(ids.row_splits[1:] - 1, has_pieces)
    word_bytes = tf.boolean_mask(tf.cast(tf.strings.length(words), tf.int64), has_pieces)
    ends = tf.tensor_scatter_nd_update(ends, last[:, None], word_bytes)
    return ids, ids.with_flat_values(starts), ids.with_flat_values(ends)


def align_pieces(text, tokenizer, words=None):
    """Tokenizes texts word by word and aligns the subword pieces with the words and the text.

    Graph-only (tf and tensorflow-text ops, no `py_function`): it runs eagerly, inside `tf.function` and in an
    exported SavedModel alike.

    Args:
        text: tf.string `(batch,)`. Split into words on whitespace (runs of spaces, tabs, newlines).
        tokenizer: a `tflm.text.Tokenizer` (SentencePiece, WordPiece, byte-level BPE or characters).
        words: optional ragged tf.string `(batch, words)`, the texts already split into words (e.g. a tagging
            corpus's tokens); `text` is then ignored (pass None) and the offsets are into the words joined
            by single spaces, which is returned as `"text"`.
    Returns:
        A dict of ragged tensors (`pieces` is the number of pieces of a text, `words` its number of words):
        - `"token_ids"`: int32 `(batch, pieces)`, the pieces of each word in order, no BOS/EOS;
        - `"word_ids"`: int64 `(batch, pieces)`, the index of each piece's word in its text (non-decreasing);
        - `"starts"`, `"ends"`: int64 `(batch, pieces)`, each piece's byte offsets in the text: the piece
          stands for `text[starts:ends]` (bytes; a SentencePiece `▁` maps to no byte);
        - `"word_starts"`, `"word_ends"`: int64 `(batch, words)`, each word's byte offsets in the text;
        - `"first_piece"`: int64 `(batch, words)`, the index in `"token_ids"` of each word's first piece (where
          a word has no piece, the index its first piece would have);
        - `"text"`: tf.string `(batch,)`, the text the offsets point into.
    Example:
    >>> tokenizer = train_characters(["héllo wörld"])  # one piece per character: "é" is 2 bytes
    >>> aligned = align_pieces(tf.constant(["héllo  wörld"]), tokenizer)
    >>> aligned["word_ids"]
    <tf.RaggedTensor [[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]]>
    >>> aligned["first_piece"]
    <tf.RaggedTensor [[0, 5]]>
    >>> aligned["starts"][0, :3].numpy(), aligned["ends"][0, :3].numpy()
    (array([0, 1, 3]), array([1, 3, 4]))
    >>> aligned["word_starts"], aligned["word_ends"]  # two spaces between the words
    (<tf.RaggedTensor [[0, 8]]>, <tf.RaggedTensor [[6, 14]]>)
    """
    if words is None:
        text = tf.convert_to_tensor(text, tf.string)
        words, word_starts, word_ends = _split_words(text)
    else:
        if not isinstance(words, tf.RaggedTensor):
            words = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(words, tf.string))
        text, word_starts, word_ends = _joined_words(words)
    words_per_text = words.row_lengths()
    ids, starts, ends = tokenize_words_with_offsets(tokenizer, words.flat_values)  # (num_words, pieces)
    pieces_per_word = ids.row_lengths()
    # offsets in the text: the word's start plus the piece's offset in the word
    word_start_per_piece = tf.repeat(word_starts.flat_values, pieces_per_word)
    piece_splits = tf.gather(ids.row_splits, words.row_splits)  # (batch + 1,): the texts' pieces
    by_text = lambda flat: tf.RaggedTensor.from_row_splits(flat, piece_splits)  # noqa: E731
    word_index = tf.ragged.range(words_per_text).flat_values  # each word's index in its text
    first_piece = ids.row_splits[:-1] - tf.repeat(piece_splits[:-1], words_per_text)
    return {
        "token_ids": by_text(ids.flat_values),
        "word_ids": by_text(tf.repeat(word_index, pieces_per_word)),
        "starts": by_text(starts.flat_values + word_start_per_piece),
        "ends": by_text(ends.flat_values + word_start_per_piece),
        "word_starts": word_starts,
        "word_ends": word_ends,
        "first_piece": words.with_flat_values(first_piece),
        "text": text,
    }
