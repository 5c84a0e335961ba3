"""Sampling with temperature, top-k and top-p (nucleus), in one `tf.while_loop`.

keras-hub's samplers draw from a stateful `SeedGenerator` (a variable, so a fixed seed does not give the
same text twice in one process, nor in an exported model) and loop over a decoder-only prompt buffer;
here the random numbers are stateless (`tf.random.stateless_categorical` keyed by the seed and the step),
so one seed always gives the same output, eagerly, in a `tf.function`, under XLA and after export.
"""

import tensorflow as tf

from tflm.decoding.common import NEGATIVE, DecodeResult, lengths_of, tile_state, token_by_token
from tflm.text.tokenizers import BOS_ID, EOS_ID


def filter_logits(logits, top_k=0, top_p=1.0):
    """Keeps the `top_k` most likely tokens (0: all) and the smallest set whose probability reaches `top_p`.

    Args:
        logits: float32 `(rows, vocabulary_size)`.
        top_k: int or scalar tensor.
        top_p: float or scalar tensor in (0, 1].
    Returns:
        The logits with the removed tokens set to `NEGATIVE`.
    """
    top_k = tf.convert_to_tensor(top_k, tf.int32)
    top_p = tf.convert_to_tensor(top_p, tf.float32)

    def keep_top_k():
        # exactly k tokens (ties broken towards the lower id, as argmax does), so top_k=1 is greedy
        indices = tf.math.top_k(logits, k=top_k).indices
        rows = tf.broadcast_to(tf.range(tf.shape(logits)[0])[:, tf.newaxis], tf.shape(indices))
        keep = tf.scatter_nd(tf.stack([tf.reshape(rows, [-1]), tf.reshape(indices, [-1])], axis=1),
                             tf.ones([tf.size(indices)], tf.bool), tf.shape(logits))
        return tf.where(keep, logits, NEGATIVE)

    logits = tf.cond(top_k > 0, keep_top_k, lambda: logits)

    def keep_top_p():
        sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
        cumulative = tf.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)
        # the smallest logit still inside the nucleus (the first token is always kept)
        inside = tf.cast(cumulative < top_p, tf.int32)
        last = tf.maximum(tf.reduce_sum(inside, axis=-1) - 1, 0)
        threshold = tf.gather(sorted_logits, last, batch_dims=1)[:, tf.newaxis]
        return tf.where(logits < threshold, NEGATIVE, logits)

    return tf.cond(top_p < 1.0, keep_top_p, lambda: logits)


def draw(log_probs, step, temperature=1.0, top_k=0, top_p=1.0, seed=0):
    """Each row's next token, drawn from `log_probs` `(rows, vocabulary)` at decoding step `step` with
    temperature, top-k and top-p: a stateless draw seeded by `(seed, step)`, so the same seed and step give
    the same token wherever it is drawn (the decoding graph, `Generator.stream`). int32 `(rows,)`."""
    filtered = filter_logits(log_probs / tf.cast(temperature, tf.float32), top_k, top_p)
    seed = tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])
    return tf.random.stateless_categorical(filtered, 1, seed=seed, dtype=tf.int32)[:, 0]


def sample(step_fn, state, batch_size, max_length, row_max_length=None, temperature=1.0, top_k=0, top_p=1.0,
           seed=0, num_samples=1, min_length=0, no_repeat_ngram_size=0, start_ids=None, forced=None,
           bos_id=BOS_ID, eos_id=EOS_ID, prefix_length=None):
    """Batched sampling over a step function (see `tflm.decoding.common`).

    Args:
        step_fn, state, batch_size, max_length, row_max_length: as in `greedy_search`.
        temperature: float or scalar tensor > 0; divides the logits before filtering and drawing.
        top_k: int or scalar tensor; draw among the k most likely tokens (0: no limit). `top_k=1` is greedy.
        top_p: float or scalar tensor; draw from the smallest set of tokens whose probability reaches p.
        seed: int or scalar int tensor. The same seed gives the same samples.
        num_samples: int or scalar tensor; independent samples per row.
        min_length, no_repeat_ngram_size, start_ids, forced, prefix_length: as in `greedy_search`.
    Returns:
        A `DecodeResult` with token_ids `(batch, num_samples, max_length)`; scores are the samples'
        log-probabilities under the model (at temperature 1, before filtering).
    """
    num_samples = tf.convert_to_tensor(num_samples, tf.int32)
    state = tile_state(state, num_samples)
    if row_max_length is None:
        row_max_length = tf.fill([batch_size], tf.cast(max_length, tf.int32))
    if start_ids is not None:
        start_ids = tf.repeat(start_ids, num_samples)
    if forced is not None:
        forced = (tf.repeat(forced[0], num_samples, axis=0), tf.repeat(forced[1], num_samples))
    tokens, scores = token_by_token(
        step_fn, state, batch_size * num_samples, max_length,
        lambda log_probs, step: draw(log_probs, step, temperature, top_k, top_p, seed),
        tf.repeat(row_max_length, num_samples),
        min_length, no_repeat_ngram_size, start_ids, forced, bos_id, eos_id, prefix_length)
    token_ids = tf.reshape(tokens, [batch_size, num_samples, max_length])
    return DecodeResult(token_ids=token_ids, lengths=lengths_of(token_ids),
                        scores=tf.reshape(scores, [batch_size, num_samples]))
