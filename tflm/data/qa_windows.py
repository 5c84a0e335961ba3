"""Extractive question answering's inputs and outputs in TensorFlow ops: contexts cut into windows of subword
pieces, and spans of pieces decoded back into answers (the original characters of the context).

`qa_features` and `decode_answers` use core TensorFlow and tensorflow-text ops only (no `tf.py_function`, no
NumPy), so a `tf.function` of them, with an unknown batch size, runs inside an exported SavedModel under stock
TF Serving. `answer_positions` builds training labels in NumPy, once, when a training set is prepared.

The steps, as BERT's `run_squad.py` does them:

1. `context_words`: the context is split into words as BERT's BasicTokenizer does: at whitespace, with each
   punctuation character and each CJK ideograph a word of its own; each word keeps its offsets in bytes (for
   `tf.strings.substr`) and in characters (Python `str` indices, for outputs).
2. `qa_features`: each word is tokenized on its own (so every piece belongs to one word), the question whole,
   cut to `max_question_length` pieces. The context's pieces are cut into windows `doc_stride` pieces apart,
   each packed as `[CLS] question [SEP] window [SEP]`.
3. A model scores each position as the start and as the end of the answer.
4. `decode_answers`: the best span over all windows of a question, mapped from pieces to words to characters,
   so the answer is whole words of the original context (its case, accents and spacing kept).

Example:
>>> features = qa_features(tokenizer, ["Where is it?"], ["It is in Zürich (Switzerland)."], max_length=32)
>>> start_logits, end_logits = model(features)  # (windows, 32) each
>>> decode_answers(start_logits, end_logits, features, ["It is in Zürich (Switzerland)."])["answer"]
<tf.Tensor: shape=(1,), dtype=string, numpy=array([b'Z\\xc3\\xbcrich'], dtype=object)>
"""

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from tflm.text.special_tokens import CLS_ID, SEP_ID

# A word ends at whitespace; punctuation (ASCII symbols and Unicode punctuation, as BERT's `_is_punctuation`) and
# CJK ideographs (BERT's `_is_chinese_char` ranges) are words of their own.
_WHITESPACE = r"[\s\p{Z}]+"
_PUNCTUATION = r"[!-/:-@\[-`{-~\p{P}]"
_CJK = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}"
        r"\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")
_KEEP = _PUNCTUATION + "|" + _CJK
_INT32_MAX = np.iinfo(np.int32).max


def context_words(contexts):
    """Splits contexts into words with their offsets, as BERT's BasicTokenizer does (without lower-casing).

    Args:
        contexts: string `(batch,)`.
    Returns:
        `(words, byte_starts, byte_ends, char_starts, char_ends)`: ragged `(batch, None)`; the words (string),
        and int32 offsets of each word in its context, end exclusive, in bytes (UTF-8) and in characters
        (Unicode code points: Python `str` indices). `context[char_starts[i]:char_ends[i]]` is word `i`.
    """
    contexts = tf.convert_to_tensor(contexts, dtype=tf.string)
    words, byte_starts, byte_ends = tf_text.regex_split_with_offsets(contexts, _WHITESPACE + "|" + _KEEP, _KEEP)
    byte_starts, byte_ends = tf.cast(byte_starts, tf.int32), tf.cast(byte_ends, tf.int32)
    # The character at byte b is the number of characters starting before b.
    _, char_offsets = tf.strings.unicode_decode_with_offsets(contexts, "UTF-8")  # (batch, chars) byte offsets
    char_offsets = tf.cast(char_offsets, tf.int32).to_tensor(default_value=_INT32_MAX)
    char_offsets = tf.pad(char_offsets, [[0, 0], [0, 1]], constant_values=_INT32_MAX)  # never (batch, 0)

    def to_chars(byte_offsets):
        dense = tf.searchsorted(char_offsets, byte_offsets.to_tensor(), side="left", out_type=tf.int32)
        return tf.RaggedTensor.from_tensor(dense, lengths=byte_offsets.row_lengths())

    return words, byte_starts, byte_ends, to_chars(byte_starts), to_chars(byte_ends)


