"""Training losses: what a task minimizes and what it counts.

A loss is an object with

    __call__(labels, outputs) -> (loss_sum, nll_sum, count)   float32 scalars, sums over the batch
    nll(labels, outputs) -> (nll_sum, count)                  the same without label smoothing (evaluation)
    unit                                                      what `count` counts: "tokens", "words", "sequences"
                                                              or "examples"
    has_perplexity                                            whether exp(mean nll) is a perplexity worth reporting

The trainer reports in the loss's unit: `<unit>_per_second` in the log, TensorBoard, `progress.json` and the
`TrainResult`; a perplexity only where `has_perplexity` (a token or word cross-entropy, not a class loss).

Sums (not means) are returned so that a distributed or accumulated step divides by the count of the whole
global batch, over all replicas and accumulated batches. `Trainer(loss=...)` takes one; its default is
`TokenCrossEntropy(label_smoothing)`.
"""

import tensorflow as tf

from tflm.text.special_tokens import PAD_ID

UNITS = ("tokens", "words", "sequences", "examples")


def token_cross_entropy(labels, logits, label_smoothing=0.0):
    """Summed token cross-entropy over non-PAD labels, with label smoothing.

    Keras' `SparseCategoricalCrossentropy` has no label smoothing and its one-hot `CategoricalCrossentropy`
    would build a `(batch, length, vocabulary)` target; this computes the smoothed loss from the log-softmax
    directly: `(1 - e) * -log p(y) + e * mean_v(-log p(v))`, with its gradient written out
    (`smoothed_cross_entropy_sums`).

    Sums (not means) are returned so that a distributed step can divide by the global token count.

    Args:
        labels: int `(batch, length)`, PAD where there is no target.
        logits: float `(batch, length, vocabulary_size)`.
        label_smoothing: float in [0, 1).
    Returns:
        `(loss_sum, nll_sum, num_tokens)`: the smoothed loss summed over tokens, the plain negative
        log-likelihood summed over tokens (for perplexity), and the number of tokens (float32).
    """
    labels = tf.cast(labels, tf.int32)
    mask = tf.cast(tf.not_equal(labels, PAD_ID), tf.float32)
    loss_sum, nll_sum = smoothed_cross_entropy_sums(tf.cast(logits, tf.float32), labels, mask, label_smoothing)
    return loss_sum, nll_sum, tf.reduce_sum(mask)


def smoothed_cross_entropy_sums(logits, labels, weights, label_smoothing):
    """`(sum_t w_t * ((1 - e) * -log p_t(y_t) + e * mean_v(-log p_t(v))), sum_t w_t * -log p_t(y_t))` for
    float32 logits `(..., vocabulary)`, int labels `(...)` and weights `(...)`.

    The gradient is written out, `w * (softmax - (1 - e) * one_hot(y) - e / V)`: TensorFlow's own gradient
    of `tf.gather(log_probs, labels, batch_dims=2)` scatters into the whole `(batch, length, vocabulary)`
    tensor with an `UnsortedSegmentSum`, the costliest op of a training step after the matmuls (measured:
    the loss's forward and backward pass took 80 ms instead of 110-130 ms at 3,584 tokens x 8k
    vocabulary on 2 cores).
    """
    smoothing = float(label_smoothing)

    @tf.custom_gradient
    def sums(x):
        log_probs = x - tf.reduce_logsumexp(x, axis=-1, keepdims=True)
        nll = -tf.gather(log_probs, labels, batch_dims=labels.shape.rank)
        nll_sum = tf.reduce_sum(nll * weights)
        if smoothing:
            loss_sum = tf.reduce_sum(((1.0 - smoothing) * nll - smoothing * tf.reduce_mean(log_probs, axis=-1))
                                     * weights)
        else:
            loss_sum = nll_sum

        def grad(d_loss, d_nll):
            # d(loss_sum)/dx = w (p - (1 - e) onehot - e / V); d(nll_sum)/dx = w (p - onehot)
            loss_weights = (d_loss * weights)[..., tf.newaxis]
            nll_weights = (d_nll * weights)[..., tf.newaxis]
            one_hot = tf.one_hot(labels, tf.shape(x)[-1], dtype=x.dtype)
            uniform = smoothing / tf.cast(tf.shape(x)[-1], x.dtype)
            return ((loss_weights + nll_weights) * tf.exp(log_probs)
                    - ((1.0 - smoothing) * loss_weights + nll_weights) * one_hot - uniform * loss_weights)

        return (loss_sum, nll_sum), grad

    return sums(logits)


class Loss:
    """The interface (see the module docstring). Subclasses set `unit` and `has_perplexity` and implement
    `sums(labels, outputs, label_smoothing)`."""

    unit = "examples"
    has_perplexity = False

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
    has_perplexity = True

    def sums(self, labels, outputs, label_smoothing):
        return token_cross_entropy(labels, outputs, label_smoothing)


class ClassCrossEntropy(Loss):
    """Classification cross-entropy: one int class id per example, labels `(batch,)`, logits
    `(batch, classes)`.

    Every class id, 0 included, is a label (0 is not PAD here). A label below 0 (e.g. -1) marks a row that
    is no example (a filler row of a fixed-shape batch): it adds nothing to the loss and is not counted.
    `count` is the number of labelled rows; `unit` says what a row is (`"examples"`, `"sequences"` for
    sequence classification, `"words"` for one class per word); exp(nll) is no perplexity.
    """

    has_perplexity = False

    def __init__(self, label_smoothing=0.0, unit="examples"):
        super().__init__(label_smoothing)
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}.")
        self.unit = unit

    def sums(self, labels, outputs, label_smoothing):
        labels = tf.cast(labels, tf.int32)
        tf.debugging.assert_rank(labels, 1, message="ClassCrossEntropy: labels must be class ids of shape (batch,)")
        mask = tf.cast(labels >= 0, tf.float32)
        loss_sum, nll_sum = smoothed_cross_entropy_sums(tf.cast(outputs, tf.float32), tf.maximum(labels, 0), mask,
                                                        label_smoothing)
        return loss_sum, nll_sum, tf.reduce_sum(mask)
