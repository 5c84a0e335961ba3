"""What a training run reports: log lines, the console progress bar, TensorBoard scalars and HParams.

The trainer's loss says what it counts (`loss.unit`: tokens, words, sequences or examples) and whether a
perplexity means something (`loss.has_perplexity`); every figure here is labelled accordingly: `<unit>/s` and
`<unit>_per_second`, and a perplexity only where it means something. TensorBoard gets

    logs/train, logs/valid   the scalars of training and validation (`loss`, `perplexity`, `<unit>_per_second`, ...)
    logs/                    with `Trainer(hparams=...)`: the run's hyperparameters (the HParams dashboard's
                             session) and its final metrics (`best_valid_loss`, `last_valid_loss`, `step`, and
                             those given to `Trainer.log_final_metrics`)
"""

import dataclasses
import json
import logging
import math
import os
import sys

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger("tflm")

_SHORT_UNITS = {"tokens": "tok/s", "words": "words/s", "sequences": "seq/s", "examples": "ex/s"}
# The metrics the HParams config declares besides the caller's: (tag, run relative to logs/, shown as)
FINAL_METRICS = (("best_valid_loss", "", "best valid loss"), ("last_valid_loss", "", "last valid loss"),
                 ("step", "", "steps"), ("loss", "valid", "valid loss"), ("loss", "train", "train loss"))


@dataclasses.dataclass
class TrainResult:
    """What a `Trainer.fit` call achieved. `target_tokens` is the count of the loss's `unit` (tokens, words,
    sequences or examples), also called `count`; `per_second` (or, by its older name, `tokens_per_second`) is
    that count per second; `best_valid_perplexity` is None where the loss has no perplexity."""

    step: int
    epoch: int
    train_seconds: float
    target_tokens: int
    best_valid_loss: float
    last_valid_loss: float
    stopped_by: str  # "epochs", "max_steps", "time_budget" or "already_done"
    unit: str = "tokens"
    has_perplexity: bool = True

    @property
    def count(self):
        return self.target_tokens

    @property
    def per_second(self):
        return self.target_tokens / self.train_seconds if self.train_seconds else 0.0

    @property
    def tokens_per_second(self):  # the name callers know; in `unit`s per second
        return self.per_second

    @property
    def best_valid_perplexity(self):
        return valid_perplexity(self.best_valid_loss) if self.has_perplexity else None

    def summary(self):
        """The figures a command prints: step, epoch, stopping reason, time, `<unit>_per_second`, the best
        validation loss and (where the loss has one) its perplexity."""
        summary = {"step": self.step, "epoch": self.epoch, "stopped_by": self.stopped_by,
                   "train_seconds": round(self.train_seconds, 1), f"{self.unit}_per_second": round(self.per_second, 1),
                   "best_valid_loss": round(self.best_valid_loss, 4)}
        if self.has_perplexity:
            summary["best_valid_perplexity"] = self.best_valid_perplexity
        return summary


def write_progress(run_dir, progress):
    """`run_dir/progress.json`, replaced in one rename (a reader never sees half a file)."""
    os.makedirs(run_dir, exist_ok=True)
    temporary = os.path.join(run_dir, "progress.json.tmp")
    with open(temporary, "w") as f:
        json.dump(progress, f, indent=1)
    os.replace(temporary, os.path.join(run_dir, "progress.json"))


def perplexity(loss):
    return math.exp(min(loss, 50.0))


def valid_perplexity(loss):
    """The perplexity of a validation loss, rounded; None before any validation (an infinite loss)."""
    return round(perplexity(loss), 3) if math.isfinite(loss) else None


class Window:
    """Training statistics since the last log line: sums over the batches, the last gradient norm."""

    def __init__(self):
        self.loss_sum = self.nll_sum = self.count = self.seconds = 0.0
        self.norm = math.nan
        self.batches = 0

    def add(self, loss_sum, nll_sum, count, seconds=0.0):
        self.loss_sum += loss_sum
        self.nll_sum += nll_sum
        self.count += count
        self.seconds += seconds
        self.batches += 1

    @property
    def loss(self):
        return self.loss_sum / max(self.count, 1.0)

    @property
    def nll(self):
        return self.nll_sum / max(self.count, 1.0)

    @property
    def per_second(self):
        return self.count / max(self.seconds, 1e-9)