def qa_features(tokenizer, questions, contexts, max_length=384, doc_stride=128, max_question_length=64,
                cls_id=CLS_ID, sep_id=SEP_ID):
    """Packs questions and windows of their contexts as `[CLS] question [SEP] window [SEP]`.

    Each context word is tokenized on its own (a word without pieces gets `tokenizer.unk_id`); the question is
    tokenized whole and cut to `max_question_length` pieces. A context longer than the room left in
    `max_length` is cut into windows of its pieces that start `doc_stride` pieces apart (less when the room is
    smaller), the last reaching the context's end: every piece is in at least one window, and a context without
    pieces still gives one window.

    Args:
        tokenizer: a tflm `Tokenizer`: `tokenize(strings (n,))` gives ragged int32 ids `(n, None)`.
        questions: string `(batch,)`.
        contexts: string `(batch,)`.
        max_length: int. Positions per window, special tokens included.
        doc_stride: int. Pieces between the starts of consecutive windows of one context.
        max_question_length: int. Question pieces kept; at most `max_length - 4` (one context piece must fit).
        cls_id, sep_id: int. The ids of [CLS] and [SEP].
    Returns:
        A dict of tensors, `W` being the number of windows over the batch:
        - `token_ids`: int32 `(W, max_length)`, padded with 0.
        - `segment_ids`: int32 `(W, max_length)`: 0 for `[CLS] question [SEP]` (and padding), 1 for the window
          and its `[SEP]`.
        - `padding_mask`: bool `(W, max_length)`, False on padding.
        - `example_index`: int32 `(W,)`, the input row of each window (rows' windows are consecutive).
        - `window_start`: int32 `(W,)`, the index of the window's first piece among its context's pieces.
        - `context_mask`: bool `(W, max_length)`, True at positions holding context pieces.
        - `word_index`: int32 `(W, max_length)`, the context word of each context position, -1 elsewhere.
        - `word_byte_starts`, `word_byte_ends`, `word_char_starts`, `word_char_ends`: ragged int32
          `(batch, None)`, each context word's offsets (see `context_words`).
    """
    room = max_length - max_question_length - 3
    if room < 1 or max_question_length < 1:
        raise ValueError(f"max_length={max_length} leaves {room} positions for the context after [CLS], "
                         f"max_question_length={max_question_length} question pieces and two [SEP]; give "
                         f"max_question_length between 1 and max_length - 4 (e.g. max_length // 4).")
    if doc_stride < 1:
        raise ValueError(f"doc_stride={doc_stride}; windows must start at least 1 piece apart (BERT uses 128).")
    questions = tf.convert_to_tensor(questions, dtype=tf.string)
    contexts = tf.convert_to_tensor(contexts, dtype=tf.string)
    words, byte_starts, byte_ends, char_starts, char_ends = context_words(contexts)

    # Pieces of every word of the batch: (words, None), at least one each. A word that follows the one before
    # without whitespace ("1990" in "(1990),") is tokenized as inside running text (`tokenize_attached`: no
    # word-start marker), so that the model reads the pieces it was pretrained on.
    flat_words = words.flat_values
    previous_end = tf.concat([[-1], byte_ends.flat_values[:-1]], 0)
    attached = tf.equal(byte_starts.flat_values, previous_end)
    attached &= tf.not_equal(tf.range(tf.shape(flat_words)[0], dtype=words.row_splits.dtype),
                             tf.gather(words.row_splits, words.value_rowids()))  # (never a context's first word)
    alone, continuing = tokenizer.tokenize(flat_words), tokenizer.tokenize_attached(flat_words)
    count = tf.shape(flat_words, out_type=tf.int64)[0]
    choice = tf.range(count) + count * tf.cast(attached, tf.int64)
    word_pieces = tf.gather(tf.concat([tf.cast(alone, tf.int32), tf.cast(continuing, tf.int32)], axis=0), choice)
    padded = tf.pad(word_pieces.to_tensor(default_value=tokenizer.unk_id), [[0, 0], [0, 1]],
                    constant_values=tokenizer.unk_id)  # at least one column
    word_pieces = tf.RaggedTensor.from_tensor(padded, lengths=tf.maximum(word_pieces.row_lengths(), 1))
    piece_ids = tf.cast(word_pieces.flat_values, tf.int32)  # (pieces,), all contexts one after another
    piece_word = word_pieces.value_rowids()  # the word (over the batch) of each piece
    piece_word = tf.cast(piece_word - tf.gather(words.row_splits, tf.gather(words.value_rowids(), piece_word)),
                         tf.int32)  # -> the word within its context
    context_splits = tf.cast(tf.gather(word_pieces.row_splits, words.row_splits), tf.int32)  # (batch + 1,)
    context_lengths = context_splits[1:] - context_splits[:-1]  # (batch,)

    question_ids = tf.cast(tokenizer.tokenize(questions)[:, :max_question_length], tf.int32)
    question_lengths = tf.cast(question_ids.row_lengths(), tf.int32)  # (batch,)
    question_ids = question_ids.to_tensor(default_value=0, shape=[None, max_question_length])

    # Windows: room[b] pieces each, `stride` apart, the last reaching the end.
    room = max_length - question_lengths - 3  # (batch,), >= 1
    stride = tf.minimum(doc_stride, room)
    overflow = tf.maximum(context_lengths - room, 0)
    num_windows = 1 + (overflow + stride - 1) // stride  # (batch,)
    batch_size = tf.shape(contexts)[0]
    example_index = tf.repeat(tf.range(batch_size), num_windows)  # (W,)
    first_window = tf.cumsum(num_windows, exclusive=True)
    window_start = (tf.range(tf.shape(example_index)[0]) - tf.gather(first_window, example_index)) * \
        tf.gather(stride, example_index)  # (W,)
    window_length = tf.minimum(tf.gather(context_lengths, example_index) - window_start,
                               tf.gather(room, example_index))  # (W,)

    # Layout of a window: [CLS] q_1 .. q_Q [SEP] c_1 .. c_n [SEP] <pad> ...
    position = tf.range(max_length)[tf.newaxis, :]  # (1, T)
    question_length = tf.gather(question_lengths, example_index)[:, tf.newaxis]  # (W, 1)
    length = window_length[:, tf.newaxis]  # (W, 1)
    offset = position - question_length - 2  # (W, T), the context piece at each position
    is_question = (position >= 1) & (position <= question_length)
    is_context = (offset >= 0) & (offset < length)
    is_sep = (position == question_length + 1) | (offset == length)
    question_token = tf.gather(tf.gather(question_ids, example_index),
                               tf.clip_by_value(position - 1, 0, max_question_length - 1) +
                               tf.zeros_like(offset), batch_dims=1)  # (W, T)
    piece = tf.gather(context_splits, example_index)[:, tf.newaxis] + window_start[:, tf.newaxis] + offset
    piece = tf.where(is_context, piece, tf.shape(piece_ids)[0])  # (W, T); out of context: a padding sentinel
    context_token = tf.gather(tf.concat([piece_ids, [0]], 0), piece)
    token_ids = tf.where(position == 0, cls_id, tf.where(is_question, question_token, tf.where(
        is_sep, sep_id, tf.where(is_context, context_token, 0))))
    return {
        "token_ids": tf.cast(token_ids, tf.int32),
        "segment_ids": tf.cast(is_context | (offset == length), tf.int32),
        "padding_mask": offset <= length,
        "example_index": example_index,
        "window_start": window_start,
        "context_mask": is_context,
        "word_index": tf.where(is_context, tf.gather(tf.concat([piece_word, [-1]], 0), piece), -1),
        "word_byte_starts": byte_starts,
        "word_byte_ends": byte_ends,
        "word_char_starts": char_starts,
        "word_char_ends": char_ends,
    }


