"""Language-modelling data: a text turned into one stream of token ids, cut into windows or contiguous segments.

- `tokenize_stream`: lines are tokenized in batches with the in-graph tokenizer (a tf.data map). Tokenizers
  that keep newlines (character, byte-level BPE) see each line with its newline; the others (SentencePiece,
  WordPiece) get an EOS token after each line, so line breaks survive either way.
- `window_dataset`: windows of `length + 1` tokens every `stride` tokens (overlapping when stride < length),
  shuffled by (seed, epoch) and batched: `({"token_ids": w[:, :-1]}, w[:, 1:])`; with `random_offset`, each
  epoch's windows start at a different offset, so later epochs cut the text at other places.
- `contiguous_dataset`: the stream split into `batch_size` parallel streams, read `length` tokens at a time
  in order, so row i of batch n+1 continues row i of batch n (Transformer-XL's segment recurrence); with
  `random_offset`, each epoch's streams start at a different offset.
"""

import logging

import numpy as np
import tensorflow as tf

from tflm.data.registry import open_text
from tflm.text.special_tokens import EOS_ID

logger = logging.getLogger("tflm")


def read_text_lines(path):
    """The lines of a UTF-8 text file (plain or `.gz`), newlines kept; a clear error on invalid UTF-8."""
    lines = []
    with open_text(path) as f:
        for number, line in enumerate(f, start=1):
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid UTF-8 ({error.reason}); re-encode the file as "
                                 "UTF-8.") from None
    return lines


def keeps_newlines(tokenizer):
    return tokenizer.kind in ("character", "byte_bpe")


