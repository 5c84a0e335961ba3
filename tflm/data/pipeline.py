"""tf.data pipelines for sequence-to-sequence training: tokenize, filter, shuffle, bucket, batch, prefetch.

Tokenization runs once per corpus as a batched `tf.data` map over the in-graph tokenizers; the token ids are
kept in memory as ragged tensors, so every epoch only shuffles, buckets and pads. Each batch is a pair
`(inputs, labels)`:

- `inputs["source_ids"]`: int32 `(batch_size, source_length)`, the source pieces then EOS, PAD-padded;
- `inputs["target_ids"]`: int32 `(batch_size, target_length)`, BOS then the target pieces (decoder input);
- `labels`: int32 `(batch_size, target_length)`, the target pieces then EOS (PAD where padded).

Sequence lengths count the added EOS (or BOS), so `max_target_length=64` means 63 target pieces at most.
"""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from tflm.data.parallel import DropReport
from tflm.text.special_tokens import BOS_ID, EOS_ID, PAD_ID

logger = logging.getLogger("tflm")

OVERLONG_POLICIES = ("filter", "truncate")


@dataclasses.dataclass
class TokenizedPairs:
    """Token ids of a parallel corpus (without BOS/EOS).

    Attributes:
        source, target: ragged int32 `(num_pairs, None)`.
        line_numbers: int array `(num_pairs,)`, 1-based line of each pair in its files.
    """

    source: tf.RaggedTensor
    target: tf.RaggedTensor
    line_numbers: np.ndarray

    def __len__(self):
        return int(self.source.nrows())

    def num_target_tokens(self):
        """Target tokens per epoch, EOS included (the unit of the tokens/s figures)."""
        return int(tf.reduce_sum(self.target.row_lengths())) + len(self)


