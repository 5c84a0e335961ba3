"""In-graph BERT inputs: packing segment pairs (`pack`) and masked-LM masking (`mask_tokens`, `word_starts`).

Both run on batches inside a tf.data map (or any `tf.function`); `tflm.data.pretraining` builds on them.
"""

import numpy as np
import tensorflow as tf

MASK_RATE, RANDOM_RATE = 0.8, 0.1  # BERT: of the selected tokens, 80% become <mask>, 10% a random id, 10% stay
_WORD_MARKERS = {"sentencepiece": "\u2581", "byte_bpe": "\u0120"}  # "▁" (SentencePiece), "Ġ" (GPT-2's bytes)


def pack(segments_a, segments_b, cls_id, sep_id, pad_id, sequence_length):
    """Packs segments as BERT's `[CLS] a [SEP] b [SEP]`, padded to `sequence_length`, with keras-hub's
    `MultiSegmentPacker` (round-robin truncation: the longer segment gives up tokens first, one at a time).

    Args:
        segments_a: int ragged `(batch_size, None)` (or dense, or a list of lists).
        segments_b: the same, or None for single segments (`[CLS] a [SEP]`).
        cls_id, sep_id, pad_id: int. tflm's are `CLS_ID` (2), `SEP_ID` (3) and `PAD_ID` (0).
        sequence_length: int. The packed length, the 2 or 3 special tokens included.
    Returns:
        A dict of `(batch_size, sequence_length)` tensors: `token_ids` (int32), `segment_ids` (int32: 0 for
        `[CLS]`, a and the first `[SEP]`; 1 for b and its `[SEP]`; 0 on padding) and `padding_mask` (bool,
        true on real tokens).
    """
    import keras_hub

    specials = 2 if segments_b is None else 3
    if sequence_length <= specials:
        raise ValueError(f"sequence_length={sequence_length} leaves no room for text beside the {specials} special "
                         f"tokens; use {specials + 1} or more.")
    segments = [_ragged(segments_a)] + ([] if segments_b is None else [_ragged(segments_b)])
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length, start_value=cls_id, end_value=sep_id, pad_value=pad_id, truncate="round_robin",
        _allow_python_workflow=False,
    )
    token_ids, segment_ids = packer(tuple(segments))
    lengths = sum(tf.minimum(s.row_lengths(), sequence_length) for s in segments) + specials
    padding_mask = tf.sequence_mask(tf.minimum(lengths, sequence_length), sequence_length)
    return {"token_ids": tf.cast(token_ids, tf.int32), "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": padding_mask}


def _ragged(segments):
    if isinstance(segments, tf.RaggedTensor):
        return tf.cast(segments, tf.int32)
    if isinstance(segments, (list, tuple)):
        return tf.ragged.constant(segments, dtype=tf.int32, ragged_rank=1) if len(segments) else \
            tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
    return tf.RaggedTensor.from_tensor(tf.cast(segments, tf.int32))


def word_starts(tokenizer, token_ids):
    """Where words start, for whole-word masking.

    A piece starts a word when it is a WordPiece piece without the `##` continuation prefix (a `▁` word or a
    punctuation mark: BERT's words), a SentencePiece piece beginning with `▁`, a byte-level BPE piece
    beginning with `Ġ`, any word of a word vocabulary, or a special token or `<mask>` (usually unselectable
    anyway).

    Args:
        tokenizer: a `tflm.text.Tokenizer` (kind wordpiece, sentencepiece, byte_bpe or word).
        token_ids: int `(batch_size, length)`.
    Returns:
        bool `(batch_size, length)`.
    """
    pieces = tokenizer.pieces
    if tokenizer.kind == "wordpiece":
        starts = [not piece.startswith(tokenizer.suffix_indicator) for piece in pieces]
    elif tokenizer.kind in _WORD_MARKERS:
        starts = [piece.startswith(_WORD_MARKERS[tokenizer.kind]) for piece in pieces]
    elif tokenizer.kind == "word":
        starts = [True] * len(pieces)
    else:
        raise ValueError(f"Whole-word masking needs word boundaries in the pieces; a {tokenizer.kind!r} tokenizer has "
                         "none. Use a wordpiece, sentencepiece, byte_bpe or word vocabulary, or whole_words=False.")
    starts = np.asarray(starts, bool)
    starts[:4] = True
    if tokenizer.mask_id is not None:
        starts[tokenizer.mask_id] = True
    return tf.gather(tf.constant(starts), tf.cast(token_ids, tf.int32))