def tokenize_stream(lines, tokenizer, batch_size=2048, line_lengths=False):
    """All lines as one int32 array of token ids (see the module docstring for line breaks); with
    `line_lengths`, also the number of tokens of each line."""
    newline = keeps_newlines(tokenizer)
    texts = lines if newline else [line.rstrip("\n") for line in lines]
    pieces, lengths = [np.zeros([0], np.int32)], [np.zeros([0], np.int64)]
    if texts:
        dataset = tf.data.Dataset.from_tensor_slices(texts).batch(batch_size)
        dataset = dataset.map(tokenizer.tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        for batch in dataset:
            if not newline:
                eos = tf.RaggedTensor.from_tensor(tf.fill([batch.nrows(), 1], EOS_ID))
                batch = tf.concat([batch, eos], axis=1)
            pieces.append(np.asarray(batch.flat_values))
            lengths.append(np.asarray(batch.row_lengths()))
    ids = np.concatenate(pieces).astype(np.int32)
    return (ids, np.concatenate(lengths)) if line_lengths else ids


def count_words(lines):
    """Words as the word-level perplexities of WikiText count them: whitespace-separated words, plus one
    end-of-line token per line (245,569 for WikiText-2's test set, the figure of its word-level version)."""
    return sum(len(line.split()) + 1 for line in lines)


def windows(ids, length, stride=None):
    """`(num_windows, length + 1)` windows of the stream, one every `stride` tokens (default `length`)."""
    stride = stride or length
    if len(ids) < length + 1:
        raise ValueError(f"The text has {len(ids)} tokens, fewer than one window of {length + 1}; use a shorter "
                         "sequence length or more text.")
    return np.lib.stride_tricks.sliding_window_view(ids, length + 1)[::stride]


def window_starts(ids, length, stride=None, shuffle=True, seed=0, epoch=0, random_offset=False):
    """Where an epoch's windows start, in the order they are read.

    With `random_offset`, the starts are shifted by an offset in `[0, stride)` drawn from (seed, epoch): a
    text read for several epochs is cut at different places each time (what nanoGPT's random windows
    give), not into the same windows again. Every epoch keeps `num_windows(..., random_offset=True)`
    windows, so the steps per epoch stay fixed.
    """
    stride = stride or length
    if len(ids) < length + 1:
        raise ValueError(f"The text has {len(ids)} tokens, fewer than one window of {length + 1}; use a shorter "
                         "sequence length or more text.")
    offset = 0
    if random_offset and _windows_at_any_offset(ids, length, stride) > 0:
        offset = int(np.random.default_rng([seed, epoch, 1]).integers(stride))
    starts = np.arange(offset, len(ids) - length, stride, dtype=np.int64)
    starts = starts[: num_windows(ids, length, stride, random_offset)]
    if shuffle:
        starts = starts[np.random.default_rng([seed, epoch]).permutation(len(starts))]
    return starts


def window_dataset(ids, length, batch_size, stride=None, shuffle=True, seed=0, epoch=0, random_offset=False):
    """Batches of windows for one epoch; the order (and with `random_offset`, the cut) depends only on
    (seed, epoch), so a resumed run reads what an uninterrupted one would.

    Only the window starts are materialized; each batch gathers its windows from the stream, so memory stays
    that of the stream whatever the stride.
    """
    starts = window_starts(ids, length, stride, shuffle, seed, epoch, random_offset)
    stream = tf.constant(ids, dtype=tf.int32)
    offsets = tf.range(length + 1, dtype=tf.int64)

    def gather(batch_starts):
        cut = tf.gather(stream, batch_starts[:, tf.newaxis] + offsets)  # (batch, length + 1)
        return {"token_ids": cut[:, :-1]}, cut[:, 1:]

    dataset = tf.data.Dataset.from_tensor_slices(starts).batch(batch_size)
    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def num_windows(ids, length, stride=None, random_offset=False):
    """The number of training windows `window_dataset` cuts from the stream (with `random_offset`: as many
    as the largest offset leaves room for, the same every epoch)."""
    stride = stride or length
    if random_offset and _windows_at_any_offset(ids, length, stride) > 0:
        return _windows_at_any_offset(ids, length, stride)
    return len(range(0, max(len(ids) - length, 0), stride))  # (a text too short for any offset keeps offset 0)


def _windows_at_any_offset(ids, length, stride):
    return len(range(stride - 1, max(len(ids) - length, 0), stride))


def contiguous_segments(ids, length, batch_size, offset=0, count=None):
    """`(num_segments, batch_size, length + 1)`: the stream as `batch_size` parallel streams, in order.

    `offset` drops that many tokens first; `count` caps the segments per stream (at most as many as fit).
    """
    ids = ids[offset:]
    per_stream = (len(ids) - 1) // batch_size
    if per_stream < length:
        raise ValueError(f"{len(ids)} tokens are too few for {batch_size} streams of at least {length + 1} tokens.")
    count = min(per_stream // length, count or per_stream)
    streams = np.stack([ids[i * per_stream: i * per_stream + count * length + 1] for i in range(batch_size)])
    return np.stack([streams[:, n * length: n * length + length + 1] for n in range(count)])


def num_contiguous_segments(ids, length, batch_size, random_offset=False, segments_per_chunk=None):
    """Steps per epoch of `contiguous_dataset` (the same every epoch: with `random_offset`, as many as the
    largest offset leaves room for)."""
    most = length - 1 if random_offset and _room_for_offsets(ids, length, batch_size, segments_per_chunk) else 0
    if segments_per_chunk:
        return (len(ids) - most - 1) // (segments_per_chunk * length) // batch_size * segments_per_chunk
    return ((len(ids) - most - 1) // batch_size) // length


def _room_for_offsets(ids, length, batch_size, segments_per_chunk=None):
    # At offset length - 1, every stream keeps a segment (or a batch of chunks remains).
    if segments_per_chunk:
        return (len(ids) - length) // (segments_per_chunk * length) >= batch_size
    return (len(ids) - length) // batch_size >= length


def contiguous_dataset(ids, length, batch_size, seed=0, epoch=0, random_offset=False, segments_per_chunk=None):
    """Batches where row i of batch n+1 continues row i of batch n (for segment recurrence).

    With `random_offset`, every stream starts `[0, length)` tokens later, by an offset drawn from (seed,
    epoch): each epoch cuts the segments elsewhere (as `window_dataset` does), in the same number of steps.

    With `segments_per_chunk`, the text is cut into chunks of that many segments instead of `batch_size`
    streams; each epoch reads the chunks in a random order, `batch_size` at a time, and the inputs carry
    `new_chunk` (bool `(batch,)`, true where a row starts a chunk and its memory must start empty). Unbroken
    streams keep a batch on `batch_size` places of the text for a whole epoch, so successive batches are
    alike; shuffled chunks still give each token up to a chunk of context.
    """
    if segments_per_chunk is not None and segments_per_chunk < 1:
        raise ValueError(f"segments_per_chunk must be at least 1 (got {segments_per_chunk}); leave it unset for "
                         "unbroken streams.")
    count = num_contiguous_segments(ids, length, batch_size, random_offset, segments_per_chunk)
    if segments_per_chunk and count == 0:
        raise ValueError(f"{len(ids)} tokens are too few for {batch_size} chunks of {segments_per_chunk} segments "
                         f"of {length + 1} tokens; lower segments_per_chunk or the batch size.")
    offset = 0
    if random_offset and _room_for_offsets(ids, length, batch_size, segments_per_chunk):
        offset = int(np.random.default_rng([seed, epoch, 2]).integers(length))
    if not segments_per_chunk:
        segments = contiguous_segments(ids, length, batch_size, offset, count)
        dataset = tf.data.Dataset.from_tensor_slices(segments)
        return dataset.map(lambda s: ({"token_ids": s[:, :-1]}, s[:, 1:])).prefetch(tf.data.AUTOTUNE)
    span = segments_per_chunk * length
    available = (len(ids) - offset - 1) // span
    starts = offset + span * np.random.default_rng([seed, epoch, 3]).permutation(available)
    starts = starts[: count // segments_per_chunk * batch_size].reshape(-1, batch_size)  # (groups, batch)
    positions = starts[:, None, :, None] + length * np.arange(segments_per_chunk)[None, :, None, None] + \
        np.arange(length + 1)[None, None, None, :]  # (groups, segments_per_chunk, batch, length + 1)
    segments = np.asarray(ids)[positions.reshape(-1, batch_size, length + 1)]
    new_chunk = np.zeros((len(starts), segments_per_chunk, batch_size), bool)
    new_chunk[:, 0] = True
    dataset = tf.data.Dataset.from_tensor_slices((segments, new_chunk.reshape(-1, batch_size)))
    return dataset.map(lambda s, new: ({"token_ids": s[:, :-1], "new_chunk": new}, s[:, 1:])).prefetch(
        tf.data.AUTOTUNE)