def decode_answers(start_logits, end_logits, features, contexts, max_answer_length=30, allow_no_answer=False,
                   null_threshold=0.0):
    """The best answer span of each question over all its windows.

    A span runs from context position `i` to `j` of one window, `i <= j < i + max_answer_length`, scored
    `start_logits[i] + end_logits[j]`. Its answer is the context's original characters from the start of the
    word of piece `i` to the end of the word of piece `j`. With `allow_no_answer` (SQuAD v2.0), the null score
    is the lowest `start_logits[0] + end_logits[0]` ([CLS]) over the question's windows, and the answer is empty
    when `null_score - best_span_score > null_threshold`.

    Args:
        start_logits, end_logits: float `(W, max_length)`, over the windows of `qa_features`.
        features: the dict `qa_features` returned for `contexts`.
        contexts: string `(batch,)`, the contexts given to `qa_features`.
        max_answer_length: int. Longest answer, in pieces.
        allow_no_answer: bool (or a bool tensor). Whether the answer may be empty.
        null_threshold: float (or a float tensor). How much the null score must beat the best span by.
    Returns:
        A dict of tensors:
        - `answer`: string `(batch,)`, `""` for no answer.
        - `start`, `end`: int32 `(batch,)`, the answer's character offsets in its context (end exclusive),
          -1 for no answer.
        - `score`: float32 `(batch,)`, the span's score, or the null score for no answer. A context without
          pieces has no span: its answer is empty, scored -inf without `allow_no_answer`.
    """
    if max_answer_length < 1:
        raise ValueError(f"max_answer_length={max_answer_length}; an answer holds at least 1 piece (BERT uses 30).")
    contexts = tf.convert_to_tensor(contexts, dtype=tf.string)
    start_logits = tf.cast(start_logits, tf.float32)
    end_logits = tf.cast(end_logits, tf.float32)
    context_mask = tf.cast(features["context_mask"], tf.bool)
    example_index = features["example_index"]
    length = tf.shape(start_logits)[1]

    # Scores of the spans (i, i + k), k < max_answer_length: (W, T, K).
    end_position = tf.range(length)[:, tf.newaxis] + tf.range(max_answer_length)[tf.newaxis, :]  # (T, K)
    inside = end_position < length
    end_position = tf.minimum(end_position, length - 1)
    valid = context_mask[:, :, tf.newaxis] & tf.gather(context_mask, end_position, axis=1) & inside
    scores = tf.where(valid, start_logits[:, :, tf.newaxis] + tf.gather(end_logits, end_position, axis=1),
                      -np.inf)
    scores = tf.reshape(scores, [tf.shape(scores)[0], -1])  # (W, T * K)
    best = tf.argmax(scores, axis=1, output_type=tf.int32)  # (W,)
    window_score = tf.reduce_max(scores, axis=1)  # (W,)
    span_first, span_last = best // max_answer_length, best // max_answer_length + best % max_answer_length

    # The best window of each row (the first of equals).
    batch_size = tf.shape(contexts)[0]
    has_span = tf.math.unsorted_segment_max(tf.cast(tf.reduce_any(valid, axis=[1, 2]), tf.int32), example_index,
                                            batch_size) > 0  # (batch,), False for a context without pieces
    span_score = tf.where(has_span, tf.math.unsorted_segment_max(window_score, example_index, batch_size),
                          -np.inf)  # (batch,)
    windows = tf.range(tf.shape(example_index)[0])
    window = tf.math.unsorted_segment_min(
        tf.where(window_score >= tf.gather(span_score, example_index), windows, _INT32_MAX), example_index,
        batch_size)

    word_index = features["word_index"]
    first_word = tf.gather_nd(word_index, tf.stack([window, tf.gather(span_first, window)], 1))
    last_word = tf.gather_nd(word_index, tf.stack([window, tf.gather(span_last, window)], 1))

    def word_offset(ragged, word):  # the offset of each row's `word` (0 where the row has no span)
        flat = tf.concat([ragged.flat_values, [0]], 0)
        index = tf.cast(ragged.row_splits[:-1], tf.int32) + word
        return tf.gather(flat, tf.where(has_span, index, tf.shape(flat)[0] - 1))

    byte_start = word_offset(features["word_byte_starts"], first_word)
    byte_end = word_offset(features["word_byte_ends"], last_word)
    char_start = word_offset(features["word_char_starts"], first_word)
    char_end = word_offset(features["word_char_ends"], last_word)

    null_score = tf.math.unsorted_segment_min(start_logits[:, 0] + end_logits[:, 0], example_index, batch_size)
    choose_null = tf.cast(allow_no_answer, tf.bool) & (null_score - span_score > tf.cast(null_threshold, tf.float32))
    answered = has_span & ~choose_null
    return {
        "answer": tf.where(answered, tf.strings.substr(contexts, byte_start, byte_end - byte_start), ""),
        "start": tf.where(answered, char_start, -1),
        "end": tf.where(answered, char_end, -1),
        "score": tf.where(choose_null, null_score, span_score),
    }


