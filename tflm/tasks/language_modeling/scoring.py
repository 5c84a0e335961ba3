"""Scoring text with a language model: mean token loss over a stream (windows, or contiguous segments with
memory), dynamic evaluation, the neural cache, and the metrics (perplexity, bits per character, word-level
perplexity)."""

import dataclasses
import logging
import math
import time
import weakref

import numpy as np
import tensorflow as tf

from tflm.data.language_modeling import contiguous_segments, count_words, windows

logger = logging.getLogger("tflm")


def is_recurrent(model):
    """Whether the model reads text as contiguous segments carrying a memory (Transformer-XL with memory)."""
    return bool(model.reads_contiguous_streams)


@dataclasses.dataclass
class DynamicEvaluation:
    """Dynamic evaluation (Krause et al. 2018): the model keeps learning from the text it has already scored.

    After scoring each segment (or window), one SGD step on that segment's loss with `learning_rate`; `decay`
    pulls the weights back toward the trained ones each step (`w += decay * (trained - w)`). The text is read
    as `streams` parallel streams (1: the text in order, the paper's reading). Scores are always taken
    before the step on their own tokens, so no token is predicted by a model that has seen it. The trained
    weights are restored afterwards.
    """

    learning_rate: float
    decay: float = 0.0
    streams: int = 1

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"DynamicEvaluation.learning_rate must be above 0; got {self.learning_rate}.")
        if not 0 <= self.decay < 1:
            raise ValueError(f"DynamicEvaluation.decay must be in [0, 1); got {self.decay}.")
        if self.streams < 1:
            raise ValueError(f"DynamicEvaluation.streams must be 1 or more; got {self.streams}.")


@dataclasses.dataclass
class NeuralCache:
    """The continuous cache of Grave et al. (2017): the model's probabilities mixed with a pointer to the
    tokens that followed similar hidden states among the last `size` positions of the same stream.

    `p = (1 - mix) * p_model + mix * p_cache`, `p_cache(w) ∝ Σ_i exp(theta * h_t·h_i) [x_{i+1} = w]`, where `h`
    is the last layer's normalized output. Nothing is trained: `theta` and `mix` are chosen on validation.
    """

    size: int = 4000  # the defaults: the best on WikiText-2's validation text (docs/benchmarks.md)
    theta: float = 0.05
    mix: float = 0.2

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"NeuralCache.size must be 1 or more; got {self.size}.")
        if not 0 <= self.mix <= 1:
            raise ValueError(f"NeuralCache.mix must be in [0, 1]; got {self.mix}.")


def evaluate_ids(model, ids, length, batch_size=16, stride=None, max_tokens=None, dynamic=None, cache=None,
                 progress=False):
    """Mean next-token loss (nats) over a token stream, and the number of tokens scored.

    Models with memory (Transformer-XL) read the stream as `batch_size` contiguous streams, one segment of
    `length` at a time, carrying their memory across segments (the whole text is context). Others read
    windows of `length` every `stride` tokens (default `length // 2`), each token scored once, in the
    window where it has the most context. `dynamic` (a `DynamicEvaluation`) adapts the model to the text as
    it reads it; `cache` (a `NeuralCache`) mixes in a cache pointer, and then Transformer-XL reads the text as
    one stream, so that every position's cache holds the text before it (not only its stream's part).
    `progress` logs how far the reading is, every tenth of the text.
    """
    if cache is not None and model.reads_contiguous_streams:
        batch_size = 1
    streams = score_ids(model, ids, length, batch_size, stride, max_tokens, dynamic=dynamic,
                        keep_hidden=cache is not None, progress=progress)
    losses = [cache_nll(stream, cache) if cache is not None else stream["nll"] for stream in streams]
    count = sum(len(loss) for loss in losses)
    return float(sum(np.sum(loss, dtype=np.float64) for loss in losses)) / max(count, 1), count


