"""Pieces shared by the decoding strategies.

Every strategy drives a *step function* over fixed-shape tensors inside one `tf.while_loop`:

    step_fn(token_ids, state, step) -> (logits, state)

where `token_ids` int32 `(batch,)` holds the previous token of each row, `state` is a nest of batch-major
tensors (a model's `initial_state`), `step` is the 0-based position being predicted, and `logits` is float
`(batch, vocabulary_size)`. A model's `decode_step` is such a function.

Beam search reorders the state when hypotheses swap places, except the entries under the key `"static"`
(encoder outputs, cross-attention keys and values): they are the same for every hypothesis of a sentence.
"""

import dataclasses
import numbers

import tensorflow as tf

from tflm.text.special_tokens import BOS_ID, EOS_ID, PAD_ID

NEGATIVE = -1e9  # the log-probability of a forbidden token (finite, so sums never become NaN)


@dataclasses.dataclass
class DecodeResult:
    """Decoded token ids and their scores.

    Attributes:
        token_ids: int32 `(batch, n, length)`: the n hypotheses of each row, best first, each up to and
            including EOS, then PAD.
        lengths: int32 `(batch, n)`, the number of tokens before PAD (EOS included when emitted).
        scores: float32 `(batch, n)`: the sum of the tokens' log-probabilities under the model, divided by
            the length penalty for beam search.
    """

    token_ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor


@dataclasses.dataclass(eq=False)
class SearchSettings:
    """What one decoding loop needs: the lengths, the constraints, a prompt and the strategy's own settings.

    `greedy_search`, `beam_search` and `sample` take one; `tflm.decoding.search` makes it from a
    `DecodingOptions`. Each field may be a Python value or a tensor (an exported signature passes its
    controls as scalar tensors), except those marked static. A strategy ignores the settings of the others.

    Attributes:
        max_length: int or scalar tensor. Most tokens per hypothesis (EOS included); sizes the buffers.
        row_max_length: optional int32 `(batch,)`, a smaller limit per row (e.g. relative to the source).
        min_length: int or scalar int tensor. EOS is forbidden before this many tokens.
        no_repeat_ngram_size: int or scalar int tensor. If >= 2, no n-gram of this size is generated twice
            (0 or 1: off; as a tensor, the request chooses in the graph, see `constrain`).
        start_ids: optional int32 `(batch,)`, the first input token of each row (default `bos_id`).
        forced: optional `(forced_ids, forced_lengths)`: tokens every row must take first (a prompt; see
            `constrain`).
        prefix_length: optional int32 scalar: the state already holds this many positions (start token and
            forced tokens, from a model's `prefill`), so decoding starts at that step.
        bos_id, eos_id: int (static).
        beam_size: beam search's hypotheses alive per row.
        length_penalty: beam search's GNMT alpha (0: hypotheses ranked by plain log-probability).
        num_hypotheses: hypotheses returned per row: the n best of beam search (<= beam_size), or
            independent samples; greedy search returns one.
        temperature: sampling: divides the logits before filtering and drawing (> 0).
        top_k: sampling: draw among the k most likely tokens (0: no limit; 1 is greedy).
        top_p: sampling: draw from the smallest set of tokens whose probability reaches p (in (0, 1]).
        seed: sampling: int or scalar int tensor; the same seed gives the same samples.
    """

    max_length: int
    row_max_length: tf.Tensor = None
    min_length: int = 0
    no_repeat_ngram_size: int = 0
    start_ids: tf.Tensor = None
    forced: tuple = None
    prefix_length: tf.Tensor = None
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    beam_size: int = 4
    length_penalty: float = 0.6
    num_hypotheses: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0


def row_max_lengths(source_lengths, max_length, max_length_a=0.0, max_length_b=None):
    """Per-row decoding limits: `min(max_length, ceil(a * source_length) + b)` (relative when `a > 0`).

    Args:
        source_lengths: int `(batch,)`, source tokens per row.
        max_length: int or scalar tensor. The absolute limit (and the size of the decoding buffers).
        max_length_a, max_length_b: the relative limit `a * source_length + b`; off when `a` is 0.
    """
    limit = tf.fill(tf.shape(source_lengths), tf.cast(max_length, tf.int32))
    if max_length_a:
        relative = tf.cast(tf.math.ceil(max_length_a * tf.cast(source_lengths, tf.float32)), tf.int32)
        relative += int(max_length_b or 0)
        limit = tf.minimum(limit, tf.maximum(relative, 1))
    return limit