def tokenize_texts(texts, tokenizer, batch_size=4096):
    """Tokenizes a list of strings with a batched tf.data map; returns a ragged int32 tensor."""
    if not texts:
        return tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(batch_size)
    dataset = dataset.map(tokenizer.tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return tf.concat([batch.with_row_splits_dtype(tf.int64) for batch in dataset], axis=0)


def tokenize_pairs(corpus, source_tokenizer, target_tokenizer, max_source_length=None,
                   max_target_length=None, overlong="filter"):
    """Tokenizes a `ParallelCorpus` and enforces the length limits.

    Args:
        corpus: a `ParallelCorpus`.
        source_tokenizer, target_tokenizer: `tflm.text.Tokenizer`s.
        max_source_length, max_target_length: int or None. Longest sequence, EOS/BOS included.
        overlong: `"filter"` drops pairs over a limit (for training), `"truncate"` cuts them (for
            evaluation, where every line must be kept). Either way they are counted in the log.
    Returns:
        `TokenizedPairs`.
    """
    if overlong not in OVERLONG_POLICIES:
        raise ValueError(f"overlong={overlong!r} must be one of {OVERLONG_POLICIES}.")
    source = tokenize_texts(corpus.source, source_tokenizer)
    target = tokenize_texts(corpus.target, target_tokenizer)
    line_numbers = np.asarray(corpus.line_numbers, dtype=np.int64)
    report = DropReport(f"{corpus.source_path} / {corpus.target_path}")
    too_long = np.zeros(len(line_numbers), dtype=bool)
    for side, ids, limit in (("source", source, max_source_length), ("target", target, max_target_length)):
        if limit is None:
            continue
        over = ids.row_lengths().numpy() + 1 > limit
        for number in line_numbers[over]:
            report.add(f"{side} longer than {limit} tokens", int(number))
        too_long |= over
    if overlong == "filter":
        keep = ~too_long
        source = tf.ragged.boolean_mask(source, keep)
        target = tf.ragged.boolean_mask(target, keep)
        line_numbers = line_numbers[keep]
        report.log("dropped")
    else:
        if max_source_length:
            source = source[:, : max_source_length - 1]
        if max_target_length:
            target = target[:, : max_target_length - 1]
        report.log("truncated")
    return TokenizedPairs(source, target, line_numbers)


def bucket_boundaries(max_length, min_length=8, growth=1.2):
    """Upper length bounds of the buckets: 8, 9, 10, 12, ... growing ~20% each, ending at `max_length`."""
    boundaries, length = [], min_length
    while length < max_length:
        boundaries.append(length)
        length = max(length + 1, int(length * growth))
    return boundaries + [max_length]


@dataclasses.dataclass(frozen=True)
class Batching:
    """How examples are grouped into batches.

    Either `batch_tokens` (a token budget: a batch holds at most that many padded tokens on its longer
    side) or `batch_size` (sentences per batch). Examples are bucketed by length either way, so a batch
    holds sentences of similar length.

    With `fixed_shapes`, every batch of a bucket has the same shape: sequences are padded to the bucket's
    upper bound and the last, partial batch of each bucket is filled with empty rows (all PAD, so they add
    nothing to the loss). XLA then compiles one program per bucket instead of one per batch shape; fewer,
    wider buckets (`bucket_growth`) mean fewer compilations and more padding.
    """

    batch_tokens: int = None
    batch_size: int = None
    fixed_shapes: bool = False
    bucket_growth: float = 1.2

    def __post_init__(self):
        if (self.batch_tokens is None) == (self.batch_size is None):
            raise ValueError(
                f"Give exactly one of batch_tokens={self.batch_tokens} and batch_size={self.batch_size}."
            )

    def plan(self, max_length):
        """(bucket upper bounds, batch size of each bucket incl. the overflow bucket)."""
        bounds = bucket_boundaries(max_length, growth=self.bucket_growth)
        if self.batch_size is not None:
            sizes = [self.batch_size] * (len(bounds) + 1)
        else:
            sizes = [max(1, self.batch_tokens // b) for b in bounds]
            sizes.append(sizes[-1])
        return bounds, sizes


def _example_length(pairs):
    return np.maximum(pairs.source.row_lengths().numpy(), pairs.target.row_lengths().numpy()) + 1


def plan_batches(lengths, batching, order):
    """Which examples form each batch, in the order the batches are emitted.

    Examples are taken in `order`; each goes to the bucket of its length, and a bucket emits a batch when it
    holds its batch size; what is left in the buckets is emitted at the end. Returns a list of
    `(example indices, padded length)`.
    """
    if not len(lengths):
        return []
    bounds, sizes = batching.plan(int(lengths.max()))
    buckets = np.searchsorted(np.asarray(bounds), lengths, side="left")
    waiting = [[] for _ in sizes]
    batches = []
    for index in order:
        bucket = buckets[index]
        waiting[bucket].append(index)
        if len(waiting[bucket]) == sizes[bucket]:
            batches.append((waiting[bucket], bucket))
            waiting[bucket] = []
    batches += [(rows, bucket) for bucket, rows in enumerate(waiting) if rows]
    plans = []
    for rows, bucket in batches:
        padded = bounds[min(bucket, len(bounds) - 1)] if batching.fixed_shapes else int(lengths[rows].max())
        plans.append((rows + [-1] * (sizes[bucket] - len(rows) if batching.fixed_shapes else 0), padded))
    return plans


def translation_dataset(pairs, batching, shuffle=True, seed=0, epoch=0):
    """Batches of `(inputs, labels)` for one epoch over `pairs` (see the module docstring).

    The batches are planned in NumPy (bucketing by length, a token budget or a batch size, see
    `plan_batches`) and each is gathered and padded by one tf.data map: per-batch, not per-example, work.
    The order depends only on `seed` and `epoch`, so a resumed run can skip the batches it has already
    trained on and see exactly the batches an uninterrupted run would have seen.
    """
    lengths = _example_length(pairs)
    # A NumPy permutation, so the order depends on (seed, epoch) alone, not on TensorFlow's global seed.
    order = np.random.default_rng([seed, epoch]).permutation(len(pairs)) if shuffle else np.arange(len(pairs))
    plans = plan_batches(lengths, batching, order)
    rows = tf.ragged.constant([rows for rows, _ in plans], dtype=tf.int64) if plans else \
        tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), tf.zeros([0], tf.int64))
    padded = tf.constant([length for _, length in plans], dtype=tf.int32)
    # Add EOS to the sources, BOS/EOS to the targets once; a filler row (index -1) is an empty example.
    count = tf.shape(pairs.source.row_lengths(), out_type=tf.int64)[0]
    eos = tf.RaggedTensor.from_tensor(tf.fill([count, 1], EOS_ID))
    bos = tf.RaggedTensor.from_tensor(tf.fill([count, 1], BOS_ID))
    empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([1], tf.int64))
    source = tf.concat([tf.concat([pairs.source, eos], axis=1), empty], axis=0)
    target_in = tf.concat([tf.concat([bos, pairs.target], axis=1), empty], axis=0)
    target_out = tf.concat([tf.concat([pairs.target, eos], axis=1), empty], axis=0)
    fixed = batching.fixed_shapes

    def gather(indices, length):
        indices = tf.where(indices < 0, count, indices)  # fillers point at the empty example

        def pad(ragged):
            dense = tf.gather(ragged, indices).to_tensor(PAD_ID)
            width = length if fixed else tf.shape(dense)[1]
            return tf.pad(dense, [[0, 0], [0, width - tf.shape(dense)[1]]], constant_values=PAD_ID)

        return {"source_ids": pad(source), "target_ids": pad(target_in)}, pad(target_out)

    dataset = tf.data.Dataset.from_tensor_slices((rows, padded))
    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def num_batches(pairs, batching):
    """The number of batches `translation_dataset` yields per epoch (computed without running it)."""
    lengths = _example_length(pairs)
    if not len(lengths):
        return 0
    bounds, sizes = batching.plan(int(lengths.max()))
    bucket = np.searchsorted(np.asarray(bounds), lengths, side="left")
    counts = np.bincount(bucket, minlength=len(sizes))
    return int(sum(-(-count // size) for count, size in zip(counts, sizes)))


def source_dataset(texts, tokenizer, batch_size, max_source_length=None):
    """Batches of padded source ids (pieces then EOS) for decoding, in the order of `texts`."""
    def encode(text):
        ids = tokenizer.tokenize(text)
        if max_source_length:
            ids = ids[:, : max_source_length - 1]
        eos = tf.fill([ids.nrows(), 1], EOS_ID)
        return tf.concat([ids, tf.RaggedTensor.from_tensor(eos)], axis=1).to_tensor(PAD_ID)

    return tf.data.Dataset.from_tensor_slices(texts).batch(batch_size).map(encode).prefetch(tf.data.AUTOTUNE)
