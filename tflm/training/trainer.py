"""A resumable training loop over any tf.distribute strategy.

Keras 3.15's `Model.fit` fails under `MultiWorkerMirroredStrategy`, and its checkpoints cannot resume in
the middle of an epoch; this trainer runs its own step with `strategy.run`, so the same code trains on one
device, on several (Mirrored), on several machines (MultiWorker) and on TPUs.

A run directory holds:

    checkpoints/ckpt-<step>.*   the last `keep_checkpoints` training checkpoints (model, optimizer, progress)
    checkpoints/best/           the model with the lowest validation loss so far
    logs/train, logs/valid      TensorBoard event files (and logs/ itself the HParams, see `reporting`)
    progress.json               where training stands, for people and scripts

Re-running training on the same run directory resumes from the newest checkpoint. The order of batches
depends only on the seed and the epoch, and a resumed run skips the batches of the current epoch it has
already trained on, so it continues exactly where the interrupted run had checkpointed.

The task's loss (`tflm.training.losses`) says what is minimized, what is counted (its `unit`: tokens, words,
sequences or examples) and whether a perplexity means something (`has_perplexity`); the run reports
`<unit>_per_second`, and a perplexity only where it means something. The checkpoint variable `target_tokens`
holds that count, whatever its unit (the name is kept so that older runs restore).

Gradient accumulation (`accumulation_steps=K`, see `tflm.training.steps`) takes one optimizer step per
K consecutive batches. Checkpoints and stops happen only after an optimizer step, so `step_in_epoch` (the
batches of the epoch trained on) at a checkpoint never falls inside an accumulation, and a resumed run
skips exactly the batches already in the weights. An epoch whose batches run out in the middle of an
accumulation applies what it accumulated, normalized by its own count (a smaller last step).
"""

import logging
import math
import time

import keras
import tensorflow as tf

from tflm.training import reporting
from tflm.training.losses import UNITS, TokenCrossEntropy
from tflm.training.reporting import TrainResult  # noqa: F401  (where callers import it from)
from tflm.training.run_state import RunState

from tflm.training.steps import TrainSteps, accumulation_steps_for  # noqa: F401  (accumulation_steps_for: API)
from tflm.training.strategies import distribute_dataset, is_chief

logger = logging.getLogger("tflm")


