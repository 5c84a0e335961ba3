"""The distributed computations of a training run: the train step, gradient accumulation, the eval step.

Gradient accumulation (`accumulation_steps=K`) takes one optimizer step per K consecutive batches of the
dataset: each batch adds its gradient of the *summed* loss, and its count, to float32 variables (one per
trainable variable, replica-local: `tf.VariableSynchronization.ON_READ`, created under the strategy's
scope); after the K-th batch, the apply step all-reduces them, divides by the count of all K batches over
all replicas, clips the full gradient and applies it. So K batches of B rows take exactly the step of one
batch of K*B rows. Variables rather than one function over K batches: one batch at a time is in memory
(which is the point of accumulating), batches of different shapes need no padding to a common one, and
the K=1 step stays the fused step it was. The sums cost one float32 copy of the trainable weights per
replica; they are never checkpointed (the trainer checkpoints only between optimizer steps).
"""

import numpy as np
import tensorflow as tf

from tflm.training.strategies import distribute_dataset

_SUM, _MEAN = tf.distribute.ReduceOp.SUM, tf.distribute.ReduceOp.MEAN


def accumulation_steps_for(effective_batch, batch_size, replicas=1):
    """The batches to accumulate per optimizer step so that a step trains on at least `effective_batch`
    examples (or tokens): `ceil(effective_batch / (batch_size * replicas))`, at least 1; 1 for None.

    `batch_size * replicas` is what one step trains on without accumulation. `Trainer` splits each batch
    of the dataset over the replicas, so pass the dataset's batch size with `replicas=1`, or a batch size
    per replica with the number of replicas.
    """
    if effective_batch is None:
        return 1
    for name, value in (("effective_batch", effective_batch), ("batch_size", batch_size), ("replicas", replicas)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"accumulation_steps_for: {name} must be a positive integer, not {value!r}.")
    return max(1, -(-int(effective_batch) // (int(batch_size) * int(replicas))))


class TrainSteps:
    """The train, accumulate, apply and eval steps of `model` under `strategy`, with `loss`.

    `train_batch(batch)` trains on one distributed batch: an optimizer step, or with accumulation one more
    batch accumulated (`pending` counts them) and a step after every `accumulation_steps`-th. Build the
    steps for the dataset's element spec first (`build`).
    """

    def __init__(self, model, optimizer, strategy, loss, clip_norm=None, accumulation_steps=1, jit_compile=False):
        self.model, self.optimizer, self.strategy, self.loss = model, optimizer, strategy, loss
        self.clip_norm = clip_norm
        self.accumulation_steps = accumulation_steps
        self._compiled_gradients = tf.function(self._gradients, jit_compile=True) if jit_compile else self._gradients
        self.pending = 0  # batches accumulated since the last optimizer step
        self._train_step = self._accumulate_step = self._apply_step = self._reset_step = None
        self._batch_step = self._eval_step = None
        if accumulation_steps > 1:
            local = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.SUM)
            with strategy.scope():
                self._accumulated = [tf.Variable(tf.zeros(v.shape, tf.float32), name="accumulated_gradient", **local)
                                     for v in model.trainable_variables]
                self._accumulated_count = tf.Variable(0.0, name="accumulated_count", **local)

    # ---------------------------------------------------------------- in a replica

    def _gradients(self, inputs, labels):
        """Forward and backward pass on one replica's batch: summed losses, count, gradients of the summed
        (and, for float16, loss-scaled) loss. Pure computation, so it can be XLA-compiled."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.model(inputs, training=True)
            loss_sum, nll_sum, count = self.loss(labels, outputs)
            if self.model.losses:  # layer losses (add_loss, e.g. a coverage loss): sums over the batch too
                loss_sum += tf.add_n([tf.cast(extra, tf.float32) for extra in self.model.losses])
            scaled_loss = self.optimizer.scale_loss(loss_sum)
        grads = tape.gradient(scaled_loss, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        return loss_sum, nll_sum, count, grads

    def _apply_gradients(self, grads, count):
        """Divides this replica's summed gradients by the count of the global batch (all replicas), clips
        the full gradient, applies it; returns the gradient norm."""
        replica = tf.distribute.get_replica_context()
        # The loss is a mean over the global batch: divide by the count of all replicas.
        global_count = tf.maximum(replica.all_reduce(_SUM, count), 1.0)
        grads = [g / tf.cast(global_count, g.dtype) for g in grads]
        if self.clip_norm:
            # Keras' optimizer clips each replica's partial gradient before summing them; clipping must see
            # the full gradient, so sum it here, clip it, and hand each replica 1/N of it for the
            # optimizer's own sum.
            grads = replica.all_reduce(_SUM, grads)
            loss_scale = getattr(self.optimizer, "dynamic_scale", None)
            unscale = 1.0 if loss_scale is None else 1.0 / tf.cast(loss_scale, tf.float32)
            norm = tf.linalg.global_norm(grads) * unscale
            factor = tf.minimum(1.0, self.clip_norm / tf.maximum(norm, 1e-12))
            grads = [g * tf.cast(factor / replica.num_replicas_in_sync, g.dtype) for g in grads]
        else:
            norm = tf.linalg.global_norm(grads)  # of this replica's part: logged only
        self.optimizer.apply(grads, self.model.trainable_variables)
        return norm

    def _replica_train_step(self, inputs, labels):
        loss_sum, nll_sum, count, grads = self._compiled_gradients(inputs, labels)
        return loss_sum, nll_sum, count, self._apply_gradients(grads, count)

    def _replica_accumulate(self, inputs, labels):
        loss_sum, nll_sum, count, grads = self._compiled_gradients(inputs, labels)
        for total, grad in zip(self._accumulated, grads):
            total.assign_add(tf.cast(tf.convert_to_tensor(grad), tf.float32))
        self._accumulated_count.assign_add(count)
        return loss_sum, nll_sum, count

    def _replica_apply_accumulated(self):
        variables = self.model.trainable_variables
        grads = [tf.cast(tf.identity(total), v.dtype) for total, v in zip(self._accumulated, variables)]
        norm = self._apply_gradients(grads, tf.identity(self._accumulated_count))
        with tf.control_dependencies([norm, *grads]):
            self._replica_reset()
        return norm

    def _replica_reset(self):
        for total in self._accumulated:
            total.assign(tf.zeros_like(total))
        self._accumulated_count.assign(0.0)
        return tf.constant(0)

    def _replica_eval_step(self, inputs, labels):
        return self.loss.nll(labels, self.model(inputs, training=False))

    # ---------------------------------------------------------------- distributed

    def distribute(self, dataset):
        return distribute_dataset(self.strategy, dataset)

    def _make_step(self, replica_step, element_spec=None, with_norm=True):
        """`replica_step` as a distributed step, traced once for `element_spec` (or, without one, for relaxed
        shapes): its sums summed over the replicas, and `with_norm` its last result (the gradient norm)
        averaged."""
        decorate = (tf.function(input_signature=[element_spec]) if element_spec is not None
                    else tf.function(reduce_retracing=True))

        @decorate
        def step(batch):
            results = self.strategy.run(replica_step, args=batch)
            sums = tuple(self.strategy.reduce(_SUM, x, axis=None) for x in (results[:-1] if with_norm else results))
            return sums + ((self.strategy.reduce(_MEAN, results[-1], axis=None),) if with_norm else ())

        return step

    def build(self, element_spec):
        """Traces the steps of `fit` for batches of `element_spec` (once; later calls keep them)."""
        if self.accumulation_steps == 1:
            self._train_step = self._train_step or self._make_step(self._replica_train_step, element_spec)
        elif self._accumulate_step is None:
            self._accumulate_step = self._make_step(self._replica_accumulate, element_spec, with_norm=False)
            self._apply_step = tf.function(lambda: self.strategy.reduce(
                _MEAN, self.strategy.run(self._replica_apply_accumulated), axis=None))
            self._reset_step = tf.function(lambda: self.strategy.run(self._replica_reset))

    def train_batch(self, batch):
        """Trains on one distributed batch: `(loss_sum, nll_sum, count, gradient norm)` as floats, the norm
        None while the batch was only accumulated."""
        if self.accumulation_steps == 1:
            loss_sum, nll_sum, count, norm = (float(x) for x in self._train_step(batch))
            return loss_sum, nll_sum, count, norm
        loss_sum, nll_sum, count = (float(x) for x in self._accumulate_step(batch))
        self.pending += 1
        return loss_sum, nll_sum, count, self.apply_accumulated() if self.pending == self.accumulation_steps else None

    def apply_accumulated(self):
        """The optimizer step on the batches accumulated so far (normalized by their own count); its norm."""
        self.pending = 0
        return float(self._apply_step())

    def discard_accumulated(self):
        if self.pending:
            self._reset_step()
            self.pending = 0

    def train_on_batch(self, batch):
        """One optimizer step on one distributed batch, never accumulated: `(loss_sum, nll_sum, count, norm)`."""
        if self._batch_step is None:
            self._batch_step = self._make_step(self._replica_train_step)
        return tuple(float(x) for x in self._batch_step(batch))

    def eval_batch(self, batch, element_spec):
        """`(nll_sum, count)` of one distributed batch (the step is traced for `element_spec` once)."""
        if self._eval_step is None:
            self._eval_step = self._make_step(self._replica_eval_step, element_spec, with_norm=False)
        return tuple(float(x) for x in self._eval_step(batch))
