"""The special ids every tflm tokenizer shares, whatever its kind:

| id | token  | meaning |
|----|--------|---------|
| 0  | `<pad>` | padding; never predicted |
| 1  | `<unk>` | unknown piece |
| 2  | `<s>`   | beginning of sequence (decoder start) |
| 3  | `</s>`  | end of sequence |
"""

import tensorflow as tf

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")


def strip_special(token_ids):
    """Returns the ids of each row up to (not including) the first EOS, without PAD and BOS.

    Args:
        token_ids: int `(batch_size, length)`, dense or ragged.
    Returns:
        A ragged int32 tensor `(batch_size, None)`.
    """
    if isinstance(token_ids, tf.RaggedTensor):
        token_ids = token_ids.to_tensor(default_value=PAD_ID)
    token_ids = tf.cast(token_ids, tf.int32)
    before_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(token_ids, EOS_ID), tf.int32), axis=-1), 0)
    keep = before_eos & tf.not_equal(token_ids, PAD_ID) & tf.not_equal(token_ids, BOS_ID)
    return tf.ragged.boolean_mask(token_ids, keep)
