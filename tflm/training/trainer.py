"""A resumable training loop over any tf.distribute strategy.

Keras 3.15's `Model.fit` fails under `MultiWorkerMirroredStrategy`, and its checkpoints cannot resume in
the middle of an epoch; this trainer runs its own step with `strategy.run`, so the same code trains on one
device, on several (Mirrored), on several machines (MultiWorker) and on TPUs.

A run directory holds:

    checkpoints/ckpt-<step>.*   the last `keep_checkpoints` training checkpoints (model, optimizer, progress)
    checkpoints/best/           the model with the lowest validation loss so far
    logs/train, logs/valid      TensorBoard event files
    progress.json               where training stands, for people and scripts

Re-running training on the same run directory resumes from the newest checkpoint. The order of batches
depends only on the seed and the epoch, and a resumed run skips the batches of the current epoch it has
already trained on, so it continues exactly where the interrupted run had checkpointed.
"""

import dataclasses
import json
import logging
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tflm.training.checkpoints import (
    CarriedState,
    ModelVariables,
    checkpoint_paths,
    has_carried_state,
    model_checkpoint,
    restore_latest,
)
from tflm.training.losses import token_cross_entropy

logger = logging.getLogger("tflm")


@dataclasses.dataclass
class TrainResult:
    """What a `Trainer.fit` call achieved."""

    step: int
    epoch: int
    train_seconds: float
    target_tokens: int
    best_valid_loss: float
    last_valid_loss: float
    stopped_by: str  # "epochs", "max_steps", "time_budget" or "already_done"

    @property
    def tokens_per_second(self):
        return self.target_tokens / self.train_seconds if self.train_seconds else 0.0