def answer_positions(features, examples_or_char_spans):
    """Training labels: the window positions where each question's answer starts and ends.

    The start is the first piece of the word holding the answer's first character, the end the last piece of
    the word holding its last character (so the labelled span is whole words, as `decode_answers` returns).
    A window that does not hold the whole span, and every window of an unanswerable question, is labelled
    0 ([CLS]) at both ends.

    Args:
        features: `qa_features`'s dict, as tensors or NumPy (`example_index`, `window_start`, `context_mask`,
            `word_index`, `word_char_starts`, `word_char_ends` are used; ragged ones as `tf.RaggedTensor`s or
            lists of arrays).
        examples_or_char_spans: one per input row: a `QAExample` (its FIRST answer is used; none if it is
            impossible), or a character span `(start, end)` (end exclusive), or None for no answer.
    Returns:
        `(start_positions, end_positions)`: NumPy int32 `(W,)`.
    """
    example_index = np.asarray(features["example_index"])
    window_start = np.asarray(features["window_start"])
    context_mask = np.asarray(features["context_mask"]).astype(bool)
    word_index = np.asarray(features["word_index"])
    char_starts, char_ends = _rows(features["word_char_starts"]), _rows(features["word_char_ends"])
    spans = [_char_span(item) for item in examples_or_char_spans]
    if len(spans) != len(char_starts):
        raise ValueError(f"{len(spans)} examples or spans for {len(char_starts)} contexts in the features; give "
                         "one per row given to qa_features, in the same order.")
    # The index of each context position's piece among its context's pieces: (W, T), -1 elsewhere.
    piece_index = np.where(context_mask, window_start[:, None] + np.cumsum(context_mask, axis=1) - 1, -1)
    start_positions = np.zeros(len(example_index), np.int32)
    end_positions = np.zeros(len(example_index), np.int32)
    first_window = np.searchsorted(example_index, np.arange(len(spans) + 1))
    for row, span in enumerate(spans):
        if span is None:
            continue
        char_start, char_end = span
        if not 0 <= char_start < char_end:
            raise ValueError(f"row {row}: the answer span ({char_start}, {char_end}) is empty or negative; give "
                             "(answer_start, answer_start + len(text)) of a non-empty answer.")
        # The word holding the first character (or the next one, after whitespace) and the word holding the last.
        first_word = int(np.searchsorted(char_ends[row], char_start, side="right"))
        last_word = int(np.searchsorted(char_starts[row], char_end, side="left")) - 1
        if first_word > last_word or last_word < 0 or first_word >= len(char_starts[row]):
            continue  # the span holds no word (whitespace only, or past the context's end)
        rows = slice(first_window[row], first_window[row + 1])
        words, pieces = word_index[rows], piece_index[rows]
        first_piece, last_piece = pieces[words == first_word].min(), pieces[words == last_word].max()
        for window, row_pieces in zip(range(rows.start, rows.stop), pieces):
            start, end = np.flatnonzero(row_pieces == first_piece), np.flatnonzero(row_pieces == last_piece)
            if len(start) and len(end):
                start_positions[window], end_positions[window] = start[0], end[0]
    return start_positions, end_positions


def _rows(ragged):
    """A ragged `(batch, None)` tensor, NumPy object array or list as a list of 1-D NumPy arrays."""
    if isinstance(ragged, tf.RaggedTensor):
        ragged = ragged.to_list()
    elif hasattr(ragged, "numpy"):
        ragged = ragged.numpy()
    return [np.asarray(row, dtype=np.int64) for row in ragged]


def _char_span(item):
    if item is None:
        return None
    if hasattr(item, "answers"):  # a QAExample
        if item.is_impossible or not item.answers:
            return None
        answer = item.answers[0]
        return answer["answer_start"], answer["answer_start"] + len(answer["text"])
    start, end = item
    return int(start), int(end)
