"""TensorBoard's Embedding Projector for a run's embedding tables.

The projector reads embeddings from a checkpoint, by the checkpoint's name for the variable. tflm checkpoints a
model's variables by their position in `model.weights` (`tflm.training.checkpoints.ModelVariables`), so the
table at position 7 is `model/variables_by_index/00007/.ATTRIBUTES/VARIABLE_VALUE` in every checkpoint of the
run (training, best, averaged). `write_projector` writes, in `RUN/logs/`:

- `projector_config.pbtxt`: the checkpoint and, per table, its `tensor_name` and `metadata_path`;
- `metadata.tsv`: one word a line, the row labels of the first (or only) vocabulary (a single column, so no
  header line), and `metadata-<name>.tsv` for each further one (e.g. a translation's target vocabulary).

Then `tensorboard --logdir RUN/logs` shows the tables under "Projector". Every run writes them after training
(`Task.train`, through the task's `projector_tables` hook, by default `embedding_tables`), and
`tflm projector --run-dir RUN` writes them for an existing run (`write_run_projector`).
"""

import logging
import os
import re

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


def metadata_file(index, name):
    """The metadata file of the `index`-th vocabulary: `metadata.tsv` for the first, `metadata-<name>.tsv` after."""
    return METADATA_FILE if index == 0 else f"metadata-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.tsv"


