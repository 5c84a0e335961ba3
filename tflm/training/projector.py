"""TensorBoard's Embedding Projector for a run's embedding tables.

The projector reads embeddings from a checkpoint, by the checkpoint's name for the variable. tflm checkpoints a
model's variables by their position in `model.weights` (`tflm.training.checkpoints.ModelVariables`), so the
table at position 7 is `model/variables_by_index/00007/.ATTRIBUTES/VARIABLE_VALUE` in every checkpoint of the
run (training, best, averaged). `write_projector` writes, in `RUN/logs/`:

- `projector_config.pbtxt`: the checkpoint and, per table, its `tensor_name` and `metadata_path`;
- `metadata.tsv`: one word a line, the row labels (a single column, so no header line).

Then `tensorboard --logdir RUN/logs` shows the tables under "Projector".
"""

import logging
import os

import tensorflow as tf

from tflm.training.checkpoints import CheckpointError, resolve_checkpoint, resolve_run_checkpoint

logger = logging.getLogger("tflm")

METADATA_FILE = "metadata.tsv"


def checkpoint_tensor_name(model, variable):
    """The name under which tflm checkpoints `variable` of `model` (by its position in `model.weights`)."""
    for index, weight in enumerate(model.weights):
        if weight is variable:
            return f"model/variables_by_index/{index:05d}/.ATTRIBUTES/VARIABLE_VALUE"
    raise ValueError(f"{getattr(variable, 'path', variable)!r} is not a weight of the model {model.name!r}; pass "
                     "one of its embedding tables (e.g. `layer.embeddings`).")


def write_projector(run_dir, model, words, tables=None, checkpoint="last"):
    """Writes the Embedding Projector's files for a run's embedding tables into `RUN/logs/`.

    Args:
        run_dir: str. The run directory (its `checkpoints/` are read, `logs/` written).
        model: the run's Keras model, built (the one whose variables the checkpoints hold).
        words: list of str. The row labels, one per vocabulary id (`tokenizer.pieces`).
        tables: a variable or a list of variables, optional. The tables to show; by default every 2-D weight
            of `model` with `len(words)` rows (e.g. both tables of a multichannel `PretrainedEmbedding`).
        checkpoint: `"last"`, `"best"`, `"averaged"`, or a checkpoint path or directory.
    Returns:
        The path of `projector_config.pbtxt`.
    Raises:
        CheckpointError: no checkpoint, or one that lacks a table (of that shape).
    Example:
    >>> write_projector("runs/trec", model, tokenizer.pieces)  # doctest: +SKIP
    'runs/trec/logs/projector_config.pbtxt'
    """
    from tensorboard.plugins import projector

    if tables is None:
        tables = [w for w in model.weights if len(w.shape) == 2 and w.shape[0] == len(words)]
        if not tables:
            shapes = [tuple(w.shape) for w in model.weights if len(w.shape) == 2]
            raise ValueError(f"{model.name}: no 2-D weight has {len(words)} rows (one per word); its 2-D weights "
                             f"have shapes {shapes}. Pass the vocabulary of this model, or tables=.")
    elif not isinstance(tables, (list, tuple)):
        tables = [tables]
    path = resolve_run_checkpoint(run_dir, checkpoint)
    if checkpoint in ("last", "best", "averaged") and not os.path.isdir(path):
        raise CheckpointError(f"{run_dir}: no {checkpoint} checkpoint ({path} is missing). Train the run first.")
    path = resolve_checkpoint(path)
    stored = dict(tf.train.list_variables(path))
    config = projector.ProjectorConfig(model_checkpoint_path=os.path.abspath(path))
    for table in tables:
        name = checkpoint_tensor_name(model, table)
        if list(stored.get(name, [])) != [len(words), table.shape[1]]:
            found = "absent" if name not in stored else f"of shape {stored[name]}"
            raise CheckpointError(
                f"{path}: the table {table.path} ({name}, shape {[len(words), table.shape[1]]}) is {found} in this "
                "checkpoint: it was written by another model. Pass the run's own model."
            )
        config.embeddings.add(tensor_name=name, metadata_path=METADATA_FILE)
        logger.info("Projector: %s is %s in %s", table.path, name, path)
    logs_dir = os.path.join(run_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    with open(os.path.join(logs_dir, METADATA_FILE), "w", encoding="utf-8") as f:
        f.writelines(_label(word) + "\n" for word in words)
    projector.visualize_embeddings(logs_dir, config)
    return os.path.join(logs_dir, "projector_config.pbtxt")


def _label(word):
    """A word as one TSV cell: tabs and newlines shown as spaces, an empty word as `<empty>`."""
    word = word.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return word if word.strip() else "<empty>"