def score_ids(model, ids, length, batch_size=16, stride=None, max_tokens=None, dynamic=None, keep_hidden=False,
              progress=False):
    """Each scored token's negative log-likelihood, per stream in text order (see `evaluate_ids`).

    Returns a list of streams (one for window models; `batch_size` for Transformer-XL, or
    `dynamic.streams`), each a dict of `nll` float32 `(n,)`, `targets` int32 `(n,)` and, with
    `keep_hidden`, `hidden` float32 `(n, hidden_dim)`: the states a `NeuralCache` points with.
    """
    ids = np.asarray(ids[: max_tokens + 1] if max_tokens else ids, dtype=np.int32)
    recurrent = model.reads_contiguous_streams
    adapt = _Adaptation(model, dynamic) if dynamic is not None else None
    step = adapt.step if adapt is not None else _evaluation_function(model, "segment" if recurrent else "window")
    wanted = dynamic.streams if dynamic is not None else batch_size
    num_streams = max(1, min(wanted, (len(ids) - 1) // length)) if recurrent else 1
    collected = [{"nll": [], "targets": [], "hidden": []} for _ in range(num_streams)]
    started = time.monotonic()

    def report(done, total):
        if progress and total >= 10 and (done + 1) % (total // 10) == 0:
            logger.info("scored %d/%d %s (%.0fs)", done + 1, total, "segments" if recurrent else "batches of windows",
                        time.monotonic() - started)

    def add(stream, nll, targets, hidden):
        collected[stream]["nll"].append(np.asarray(nll, np.float32))
        collected[stream]["targets"].append(np.asarray(targets, np.int32))
        if keep_hidden:
            collected[stream]["hidden"].append(np.asarray(hidden, np.float32))

    try:
        if recurrent:
            memory = None
            segments = contiguous_segments(ids, length, num_streams)
            for index, segment in enumerate(segments):
                targets = segment[:, 1:]
                nll, hidden, memory = step(segment[:, :-1], targets, memory, np.ones(targets.shape, np.float32))
                nll, hidden = np.asarray(nll), (np.asarray(hidden) if keep_hidden else None)
                for row in range(num_streams):
                    add(row, nll[row], targets[row], hidden[row] if keep_hidden else None)
                report(index, len(segments))
        else:
            stride = stride or max(1, length // 2)
            cut = windows(ids, length, stride) if len(ids) > length else ids[None, :]
            first = np.full(len(cut), length - stride)  # score only the tokens new to each window
            first[0] = 0
            covered = (len(cut) - 1) * stride + length if len(ids) > length else len(ids) - 1
            if covered < len(ids) - 1:  # the tail after the last full window
                cut = np.concatenate([cut, ids[None, -(length + 1):]])
                first = np.append(first, length - (len(ids) - 1 - covered))
            starts_of_batches = range(0, len(cut), wanted)
            for index, start in enumerate(starts_of_batches):
                batch, starts = cut[start: start + wanted], first[start: start + wanted]
                targets = batch[:, 1:]
                scored = (np.arange(targets.shape[1])[None, :] >= starts[:, None]).astype(np.float32)
                nll, hidden, _ = step(batch[:, :-1], targets, None, scored)
                nll, hidden = np.asarray(nll), (np.asarray(hidden) if keep_hidden else None)
                for row, begin in enumerate(starts):
                    add(0, nll[row, begin:], targets[row, begin:], hidden[row, begin:] if keep_hidden else None)
                report(index, len(starts_of_batches))
    finally:
        if adapt is not None:
            adapt.restore()
    return [{key: np.concatenate(parts) for key, parts in stream.items() if parts} for stream in collected
            if stream["nll"]]


def _nll(logits, labels):
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    return -tf.gather(log_probs, labels, batch_dims=2)  # (B, T)


def _evaluation_function(model, kind):
    """The model's traced scoring function (kept while the model lives): `(inputs, labels, memory, mask)` ->
    `(nll, hidden, new_memory)`."""

    def score(inputs, labels, memory, mask):
        hidden, new_memory = model.forward_hidden(inputs, memory)
        return _nll(model.output_logits(hidden), labels), hidden, new_memory

    return _EVALUATION_FUNCTIONS.setdefault(model, {}).setdefault(kind, tf.function(score, reduce_retracing=True))


_EVALUATION_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> its traced evaluation functions


class _Adaptation:
    """The scoring function of a `DynamicEvaluation`: scores with the current weights, then one SGD step on
    the masked tokens' mean loss. `restore()` puts the trained weights back."""

    def __init__(self, model, dynamic):
        self.variables = list(model.trainable_variables)
        self.trained = [tf.Variable(tf.identity(variable.value), trainable=False) for variable in self.variables]
        learning_rate, decay = tf.constant(dynamic.learning_rate, tf.float32), tf.constant(dynamic.decay, tf.float32)

        def step(inputs, labels, memory, mask):
            with tf.GradientTape() as tape:
                hidden, new_memory = model.forward_hidden(inputs, memory)
                nll = _nll(model.output_logits(hidden), labels)
                loss = tf.reduce_sum(nll * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
            grads = tape.gradient(loss, self.variables)
            for variable, grad, trained in zip(self.variables, grads, self.trained):
                if grad is None:
                    continue
                variable.assign_sub(learning_rate * tf.cast(tf.convert_to_tensor(grad), variable.dtype))
                if dynamic.decay:
                    variable.assign_add(decay * (trained - variable.value))
            return nll, hidden, new_memory

        self.step = tf.function(step, reduce_retracing=True)

    def restore(self):
        for variable, trained in zip(self.variables, self.trained):
            variable.assign(trained)


def cache_nll(stream, cache):
    """A stream's negative log-likelihoods with a `NeuralCache` mixed in (`stream` as `score_ids` returns
    it, with `hidden`). The cache holds the stream's previous `cache.size` positions: their hidden states
    and the tokens that followed them; a position with an empty cache (the first) keeps the model's."""
    hidden, targets = stream["hidden"], stream["targets"]
    p_model = np.exp(-stream["nll"].astype(np.float64))
    result = np.empty(len(targets), np.float64)
    block = 256
    for start in range(0, len(targets), block):
        stop = min(len(targets), start + block)
        low = max(0, start - cache.size)
        scores = cache.theta * (hidden[start:stop] @ hidden[low:stop].T).astype(np.float64)  # (queries, keys)
        query, key = np.arange(start, stop)[:, None], np.arange(low, stop)[None, :]
        visible = (key < query) & (key >= query - cache.size)
        scores = np.where(visible, scores, -np.inf)
        top = np.max(scores, axis=1, keepdims=True)
        weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
        total = weights.sum(axis=1)
        same = targets[low:stop][None, :] == targets[start:stop][:, None]
        p_cache = (weights * same).sum(axis=1) / np.maximum(total, 1e-300)
        mixed = (1 - cache.mix) * p_model[start:stop] + cache.mix * p_cache
        result[start:stop] = -np.log(np.where(total > 0, mixed, p_model[start:stop]))
    return result


def metrics(loss, tokens, lines, tokenizer, text_tokens=None):
    """Loss, perplexity, bits per character (character models) and word-level perplexity.

    `loss` is the mean over the `tokens` scored; `text_tokens` (default `tokens`) is how many the text has.
    Transformer-XL's contiguous streams leave up to a segment per stream unscored: the word-level figure
    charges those at the mean loss, so that it always covers every word of the text.
    """
    text_tokens = text_tokens or tokens
    result = {"loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 50)), 3), "tokens": tokens,
              "text_tokens": text_tokens}
    words = count_words(lines)
    result["words"] = words
    result["word_perplexity"] = round(math.exp(min(loss * text_tokens / max(words, 1), 50)), 3)
    if tokenizer.kind == "character":
        result["bits_per_character"] = round(loss / math.log(2), 4)
    return result
