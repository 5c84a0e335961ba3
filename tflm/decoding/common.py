"""Pieces shared by the decoding strategies.

Every strategy drives a *step function* over fixed-shape tensors inside one `tf.while_loop`:

    step_fn(token_ids, state, step) -> (logits, state)

where `token_ids` int32 `(batch,)` holds the previous token of each row, `state` is a nest of batch-major
tensors (a model's `initial_state`), `step` is the 0-based position being predicted, and `logits` is float
`(batch, vocabulary_size)`. A model's `decode_step` is such a function.
"""

import dataclasses

import tensorflow as tf

from tflm.text.tokenizers import BOS_ID, EOS_ID, PAD_ID


@dataclasses.dataclass
class DecodeResult:
    """Decoded token ids and their scores.

    Attributes:
        token_ids: int32 `(batch, length)` or, with n-best, `(batch, n, length)`; the tokens of each
            hypothesis up to and including EOS, then PAD.
        lengths: int32, the number of tokens before PAD (EOS included when emitted).
        scores: float32, the hypothesis score (sum of token log-probabilities; beam search divides it by
            its length penalty).
    """

    token_ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor


def row_max_lengths(source_lengths, max_length, max_length_a=0.0, max_length_b=None):
    """Per-row decoding limits: `min(max_length, a * source_length + b)` (relative limit when `a > 0`).

    Args:
        source_lengths: int `(batch,)`, source tokens per row.
        max_length: int. The absolute limit (and the size of the decoding buffers).
        max_length_a, max_length_b: the relative limit `a * source_length + b`; off when `a` is 0.
    """
    limit = tf.fill(tf.shape(source_lengths), tf.constant(max_length, tf.int32))
    if max_length_a:
        relative = tf.cast(tf.math.ceil(max_length_a * tf.cast(source_lengths, tf.float32)), tf.int32)
        relative += int(max_length_b or 0)
        limit = tf.minimum(limit, tf.maximum(relative, 1))
    return limit


def forbid_eos_before(log_probs, step, min_length, eos_id=EOS_ID):
    """Gives EOS probability zero while fewer than `min_length` tokens have been produced."""
    if not min_length:
        return log_probs
    vocabulary_size = tf.shape(log_probs)[-1]
    eos_mask = tf.one_hot(eos_id, vocabulary_size, on_value=True, off_value=False, dtype=tf.bool)
    blocked = tf.logical_and(eos_mask, step < min_length)
    return tf.where(blocked, tf.constant(-1e9, log_probs.dtype), log_probs)


def forbid_special(log_probs):
    """PAD and BOS are never generated."""
    vocabulary_size = tf.shape(log_probs)[-1]
    banned = tf.reduce_any(
        tf.one_hot([PAD_ID, BOS_ID], vocabulary_size, on_value=True, off_value=False, dtype=tf.bool), axis=0
    )
    return tf.where(banned, tf.constant(-1e9, log_probs.dtype), log_probs)


def write_column(buffer, step, values):
    """`buffer[:, step] = values` for a fixed-shape `(batch, length)` buffer (XLA-friendly)."""
    at_step = tf.equal(tf.range(tf.shape(buffer)[-1]), step)
    return tf.where(at_step[tf.newaxis, :], values[:, tf.newaxis], buffer)
