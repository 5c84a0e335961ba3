"""Tagging data (one label per word): CoNLL files, BIO/BIOES tags, and the in-graph alignment of words with
subword pieces.

CoNLL format: one word a line, whitespace-separated columns (the word, then e.g. part-of-speech, chunk and
entity tags), a blank line between sentences; `-DOCSTART-` lines (document breaks) are skipped; `.gz` is read
transparently. `read_conll` takes the word and the label from any two columns.

Label schemes (`scheme`): "bio" (IOB2: `O`, `B-X` begins an entity of type X, `I-X` continues it) and "bioes"
(also `E-X` ends an entity and `S-X` is a one-word entity); None accepts any label (per-word labels such as
part-of-speech tags or the punctuation corpus's, `tflm.data.punctuation`).

Subword models read pieces, not words: `align_words` tokenizes each word alone, keeps the words whose pieces fit
in the model's length, and gives the position of each kept word's first piece (`word_starts`), where the
model reads the word's label (BERT's first-subword rule). It uses TensorFlow ops only, so the exported model
runs it in TF Serving; `align_text` splits sentences on whitespace first.
"""

import dataclasses
import gzip
import re

import tensorflow as tf

from tflm.data.registry import open_text
from tflm.text.alignment import starts_in_rows
from tflm.text.special_tokens import CLS_ID, SEP_ID

SCHEMES = ("bio", "bioes")
DOCSTART = "-DOCSTART-"
_TAG = {"bio": re.compile(r"^(O|[BI]-\S+)$"), "bioes": re.compile(r"^(O|[BIES]-\S+)$")}


class TaggingDataError(ValueError):
    """Raised when a CoNLL file cannot be read: its message names the file, the line, the value and the fix."""


@dataclasses.dataclass
class TaggingData:
    """Sentences of words, one label per word.

    Attributes:
        words: list of sentences, each a non-empty list of str (no whitespace inside a word).
        labels: list of sentences, each a list of str as long as its sentence's words.
        path: the file they were read from (None when built in memory).
        line_numbers: optional list of int, the 1-based line of each sentence's first word in `path`.
    """

    words: list
    labels: list
    path: str = None
    line_numbers: list = None

    def __len__(self):
        return len(self.words)

    def head(self, n):
        """The first `n` sentences, as a new `TaggingData` (for quick runs and tests)."""
        return dataclasses.replace(self, words=self.words[:n], labels=self.labels[:n],
                                   line_numbers=None if self.line_numbers is None else self.line_numbers[:n])


def read_conll(path, label_column=-1, word_column=0, scheme=None):
    """Reads a CoNLL file: one word a line, whitespace-separated columns, a blank line between sentences.

    Args:
        path: the file (plain or `.gz`).
        label_column: int. The label's column, 0-based; negative counts from the end (-1: the last column,
            CoNLL-2003's entity tags; 1: its part-of-speech tags).
        word_column: int. The word's column (0: the first).
        scheme: None (any label), "bio" or "bioes": check every label is valid in that scheme (BIO: `O`,
            `B-X`, `I-X`; BIOES also `E-X`, `S-X`).
    Returns:
        A `TaggingData` (with each sentence's first line number).
    Raises:
        TaggingDataError: naming the file and line, for a line with too few columns, a label invalid in
            `scheme`, text that is not UTF-8, or a file without any sentence.
    """
    _check_scheme(scheme, allow_none=True)
    path = str(path)
    data = TaggingData([], [], path, [])
    words, labels, first = [], [], None

    def end_sentence():
        if words:
            data.words.append(list(words))
            data.labels.append(list(labels))
            data.line_numbers.append(first)
            words.clear()
            labels.clear()

    with open_text(path) as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise TaggingDataError(f"{path}:{number}: not valid UTF-8 ({error.reason}); re-encode the file as "
                                       "UTF-8.") from None
            columns = line.split()
            if not columns:
                end_sentence()
                continue
            if columns[0] == DOCSTART:
                end_sentence()
                continue
            word_at, label_at = _position(word_column, len(columns)), _position(label_column, len(columns))
            if word_at is None or label_at is None or word_at == label_at:
                raise TaggingDataError(
                    f"{path}:{number}: {len(columns)} column(s) ({line.strip()!r}) but the word is column "
                    f"{word_column} and the label column {label_column}; every word line needs both (e.g. "
                    "'EU B-ORG'). Fix the line, or pass word_column=/label_column= naming the file's columns."
                )
            label = columns[label_at]
            if scheme is not None and not _TAG[scheme].match(label):
                raise TaggingDataError(
                    f"{path}:{number}: label {label!r} is not a {scheme.upper()} tag; {_scheme_help(scheme)} "
                    "Fix the label, pass the right scheme= (or scheme=None for any label), or pick the label's "
                    "column with label_column=."
                )
            if not words:
                first = number
            words.append(columns[word_at])
            labels.append(label)
    end_sentence()
    if not data.words:
        raise TaggingDataError(f"{path}: the file is empty (no sentences); expected one word and its label a line, "
                               "a blank line between sentences.")
    return data


