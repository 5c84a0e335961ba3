"""Copy attention (pointer-generator, See et al. 2017): the decoder's next-token distribution mixes its
vocabulary distribution with an attention distribution over the source tokens.

    p(w) = p_gen * softmax(logits)(w) + (1 - p_gen) * sum_{i: source_i = w} a_i

`a` is a dedicated single-head attention of the decoder's output features over the encoder's memory and
`p_gen = sigmoid(w . [features; context; embedded input])`.

Which copy: *subword copy over the shared vocabulary*. The source pieces are ids of the one joint
SentencePiece vocabulary the decoder predicts, so copying piece `i` adds its attention weight to that
piece's id. A source word no target ever contained is still made of pieces of that vocabulary (the joint
vocabulary is trained on sources and targets, and SentencePiece falls back to characters), so it can be
copied piece by piece. See et al.'s alternative, an extended per-example vocabulary of source *words* outside
the vocabulary, needs per-batch ids beyond the output layer, a second detokenization path and out-of-
vocabulary bookkeeping in the exported graph; with subwords nothing is outside the vocabulary, the output
stays one `(batch, length, vocabulary)` distribution, and decoding, scoring and export need no change.

The mixture is returned as float32 *log-probabilities* in place of logits: `log_softmax` of them is the
identity (up to the `EPSILON` that keeps `log` finite), so the losses, the beam search and the samplers
take them as they are.

Coverage (See et al. 2017, section 2.3): with `coverage_loss_weight > 0`, training adds
`weight * sum_t sum_i min(a_t,i, c_t,i)` over the target tokens, where `c_t = sum_{t' < t} a_t'` is the
attention so far: attending again to what was already copied costs. It is a layer loss (`add_loss`), a sum
over the batch's target tokens like the cross-entropy sums, which the trainer adds to them.
"""

import keras
import tensorflow as tf
from keras import ops

EPSILON = 1e-9  # added to the mixed probabilities before the log: a token neither generated nor copied


def copy_distribution(weights, source_ids, vocabulary_size):
    """Attention weights over source positions summed per source token id.

    Args:
        weights: float32 `(batch, target_length, source_length)`.
        source_ids: int `(batch, source_length)`.
        vocabulary_size: int.
    Returns:
        float32 `(batch, target_length, vocabulary_size)`.
    """
    batch = tf.shape(weights)[0]
    target_length = tf.shape(weights)[1]
    # one segment per (row, token id): positions holding the same token add up
    segments = tf.cast(source_ids, tf.int32) + tf.range(batch)[:, tf.newaxis] * vocabulary_size
    by_position = tf.reshape(tf.transpose(weights, [0, 2, 1]), [-1, target_length])
    summed = tf.math.unsorted_segment_sum(by_position, tf.reshape(segments, [-1]), batch * vocabulary_size)
    return tf.transpose(tf.reshape(summed, [batch, vocabulary_size, target_length]), [0, 2, 1])


def coverage_loss(weights, target_mask):
    """See et al.'s coverage loss summed over the target tokens: `sum_t sum_i min(a_t,i, c_t,i)`.

    Args:
        weights: float32 `(batch, target_length, source_length)`.
        target_mask: bool `(batch, target_length)`, the real target tokens.
    """
    coverage = tf.math.cumsum(weights, axis=1, exclusive=True)
    per_token = tf.reduce_sum(tf.minimum(weights, coverage), axis=-1)
    return tf.reduce_sum(per_token * tf.cast(target_mask, tf.float32))


@keras.saving.register_keras_serializable(package="tflm")
class CopyAttention(keras.layers.Layer):
    """The copy mechanism of a decoder (see the module).

    Args:
        hidden_dim: int. Width of the copy attention's queries and keys.
        coverage_loss_weight: float. The coverage loss's weight in training (0: none).
    Call arguments:
        features: float `(batch, target_length, features_dim)`, the decoder's outputs before the projection.
        embedded: float `(batch, target_length, embedding_dim)`, the embedded decoder inputs.
        logits: float `(batch, target_length, vocabulary_size)`, the decoder's vocabulary logits.
        static: `static_state(encoded)`'s dict (memory, its keys, mask and the source ids).
        target_mask: optional bool `(batch, target_length)`; with it (in training) the coverage loss is added.
        return_parts: bool. Also return the copy attention and `p_gen` (for tests and inspection).
    Returns:
        float32 log-probabilities `(batch, target_length, vocabulary_size)` (and, with `return_parts`,
        the attention `(batch, target_length, source_length)` and `p_gen` `(batch, target_length)`).
    """

    def __init__(self, hidden_dim, coverage_loss_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.coverage_loss_weight = coverage_loss_weight
        policy = self.dtype_policy
        self.query = keras.layers.Dense(hidden_dim, use_bias=False, dtype=policy, name="query")
        self.key = keras.layers.Dense(hidden_dim, use_bias=False, dtype=policy, name="key")
        # the generation probability's gate reads float32 inputs (a sigmoid near 0 or 1 in bfloat16 is coarse)
        self.gate = keras.layers.Dense(1, dtype="float32", name="generate_gate")

    def build(self, *args, **kwargs):
        self.built = True  # the sub-layers build on first use

    def static_state(self, encoded):
        """What decoding steps reuse: the memory, its projected keys, its mask and the source ids."""
        if "source_ids" not in encoded:
            raise ValueError("copy_attention needs the source token ids among the encoder outputs "
                             "(encoded['source_ids']); EncoderDecoder.encode adds them.")
        return {"copy_memory": encoded["memory"], "copy_keys": self.key(encoded["memory"]),
                "copy_mask": encoded["memory_mask"], "source_ids": encoded["source_ids"]}

    def call(self, features, embedded, logits, static, target_mask=None, return_parts=False, training=False):
        query = self.query(features)
        scores = ops.einsum("btd,bsd->bts", ops.cast(query, "float32"), ops.cast(static["copy_keys"], "float32"))
        scores = scores * (self.hidden_dim ** -0.5)
        scores = ops.where(static["copy_mask"][:, None, :], scores, -1e9)
        weights = ops.softmax(scores, axis=-1)
        context = ops.einsum("bts,bsd->btd", weights, ops.cast(static["copy_memory"], "float32"))
        gate_inputs = ops.concatenate([ops.cast(features, "float32"), context, ops.cast(embedded, "float32")],
                                      axis=-1)
        p_gen = ops.sigmoid(self.gate(gate_inputs))  # (batch, target_length, 1)
        vocabulary_size = ops.shape(logits)[-1]
        generated = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        copied = copy_distribution(weights, static["source_ids"], vocabulary_size)
        log_probs = ops.log(p_gen * generated + (1.0 - p_gen) * copied + EPSILON)
        if training and target_mask is not None and self.coverage_loss_weight:
            self.add_loss(self.coverage_loss_weight * coverage_loss(weights, target_mask))
        if return_parts:
            return log_probs, weights, p_gen[..., 0]
        return log_probs

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "coverage_loss_weight": self.coverage_loss_weight})
        return config
