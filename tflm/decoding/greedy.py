import tensorflow as tf

from tflm.decoding.common import DecodeResult, lengths_of, token_by_token


def greedy_search(step_fn, state, batch_size, settings):
    """Batched greedy decoding in one `tf.while_loop`: each row takes its most likely token until EOS.

    Args:
        step_fn: `(token_ids, state, step) -> (logits, state)` (see `tflm.decoding.common`).
        state: the initial decoding state.
        batch_size: int or scalar tensor.
        settings: `SearchSettings`: the lengths (`max_length` sizes the output buffer), the constraints
            (`min_length`, `no_repeat_ngram_size`: each an int or a scalar int tensor) and a prompt
            (`start_ids`, `forced`, `prefix_length`); the settings of beam search and sampling are ignored.
    Returns:
        A `DecodeResult` with token_ids `(batch, 1, max_length)`.
    Example:
    >>> state = model.initial_state(model.encode(source_ids), max_length=64)
    >>> result = greedy_search(model.decode_step, state, 2, SearchSettings(max_length=64))
    """
    token_ids, scores = token_by_token(
        step_fn, state, batch_size, settings, lambda log_probs, step: tf.argmax(log_probs, -1, tf.int32))
    return DecodeResult(token_ids=token_ids[:, tf.newaxis], lengths=lengths_of(token_ids)[:, tf.newaxis],
                        scores=scores[:, tf.newaxis])
