"""Shared helpers for masked attention scores."""

from keras import ops

from tflm.text.special_tokens import PAD_ID


def masked_softmax(scores, mask):
    """Softmax over the last axis that gives exactly zero weight where `mask` is False.

    Computed in float32 whatever the compute dtype (mixed precision), then cast back. A row whose mask is
    all False (an empty source) gets all-zero weights rather than NaNs.

    Args:
        scores: float `(..., length)`.
        mask: bool, broadcastable to `scores`, or None.
    """
    dtype = scores.dtype
    scores = ops.cast(scores, "float32")
    if scores.shape[-1] == 1:
        # One key (a first target position attending to itself, a one-piece source): the softmax is exactly 1
        # where the key may be attended to. Written out because Keras warns that a softmax over a size-1 axis
        # "will always return the value 1", which here is the right answer, not a mistake.
        weights = ops.ones_like(scores) if mask is None else ops.cast(ops.broadcast_to(mask, ops.shape(scores)),
                                                                        "float32")
        return ops.cast(weights, dtype)
    if mask is None:
        return ops.cast(ops.softmax(scores, axis=-1), dtype)
    mask = ops.broadcast_to(mask, ops.shape(scores))
    scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
    weights = ops.softmax(scores, axis=-1) * ops.cast(mask, "float32")
    return ops.cast(weights, dtype)


def padding_mask(token_ids):
    """True on real tokens, False on PAD."""
    return ops.not_equal(token_ids, PAD_ID)
