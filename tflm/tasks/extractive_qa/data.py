"""An extractive-QA run's data: SQuAD-format splits, the tokenizer, and windows with their answer positions.

`vocab/` holds the tokenizer (the run's own, trained on the training questions and contexts, or a pretrained
encoder's, `tflm.tasks.pretrained`) and `qa.json` (`{"no_answer": bool}`: whether the model may answer "").
"""

import json
import logging
import os

import numpy as np
import tensorflow as tf

from tflm import config as config_lib
from tflm.data.qa_windows import answer_positions, qa_features
from tflm.data.squad import read_squad
from tflm.tasks import workers
from tflm.tasks.pretrained import prepare_encoder_vocabulary, saved_encoder, saved_tokenizer

logger = logging.getLogger("tflm")

QA_FILE = "qa.json"
MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def read_split(config, split, max_examples=None):
    """A split's `QAExample`s (its first `max_examples`)."""
    path = getattr(config.data, f"{split}_file")
    if not path:
        raise config_lib.ConfigError(f"No {split} split: set data.{split}_file (SQuAD-format JSON).")
    if not os.path.exists(path):
        raise FileNotFoundError(f"data.{split}_file={path}: no such file.")
    examples = read_squad(path)
    return examples[:max_examples] if max_examples else examples


def saved_vocabulary(run_dir):
    """`{"tokenizer", "encoder", "no_answer"}` of a run, or None before it has them."""
    directory = os.path.join(run_dir, "vocab")
    if not os.path.exists(os.path.join(directory, QA_FILE)):
        return None
    tokenizer = saved_tokenizer(directory)
    if tokenizer is None:
        return None
    with open(os.path.join(directory, QA_FILE)) as f:
        settings = json.load(f)
    return {"tokenizer": tokenizer, "encoder": saved_encoder(directory), **settings}


def prepare_vocabulary(config, run_dir, train):
    """The run's tokenizer and settings: read from `run_dir/vocab`, or made and saved there."""
    saved = saved_vocabulary(run_dir)
    if saved is not None:
        return saved
    if not workers.is_chief():
        return workers.wait_for_chief_vocabulary(run_dir, lambda: saved_vocabulary(run_dir))
    directory = os.path.join(run_dir, "vocab")
    prepare_encoder_vocabulary(config, directory, lambda: sorted({e.context for e in train}) + [e.question for e in train])
    no_answer = config.data.no_answer
    if no_answer is None:
        no_answer = any(example.is_impossible for example in train)
    with open(os.path.join(directory, QA_FILE), "w") as f:
        json.dump({"no_answer": bool(no_answer)}, f)
    logger.info("Extractive QA %s unanswerable questions", "with" if no_answer else "without")
    return saved_vocabulary(run_dir)


def features(config, tokenizer, questions, contexts):
    """`tflm.data.qa_windows.qa_features` with the run's packing settings (in the graph)."""
    data = config.data
    return qa_features(tokenizer, questions, contexts, max_length=data.max_length, doc_stride=data.doc_stride,
                       max_question_length=data.max_question_length, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id)


def windows(config, tokenizer, examples, batch=512):
    """`(inputs, labels)` NumPy arrays of every window of `examples`: the model's inputs `(windows, max_length)`
    and `{"start_positions", "end_positions"}` `(windows,)` (0, the [CLS], where the answer is not in the
    window or there is none)."""
    inputs = {name: [] for name in MODEL_INPUTS}
    starts, ends = [], []
    for first in range(0, len(examples), batch):
        part = examples[first:first + batch]
        found = features(config, tokenizer, tf.constant([e.question for e in part]),
                         tf.constant([e.context for e in part]))
        found = {name: (value.numpy() if hasattr(value, "numpy") else value) for name, value in found.items()}
        start, end = answer_positions(found, part)
        for name in MODEL_INPUTS:
            inputs[name].append(np.asarray(found[name]))
        starts.append(start)
        ends.append(end)
    width = config.data.max_length
    inputs = {name: np.concatenate(values) if values else np.zeros([0, width], "int32")
              for name, values in inputs.items()}
    labels = {"start_positions": np.concatenate(starts).astype("int32") if starts else np.zeros([0], "int32"),
              "end_positions": np.concatenate(ends).astype("int32") if ends else np.zeros([0], "int32")}
    return inputs, labels


def batches(inputs, labels, batch_size, shuffle_seed=None):
    """A dataset of `(inputs, labels)` batches, cut to the longest window of the batch."""
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels["start_positions"]), seed=shuffle_seed, reshuffle_each_iteration=False)

    def trim(x, y):
        length = tf.reduce_max(tf.reduce_sum(tf.cast(tf.cast(x["padding_mask"], tf.bool), tf.int32), axis=1))
        return {name: value[:, :tf.maximum(length, 1)] for name, value in x.items()}, y

    return dataset.batch(batch_size).map(trim).prefetch(2)
