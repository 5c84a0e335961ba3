"""The special ids every tflm tokenizer shares, whatever its kind:

| id | token  | meaning |
|----|--------|---------|
| 0  | `<pad>` | padding; never predicted |
| 1  | `<unk>` | unknown piece |
| 2  | `<s>`   | beginning of sequence (decoder start) |
| 3  | `</s>`  | end of sequence |

BERT-style encoders reuse them: `<s>` is [CLS] (`CLS_ID`), `</s>` is [SEP] (`SEP_ID`), `<pad>` is [PAD] and
`<unk>` is [UNK]. Their [MASK] is `MASK_TOKEN`, which a vocabulary holds only when its trainer was asked to
reserve it (`reserved=(MASK_TOKEN,)`: id 4, right after the four above); `Tokenizer.mask_id` says where it is.
It is a control piece: no tokenizer produces it from text (a user's "<mask>" is tokenized as ordinary text),
so only code that builds ids (masking, fill-in queries) puts it in a sequence.
"""

import tensorflow as tf

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
CLS_ID = BOS_ID
SEP_ID = EOS_ID
MASK_TOKEN = "<mask>"


def check_reserved(reserved):
    """`reserved` as a tuple of new, distinct, non-empty pieces (the tokens a trainer puts right after the
    special tokens); a ValueError naming the bad one otherwise."""
    reserved = (reserved,) if isinstance(reserved, str) else tuple(reserved or ())
    for token in reserved:
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError(f"reserved={reserved!r}: {token!r} is not a piece; reserve non-empty strings without "
                             f"whitespace, e.g. reserved=({MASK_TOKEN!r},).")
        if token in SPECIAL_TOKENS or reserved.count(token) > 1:
            raise ValueError(f"reserved={reserved!r}: {token!r} is already reserved (ids 0-3 are always "
                             f"{list(SPECIAL_TOKENS)}); list each extra token once.")
    return reserved


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