def mask_tokens(token_ids, vocabulary_size, mask_id, unselectable_ids, rate=0.15, max_predictions=20,
                whole_words=None, seed=None):
    """BERT's masked-LM masking, in the graph.

    In each row, `ceil(rate * selectable)` tokens (at most `max_predictions`) are selected among those not
    in `unselectable_ids`; each selected token becomes `mask_id` 80% of the time, a random id in
    `[0, vocabulary_size)` 10% and stays itself 10% (as BERT and keras-hub's `MaskedLMMaskGenerator` do).

    Two implementations:
    - `seed=None` and no `whole_words`: keras-hub's `MaskedLMMaskGenerator` as is. Its random ops are
      stateful and take no seed: under a global seed (`keras.utils.set_random_seed`, which tflm's trainer
      calls) a rebuilt tf.data pipeline draws the very same masks every epoch, and without one the masks
      cannot be reproduced (its per-row shuffles race in a parallel `map_fn`).
    - `seed` given, or `whole_words`: tflm's own code with stateless random ops, so a seed (tflm uses
      (seed, epoch, batch)) gives the same masks on every run and another seed other masks. It also does
      whole-word masking, which `MaskedLMMaskGenerator` cannot (tensorflow-text's rank-3 form counts and caps
      *words*, not pieces): words are drawn in a random order and added whole while the selected pieces stay
      within the row's budget, skipping a word that would overflow it (BERT's `create_masked_lm_predictions`).

    Args:
        token_ids: int `(batch_size, length)`, packed (see `pack`).
        vocabulary_size: int. Random replacements are drawn from `[0, vocabulary_size)`.
        mask_id: int. The `<mask>` id (`tokenizer.mask_id`).
        unselectable_ids: ints never selected: at least `[CLS]`, `[SEP]` and `<pad>` (tflm: 2, 3, 0).
        rate: float in (0, 1]. The share of selectable tokens selected.
        max_predictions: int. The most tokens selected per row; the width of the outputs.
        whole_words: bool `(batch_size, length)` or None. True where a word starts (`word_starts`); then
            every piece of a selected word is selected (a word never spans an unselectable token).
        seed: int, or int `(2,)` tensor, or None (see above).
    Returns:
        A dict: `token_ids` (int32 `(batch_size, length)`, masked), `mask_positions` (int32
        `(batch_size, max_predictions)`, ascending, 0-padded), `mask_ids` (int32, the original ids there,
        0-padded) and `mask_weights` (float32, 1.0 for a real prediction, 0.0 for padding).
    """
    if not 0 < rate <= 1:
        raise ValueError(f"rate={rate}: the share of tokens to mask must be in (0, 1], e.g. 0.15.")
    if max_predictions < 1:
        raise ValueError(f"max_predictions={max_predictions} must be at least 1 (BERT uses 20 for 128 tokens).")
    if mask_id is None or not 0 <= mask_id < vocabulary_size:
        raise ValueError(f"mask_id={mask_id} is not an id of the vocabulary (size {vocabulary_size}); train the "
                         "vocabulary with reserved=('<mask>',) and pass tokenizer.mask_id.")
    token_ids = tf.cast(token_ids, tf.int32)
    if seed is None and whole_words is None:
        import keras_hub

        masker = keras_hub.layers.MaskedLMMaskGenerator(
            vocabulary_size, rate, mask_id, mask_selection_length=max_predictions,
            unselectable_token_ids=[int(i) for i in unselectable_ids], mask_token_rate=MASK_RATE,
            random_token_rate=RANDOM_RATE, _allow_python_workflow=False,
        )
        out = masker(token_ids)
        return {"token_ids": tf.cast(out["token_ids"], tf.int32),
                "mask_positions": tf.cast(out["mask_positions"], tf.int32),
                "mask_ids": tf.cast(out["mask_ids"], tf.int32),
                "mask_weights": tf.cast(out["mask_weights"], tf.float32)}
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    seed = tf.constant([int(seed), 0], tf.int64) if isinstance(seed, (int, np.integer)) else tf.cast(seed, tf.int64)
    order_seed, replace_seed, random_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    selected = _select(token_ids, unselectable_ids, rate, max_predictions, whole_words, order_seed)
    return _replace(token_ids, selected, vocabulary_size, mask_id, max_predictions, replace_seed, random_seed)