def write_column(buffer, step, values):
    """`buffer[..., step] = values` for a fixed-shape `(..., length)` buffer (XLA-friendly)."""
    at_step = tf.equal(tf.range(tf.shape(buffer)[-1]), step)
    return tf.where(at_step, values[..., tf.newaxis], buffer)


def _ban(log_probs, banned):
    return tf.where(banned, tf.constant(NEGATIVE, log_probs.dtype), log_probs)


def _token_mask(token_id, vocabulary_size):
    return tf.one_hot(token_id, vocabulary_size, on_value=True, off_value=False, dtype=tf.bool)


def static_int(value):
    """`value` as a Python int when it is one (or a NumPy integer), else None (a tensor, chosen in the graph)."""
    if isinstance(value, numbers.Integral):
        return int(value)
    return None


def banned_repeats(tokens, step, ngram_size, vocabulary_size):
    """Tokens that would repeat an n-gram already in each sequence.

    Args:
        tokens: int32 `(rows, length)`, the tokens so far (positions >= step unused).
        step: int32 scalar, the position being predicted.
        ngram_size: n, an int >= 2, or a scalar int tensor (then nothing is banned unless n >= 2; its
            windows have a dynamic size, so that graph is not for XLA, which the int's is).
        vocabulary_size: int32 scalar.
    Returns:
        bool `(rows, vocabulary_size)`.
    """
    n = static_int(ngram_size)
    if n is None:
        return _banned_repeats_of_tensor(tokens, step, ngram_size, vocabulary_size)
    windows = tf.signal.frame(tokens, n, 1, axis=1)  # (rows, length - n + 1, n)
    prefix = tf.gather(tokens, tf.maximum(step - (n - 1) + tf.range(n - 1), 0), axis=1)  # (rows, n - 1)
    matches = tf.reduce_all(tf.equal(windows[:, :, : n - 1], prefix[:, tf.newaxis, :]), axis=-1)
    # a window counts when its last token is already generated (start + n - 1 < step)
    complete = tf.range(tf.shape(windows)[1]) + (n - 1) < step
    matches &= complete[tf.newaxis, :] & (step >= n - 1)
    return _scatter_hits(matches, windows[:, :, n - 1], vocabulary_size)


def _banned_repeats_of_tensor(tokens, step, ngram_size, vocabulary_size):
    """`banned_repeats` with n a scalar tensor: each position q ends a window `tokens[q - n + 1 .. q]`; its
    last token is banned when the window's first n - 1 tokens are the n - 1 tokens before `step`."""
    length = tf.shape(tokens)[1]
    ngram_size = tf.cast(ngram_size, tf.int32)
    n = tf.maximum(ngram_size, 2)  # the shapes of an off n (0 or 1) stay valid; its matches are masked out
    offsets = tf.range(n - 1)  # (n - 1,)
    ends = tf.range(length)  # q, the position of each window's last token
    heads = tf.maximum(ends[:, tf.newaxis] - (n - 1) + offsets[tf.newaxis, :], 0)  # (length, n - 1)
    windows = tf.gather(tokens, heads, axis=1)  # (rows, length, n - 1)
    prefix = tf.gather(tokens, tf.maximum(step - (n - 1) + offsets, 0), axis=1)  # (rows, n - 1)
    matches = tf.reduce_all(tf.equal(windows, prefix[:, tf.newaxis, :]), axis=-1)  # (rows, length)
    # a whole window (q >= n - 1) whose last token is already generated (q < step)
    complete = (ends >= n - 1) & (ends < step)
    matches &= complete[tf.newaxis, :] & (step >= n - 1) & (ngram_size >= 2)
    return _scatter_hits(matches, tokens, vocabulary_size)