def write_projector(run_dir, model, words=None, tables=None, checkpoint="last", vocabularies=None):
    """Writes the Embedding Projector's files for a run's embedding tables into `RUN/logs/`.

    Args:
        run_dir: str. The run directory (its `checkpoints/` are read, `logs/` written).
        model: the run's Keras model, built (the one whose variables the checkpoints hold).
        words: list of str. The row labels, one per vocabulary id (`tokenizer.pieces`); or give `vocabularies`.
        tables: a variable or a list of variables, optional. The tables to show; by default every 2-D weight
            of `model` with `len(words)` rows (e.g. both tables of a multichannel `PretrainedEmbedding`).
        checkpoint: `"last"`, `"best"`, `"averaged"`, or a checkpoint path or directory.
        vocabularies: list of `(name, words, tables)`, instead of `words` and `tables`: several vocabularies
            at once (e.g. a translation's source and target), each with its own metadata file (`metadata.tsv`
            for the first, `metadata-<name>.tsv` for the others); `tables` as above (None: by row count).
    Returns:
        The path of `projector_config.pbtxt`.
    Raises:
        CheckpointError: no checkpoint, or one that lacks a table (of that shape).
    Example:
    >>> write_projector("runs/trec", model, tokenizer.pieces)  # doctest: +SKIP
    'runs/trec/logs/projector_config.pbtxt'
    >>> write_projector("runs/en-es", model, vocabularies=[("source", source.pieces, [encoder_table]),
    ...                                                    ("target", target.pieces, [decoder_table])])  # doctest: +SKIP
    'runs/en-es/logs/projector_config.pbtxt'
    """
    from tensorboard.plugins import projector

    if (words is None) == (vocabularies is None):
        raise ValueError("Give the row labels either as words= (one vocabulary) or as vocabularies= "
                         "([(name, words, tables)], several), not both and not neither.")
    if vocabularies is None:
        vocabularies = [("words", words, tables)]
    vocabularies = [(name, list(words), _tables_of(model, words, tables)) for name, words, tables in vocabularies]
    names = [name for name, _, _ in vocabularies]
    if not vocabularies or len(set(names)) != len(names):
        raise ValueError(f"The vocabularies need distinct names, and at least one (got {names}).")
    path = resolve_run_checkpoint(run_dir, checkpoint)
    if checkpoint in ("last", "best", "averaged") and not os.path.isdir(path):
        raise CheckpointError(f"{run_dir}: no {checkpoint} checkpoint ({path} is missing). Train the run first.")
    path = resolve_checkpoint(path)
    stored = dict(tf.train.list_variables(path))
    config = projector.ProjectorConfig(model_checkpoint_path=os.path.abspath(path))
    shown = set()
    for index, (name, words, tables) in enumerate(vocabularies):
        for table in tables:
            tensor = checkpoint_tensor_name(model, table)
            if tensor in shown:
                continue  # one table for two vocabularies (shared embeddings): shown once, with the first
            if list(stored.get(tensor, [])) != [len(words), table.shape[1]]:
                found = "absent" if tensor not in stored else f"of shape {stored[tensor]}"
                raise CheckpointError(
                    f"{path}: the table {table.path} ({tensor}, shape {[len(words), table.shape[1]]}) is {found} in "
                    "this checkpoint: it was written by another model. Pass the run's own model."
                )
            shown.add(tensor)
            config.embeddings.add(tensor_name=tensor, metadata_path=metadata_file(index, name))
            logger.info("Projector: %s (%s vocabulary) is %s in %s", table.path, name, tensor, path)
    logs_dir = os.path.join(run_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    for index, (name, words, _) in enumerate(vocabularies):
        with open(os.path.join(logs_dir, metadata_file(index, name)), "w", encoding="utf-8") as f:
            f.writelines(_label(word) + "\n" for word in words)
    projector.visualize_embeddings(logs_dir, config)
    return os.path.join(logs_dir, "projector_config.pbtxt")


def embedding_tables(model, tokenizers):
    """The default `Task.projector_tables`: `[(name, words, tables)]` for a model's token embeddings.

    `tokenizers` is what the task's `build_model` takes: one tokenizer (a language model: its tables with one
    row per piece), a `(source, target)` pair (an encoder-decoder: the source vocabulary labels the tables of
    `model.encoder`, the target one those of `model.decoder`, so that two vocabularies of one size each get
    their own table; one object twice, a joint vocabulary, labels both), a dict of named tokenizers, or None.
    Only tokenizers with `.pieces` count, and a vocabulary no 2-D weight has as many rows as is left out: a
    task without tokenizers gets [] (nothing written).
    """
    if tokenizers is None:
        return []
    if hasattr(tokenizers, "pieces"):
        named = [("tokens", tokenizers, None)]
    elif isinstance(tokenizers, dict):
        named = [(str(name), tokenizer, None) for name, tokenizer in tokenizers.items()]
    elif isinstance(tokenizers, (list, tuple)) and len(tokenizers) == 2 and tokenizers[0] is tokenizers[1]:
        named = [("joint", tokenizers[0], None)]
    elif isinstance(tokenizers, (list, tuple)) and len(tokenizers) == 2:
        named = [("source", tokenizers[0], "encoder"), ("target", tokenizers[1], "decoder")]
    elif isinstance(tokenizers, (list, tuple)):
        named = [(f"vocabulary{index}", tokenizer, None) for index, tokenizer in enumerate(tokenizers)]
    else:
        return []
    found, claimed = [], set()
    for name, tokenizer, part in named:
        if not hasattr(tokenizer, "pieces"):
            continue
        words = readable_words(tokenizer)
        tables = [w for w in _weights_of(model, part) if len(w.shape) == 2 and w.shape[0] == len(words)
                  and id(w) not in claimed]
        if tables:
            claimed.update(id(w) for w in tables)
            found.append((name, words, tables))
    return found


def _weights_of(model, part):
    """The weights of `model.encoder` or `model.decoder` (`part`), else those whose path names the part; all
    of the model's when `part` is None or the model has no such part."""
    if part is None:
        return model.weights
    layer = getattr(model, part, None)
    if layer is not None and hasattr(layer, "weights"):
        return layer.weights
    named = [w for w in model.weights if part in str(getattr(w, "path", "")).split("/")]
    return named or model.weights


def readable_words(tokenizer):
    """A tokenizer's pieces as row labels: a byte-level BPE piece (GPT-2's byte alphabet, `Ġthe`) as its text,
    a space as `▁` (as SentencePiece writes it) and a control character escaped (`\\n`), so that every label
    is visible and none is blank."""
    pieces = tokenizer.pieces
    if getattr(tokenizer, "kind", None) == "byte_bpe":
        decoder = _byte_decoder()
        pieces = [piece if not all(c in decoder for c in piece) else
                  bytes(decoder[c] for c in piece).decode("utf-8", errors="backslashreplace") for piece in pieces]
    return ["".join(_visible(c) for c in piece) or "<empty>" for piece in pieces]


def _visible(char):
    """A space as `▁`, a control or other invisible character escaped (`\\n`, `\\u3000`), anything else as is."""
    if char == " ":
        return "▁"
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def _byte_decoder():
    """GPT-2's byte alphabet, character -> byte (byte-level BPE pieces are strings of these characters)."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in visible]
    return {**{chr(b): b for b in visible}, **{chr(256 + i): b for i, b in enumerate(others)}}


def write_run_projector(task, run_dir, config, model, tokenizers, checkpoint="last"):
    """Writes the projector files of a run for the tables its task names (`task.projector_tables`); returns
    the config's path, or None when the task names none (nothing is written)."""
    vocabularies = task.projector_tables(config, model, tokenizers)
    if not vocabularies:
        logger.info("Projector: the %s task names no embedding tables; nothing to show.", task.name)
        return None
    return write_projector(run_dir, model, checkpoint=checkpoint, vocabularies=vocabularies)


def write_after_training(task, run_dir, config, model, tokenizers):
    """`write_run_projector` once training ended (`Task.train`, the chief only). A failure is a warning: the
    projector never fails a trained run.

    It names the "last" checkpoint: the one `Trainer.fit` saved as it stopped, so it holds exactly the weights
    `model` holds now, and every run has one (the "best" exists only for a run with validation data, and is
    the weights of an earlier epoch, while TensorBoard's other dashboards end at the last step).
    `tflm projector --checkpoint best` shows the best one instead.
    """
    try:
        return write_run_projector(task, run_dir, config, model, tokenizers, checkpoint="last")
    except Exception as error:  # noqa: BLE001  (a plug-in task's hook or a file system may fail in any way)
        logger.warning("TensorBoard's Embedding Projector files were not written for %s (%s: %s); the run is "
                       "fine. `tflm projector --run-dir %s` writes them.", run_dir, type(error).__name__,
                       str(error).splitlines()[0][:300] if str(error) else "", run_dir)
        return None


def _tables_of(model, words, tables):
    """The tables of one vocabulary: `tables` as a list, or every 2-D weight with `len(words)` rows."""
    if tables is None:
        tables = [w for w in model.weights if len(w.shape) == 2 and w.shape[0] == len(words)]
        if not tables:
            shapes = [tuple(w.shape) for w in model.weights if len(w.shape) == 2]
            raise ValueError(f"{model.name}: no 2-D weight has {len(words)} rows (one per word); its 2-D weights "
                             f"have shapes {shapes}. Pass the vocabulary of this model, or tables=.")
    elif not isinstance(tables, (list, tuple)):
        tables = [tables]
    return list(tables)


def _label(word):
    """A word as one TSV cell: tabs and newlines shown as spaces, an empty word as `<empty>`."""
    word = word.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return word if word.strip() else "<empty>"