class ProgressBar:
    """A Keras progress bar over the batches of an epoch, on an interactive console (log lines serve files
    and pipes)."""

    def __init__(self, epoch, steps_per_epoch, skipped, verbose, unit="tokens", with_perplexity=True):
        self.bar = None
        self.rate, self.with_perplexity = _SHORT_UNITS.get(unit, unit + "/s"), with_perplexity
        if verbose and sys.stdout.isatty():
            print(f"Epoch {epoch + 1}" + (f" (resuming after {skipped} batches)" if skipped else ""))
            self.bar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss", "ppl", self.rate])
            self.count = skipped
            if skipped:
                self.bar.update(skipped)

    def update(self, window):
        if self.bar is None:
            return
        self.count += 1
        values = [("loss", window.loss)] + ([("ppl", perplexity(window.nll))] if self.with_perplexity else [])
        self.bar.update(self.count, values + [(self.rate, window.per_second)])

    def close(self):
        if self.bar is not None and self.bar.target is None:
            self.bar.update(self.count, finalize=True)


def summary_writers(run_dir, is_chief):
    """`{"train", "valid"}` TensorBoard writers of the run (no-op writers on a worker that is not the chief)."""
    if not is_chief:
        return {name: tf.summary.create_noop_writer() for name in ("train", "valid")}
    return {name: tf.summary.create_file_writer(os.path.join(run_dir, "logs", name)) for name in ("train", "valid")}


def log_train(writer, step, window, learning_rate, unit, with_perplexity):
    """The log line and TensorBoard scalars of the training steps in `window`."""
    ppl = f"perplexity {perplexity(window.nll):.2f}, " if with_perplexity else ""
    logger.info("step %d: loss %.4f, %slr %.3g, %.0f %s/s, grad norm %.3g", step, window.loss, ppl, learning_rate,
                window.per_second, unit, window.norm)
    with writer.as_default(step=step):
        tf.summary.scalar("loss", window.loss)
        if with_perplexity:
            tf.summary.scalar("perplexity", perplexity(window.nll))
        tf.summary.scalar("learning_rate", learning_rate)
        tf.summary.scalar(f"{unit}_per_second", window.per_second)
        tf.summary.scalar("gradient_norm", window.norm)


def log_valid(writer, step, loss, count, seconds, improved, unit, with_perplexity):
    ppl = f", perplexity {perplexity(loss):.2f}" if with_perplexity else ""
    logger.info("step %d: valid loss %.4f%s over %d %s (%.1fs)%s", step, loss, ppl, count, unit, seconds,
                " (best so far: saved)" if improved else "")
    with writer.as_default(step=step):
        tf.summary.scalar("loss", loss)
        if with_perplexity:
            tf.summary.scalar("perplexity", perplexity(loss))