def _scatter_hits(matches, banned_tokens, vocabulary_size):
    """bool `(rows, vocabulary_size)`: True at `banned_tokens[row, j]` wherever `matches[row, j]`."""
    rows = tf.shape(matches)[0]
    row_ids = tf.broadcast_to(tf.range(rows)[:, tf.newaxis], tf.shape(matches))
    indices = tf.stack([tf.reshape(row_ids, [-1]), tf.reshape(banned_tokens, [-1])], axis=1)
    hits = tf.scatter_nd(indices, tf.reshape(tf.cast(matches, tf.int32), [-1]), [rows, vocabulary_size])
    return hits > 0


def constrain(log_probs, step, tokens=None, min_length=0, no_repeat_ngram_size=0, eos_id=EOS_ID, forced=None):
    """Applies the decoding constraints to next-token log-probabilities `(rows, vocabulary_size)`.

    - PAD and BOS are never generated;
    - EOS is forbidden while fewer than `min_length` tokens have been produced (`step < min_length`);
    - with `no_repeat_ngram_size` n >= 2, no n-gram appears twice in a hypothesis (`tokens` needed);
    - with `forced = (forced_ids, forced_lengths)` (int32 `(rows, length)` and `(rows,)`), the token at a
      step below the row's forced length is `forced_ids[row, step]`, with log-probability 0 (a prompt:
      it takes no choice and adds nothing to the score).

    `min_length` and `no_repeat_ngram_size` are Python ints (0 adds no op) or scalar int tensors, e.g. a
    request's controls: a tensor n blocks repeats only when n >= 2 (a `tf.cond`: an n of 0 or 1 costs
    no search for repeats).

    Forbidden tokens get a log-probability of `NEGATIVE`; the others keep the model's values, so the
    scores of the hypotheses stay the model's own.
    """
    vocabulary_size = tf.shape(log_probs)[-1]
    banned = _token_mask(PAD_ID, vocabulary_size) | _token_mask(BOS_ID, vocabulary_size)
    banned = tf.broadcast_to(banned, tf.shape(log_probs))
    min_length = 0 if min_length is None else min_length
    if static_int(min_length) != 0:
        minimum = min_length if static_int(min_length) is not None else tf.cast(min_length, tf.int32)
        banned |= _token_mask(eos_id, vocabulary_size) & (step < minimum)
    n = 0 if no_repeat_ngram_size is None else static_int(no_repeat_ngram_size)
    if n is not None:
        if n >= 2:
            banned |= banned_repeats(tokens, step, n, vocabulary_size)
    else:
        n = tf.cast(no_repeat_ngram_size, tf.int32)
        banned |= tf.cond(n >= 2, lambda: banned_repeats(tokens, step, n, vocabulary_size),
                          lambda: tf.zeros_like(banned))
    log_probs = _ban(log_probs, banned)
    if forced is not None:
        forced_ids, forced_lengths = forced
        column = tf.gather(forced_ids, tf.minimum(step, tf.shape(forced_ids)[1] - 1), axis=1)
        only = tf.one_hot(column, vocabulary_size, on_value=0.0, off_value=NEGATIVE, dtype=log_probs.dtype)
        log_probs = tf.where((step < forced_lengths)[:, tf.newaxis], only, log_probs)
    return log_probs


def repeat_rows(tensor, times):
    """Each row repeated `times` times in place: `(batch, ...)` -> `(batch * times, ...)`."""
    return tf.repeat(tensor, times, axis=0)


def tile_state(state, times):
    """Repeats every tensor of a decoding state for `times` hypotheses per row."""
    return tf.nest.map_structure(lambda t: repeat_rows(t, times), state)


def reorder_state(state, indices):
    """Gathers the rows `indices` of every state tensor except those under `"static"`."""
    if isinstance(state, dict):
        return {key: (value if key == "static" else reorder_state(value, indices)) for key, value in state.items()}
    return tf.nest.map_structure(lambda t: tf.gather(t, indices, axis=0), state)


def start_tokens(rows, start_ids=None, bos_id=BOS_ID):
    """The first input token of every row: `start_ids` `(rows,)` if given, else BOS."""
    if start_ids is None:
        return tf.fill([rows], tf.constant(bos_id, tf.int32))
    return tf.cast(start_ids, tf.int32)


