import tensorflow as tf

from tflm.text.tokenizers import PAD_ID


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
    nll_sum = tf.reduce_sum(nll * mask)
    if label_smoothing:
        smooth = -tf.reduce_mean(log_probs, axis=-1)
        loss_sum = tf.reduce_sum(((1.0 - label_smoothing) * nll + label_smoothing * smooth) * mask)
    else:
        loss_sum = nll_sum
    return loss_sum, nll_sum, tf.reduce_sum(mask)