class Trainer:
    """Trains a model whose `call(inputs, training)` returns logits for `labels`, with masked cross-entropy.

    Args:
        model: a Keras model, created under `strategy.scope()`.
        optimizer: a Keras optimizer, created under `strategy.scope()` (with its learning-rate schedule).
        run_dir: str. Where checkpoints, logs and progress go.
        strategy: a `tf.distribute.Strategy`; default: the current one.
        label_smoothing: float.
        clip_norm: float or None. Clip the global gradient norm (of the all-reduced gradient).
        keep_checkpoints: int. Training checkpoints to keep.
        checkpoint_every_steps: int or None. Also checkpoint every so many steps (always at epoch ends).
        checkpoint_every_seconds: float or None. Also checkpoint every so many seconds of training.
        log_every_steps: int. TensorBoard and log-file interval.
        save_every_epoch: bool. Checkpoint at the end of every epoch (turn off for tiny datasets).
        jit_compile: bool. XLA-compile the forward and backward pass (one compilation per batch shape:
            use `Batching(fixed_shapes=True)`).
        verbose: bool. Show a progress bar on the console.
    Example:
    >>> trainer = Trainer(model, keras.optimizers.Adam(1e-3), "runs/demo", label_smoothing=0.1)
    >>> trainer.fit(lambda epoch: make_dataset(epoch), epochs=10, valid_data=valid_dataset)
    """

    def __init__(self, model, optimizer, run_dir, strategy=None, label_smoothing=0.0, clip_norm=None,
                 keep_checkpoints=5, checkpoint_every_steps=None, checkpoint_every_seconds=600.0,
                 log_every_steps=50, save_every_epoch=True, jit_compile=False, verbose=True):
        self.model = model
        self.optimizer = optimizer
        self.run_dir = run_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.label_smoothing = label_smoothing
        self.clip_norm = clip_norm
        self.checkpoint_every_steps = checkpoint_every_steps
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.log_every_steps = log_every_steps
        self.save_every_epoch = save_every_epoch
        self.jit_compile = jit_compile
        self._compiled_gradients = tf.function(self._gradients, jit_compile=True) if jit_compile else self._gradients
        self.verbose = verbose
        self.checkpoint_dir = os.path.join(run_dir, "checkpoints")
        self.best_dir = os.path.join(self.checkpoint_dir, "best")
        self._is_chief = _is_chief(self.strategy)

        with self.strategy.scope():
            if not model.built:
                model.build()
            optimizer.build(model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
            self.target_tokens = tf.Variable(0, dtype=tf.int64, trainable=False, name="target_tokens")
            self.best_valid_loss = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_valid")
        state = dict(model=ModelVariables(model), optimizer=optimizer, epoch=self.epoch,
                     step_in_epoch=self.step_in_epoch, train_seconds=self.train_seconds,
                     target_tokens=self.target_tokens, best_valid_loss=self.best_valid_loss)
        self.checkpoint = tf.train.Checkpoint(carried=CarriedState(model), **state)
        self._checkpoint_without_carried_state = tf.train.Checkpoint(**state)  # to resume older runs
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, _worker_dir(self.checkpoint_dir, self._is_chief), max_to_keep=keep_checkpoints,
            checkpoint_name="ckpt",
        )
        self.best_manager = tf.train.CheckpointManager(
            model_checkpoint(model), _worker_dir(self.best_dir, self._is_chief), max_to_keep=1,
            checkpoint_name="best",
        )
        self._train_step = None
        self._batch_step = None
        self._eval_step = None
        self.writers = None

    # ---------------------------------------------------------------- steps

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())

    def _gradients(self, inputs, labels):
        """Forward and backward pass on one replica's batch: summed losses, token count, gradients of the
        summed (and, for float16, loss-scaled) loss. Pure computation, so it can be XLA-compiled."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(inputs, training=True)
            loss_sum, nll_sum, tokens = token_cross_entropy(labels, logits, self.label_smoothing)
            scaled_loss = self.optimizer.scale_loss(loss_sum)
        grads = tape.gradient(scaled_loss, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        return loss_sum, nll_sum, tokens, grads

    def _replica_train_step(self, inputs, labels):
        replica = tf.distribute.get_replica_context()
        loss_sum, nll_sum, tokens, grads = self._compiled_gradients(inputs, labels)
        # The loss is a mean over the tokens of the global batch: divide by the token count of all replicas.
        global_tokens = tf.maximum(replica.all_reduce(tf.distribute.ReduceOp.SUM, tokens), 1.0)
        grads = [g / tf.cast(global_tokens, g.dtype) for g in grads]
        if self.clip_norm:
            # Keras' optimizer clips each replica's partial gradient before summing them; clipping must see
            # the full gradient, so sum it here, clip it, and hand each replica 1/N of it for the
            # optimizer's own sum.
            grads = replica.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            loss_scale = getattr(self.optimizer, "dynamic_scale", None)
            unscale = 1.0 if loss_scale is None else 1.0 / tf.cast(loss_scale, tf.float32)
            norm = tf.linalg.global_norm(grads) * unscale
            factor = tf.minimum(1.0, self.clip_norm / tf.maximum(norm, 1e-12))
            grads = [g * tf.cast(factor / replica.num_replicas_in_sync, g.dtype) for g in grads]
        else:
            norm = tf.linalg.global_norm(grads)  # of this replica's part: logged only
        self.optimizer.apply(grads, self.model.trainable_variables)
        return loss_sum, nll_sum, tokens, norm

    def _distribute(self, dataset):
        """`dataset`'s batches spread over the replicas, each global batch one batch of `dataset`.

        On one machine, tf.distribute splits each batch over the local replicas. Across workers its default
        (auto-sharding by data) would instead give each worker different whole batches, so that a step
        trained on as many batches as there are workers and a run took other steps than on one device.
        Here each worker takes its replicas' rows of every batch (rows `r::replicas` for global replica `r`),
        with auto-sharding off: a run takes the same steps, on the same global batches, under any strategy
        (tested against one device), and resumes the same way.
        """
        if _worker_count(self.strategy) <= 1:
            return self.strategy.experimental_distribute_dataset(dataset)
        replicas = self.strategy.num_replicas_in_sync

        def per_worker(context):
            local = replicas // context.num_input_pipelines
            first = context.input_pipeline_id * local

            def rows(*batch):
                parts = [tf.data.Dataset.from_tensors(tf.nest.map_structure(lambda t: t[first + r::replicas], batch))
                         for r in range(local)]
                for part in parts[1:]:
                    parts[0] = parts[0].concatenate(part)
                return parts[0]

            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            return dataset.flat_map(rows).with_options(options)

        return self.strategy.distribute_datasets_from_function(per_worker)

    def _make_train_step(self, element_spec=None):
        """The distributed train step, traced once for `element_spec` (or, without one, for relaxed shapes)."""
        decorate = (tf.function(input_signature=[element_spec]) if element_spec is not None
                    else tf.function(reduce_retracing=True))

        @decorate
        def train_step(batch):
            loss_sum, nll_sum, tokens, norm = self.strategy.run(self._replica_train_step, args=batch)
            reduce = lambda x: self.strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None)  # noqa: E731
            norm = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
            return reduce(loss_sum), reduce(nll_sum), reduce(tokens), norm

        return train_step

    def train_on_batch(self, inputs, labels):
        """One optimizer step on one global batch (split over the replicas); returns its statistics."""
        batch = next(iter(self._distribute(tf.data.Dataset.from_tensors((inputs, labels)))))
        if self._batch_step is None:
            self._batch_step = self._make_train_step()
        loss_sum, nll_sum, tokens, norm = self._batch_step(batch)
        tokens = float(tokens)
        return {"loss": float(loss_sum) / tokens, "nll": float(nll_sum) / tokens, "tokens": tokens,
                "gradient_norm": float(norm)}

    def _replica_eval_step(self, inputs, labels):
        logits = self.model(inputs, training=False)
        _, nll_sum, tokens = token_cross_entropy(labels, logits)
        return nll_sum, tokens

    def evaluate(self, dataset):
        """Mean token negative log-likelihood (no label smoothing) over `dataset`, and the token count."""
        distributed = self._distribute(dataset)
        if self._eval_step is None:
            @tf.function(input_signature=[distributed.element_spec])
            def eval_step(batch):
                nll_sum, tokens = self.strategy.run(self._replica_eval_step, args=batch)
                reduce = lambda x: self.strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None)  # noqa: E731
                return reduce(nll_sum), reduce(tokens)

            self._eval_step = eval_step
        total_nll, total_tokens = 0.0, 0.0
        for batch in distributed:
            nll_sum, tokens = self._eval_step(batch)
            total_nll += float(nll_sum)
            total_tokens += float(tokens)
        return total_nll / max(total_tokens, 1.0), total_tokens

    # ---------------------------------------------------------------- loop

    def restore(self):
        """Restores the newest checkpoint of the run, if any; returns its path.

        Everything a resumed run needs is inside the checkpoint (weights, optimizer, epoch, step in epoch,
        training time, tokens, best validation loss, the dropout generators' states and any state the model
        carries between batches): `progress.json` is never read back. It is rewritten
        from the restored state here, so a kill between a checkpoint and its `progress.json` leaves, after
        the resume, a `progress.json` that describes the checkpoint training continues from.
        """
        paths = checkpoint_paths(self.checkpoint_dir)
        checkpoint = self.checkpoint
        try:
            if paths and not has_carried_state(paths[-1]):
                checkpoint = self._checkpoint_without_carried_state
                logger.warning("%s was written by an older tflm without the random generators' state: training "
                               "resumes, but its dropout masks will differ from an uninterrupted run's.", paths[-1])
        except Exception:  # noqa: BLE001  (an unreadable newest checkpoint: restore_latest reports it)
            pass
        path = restore_latest(checkpoint, self.checkpoint_dir)
        if path:
            self._write_progress()
            logger.info(
                "Resuming from %s: step %d, epoch %d, %d batches into the epoch",
                path, self.step, int(self.epoch.numpy()), int(self.step_in_epoch.numpy()),
            )
        return path

    def save(self):
        """Saves a training checkpoint. Its commit point is one atomic step: TensorFlow writes the
        checkpoint's files first and then replaces the `checkpoint` index file by a rename, so a kill at any
        moment leaves either the previous checkpoint or this one, each whole, with its progress variables
        inside it. `progress.json` (for people and scripts) is a copy of those variables, written after."""
        path = self.manager.save(checkpoint_number=self.step)
        self._write_progress()
        logger.info("Saved checkpoint %s", path)
        return path

    def fit(self, train_data, epochs=None, max_steps=None, time_budget=None, valid_data=None,
            steps_per_epoch=None, on_epoch_end=None, on_epoch_start=None):
        """Trains until `epochs` epochs, `max_steps` optimizer steps or `time_budget` seconds of training
        (counted across resumptions), whichever comes first; resumes from the run's newest checkpoint.

        Args:
            train_data: a function `epoch -> tf.data.Dataset` of `(inputs, labels)` batches, whose order
                depends only on `epoch`.
            epochs, max_steps, time_budget: stopping criteria (at least one).
            valid_data: optional `tf.data.Dataset` for the validation loss after each epoch, or a callable
                returning `(mean loss, tokens)` (for models evaluated their own way).
            steps_per_epoch: optional int, for the progress bar.
            on_epoch_end: optional callable `(trainer, epoch, valid_loss) -> None`, e.g. to log samples.
            on_epoch_start: optional callable `(trainer, epoch) -> None`, e.g. to reset carried state; called
                where an epoch starts from its first batch (not where a resumed run continues one).
        Returns:
            A `TrainResult`.
        """
        if not (epochs or max_steps or time_budget):
            raise ValueError("Give at least one of epochs, max_steps and time_budget, or training never stops.")
        self.restore()
        self.writers = self.writers or _summary_writers(self.run_dir, self._is_chief)
        stopped_by, last_valid = self._done_reason(epochs, max_steps, time_budget), math.nan
        if stopped_by:
            logger.info("Nothing to do: training already reached its %s.", stopped_by.replace("_", " "))
            return self._result("already_done", last_valid)
        logger.info("Training with %s on %d replica(s), %s", type(self.strategy).__name__,
                    self.strategy.num_replicas_in_sync, type(self.optimizer).__name__)
        last_save = time.monotonic()
        while not stopped_by:
            epoch = int(self.epoch.numpy())
            skip = int(self.step_in_epoch.numpy())
            dataset = train_data(epoch)
            if skip:
                dataset = dataset.skip(skip)
            distributed = self._distribute(dataset)
            if self._train_step is None:
                self._train_step = self._make_train_step(distributed.element_spec)
            if on_epoch_start is not None and not skip:  # a resumed epoch continues with the restored state
                on_epoch_start(self, epoch)
            progress = _ProgressBar(epoch, steps_per_epoch, skip, self.verbose)
            window = _Window()
            epoch_finished = True
            started = time.monotonic()  # step time includes waiting for data, not saving or validating
            for batch in distributed:
                loss_sum, nll_sum, tokens, norm = self._train_step(batch)
                loss_sum, nll_sum, tokens = float(loss_sum), float(nll_sum), float(tokens)
                if not math.isfinite(loss_sum):
                    self._write_progress()
                    raise FloatingPointError(
                        f"The training loss became {loss_sum} at step {self.step}. Lower the learning rate or "
                        f"set a gradient clip norm; the run resumes from its last checkpoint in {self.run_dir}."
                    )
                elapsed = time.monotonic() - started
                self.train_seconds.assign_add(elapsed)
                self.target_tokens.assign_add(int(tokens))
                self.step_in_epoch.assign_add(1)
                window.add(loss_sum, nll_sum, tokens, elapsed, float(norm))
                progress.update(window)
                if self.step % self.log_every_steps == 0:
                    self._log_train(window)
                    window = _Window()
                stopped_by = self._done_reason(None, max_steps, time_budget)
                if stopped_by:
                    epoch_finished = False
                    break
                if (self.checkpoint_every_steps and self.step % self.checkpoint_every_steps == 0) or (
                    self.checkpoint_every_seconds and time.monotonic() - last_save >= self.checkpoint_every_seconds
                ):
                    self.save()
                    last_save = time.monotonic()
                started = time.monotonic()
            progress.close()
            if window.steps:
                self._log_train(window)  # the steps since the last log line
            if epoch_finished:
                self.epoch.assign_add(1)
                self.step_in_epoch.assign(0)
            stopped_by = stopped_by or self._done_reason(epochs, max_steps, time_budget)
            if valid_data is not None:
                last_valid = self._validate(valid_data)
            if stopped_by or (epoch_finished and self.save_every_epoch):
                self.save()
                last_save = time.monotonic()
            if on_epoch_end is not None:
                on_epoch_end(self, epoch, last_valid)
        for writer in self.writers.values():
            writer.flush()
        return self._result(stopped_by, last_valid)

    # ---------------------------------------------------------------- helpers

    def _done_reason(self, epochs, max_steps, time_budget):
        if max_steps and self.step >= max_steps:
            return "max_steps"
        if time_budget and float(self.train_seconds.numpy()) >= time_budget:
            return "time_budget"
        if epochs and int(self.epoch.numpy()) >= epochs:
            return "epochs"
        return None

    def _validate(self, valid_data):
        started = time.monotonic()
        loss, tokens = valid_data() if callable(valid_data) else self.evaluate(valid_data)
        improved = loss < float(self.best_valid_loss.numpy())
        if improved:
            self.best_valid_loss.assign(loss)
            self.best_manager.save(checkpoint_number=self.step)
        logger.info(
            "step %d: valid loss %.4f, perplexity %.2f over %d tokens (%.1fs)%s",
            self.step, loss, _perplexity(loss), tokens, time.monotonic() - started,
            " (best so far: saved)" if improved else "",
        )
        with self.writers["valid"].as_default(step=self.step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("perplexity", _perplexity(loss))
        return loss

    def _log_train(self, window):
        if not window.tokens:
            return
        learning_rate = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
        logger.info(
            "step %d: loss %.4f, perplexity %.2f, lr %.3g, %.0f target tokens/s, grad norm %.3g",
            self.step, window.loss, _perplexity(window.nll), learning_rate, window.tokens_per_second,
            window.norm,
        )
        with self.writers["train"].as_default(step=self.step):
            tf.summary.scalar("loss", window.loss)
            tf.summary.scalar("perplexity", _perplexity(window.nll))
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("tokens_per_second", window.tokens_per_second)
            tf.summary.scalar("gradient_norm", window.norm)

    def _result(self, stopped_by, last_valid):
        self._write_progress()
        return TrainResult(
            step=self.step,
            epoch=int(self.epoch.numpy()),
            train_seconds=float(self.train_seconds.numpy()),
            target_tokens=int(self.target_tokens.numpy()),
            best_valid_loss=float(self.best_valid_loss.numpy()),
            last_valid_loss=last_valid,
            stopped_by=stopped_by,
        )

    def _write_progress(self):
        if not self._is_chief:
            return
        progress = {
            "step": self.step,
            "epoch": int(self.epoch.numpy()),
            "step_in_epoch": int(self.step_in_epoch.numpy()),
            "train_seconds": round(float(self.train_seconds.numpy()), 1),
            "target_tokens": int(self.target_tokens.numpy()),
            "best_valid_loss": float(self.best_valid_loss.numpy()),
        }
        os.makedirs(self.run_dir, exist_ok=True)
        temporary = os.path.join(self.run_dir, "progress.json.tmp")
        with open(temporary, "w") as f:
            json.dump(progress, f, indent=1)
        os.replace(temporary, os.path.join(self.run_dir, "progress.json"))


def _perplexity(loss):
    return math.exp(min(loss, 50.0))


class _Window:
    """Training statistics since the last log line."""

    def __init__(self):
        self.loss_sum = self.nll_sum = self.tokens = self.seconds = self.norm = 0.0
        self.steps = 0

    def add(self, loss_sum, nll_sum, tokens, seconds, norm):
        self.loss_sum += loss_sum
        self.nll_sum += nll_sum
        self.tokens += tokens
        self.seconds += seconds
        self.norm = norm
        self.steps += 1

    @property
    def loss(self):
        return self.loss_sum / max(self.tokens, 1.0)

    @property
    def nll(self):
        return self.nll_sum / max(self.tokens, 1.0)

    @property
    def tokens_per_second(self):
        return self.tokens / max(self.seconds, 1e-9)


class _ProgressBar:
    """A Keras progress bar on an interactive console (log lines serve files and pipes)."""

    def __init__(self, epoch, steps_per_epoch, skipped, verbose):
        self.bar = None
        if verbose and sys.stdout.isatty():
            print(f"Epoch {epoch + 1}" + (f" (resuming after {skipped} batches)" if skipped else ""))
            self.bar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss", "ppl", "tok/s"])
            self.count = skipped
            if skipped:
                self.bar.update(skipped)

    def update(self, window):
        if self.bar is None:
            return
        self.count += 1
        self.bar.update(self.count, [("loss", window.loss), ("ppl", _perplexity(window.nll)),
                                     ("tok/s", window.tokens_per_second)])

    def close(self):
        if self.bar is not None and self.bar.target is None:
            self.bar.update(self.count, finalize=True)


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )


def _worker_count(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return sum(len(jobs.get(job, [])) for job in ("chief", "worker")) or 1


def _worker_dir(directory, is_chief):
    # Under MultiWorkerMirroredStrategy every worker must save (the save is a collective), but only the
    # chief's files are kept; the others write to a scratch folder outside the run directory.
    if is_chief:
        return directory
    import tempfile

    return tempfile.mkdtemp(prefix="tflm-worker-checkpoints-")


def _summary_writers(run_dir, is_chief):
    if not is_chief:
        return {name: tf.summary.create_noop_writer() for name in ("train", "valid")}
    return {name: tf.summary.create_file_writer(os.path.join(run_dir, "logs", name)) for name in ("train", "valid")}


def set_seed(seed):
    """Seeds Python, NumPy, TensorFlow and Keras (called by the CLI and recipes, never at import)."""
    keras.utils.set_random_seed(seed)
    np.random.seed(seed)
