"""Beam search with a length penalty and finished-hypothesis bookkeeping, in one `tf.while_loop`.

keras-hub's `BeamSampler` cannot serve here: it has no length penalty, and it keeps extending beams that
have emitted EOS, so their scores keep changing and a finished hypothesis can reappear or vanish (its
scores and n-best lists are wrong). This implementation follows the shape of Flax's WMT beam search:

- *alive* hypotheses (not ended) are ranked by their log-probability and extended every step;
- a candidate that emits EOS (or reaches its row's length limit) moves to the *finished* set with its
  final score `log_prob / length_penalty(length)`, GNMT's `((5 + length) / 6) ** alpha`, length counting EOS;
  it is never extended again and appears once;
- a row stops early once its k-th finished score cannot be beaten by any alive hypothesis: the best alive
  log-probability divided by the largest length penalty it could still get.

All tensors have fixed shapes: `(batch, beam, ...)`, flattened to `(batch * beam, ...)` for the model.
"""

import tensorflow as tf

from tflm.decoding.common import (
    NEGATIVE,
    DecodeResult,
    constrain,
    lengths_of,
    prefilled_start,
    reorder_state,
    tile_state,
)
from tflm.text.special_tokens import PAD_ID


def length_penalty(length, alpha):
    """GNMT's length penalty `((5 + length) / 6) ** alpha`; 1 when alpha is 0."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _gather_beams(tensor, indices):
    """`tensor[b, indices[b, j]]` for `(batch, beams, ...)` tensors."""
    return tf.gather(tensor, indices, batch_dims=1)


def _write(sequences, step, tokens):
    """Writes `tokens` (batch, beams) at column `step` of `sequences` (batch, beams, length)."""
    at_step = tf.equal(tf.range(tf.shape(sequences)[-1]), step)
    return tf.where(at_step, tokens[..., tf.newaxis], sequences)


def beam_search(step_fn, state, batch_size, settings):
    """Batched beam search over a step function (see `tflm.decoding.common`).

    Args:
        step_fn: `(token_ids, state, step) -> (logits, state)`.
        state: the initial decoding state for `batch_size` rows (tiled here for the beams).
        batch_size: int or scalar tensor.
        settings: `SearchSettings`: the lengths, constraints and prompt as in `greedy_search`, and the beam
            search settings, each an int or float or a scalar tensor (a tensor lets an exported signature
            take it as an input): `beam_size`, `length_penalty` (alpha, the length-penalty exponent; 0: plain
            log-probability) and `num_hypotheses` (<= beam_size, the hypotheses returned per row).
    Returns:
        A `DecodeResult`: token_ids `(batch, num_hypotheses, max_length)` best first, and their scores
        (log-probability divided by the length penalty).
    """
    beam_size, max_length, row_max_length = settings.beam_size, settings.max_length, settings.row_max_length
    min_length, no_repeat_ngram_size = settings.min_length, settings.no_repeat_ngram_size
    start_ids, forced, eos_id = settings.start_ids, settings.forced, settings.eos_id
    alpha = tf.cast(settings.length_penalty, tf.float32)
    if row_max_length is None:
        row_max_length = tf.fill([batch_size], tf.cast(max_length, tf.int32))
    rows = batch_size * beam_size
    state = tile_state(state, beam_size)
    empty = tf.fill([batch_size, beam_size, max_length], tf.constant(PAD_ID, tf.int32))
    # Only the first beam of each row is alive at the start, so the first step expands one hypothesis.
    first = tf.one_hot(0, beam_size, on_value=0.0, off_value=NEGATIVE)
    alive_log_probs = tf.tile(first[tf.newaxis], [batch_size, 1])
    finished_scores = tf.fill([batch_size, beam_size], NEGATIVE)
    if forced is not None:
        forced = (tf.repeat(forced[0], beam_size, axis=0), tf.repeat(forced[1], beam_size))
    first_step, previous, alive = prefilled_start(
        rows, max_length, None if start_ids is None else tf.repeat(start_ids, beam_size), forced,
        settings.prefix_length, settings.bos_id)
    alive = tf.reshape(alive, [batch_size, beam_size, max_length])
    row_done = first_step >= row_max_length
    worst_penalty = length_penalty(row_max_length, alpha)  # the largest penalty a hypothesis can get

    def body(step, previous, state, alive, alive_log_probs, finished, finished_scores, row_done):
        logits, state = step_fn(previous, state, step)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        log_probs = constrain(log_probs, step, tf.reshape(alive, [-1, max_length]), min_length,
                              no_repeat_ngram_size, eos_id, forced)
        vocabulary_size = tf.shape(log_probs)[-1]
        # (batch, beam * vocabulary): every extension of every alive hypothesis
        candidates = tf.reshape(alive_log_probs[:, :, tf.newaxis]
                                + tf.reshape(log_probs, [batch_size, beam_size, vocabulary_size]),
                                [batch_size, beam_size * vocabulary_size])
        top_log_probs, top_indices = tf.math.top_k(candidates, k=2 * beam_size)
        origins = top_indices // vocabulary_size
        tokens = top_indices % vocabulary_size
        sequences = _write(_gather_beams(alive, origins), step, tokens)
        ends = tf.equal(tokens, eos_id) | (step + 1 >= row_max_length)[:, tf.newaxis]
        ends &= top_log_probs > NEGATIVE / 2  # an impossible candidate never finishes

        # Alive: the best beam_size candidates that did not end.
        alive_candidates = tf.where(ends, NEGATIVE, top_log_probs)
        new_alive_log_probs, keep = tf.math.top_k(alive_candidates, k=beam_size)
        new_alive = _gather_beams(sequences, keep)
        new_origins = _gather_beams(origins, keep)
        flat = tf.reshape(new_origins + tf.range(batch_size)[:, tf.newaxis] * beam_size, [-1])
        state = reorder_state(state, flat)
        previous = tf.reshape(_gather_beams(tokens, keep), [-1])

        # Finished: the best beam_size among the finished so far and the candidates that just ended.
        ended_scores = tf.where(ends, top_log_probs / length_penalty(step + 1, alpha), NEGATIVE)
        pool = tf.concat([finished, sequences], axis=1)
        pool_scores = tf.concat([finished_scores, ended_scores], axis=1)
        new_finished_scores, best = tf.math.top_k(pool_scores, k=beam_size)
        new_finished = _gather_beams(pool, best)

        # Rows already done keep their finished set (their alive hypotheses can no longer win).
        done = row_done[:, tf.newaxis]
        finished = tf.where(done[..., tf.newaxis], finished, new_finished)
        finished_scores = tf.where(done, finished_scores, new_finished_scores)
        bound = new_alive_log_probs[:, 0] / worst_penalty
        row_done = row_done | (step + 1 >= row_max_length) | (finished_scores[:, -1] >= bound)
        return step + 1, previous, state, new_alive, new_alive_log_probs, finished, finished_scores, row_done

    def keep_going(step, previous, state, alive, alive_log_probs, finished, finished_scores, row_done):
        return tf.logical_not(tf.reduce_all(row_done))

    loop_vars = (first_step, previous, state, alive, alive_log_probs, empty, finished_scores, row_done)
    _, _, _, _, _, finished, finished_scores, _ = tf.while_loop(
        keep_going, body, loop_vars, maximum_iterations=max_length
    )
    n = settings.num_hypotheses
    finished, finished_scores = finished[:, :n], finished_scores[:, :n]
    return DecodeResult(token_ids=finished, lengths=lengths_of(finished), scores=finished_scores)
