"""Training losses: what a task minimizes and what it counts.

A loss is an object with

    __call__(labels, outputs) -> (loss_sum, nll_sum, count)   float32 scalars, sums over the batch
    nll(labels, outputs) -> (nll_sum, count)                  the same without label smoothing (evaluation)
    unit                                                      "tokens", "sequences" or "examples": what `count` counts
    perplexity                                                whether exp(mean nll) means something

Sums (not means) are returned so that a distributed or accumulated step divides by the count of the whole
global batch, over all replicas and accumulated batches. `Trainer(loss=...)` takes one; its default is
`TokenCrossEntropy(label_smoothing)`.
"""

import tensorflow as tf

from tflm.text.tokenizers import PAD_ID

UNITS = ("tokens", "sequences", "examples")


def token_cross_entropy(labels, logits, label_smoothing=0.0):
    """Summed token cross-entropy over non-PAD labels, with label smoothing.

    Keras' `SparseCategoricalCrossentropy` has no label smoothing and its one-hot `CategoricalCrossentropy`
    would build a `(batch, length, vocabulary)` target; this computes the smoothed loss from the log-softmax
    directly: `(1 - e) * -log p(y) + e * mean_v(-log p(v))`.

    Sums (not means) are returned so that a distributed step can divide by the global token count.

    Args:
        labels: int `(batch, length)`, PAD where there is no target.
        logits: float `(batch, length, vocabulary_size)`.
        label_smoothing: float in [0, 1).
    Returns:
        `(loss_sum, nll_sum, num_tokens)`: the smoothed loss summed over tokens, the plain negative
        log-likelihood summed over tokens (for perplexity), and the number of tokens (float32).
    """
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    mask = tf.cast(tf.not_equal(labels, PAD_ID), tf.float32)
    nll = -tf.gather(log_probs, tf.cast(labels, tf.int32), batch_dims=2)
    return _smoothed_sums(log_probs, nll, mask, label_smoothing)


def _smoothed_sums(log_probs, nll, mask, label_smoothing):
    nll_sum = tf.reduce_sum(nll * mask)
    if label_smoothing:
        smooth = -tf.reduce_mean(log_probs, axis=-1)
        loss_sum = tf.reduce_sum(((1.0 - label_smoothing) * nll + label_smoothing * smooth) * mask)
    else:
        loss_sum = nll_sum
    return loss_sum, nll_sum, tf.reduce_sum(mask)


class Loss:
    """The interface (see the module docstring). Subclasses set `unit` and `perplexity` and implement
    `sums(labels, outputs, label_smoothing)`."""

    unit = "examples"
    perplexity = False

    def __init__(self, label_smoothing=0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), not {label_smoothing}.")
        self.label_smoothing = float(label_smoothing)

    def sums(self, labels, outputs, label_smoothing):
        """`(loss_sum, nll_sum, count)` with the given label smoothing."""
        raise NotImplementedError

    def __call__(self, labels, outputs):
        return self.sums(labels, outputs, self.label_smoothing)

    def nll(self, labels, outputs):
        """`(nll_sum, count)` without label smoothing: what evaluation reports."""
        _, nll_sum, count = self.sums(labels, outputs, 0.0)
        return nll_sum, count

    def __repr__(self):
        return f"{type(self).__name__}(label_smoothing={self.label_smoothing})"


class TokenCrossEntropy(Loss):
    """Next-token (or target-token) cross-entropy over `(batch, length)` labels; PAD labels (id 0) are not
    targets and not counted. Counts tokens; exp(nll) is the perplexity."""

    unit = "tokens"
    perplexity = True

    def sums(self, labels, outputs, label_smoothing):
        return token_cross_entropy(labels, outputs, label_smoothing)


class ClassCrossEntropy(Loss):
    """Classification cross-entropy: one int class id per example, labels `(batch,)`, logits
    `(batch, classes)`.

    Every class id, 0 included, is a label (0 is not PAD here). A label below 0 (e.g. -1) marks a row that
    is no example (a filler row of a fixed-shape batch): it adds nothing to the loss and is not counted.
    `count` is the number of labelled rows; `unit` says what a row is (`"examples"`, or `"sequences"` for
    sequence classification); exp(nll) is no perplexity.
    """

    perplexity = False

    def __init__(self, label_smoothing=0.0, unit="examples"):
        super().__init__(label_smoothing)
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}.")
        self.unit = unit

    def sums(self, labels, outputs, label_smoothing):
        log_probs = tf.nn.log_softmax(tf.cast(outputs, tf.float32))
        labels = tf.cast(labels, tf.int32)
        tf.debugging.assert_rank(labels, 1, message="ClassCrossEntropy: labels must be class ids of shape (batch,)")
        mask = tf.cast(labels >= 0, tf.float32)
        nll = -tf.gather(log_probs, tf.maximum(labels, 0), batch_dims=1)
        return _smoothed_sums(log_probs, nll, mask, label_smoothing)