class Trainer:
    """Trains a model whose `call(inputs, training)` returns the outputs `loss(labels, outputs)` scores
    (by default logits, with masked token cross-entropy).

    Args:
        model: a Keras model, created under `strategy.scope()`.
        optimizer: a Keras optimizer, created under `strategy.scope()` (with its learning-rate schedule).
        run_dir: str. Where checkpoints, logs and progress go.
        strategy: a `tf.distribute.Strategy`; default: the current one.
        label_smoothing: float, for the default loss (give a `loss` its own instead).
        clip_norm: float or None. Clip the global gradient norm (of the all-reduced, accumulated gradient).
        keep_checkpoints: int. Training checkpoints to keep.
        checkpoint_every_steps: int or None. Also checkpoint every so many steps (always at epoch ends).
        checkpoint_every_seconds: float or None. Also checkpoint every so many seconds of training.
        log_every_steps: int. TensorBoard and log-file interval.
        save_every_epoch: bool. Checkpoint at the end of every epoch (turn off for tiny datasets).
        jit_compile: bool. XLA-compile the forward and backward pass (one compilation per batch shape:
            use `Batching(fixed_shapes=True)`).
        verbose: bool. Show a progress bar on the console.
        loss: a `tflm.training.losses.Loss` (`TokenCrossEntropy`, `ClassCrossEntropy`, ...); default:
            `TokenCrossEntropy(label_smoothing)`.
        accumulation_steps: int. Batches per optimizer step (gradient accumulation; see the module docstring
            and `accumulation_steps_for`). Steps (`max_steps`, schedules, logging) count optimizer steps.
        hparams: optional flat dict `{name: bool, int, float or str}` of the run's hyperparameters (see
            `flat_hparams`), written for TensorBoard's HParams dashboard with the run's final metrics.
        final_metrics: names of the metrics a caller will give `log_final_metrics` (e.g. `("bleu",)`),
            declared in the HParams config so that the dashboard shows them.
    Example:
    >>> trainer = Trainer(model, keras.optimizers.Adam(1e-3), "runs/demo", label_smoothing=0.1)
    >>> trainer.fit(lambda epoch: make_dataset(epoch), epochs=10, valid_data=valid_dataset)
    """

    def __init__(self, model, optimizer, run_dir, strategy=None, label_smoothing=0.0, clip_norm=None,
                 keep_checkpoints=5, checkpoint_every_steps=None, checkpoint_every_seconds=600.0,
                 log_every_steps=50, save_every_epoch=True, jit_compile=False, verbose=True, loss=None,
                 accumulation_steps=1, hparams=None, final_metrics=()):
        if loss is not None and label_smoothing:
            raise ValueError("Give the label smoothing to the loss (e.g. TokenCrossEntropy(label_smoothing=0.1)), "
                             "not to a Trainer that has a loss.")
        self.loss = loss if loss is not None else TokenCrossEntropy(label_smoothing or 0.0)
        if self.loss.unit not in UNITS:
            raise ValueError(f"The loss's unit must be one of {', '.join(UNITS)}, not {self.loss.unit!r}.")
        if isinstance(accumulation_steps, bool) or not isinstance(accumulation_steps, int) or accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be a positive integer, not {accumulation_steps!r}.")
        self.model = model
        self.optimizer = optimizer
        self.run_dir = run_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.label_smoothing = getattr(self.loss, "label_smoothing", 0.0)
        self.clip_norm = clip_norm
        self.accumulation_steps = accumulation_steps
        self.hparams = None if hparams is None else {
            name: reporting.hparam_value(value, name) for name, value in hparams.items()}
        self.final_metrics = tuple(final_metrics)
        self.checkpoint_every_steps = checkpoint_every_steps
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.log_every_steps = log_every_steps
        self.save_every_epoch = save_every_epoch
        self.jit_compile = jit_compile
        self.verbose = verbose
        self.profiler = None  # a tflm.training.profiling.StepProfiler: traces some steps (`tflm train --profile`)
        self._is_chief = is_chief(self.strategy)
        with self.strategy.scope():
            if not model.built:
                model.build()
            optimizer.build(model.trainable_variables)
        self.state = RunState(model, optimizer, run_dir, self.strategy, keep_checkpoints, self._is_chief)
        # the progress variables, where callers read them (`trainer.epoch`, `trainer.train_seconds`, ...)
        self.epoch, self.step_in_epoch = self.state.epoch, self.state.step_in_epoch
        self.train_seconds, self.target_tokens = self.state.train_seconds, self.state.target_tokens
        self.best_valid_loss = self.state.best_valid_loss
        self.report = reporting.RunReport(run_dir, self._is_chief, self.loss.unit, self.loss.has_perplexity)
        self.steps = TrainSteps(model, optimizer, self.strategy, self.loss, clip_norm, accumulation_steps, jit_compile)

    # ---------------------------------------------------------------- steps

    @property
    def step(self):
        return self.state.step

    @property
    def writers(self):
        """`{"train", "valid"}` TensorBoard writers of the run (prefer `write_text`, `write_image`)."""
        return self.report.writers

    def _distribute(self, dataset):
        """`dataset`'s batches spread over the replicas (see `strategies.distribute_dataset`)."""
        return distribute_dataset(self.strategy, dataset)

    def train_on_batch(self, inputs, labels):
        """One optimizer step on one global batch (split over the replicas, never accumulated); returns its
        statistics (`tokens` and `count` are both the count, in the loss's unit)."""
        batch = next(iter(self._distribute(tf.data.Dataset.from_tensors((inputs, labels)))))
        loss_sum, nll_sum, count, norm = self.steps.train_on_batch(batch)
        return {"loss": loss_sum / count, "nll": nll_sum / count, "tokens": count, "count": count,
                "gradient_norm": norm}

    def evaluate(self, dataset):
        """Mean negative log-likelihood (no label smoothing) per counted unit over `dataset`, and the count."""
        distributed = self._distribute(dataset)
        total_nll, total_count = 0.0, 0.0
        for batch in distributed:
            nll_sum, count = self.steps.eval_batch(batch, distributed.element_spec)
            total_nll += nll_sum
            total_count += count
        return total_nll / max(total_count, 1.0), total_count

    # ---------------------------------------------------------------- loop

    def restore(self):
        """Restores the newest checkpoint of the run, if any; returns its path.

        Everything a resumed run needs is inside the checkpoint (weights, optimizer, epoch, step in epoch,
        training time, tokens, best validation loss, the dropout generators' states and any state the model
        carries between batches): `progress.json` is never read back. It is rewritten
        from the restored state here, so a kill between a checkpoint and its `progress.json` leaves, after
        the resume, a `progress.json` that describes the checkpoint training continues from.
        """
        path = self.state.restore()
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
        path = self.state.save()
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
            epochs, max_steps, time_budget: stopping criteria (at least one; checked after optimizer steps).
            valid_data: optional `tf.data.Dataset` for the validation loss after each epoch, or a callable
                returning `(mean loss, count)` (for models evaluated their own way).
            steps_per_epoch: optional int, batches per epoch, for the progress bar.
            on_epoch_end: optional callable `(trainer, epoch, valid_loss) -> None`, e.g. to log samples.
            on_epoch_start: optional callable `(trainer, epoch) -> None`, e.g. to reset carried state; called
                where an epoch starts from its first batch (not where a resumed run continues one).
        Returns:
            A `TrainResult`.
        """
        if not (epochs or max_steps or time_budget):
            raise ValueError("Give at least one of epochs, max_steps and time_budget, or training never stops.")
        self.restore()
        self.report.open()
        stopped_by, last_valid = self._done_reason(epochs, max_steps, time_budget), math.nan
        if stopped_by:
            logger.info("Nothing to do: training already reached its %s.", stopped_by.replace("_", " "))
            return self._result("already_done", last_valid)
        logger.info("Training with %s on %d replica(s), %s%s", type(self.strategy).__name__,
                    self.strategy.num_replicas_in_sync, type(self.optimizer).__name__,
                    f", one step per {self.accumulation_steps} batches" if self.accumulation_steps > 1 else "")
        if self.hparams is not None:
            self.report.hparams(self.hparams, self.final_metrics)
        self._last_save = time.monotonic()
        while not stopped_by:
            epoch = int(self.epoch.numpy())
            stopped_by, finished = self._run_epoch(train_data, epoch, max_steps, time_budget, steps_per_epoch,
                                                   on_epoch_start)
            stopped_by, valid_loss = self._end_epoch(epoch, finished, stopped_by, (epochs, max_steps, time_budget),
                                                     valid_data, on_epoch_end)
            last_valid = last_valid if valid_loss is None else valid_loss
        if self.profiler is not None:
            self.profiler.close()  # a run that stopped inside the profiled steps
        if self.hparams is not None:
            self.log_final_metrics({"best_valid_loss": float(self.best_valid_loss.numpy()),
                                    "last_valid_loss": last_valid, "step": self.step})
        self.report.flush()
        return self._result(stopped_by, last_valid)

    def _run_epoch(self, train_data, epoch, max_steps, time_budget, steps_per_epoch, on_epoch_start):
        """Trains on the batches of `epoch` the run has not trained on yet, until they run out or a stopping
        criterion is met; returns `(the criterion met or None, whether the epoch's batches ran out)`."""
        skip = int(self.step_in_epoch.numpy())
        dataset = train_data(epoch)
        if skip:
            dataset = dataset.skip(skip)
        distributed = self._distribute(dataset)
        self.steps.build(distributed.element_spec)
        self.steps.discard_accumulated()  # one left by an interrupted fit (an exception) is not in the weights
        if on_epoch_start is not None and not skip:  # a resumed epoch continues with the restored state
            on_epoch_start(self, epoch)
        self._progress = self.report.progress_bar(epoch, steps_per_epoch, skip, self.verbose)
        self._window = reporting.Window()
        stopped_by, finished = None, True
        started = time.monotonic()  # step time includes waiting for data, not saving or validating
        for batch in distributed:
            stopped_by = self._train_batch(batch, started, max_steps, time_budget)
            if stopped_by:
                finished = False
                break
            started = time.monotonic()
        if finished and self.steps.pending:  # the epoch ended inside an accumulation: a step on what it has
            norm = self.steps.apply_accumulated()
            self._add_time(started)
            stopped_by = self._after_step(norm, max_steps, time_budget)
        self._progress.close()
        if self._window.batches:
            self._log_train()  # the steps since the last log line
        return stopped_by, finished

    def _train_batch(self, batch, started, max_steps, time_budget):
        """Trains on one batch of the dataset (an optimizer step, or one more batch accumulated); after an
        optimizer step, returns the stopping criterion met, if any."""
        if self.profiler is not None:
            self.profiler.before(self.step)
        loss_sum, nll_sum, count, norm = self.steps.train_batch(batch)
        if self.profiler is not None and norm is not None:
            self.profiler.after(self.step)
        if not math.isfinite(loss_sum):
            self._write_progress()
            raise FloatingPointError(
                f"The training loss became {loss_sum} at step {self.step}. Lower the learning rate or "
                f"set a gradient clip norm; the run resumes from its last checkpoint in {self.run_dir}."
            )
        self._add_time(started)
        self.target_tokens.assign_add(int(count))
        self.step_in_epoch.assign_add(1)
        self._window.add(loss_sum, nll_sum, count)
        self._progress.update(self._window)
        return None if norm is None else self._after_step(norm, max_steps, time_budget)

    def _add_time(self, started):
        elapsed = time.monotonic() - started
        self.train_seconds.assign_add(elapsed)
        self._window.seconds += elapsed

    def _after_step(self, norm, max_steps, time_budget):
        """After an optimizer step: the log line every `log_every_steps`, the stopping criteria, and the
        periodic checkpoint (a stopping run saves at the epoch's end instead)."""
        self._window.norm = norm
        if self.step % self.log_every_steps == 0:
            self._log_train()
        stopped_by = self._done_reason(None, max_steps, time_budget)
        if not stopped_by and (
            (self.checkpoint_every_steps and self.step % self.checkpoint_every_steps == 0)
            or (self.checkpoint_every_seconds and time.monotonic() - self._last_save >= self.checkpoint_every_seconds)
        ):
            self.save()
            self._last_save = time.monotonic()
        return stopped_by

    def _end_epoch(self, epoch, finished, stopped_by, limits, valid_data, on_epoch_end):
        """After an epoch's batches (or a stop inside them): the epoch counters, validation, the checkpoint
        and `on_epoch_end`; returns `(the stopping criterion met or None, the validation loss or None)`."""
        if finished:
            self.epoch.assign_add(1)
            self.step_in_epoch.assign(0)
        stopped_by = stopped_by or self._done_reason(*limits)
        valid_loss = None if valid_data is None else self._validate(valid_data)
        if stopped_by or (finished and self.save_every_epoch):
            self.save()
            self._last_save = time.monotonic()
        if on_epoch_end is not None:
            on_epoch_end(self, epoch, math.nan if valid_loss is None else valid_loss)
        return stopped_by, valid_loss

    def log_final_metrics(self, metrics):
        """Writes `{name: number}` (e.g. a test BLEU computed after `fit`) as scalars at the current step into
        the run's `logs/`, where the HParams dashboard reads a run's metrics (declare their names with
        `Trainer(final_metrics=...)`). `fit` writes `best_valid_loss`, `last_valid_loss` and `step` there
        when the trainer has `hparams`. Chief only."""
        self.report.final_metrics(self.step, metrics)

    def write_text(self, tag, text, step=None):
        """Writes a Markdown `text` (e.g. a table of sample outputs) to TensorBoard's `logs/valid` at `step`
        (default: the current step); an `on_epoch_end` callback's way to show what the model does."""
        self.report.text(tag, text, self.step if step is None else step)

    def write_scalars(self, metrics, step=None):
        """Writes `{tag: number}` (e.g. a task's own validation scores) to `logs/valid` at `step`."""
        self.report.scalars(metrics, self.step if step is None else step)

    def write_image(self, tag, image, step=None):
        """Writes an image `(height, width, channels)` (e.g. an attention heatmap) to `logs/valid` at `step`
        (default: the current step)."""
        self.report.image(tag, image, self.step if step is None else step)

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
        loss, count = valid_data() if callable(valid_data) else self.evaluate(valid_data)
        improved = self.state.save_if_best(loss)
        self.report.valid(self.step, loss, count, time.monotonic() - started, improved)
        return loss

    def _log_train(self):
        window, self._window = self._window, reporting.Window()
        if window.count:
            learning_rate = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
            self.report.train(self.step, window, learning_rate)

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
            unit=self.loss.unit,
            has_perplexity=self.loss.has_perplexity,
        )

    def _write_progress(self):
        self.report.progress(self.state.progress())
