import tensorflow as tf

from tflm.decoding.common import DecodeResult, lengths_of, token_by_token
from tflm.text.tokenizers import BOS_ID, EOS_ID


def greedy_search(step_fn, state, batch_size, max_length, row_max_length=None, min_length=0,
                  no_repeat_ngram_size=0, start_ids=None, forced=None, bos_id=BOS_ID, eos_id=EOS_ID,
                  prefix_length=None):
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
        prefix_length: optional int32 scalar: `state` already holds this many positions (start token and
            forced tokens, from a model's `prefill`), so decoding starts at that step.
    Returns:
        A `DecodeResult` with token_ids `(batch, 1, max_length)`.
    Example:
    >>> state = model.initial_state(model.encode(source_ids), max_length=64)
    >>> result = greedy_search(model.decode_step, state, batch_size=2, max_length=64)
    """
    token_ids, scores = token_by_token(
        step_fn, state, batch_size, max_length, lambda log_probs, step: tf.argmax(log_probs, -1, tf.int32),
        row_max_length, min_length, no_repeat_ngram_size, start_ids, forced, bos_id, eos_id, prefix_length)
    return DecodeResult(token_ids=token_ids[:, tf.newaxis], lengths=lengths_of(token_ids)[:, tf.newaxis],
                        scores=scores[:, tf.newaxis])