def _position(column, count):
    """The non-negative index of `column` among `count` columns, or None when there is no such column."""
    position = column + count if column < 0 else column
    return position if 0 <= position < count else None


def _check_scheme(scheme, allow_none=False):
    if scheme is None and allow_none:
        return
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r} is not one of {', '.join(SCHEMES)}" +
                         (" (or None for any label)." if allow_none else "."))


def _scheme_help(scheme):
    if scheme == "bio":
        return "BIO tags are O, B-<type> and I-<type> (e.g. B-PER, I-PER)."
    return "BIOES tags are O, B-<type>, I-<type>, E-<type> and S-<type> (e.g. S-LOC)."


def write_conll(path, data):
    """Writes a `TaggingData` as CoNLL: `word label` a line, a blank line after each sentence, UTF-8, LF
    (`.gz` compressed by name, without a time stamp, so the bytes depend on the data only).

    Args:
        path: the file to write.
        data: a `TaggingData`.
    Raises:
        ValueError: naming the sentence and word, for an empty sentence, a word or label that is empty or holds
            whitespace (it would split into columns), a word `-DOCSTART-`, or words and labels of different
            lengths.
    """
    path = str(path)
    if len(data.words) != len(data.labels):
        raise ValueError(f"{len(data.words)} sentences of words but {len(data.labels)} of labels; they must pair up.")
    lines = []
    for index, (words, labels) in enumerate(zip(data.words, data.labels)):
        if not words or len(words) != len(labels):
            raise ValueError(f"sentence {index}: {len(words)} words and {len(labels)} labels; a sentence needs at "
                             "least one word and one label per word.")
        for position, (word, label) in enumerate(zip(words, labels)):
            for what, value in (("word", word), ("label", label)):
                if not value or len(value.split()) != 1 or value != value.strip():
                    raise ValueError(f"sentence {index}, word {position}: the {what} {value!r} is empty or holds "
                                     "whitespace, which CoNLL cannot hold; split the word or fix the label.")
            if word == DOCSTART:
                raise ValueError(f"sentence {index}, word {position}: the word {DOCSTART!r} marks a document "
                                 "break in CoNLL and would be skipped on reading; drop or rename it.")
            lines.append(f"{word} {label}\n")
        lines.append("\n")
    text = "".join(lines).encode("utf-8")
    if path.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
            f.write(text)
    else:
        with open(path, "wb") as f:
            f.write(text)


def label_set(data):
    """The sorted distinct labels of a `TaggingData` (a label's id is its index).

    Args:
        data: a `TaggingData` (the training split).
    Returns:
        A sorted list of str.
    """
    return sorted({label for labels in data.labels for label in labels})


