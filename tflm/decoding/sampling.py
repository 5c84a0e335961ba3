"""Sampling with temperature, top-k and top-p (nucleus), in one `tf.while_loop`.

keras-hub's samplers draw from a stateful `SeedGenerator` (a variable, so a fixed seed does not give the
same text twice in one process, nor in an exported model) and loop over a decoder-only prompt buffer;
here the random numbers are stateless (`tf.random.stateless_categorical` keyed by the seed and the step),
so one seed always gives the same output, eagerly, in a `tf.function`, under XLA and after export.
"""

import dataclasses

import tensorflow as tf

from tflm.decoding.common import NEGATIVE, DecodeResult, lengths_of, tile_state, token_by_token


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


def sample(step_fn, state, batch_size, settings):
    """Batched sampling over a step function (see `tflm.decoding.common`).

    Args:
        step_fn, state, batch_size: as in `greedy_search`.
        settings: `SearchSettings`: the lengths, constraints and prompt as in `greedy_search`, and the
            sampling settings: `temperature`, `top_k`, `top_p`, `seed` and `num_hypotheses` (independent
            samples per row), each an int or float or a scalar tensor.
    Returns:
        A `DecodeResult` with token_ids `(batch, num_hypotheses, max_length)`; scores are the samples'
        log-probabilities under the model (at temperature 1, before filtering).
    """
    max_length, row_max_length = settings.max_length, settings.row_max_length
    start_ids, forced = settings.start_ids, settings.forced
    num_samples = tf.convert_to_tensor(settings.num_hypotheses, tf.int32)
    state = tile_state(state, num_samples)
    if row_max_length is None:
        row_max_length = tf.fill([batch_size], tf.cast(max_length, tf.int32))
    if start_ids is not None:
        start_ids = tf.repeat(start_ids, num_samples)
    if forced is not None:
        forced = (tf.repeat(forced[0], num_samples, axis=0), tf.repeat(forced[1], num_samples))
    rows = dataclasses.replace(settings, row_max_length=tf.repeat(row_max_length, num_samples),
                               start_ids=start_ids, forced=forced)
    temperature, top_k, top_p, seed = settings.temperature, settings.top_k, settings.top_p, settings.seed
    tokens, scores = token_by_token(
        step_fn, state, batch_size * num_samples, rows,
        lambda log_probs, step: draw(log_probs, step, temperature, top_k, top_p, seed))
    token_ids = tf.reshape(tokens, [batch_size, num_samples, max_length])
    return DecodeResult(token_ids=token_ids, lengths=lengths_of(token_ids),
                        scores=tf.reshape(scores, [batch_size, num_samples]))