def prefilled_start(rows, max_length, start_ids=None, forced=None, prefix_length=None, bos_id=BOS_ID):
    """Where a decoding loop starts: `(first_step, previous_tokens, token_buffer)`.

    Without `prefix_length`, at step 0 from the start tokens with an empty (PAD) buffer. With it, the state
    already holds the first `prefix_length` positions of every row (the start token and forced tokens that
    a model's `prefill` ran in one pass), so the loop starts at that step, its input is the last forced
    token read so far, and the buffer holds the forced tokens of the skipped steps (which n-gram blocking
    sees, as if they had been decoded one by one). `prefix_length` must not exceed any row's forced length.

    Args:
        rows: int or scalar tensor.
        max_length: int or scalar tensor, the buffer length.
        start_ids, forced: as in `SearchSettings` (`forced` is needed with `prefix_length`).
        prefix_length: optional int32 scalar.
    """
    buffer = tf.fill([rows, max_length], tf.constant(PAD_ID, tf.int32))
    previous = start_tokens(rows, start_ids, bos_id)
    if prefix_length is None:
        return tf.constant(0), previous, buffer
    forced_ids = tf.cast(forced[0], tf.int32)[:, :max_length]
    forced_ids = tf.pad(forced_ids, [[0, 0], [0, max_length - tf.shape(forced_ids)[1]]], constant_values=PAD_ID)
    prefix_length = tf.cast(prefix_length, tf.int32)
    buffer = tf.where(tf.range(max_length)[tf.newaxis, :] < prefix_length, forced_ids, buffer)
    last_read = tf.gather(forced_ids, tf.maximum(prefix_length - 1, 0), axis=1)
    previous = tf.where(prefix_length > 0, last_read, previous)
    return prefix_length, previous, buffer


def lengths_of(token_ids):
    return tf.reduce_sum(tf.cast(tf.not_equal(token_ids, PAD_ID), tf.int32), axis=-1)


def token_by_token(step_fn, state, rows, settings, choose):
    """The loop of greedy decoding and sampling: one token per row and step until every row has ended.

    Args:
        step_fn, state: see above.
        rows: int or scalar tensor, the rows of `state`.
        settings: `SearchSettings` (its lengths, constraints and prompt; `rows` of them where per row).
        choose: `(log_probs, step) -> token_ids`: picks each row's next token from its constrained
            log-probabilities (argmax for greedy, a draw for sampling).
    Returns:
        `(token_ids, scores)`: int32 `(rows, max_length)` (PAD after the end) and float32 `(rows,)`, the sum
        of the chosen tokens' log-probabilities under the model.
    """
    max_length, row_max_length, forced = settings.max_length, settings.row_max_length, settings.forced
    min_length, no_repeat_ngram_size, eos_id = settings.min_length, settings.no_repeat_ngram_size, settings.eos_id
    if row_max_length is None:
        row_max_length = tf.fill([rows], tf.cast(max_length, tf.int32))
    first_step, previous, tokens = prefilled_start(rows, max_length, settings.start_ids, forced,
                                                   settings.prefix_length, settings.bos_id)
    finished = first_step >= row_max_length
    scores = tf.zeros([rows], tf.float32)

    def body(step, previous, state, tokens, finished, scores):
        logits, state = step_fn(previous, state, step)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        log_probs = constrain(log_probs, step, tokens, min_length, no_repeat_ngram_size, eos_id, forced)
        chosen = choose(log_probs, step)
        chosen_log_prob = tf.gather(log_probs, chosen, batch_dims=1)
        chosen = tf.where(finished, PAD_ID, chosen)
        scores += tf.where(finished, 0.0, chosen_log_prob)
        finished = finished | tf.equal(chosen, eos_id) | (step + 1 >= row_max_length)
        return step + 1, chosen, state, write_column(tokens, step, chosen), finished, scores

    def keep_going(step, previous, state, tokens, finished, scores):
        return tf.logical_not(tf.reduce_all(finished))

    _, _, _, tokens, _, scores = tf.while_loop(
        keep_going, body, (first_step, previous, state, tokens, finished, scores),
        maximum_iterations=max_length,
    )
    return tokens, scores