def _select(token_ids, unselectable_ids, rate, max_predictions, whole_words, seed):
    """bool `(batch, length)`: the selected pieces (whole units: words, or single pieces)."""
    batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    unselectable = tf.constant([int(i) for i in unselectable_ids] or [-1], tf.int32)
    selectable = tf.reduce_all(tf.not_equal(token_ids[..., None], unselectable), -1)
    previous = tf.pad(selectable[:, :-1], [[0, 0], [1, 0]])
    starts = selectable if whole_words is None else selectable & (tf.cast(whole_words, tf.bool) | ~previous)
    unit = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # the unit (word) of each position
    unit = tf.where(selectable, tf.maximum(unit, 0), length)  # unselectable positions go to a dropped unit
    rows = tf.range(batch)[:, None] * (length + 1)
    unit_length = tf.reshape(tf.math.unsorted_segment_sum(  # (batch, length + 1): pieces per unit
        tf.ones_like(unit), rows + unit, batch * (length + 1)), [batch, length + 1])[:, :-1]
    keys = tf.random.stateless_uniform([batch, length], seed)
    order = tf.argsort(tf.where(unit_length > 0, keys, 2.0), axis=1, stable=True)  # units in random order
    sorted_length = tf.gather(unit_length, order, batch_dims=1)
    # ceil(n * rate) as tensorflow-text's RandomItemSelector counts, less its float error (100 * 0.15 is 15.0000006
    # in float32, which it rounds up to 16).
    budget = tf.math.ceil(tf.cast(tf.reduce_sum(tf.cast(selectable, tf.int32), 1), tf.float32) * rate - 1e-4)
    budget = tf.minimum(tf.cast(budget, tf.int32), max_predictions)

    def take(state, lengths):  # BERT: add a word while the budget allows it, else skip to the next
        total, _ = state
        fits = (total + lengths <= budget) & (lengths > 0)
        return total + tf.where(fits, lengths, 0), fits

    _, taken = tf.scan(take, tf.transpose(sorted_length), (tf.zeros([batch], tf.int32), tf.zeros([batch], tf.bool)))
    taken = tf.gather(tf.transpose(taken), tf.argsort(order, axis=1), batch_dims=1)  # back to unit order
    taken = tf.pad(taken, [[0, 0], [0, 1]])  # the dropped unit is never taken
    return tf.gather(taken, unit, batch_dims=1) & selectable


def _replace(token_ids, selected, vocabulary_size, mask_id, max_predictions, replace_seed, random_seed):
    shape = tf.shape(token_ids)
    draw = tf.random.stateless_uniform(shape, replace_seed)
    random_ids = tf.random.stateless_uniform(shape, random_seed, maxval=vocabulary_size, dtype=tf.int32)
    replacement = tf.where(draw < MASK_RATE, mask_id, tf.where(draw < MASK_RATE + RANDOM_RATE, random_ids, token_ids))
    masked = tf.where(selected, replacement, token_ids)
    positions = tf.ragged.boolean_mask(tf.broadcast_to(tf.range(shape[1]), shape), selected)
    positions = positions.to_tensor(default_value=-1, shape=[None, max_predictions])
    weights = tf.cast(positions >= 0, tf.float32)
    positions = tf.maximum(positions, 0)
    mask_ids = tf.gather(token_ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)
    return {"token_ids": masked, "mask_positions": positions, "mask_ids": mask_ids, "mask_weights": weights}
