"""Where a training run stands, and the checkpoints that hold it.

A training checkpoint (`checkpoints/ckpt-<step>.*`) holds everything a resumed run needs: the weights, the
optimizer (its `iterations` are the run's step), the progress variables below, the random generators'
states and any state the model carries between batches (`checkpoints.CarriedState`). `checkpoints/best/`
holds the model alone, with the lowest validation loss so far. `progress.json` is a copy for people and
scripts, never read back.
"""

import logging
import math
import os

import tensorflow as tf

from tflm.training.checkpoints import (
    CarriedState,
    ModelVariables,
    checkpoint_paths,
    has_carried_state,
    model_checkpoint,
    restore_latest,
)
from tflm.training.strategies import worker_dir

logger = logging.getLogger("tflm")


class RunState:
    """The progress variables of a run (created under `strategy.scope()`) and its checkpoint managers.

    Args:
        model, optimizer: built, created under `strategy.scope()`.
        run_dir: str. The checkpoints go to `run_dir/checkpoints` (a worker that is not the chief writes to a
            directory of its own, see `strategies.worker_dir`).
        strategy: the `tf.distribute.Strategy` of the run.
        keep_checkpoints: int. Training checkpoints to keep.
        is_chief: bool.
    Attributes:
        epoch: int64, the epochs finished.
        step_in_epoch: int64, the batches of the current epoch trained on.
        train_seconds: float64, training time across resumptions.
        target_tokens: int64, the count of the loss's unit trained on (the name is kept so that older runs
            restore, whatever the unit).
        best_valid_loss: float64, the lowest validation loss so far (inf before any).
    """

    def __init__(self, model, optimizer, run_dir, strategy, keep_checkpoints, is_chief):
        self.optimizer = optimizer
        self.checkpoint_dir = os.path.join(run_dir, "checkpoints")
        self.best_dir = os.path.join(self.checkpoint_dir, "best")
        with strategy.scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
            self.target_tokens = tf.Variable(0, dtype=tf.int64, trainable=False, name="target_tokens")  # the count
            self.best_valid_loss = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_valid")
        state = dict(model=ModelVariables(model), optimizer=optimizer, epoch=self.epoch,
                     step_in_epoch=self.step_in_epoch, train_seconds=self.train_seconds,
                     target_tokens=self.target_tokens, best_valid_loss=self.best_valid_loss)
        self.checkpoint = tf.train.Checkpoint(carried=CarriedState(model), **state)
        self._checkpoint_without_carried_state = tf.train.Checkpoint(**state)  # to resume older runs
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, worker_dir(self.checkpoint_dir, is_chief), max_to_keep=keep_checkpoints,
            checkpoint_name="ckpt",
        )
        self.best_manager = tf.train.CheckpointManager(
            model_checkpoint(model), worker_dir(self.best_dir, is_chief), max_to_keep=1, checkpoint_name="best",
        )

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())

    def restore(self):
        """Restores the newest training checkpoint, if any (one of an older tflm without the random
        generators' state too, with a warning); returns its path or None."""
        paths = checkpoint_paths(self.checkpoint_dir)
        checkpoint = self.checkpoint
        try:
            if paths and not has_carried_state(paths[-1]):
                checkpoint = self._checkpoint_without_carried_state
                logger.warning("%s was written by an older tflm without the random generators' state: training "
                               "resumes, but its dropout masks will differ from an uninterrupted run's.", paths[-1])
        except Exception:  # noqa: BLE001  (an unreadable newest checkpoint: restore_latest reports it)
            pass
        return restore_latest(checkpoint, self.checkpoint_dir)

    def save(self):
        """A training checkpoint at the current step; returns its path."""
        return self.manager.save(checkpoint_number=self.step)

    def save_if_best(self, valid_loss):
        """Saves the model to `checkpoints/best/` when `valid_loss` is the lowest so far; returns whether."""
        if not valid_loss < float(self.best_valid_loss.numpy()):
            return False
        self.best_valid_loss.assign(valid_loss)
        self.best_manager.save(checkpoint_number=self.step)
        return True

    def progress(self):
        """The progress variables as plain numbers: `step`, `epoch`, `step_in_epoch`, `train_seconds`,
        `target_tokens` and `best_valid_loss`."""
        return {
            "step": self.step,
            "epoch": int(self.epoch.numpy()),
            "step_in_epoch": int(self.step_in_epoch.numpy()),
            "train_seconds": float(self.train_seconds.numpy()),
            "target_tokens": int(self.target_tokens.numpy()),
            "best_valid_loss": float(self.best_valid_loss.numpy()),
        }