def convert_scheme(tags, source, target):
    """Converts one sentence's tags between BIO and BIOES.

    BIO -> BIOES: an entity of one word becomes `S-X`, a longer one `B-X I-X ... E-X`. An `I-X` that follows
    neither `B-X` nor `I-X` starts a new entity (as conlleval and seqeval's default mode read it), so the
    conversion never loses an entity. BIOES -> BIO: `S-X` becomes `B-X`, `E-X` becomes `I-X`.

    Args:
        tags: list of str, one sentence's tags in the `source` scheme.
        source, target: "bio" or "bioes".
    Returns:
        A new list of str.
    Raises:
        ValueError: naming the position and the tag, for a tag invalid in `source`.
    Example:
    >>> convert_scheme(["B-PER", "I-PER", "O", "B-LOC", "I-ORG"], "bio", "bioes")
    ['B-PER', 'E-PER', 'O', 'S-LOC', 'S-ORG']
    """
    _check_scheme(source)
    _check_scheme(target)
    for position, tag in enumerate(tags):
        if not _TAG[source].match(tag):
            raise ValueError(f"tag {position} ({tag!r}) is not a {source.upper()} tag; {_scheme_help(source)}")
    if source == target:
        return list(tags)
    if source == "bioes":
        return [{"S": "B-", "E": "I-"}.get(tag[0], tag[:2]) + tag[2:] if tag != "O" else "O" for tag in tags]
    spans = [(None, None) if tag == "O" else (tag[0], tag[2:]) for tag in tags]
    converted = []
    for position, (prefix, kind) in enumerate(spans):
        if prefix is None:
            converted.append("O")
            continue
        before = spans[position - 1] if position else (None, None)
        after = spans[position + 1] if position + 1 < len(spans) else (None, None)
        starts = prefix == "B" or before[1] != kind
        continues = after == ("I", kind)
        converted.append({(True, False): "S-", (True, True): "B-", (False, True): "I-",
                          (False, False): "E-"}[starts, continues] + kind)
    return converted


def align_words(tokenizer, words, max_length, cls_id=CLS_ID, sep_id=SEP_ID):
    """Tokenizes words one by one and lays them out for an encoder that reads `[CLS] pieces... [SEP]`.

    TensorFlow ops only (no `py_function`, no numpy): it runs eagerly, in tf.data, inside a `tf.function` with
    an unknown batch size and in an exported SavedModel.

    Each word is tokenized alone (`tokenizer.tokenize` of the flat words); a word the tokenizer turns into no
    piece (e.g. an empty string) gets one `tokenizer.unk_id` piece, so every word has a first piece. A
    sentence keeps its first words whose pieces fit in `max_length - 2` (room for [CLS] and [SEP]); the words
    after are dropped whole (never cut inside a word). A first word longer than that keeps no word at all:
    `[CLS] [SEP]`.

    Args:
        tokenizer: a `tflm.text.Tokenizer`.
        words: ragged tf.string `(batch, None)`, each sentence's words (a dense `(batch, words)` string tensor
            is taken as every word present).
        max_length: int, at least 3. The most token ids per sentence, [CLS] and [SEP] included.
        cls_id, sep_id: the ids put first and last (the tokenizer's `<s>` and `</s>` by default).
    Returns:
        A dict of ragged int32 `(batch, None)`:
        - `"token_ids"`: `[CLS]`, the pieces of the kept words, `[SEP]`;
        - `"segment_ids"`: zeros, `"padding_mask"`: ones (as long as `token_ids`);
        - `"word_starts"`: the position in `token_ids` of each kept word's first piece (its row length is the
          number of words kept: the first that many words of the sentence).
    Example:
    >>> aligned = align_words(tokenizer, tf.ragged.constant([["unbelievable", "news"]]), max_length=16)
    >>> aligned["token_ids"]  # [CLS] ▁un ##believ ##able ▁news [SEP], with a vocabulary splitting it so
    <tf.RaggedTensor [[2, 17, 40, 33, 25, 3]]>
    >>> aligned["word_starts"]  # "unbelievable" starts at 1, "news" at 4
    <tf.RaggedTensor [[1, 4]]>
    """
    if isinstance(max_length, int) and max_length < 3:
        raise ValueError(f"max_length={max_length} leaves no room for a word after [CLS] and [SEP]; use 3 or more.")
    if not isinstance(words, tf.RaggedTensor):
        words = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(words, tf.string))
    flat = words.flat_values
    pieces = tokenizer.tokenize(flat)  # (num_words, pieces)
    if not isinstance(pieces, tf.RaggedTensor):
        pieces = tf.RaggedTensor.from_tensor(pieces)
    pieces = tf.cast(pieces, tf.int32)
    empty = tf.equal(pieces.row_lengths(), 0)
    unknown = tf.RaggedTensor.from_row_lengths(
        tf.fill(tf.reshape(tf.reduce_sum(tf.cast(empty, tf.int32)), [1]), tf.constant(tokenizer.unk_id, tf.int32)),
        tf.cast(empty, tf.int64))
    pieces = tf.concat([pieces, unknown], axis=1)  # a word without pieces: one <unk>
    lengths = pieces.row_lengths()  # (num_words,), each >= 1
    before = starts_in_rows(words.with_flat_values(lengths))  # pieces of the sentence before each word
    keep = before + lengths <= tf.cast(max_length, tf.int64) - 2  # a prefix of each sentence's words
    kept_per_sentence = tf.reduce_sum(words.with_flat_values(tf.cast(keep, tf.int64)), axis=1)
    kept_pieces = tf.ragged.boolean_mask(pieces, keep)  # (kept words, pieces)
    sentence_pieces = tf.RaggedTensor.from_row_lengths(kept_pieces, kept_per_sentence).merge_dims(1, 2)
    batch = words.nrows()
    cls = tf.RaggedTensor.from_tensor(tf.fill(tf.stack([batch, 1]), tf.constant(cls_id, tf.int32)))
    sep = tf.RaggedTensor.from_tensor(tf.fill(tf.stack([batch, 1]), tf.constant(sep_id, tf.int32)))
    token_ids = tf.concat([cls, sentence_pieces, sep], axis=1)
    starts = tf.cast(tf.boolean_mask(before, keep) + 1, tf.int32)  # +1 for [CLS]
    return {
        "token_ids": token_ids,
        "segment_ids": tf.zeros_like(token_ids),
        "padding_mask": tf.ones_like(token_ids),
        "word_starts": tf.RaggedTensor.from_row_lengths(starts, kept_per_sentence),
    }


