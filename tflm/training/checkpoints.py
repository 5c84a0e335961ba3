"""Checkpoints of Keras 3 models with `tf.train.Checkpoint`.

Keras 3 layers keep sub-layers held in Python lists in Keras' own tracking structures, which
`tf.train.Checkpoint` does not follow: a model whose blocks live in a list would silently be saved without
them. `ModelVariables` therefore tracks a model's variables explicitly, by their position in
`model.weights` (which is fixed by the model's code and config).
"""

import glob
import logging
import os

import numpy as np
import tensorflow as tf

logger = logging.getLogger("tflm")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


class ModelVariables(tf.Module):
    """Exposes every variable of a Keras model to `tf.train.Checkpoint` (and SavedModel) explicitly."""

    def __init__(self, model):
        super().__init__(name=None)
        self.variables_by_index = {f"{index:05d}": v for index, v in enumerate(model.weights)}


class CarriedState(tf.Module):
    """The state a training run carries from step to step besides weights and optimizer: the random
    generators' states of dropout and other random layers (Keras `SeedGenerator`s, in `model.variables` but
    not `model.weights`) and any state the model declares (`model.carried_state_variables()`, e.g.
    Transformer-XL's memory). In the training checkpoint, so that a resumed run draws the dropout masks and
    reads the memory an uninterrupted one would; never in exports or model-only checkpoints."""

    def __init__(self, model):
        super().__init__(name=None)
        weights = {id(v) for v in model.weights}
        carried = [v for v in model.variables if id(v) not in weights]
        declared = getattr(model, "carried_state_variables", None)
        carried += list(declared()) if declared else []
        self.variables_by_index = {f"{index:05d}": v for index, v in enumerate(carried)}


def has_carried_state(path):
    """Whether the checkpoint at `path` holds a `CarriedState` (checkpoints of tflm before it did not)."""
    return any(name.startswith("carried/") for name, _ in tf.train.list_variables(path))


def model_checkpoint(model):
    """A `tf.train.Checkpoint` of the model's variables alone (no optimizer, no progress)."""
    return tf.train.Checkpoint(model=ModelVariables(model))


def checkpoint_paths(directory):
    """The checkpoints in `directory`, oldest first (as listed in its `checkpoint` state file)."""
    state = tf.train.get_checkpoint_state(directory)
    # TF already joins relative entries to `directory` (joining again broke relative run directories).
    return list(state.all_model_checkpoint_paths) if state else []


def resolve_checkpoint(path):
    """A checkpoint prefix from a checkpoint prefix, or a directory (its latest checkpoint)."""
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path}: no checkpoint in this directory. Train first with `tflm train`.")
        return latest
    if not glob.glob(path + ".index"):
        raise CheckpointError(f"{path}: no such checkpoint (expected the files {path}.index and {path}.data-*).")
    return path


def check_fits(model, path):
    """Raises a `CheckpointError` naming the first model variable the checkpoint lacks or has in another shape."""
    try:
        stored = dict(tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint ({str(error).splitlines()[0][:200]}).") from error
    for index, variable in enumerate(model.weights):
        key = f"model/variables_by_index/{index:05d}/.ATTRIBUTES/VARIABLE_VALUE"
        if key not in stored or list(stored[key]) != list(variable.shape):
            found = "absent" if key not in stored else f"of shape {stored[key]}"
            raise CheckpointError(
                f"{path} does not fit this model: variable {index} ({variable.path}, shape {list(variable.shape)}) "
                f"is {found} in the checkpoint. It was written by a model with a different configuration."
            )
    count = sum(1 for key in stored if key.startswith("model/variables_by_index/"))
    if count != len(model.weights):
        raise CheckpointError(
            f"{path} holds {count} model variables but this model has {len(model.weights)}: it was written by "
            "a model with a different configuration."
        )


def restore_model(model, path):
    """Restores the model's variables from a training or weights-only checkpoint (`path` or directory)."""
    path = resolve_checkpoint(path)
    check_fits(model, path)
    try:
        model_checkpoint(model).restore(path).expect_partial()
    except Exception as error:  # noqa: BLE001  (a damaged file fails in many ways: OpError, IndexError, ...)
        raise CheckpointError(
            f"{path}: cannot restore the model from this checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:300]}). The checkpoint is corrupt; use another one."
        ) from error
    return path


def restore_latest(checkpoint, directory):
    """Restores the newest readable checkpoint in `directory`; returns its path, or None if there is none.

    A newest checkpoint that cannot be read (a run killed while writing it, a damaged disk) is reported
    and the next older one is tried, so at most the work since that one is lost.
    """
    paths = checkpoint_paths(directory)
    for path in reversed(paths):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
            return path
        except Exception as error:  # noqa: BLE001  (a damaged file fails in many ways: OpError, IndexError, ...)
            logger.error(
                "Checkpoint %s could not be restored (%s: %s); trying the previous one.",
                path, type(error).__name__, str(error).splitlines()[0][:300],
            )
    if paths:
        raise CheckpointError(
            f"{directory}: none of the {len(paths)} checkpoints could be restored (see the errors above). "
            "If the run's configuration changed, start a new run directory; otherwise delete the damaged "
            "checkpoints to start over."
        )
    return None


def average_checkpoints(model, paths):
    """Sets the model's variables to the mean of their values in `paths` (checkpoint averaging).

    Each checkpoint is restored into the model in turn and accumulated in float64; the model ends up
    holding the average. Integer variables (none in tflm models) would keep the last value.
    """
    if not paths:
        raise CheckpointError("No checkpoints to average.")
    totals = None
    for path in paths:
        restore_model(model, path)
        values = [np.asarray(v, dtype=np.float64) for v in model.weights]
        totals = values if totals is None else [t + v for t, v in zip(totals, values)]
    for variable, total in zip(model.weights, totals):
        variable.assign((total / len(paths)).astype(variable.dtype))
    logger.info("Averaged %d checkpoints: %s", len(paths), ", ".join(os.path.basename(p) for p in paths))


def save_averaged_checkpoint(run_dir, model, count=5):
    """Averages the last `count` training checkpoints of a run into `model` and saves the result in
    `run_dir/checkpoints/averaged/` (replacing an earlier average); returns its path."""
    if count < 1:
        raise ValueError(f"Average at least one checkpoint (got {count}).")
    paths = checkpoint_paths(os.path.join(run_dir, "checkpoints"))
    if not paths:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no training checkpoints to average; was this run trained?")
    if len(paths) < count:
        logger.warning("%s has %d training checkpoints; averaging them all (asked for %d).", run_dir, len(paths),
                       count)
    paths = paths[-count:]
    average_checkpoints(model, paths)
    manager = tf.train.CheckpointManager(model_checkpoint(model), os.path.join(run_dir, "checkpoints", "averaged"),
                                         max_to_keep=1, checkpoint_name="averaged")
    step = int(os.path.basename(paths[-1]).split("-")[-1])
    return manager.save(checkpoint_number=step)


def resolve_run_checkpoint(run_dir, checkpoint):
    """A checkpoint path from `"best"`, `"last"`, `"averaged"` or a path."""
    if checkpoint == "averaged":
        return os.path.join(run_dir, "checkpoints", "averaged")
    if checkpoint in ("best", None):
        best = os.path.join(run_dir, "checkpoints", "best")
        if tf.train.latest_checkpoint(best):
            return best
        logger.info("%s has no best checkpoint yet; using the last one.", run_dir)
        return os.path.join(run_dir, "checkpoints")
    if checkpoint == "last":
        return os.path.join(run_dir, "checkpoints")
    return checkpoint
