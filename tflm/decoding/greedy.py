import tensorflow as tf

from tflm.decoding.common import DecodeResult, constrain, lengths_of, start_tokens, write_column
from tflm.text.tokenizers import BOS_ID, EOS_ID, PAD_ID


def greedy_search(step_fn, state, batch_size, max_length, row_max_length=None, min_length=0,
                  no_repeat_ngram_size=0, start_ids=None, forced=None, bos_id=BOS_ID, eos_id=EOS_ID):
    """Batched greedy decoding in one `tf.while_loop`: each row takes its most likely token until EOS.

    Args:
        step_fn: `(token_ids, state, step) -> (logits, state)` (see `tflm.decoding.common`).
        state: the initial decoding state.
        batch_size: int or scalar tensor.
        max_length: int. Most tokens per row (EOS included); sizes the output buffer.
        row_max_length: optional int32 `(batch,)`, a smaller limit per row (e.g. relative to the source).
        min_length: int. EOS is forbidden before this many tokens.
        no_repeat_ngram_size: int. If >= 2, no n-gram of this size is generated twice.
        start_ids: optional int32 `(batch,)`, the first input token of each row (default BOS).
        forced: optional `(forced_ids, forced_lengths)`: tokens every row must take first (a prompt).
    Returns:
        A `DecodeResult` with token_ids `(batch, 1, max_length)`.
    Example:
    >>> state = model.initial_state(model.encode(source_ids), max_length=64)
    >>> result = greedy_search(model.decode_step, state, batch_size=2, max_length=64)
    """
    if row_max_length is None:
        row_max_length = tf.fill([batch_size], tf.cast(max_length, tf.int32))
    tokens = tf.fill([batch_size, max_length], tf.constant(PAD_ID, tf.int32))
    finished = tf.zeros([batch_size], tf.bool)
    scores = tf.zeros([batch_size], tf.float32)
    previous = start_tokens(batch_size, start_ids, bos_id)

    def body(step, previous, state, tokens, finished, scores):
        logits, state = step_fn(previous, state, step)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        log_probs = constrain(log_probs, step, tokens, min_length, no_repeat_ngram_size, eos_id, forced)
        chosen = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        chosen_log_prob = tf.gather(log_probs, chosen, batch_dims=1)
        chosen = tf.where(finished, PAD_ID, chosen)
        scores += tf.where(finished, 0.0, chosen_log_prob)
        finished = finished | tf.equal(chosen, eos_id) | (step + 1 >= row_max_length)
        return step + 1, chosen, state, write_column(tokens, step, chosen), finished, scores

    def keep_going(step, previous, state, tokens, finished, scores):
        return tf.logical_not(tf.reduce_all(finished))

    _, _, _, token_ids, _, scores = tf.while_loop(
        keep_going, body, (tf.constant(0), previous, state, tokens, finished, scores),
        maximum_iterations=max_length,
    )
    return DecodeResult(token_ids=token_ids[:, tf.newaxis], lengths=lengths_of(token_ids)[:, tf.newaxis],
                        scores=scores[:, tf.newaxis])