def align_text(tokenizer, sentences, max_length, cls_id=CLS_ID, sep_id=SEP_ID):
    """`align_words` of sentences split into words on whitespace (what an exported tagger calls).

    Args:
        tokenizer, max_length, cls_id, sep_id: as in `align_words`.
        sentences: tf.string `(batch,)`.
    Returns:
        The dict of `align_words`, plus `"words"`: ragged tf.string `(batch, None)`, the kept words (those
        `word_starts` points at), so labels can be paired with them.
    """
    words = tf.strings.split(tf.convert_to_tensor(sentences, tf.string))  # on runs of whitespace
    aligned = align_words(tokenizer, words, max_length, cls_id, sep_id)
    kept = aligned["word_starts"].row_lengths()
    aligned["words"] = tf.ragged.boolean_mask(words, tf.ragged.range(words.row_lengths()) < kept[:, None])
    return aligned


def pad_aligned(aligned, max_length=None):
    """The ragged tensors of `align_words` / `align_text` padded to dense ones.

    Ids, masks and `word_starts` are padded with 0 (a real word starts at position 1 or later, so
    `word_starts > 0` marks the real words), `words` with "".

    Args:
        aligned: a dict of ragged tensors from `align_words` or `align_text`.
        max_length: optional int. Pad the token rows to `(batch, max_length)` and the word rows to
            `(batch, max_length - 2)` (the most words that fit); by default to the longest row (at least 1).
    Returns:
        A dict of dense tensors with the same keys.
    """
    padded = {}
    for name, value in aligned.items():
        if not isinstance(value, tf.RaggedTensor):
            padded[name] = value
            continue
        default = "" if value.dtype == tf.string else 0
        if max_length is not None:
            width = max_length - 2 if name in ("word_starts", "words") else max_length
            padded[name] = value.to_tensor(default, shape=[None, width])
        else:
            dense = value.to_tensor(default)
            padded[name] = tf.pad(dense, [[0, 0], [0, tf.maximum(1 - tf.shape(dense)[1], 0)]],
                                  constant_values=default)
    return padded