class RunReport:
    """Where a training run reports, each figure in its loss's unit: the log, TensorBoard (`logs/train`,
    `logs/valid`, and `logs/` for HParams and final metrics) and `progress.json`. Only the chief writes
    files (a worker's TensorBoard writers are no-ops); nothing is written before the first report.

    Args:
        run_dir: str.
        is_chief: bool.
        unit: str. What the loss counts ("tokens", "words", "sequences", "examples").
        with_perplexity: bool. Whether exp(mean nll) means something (a perplexity) for the loss.
    """

    def __init__(self, run_dir, is_chief, unit="tokens", with_perplexity=True):
        self.run_dir, self.is_chief, self.unit, self.with_perplexity = run_dir, is_chief, unit, with_perplexity
        self._writers = None
        self._run_writer = None

    @property
    def writers(self):
        """`{"train", "valid"}` TensorBoard writers, created on first use."""
        if self._writers is None:
            self._writers = summary_writers(self.run_dir, self.is_chief)
        return self._writers

    def open(self):
        """Creates the TensorBoard writers (`fit` does, so that a run's `logs/train` and `logs/valid` exist)."""
        return self.writers

    def progress_bar(self, epoch, steps_per_epoch, skipped, verbose):
        return ProgressBar(epoch, steps_per_epoch, skipped, verbose, self.unit, self.with_perplexity)

    def train(self, step, window, learning_rate):
        log_train(self.writers["train"], step, window, learning_rate, self.unit, self.with_perplexity)

    def valid(self, step, loss, count, seconds, improved):
        log_valid(self.writers["valid"], step, loss, count, seconds, improved, self.unit, self.with_perplexity)

    def text(self, tag, text, step, run="valid"):
        """A Markdown text (e.g. a table of sample outputs) in TensorBoard's `run` at `step`."""
        with self.writers[run].as_default(step=step):
            tf.summary.text(tag, text)

    def scalars(self, metrics, step, run="valid"):
        """Scalars `{tag: value}` in TensorBoard's `run` at `step` (e.g. a task's own validation scores)."""
        if self.is_chief:
            write_metrics(self.writers[run], step, metrics)

    def image(self, tag, image, step, run="valid"):
        """An image (uint8 or float `(height, width, channels)`) in TensorBoard's `run` at `step`."""
        with self.writers[run].as_default(step=step):
            tf.summary.image(tag, np.asarray(image)[np.newaxis])

    def hparams(self, hparams, final_metrics=()):
        if self.is_chief:
            write_hparams(self._logs_writer(), hparams, self.run_dir, final_metrics)

    def final_metrics(self, step, metrics):
        if self.is_chief:
            write_metrics(self._logs_writer(), step, metrics)

    def progress(self, progress):
        """`progress.json` from a `RunState.progress()`, in the loss's unit: its count (`target_tokens`),
        `unit`, `<unit>_per_second` over the whole run and, where the loss has one, `best_valid_perplexity`."""
        if not self.is_chief:
            return
        seconds, count = progress["train_seconds"], progress["target_tokens"]
        progress = {**progress, "train_seconds": round(seconds, 1), "unit": self.unit,
                    f"{self.unit}_per_second": round(count / seconds, 1) if seconds else 0.0}
        if self.with_perplexity:
            progress["best_valid_perplexity"] = valid_perplexity(progress["best_valid_loss"])
        write_progress(self.run_dir, progress)

    def flush(self):
        for writer in self.writers.values():
            writer.flush()

    def _logs_writer(self):
        if self._run_writer is None:
            self._run_writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "logs"))
        return self._run_writer


# ---------------------------------------------------------------- HParams


def flat_hparams(config, prefix=""):
    """A nested configuration (dicts and dataclasses) as flat HParams: `{"training.learning_rate": 0.001,
    ...}`. bool, int, float and str stay; None, lists and anything else become strings (JSON where it can)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise TypeError(f"flat_hparams takes a dict or a dataclass, not {type(config).__name__}.")
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, dict) and value:
            flat.update(flat_hparams(value, name + "."))
        else:
            flat[name] = hparam_value(value, name, strict=False)
    return flat


def hparam_value(value, name, strict=True):
    """`value` as an HParams value (bool, int, float or str); with `strict`, a TypeError for anything else."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    if strict:
        raise TypeError(f"hparams[{name!r}] is a {type(value).__name__}; HParams are bool, int, float or str "
                        "(tflm.training.flat_hparams flattens a nested configuration).")
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def write_hparams(writer, hparams, run_dir, final_metrics=()):
    """Writes the HParams config (the hyperparameters, and the metrics it shows: `FINAL_METRICS` and the
    names in `final_metrics`) and this run's session (its values, the trial named after `run_dir`) with
    `writer` (the run's `logs/`).

    TensorBoard keeps the first of these per directory, so a resumed run writing them again changes nothing.
    """
    from tensorboard.plugins.hparams import api as hp

    hparams = {name: hparam_value(value, name) for name, value in hparams.items()}
    metrics = [hp.Metric(tag, group=group or None, display_name=shown) for tag, group, shown in FINAL_METRICS]
    metrics += [hp.Metric(name) for name in final_metrics if name not in {tag for tag, _, _ in FINAL_METRICS}]
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in hparams], metrics=metrics)
        hp.hparams(hparams, trial_id=os.path.basename(os.path.normpath(os.path.abspath(run_dir))))
    writer.flush()


def write_metrics(writer, step, metrics):
    """Scalars `{tag: value}` at `step` (non-finite values are left out: a run without validation has none)."""
    with writer.as_default(step=step):
        for tag, value in metrics.items():
            if value is not None and math.isfinite(float(value)):
                tf.summary.scalar(tag, float(value))
    writer.flush()
