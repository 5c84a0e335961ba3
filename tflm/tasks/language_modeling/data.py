"""A language-modelling run's data: the text of its splits, its tokenizer, training windows or segments."""

import dataclasses
import logging
import os

import numpy as np

from tflm import config as config_lib
from tflm.data.language_modeling import (
    contiguous_dataset,
    num_contiguous_segments,
    num_windows,
    read_text_lines,
    tokenize_stream,
    window_dataset,
)
from tflm.data.registry import dataset_info, find_dataset, split_file
from tflm.tasks import workers
from tflm.tasks.base import TaskData
from tflm.tasks.language_modeling.scoring import evaluate_ids
from tflm.text import load_tokenizer
from tflm.text.vocab import train_tokenizer

logger = logging.getLogger("tflm")


def split_path(data_config, split):
    explicit = getattr(data_config, f"{split}_file")
    if explicit:
        return explicit
    if data_config.dataset is None:
        raise config_lib.ConfigError(f"No text for the {split} split: set data.dataset or data.{split}_file.")
    info = dataset_info(data_config.dataset)
    if info.task != "language_modeling":
        raise config_lib.ConfigError(f"Dataset {info.name!r} is a {info.task} corpus; language models train on "
                                     "wikitext-2-raw, shakespeare, or data.train_file.")
    return split_file(find_dataset(data_config.dataset, data_config.data_dir), split, "txt")


def read_split(data_config, split):
    return read_text_lines(split_path(data_config, split))


def prepare_vocabulary(vocabulary_config, run_dir, train_lines):
    """Loads the run's tokenizer, or trains it on the training text and saves it in `run_dir/vocab/`."""
    directory = os.path.join(run_dir, "vocab")
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.startswith("tokenizer."):
                return load_tokenizer(os.path.join(directory, name))
    if not workers.is_chief():
        return workers.wait_for_chief_vocabulary(run_dir, lambda: _saved_vocabulary(run_dir))
    texts = train_lines if vocabulary_config.type in ("character", "byte_bpe") else [
        line.strip() for line in train_lines if line.strip()]
    tokenizer = train_tokenizer(texts, vocabulary_config.type, vocabulary_config.size)
    workers.save_vocabulary({os.path.join(directory, "tokenizer" + tokenizer.file_suffix): tokenizer})
    return tokenizer


def _saved_vocabulary(run_dir):
    try:
        return load_vocabulary(run_dir)
    except FileNotFoundError:
        return None


def load_vocabulary(run_dir):
    directory = os.path.join(run_dir, "vocab")
    names = [n for n in sorted(os.listdir(directory)) if n.startswith("tokenizer.")] if os.path.isdir(directory) else []
    if not names:
        raise FileNotFoundError(f"{directory}: no tokenizer; was this run trained?")
    return load_tokenizer(os.path.join(directory, names[0]))


@dataclasses.dataclass
class LMData:
    tokenizer: object
    train_ids: np.ndarray
    valid_ids: np.ndarray
    valid_lines: list


def task_data(config, data, model):
    """The `TaskData` a model trains on: `train_datasets`' batches, validation by `evaluate_ids`, and (with
    memory) the memory emptied at each epoch's start."""
    dataset, steps = train_datasets(config, data, model)

    def validate():
        return evaluate_ids(model, data.valid_ids, config.data.sequence_length, config.data.batch_size,
                            config.data.eval_stride, config.data.max_valid_tokens)

    return TaskData(
        tokenizers=data.tokenizer, train_dataset=dataset, steps_per_epoch=steps, valid=validate,
        on_epoch_start=(lambda trainer, epoch: model.reset_memory()) if model.reads_contiguous_streams else None,
        batch_units=config.data.batch_size, extra=dict(dataclasses.asdict(data), data=data),
    )


def prepare_data(config, run_dir):
    """Reads and tokenizes the train and valid text (training the vocabulary on first use)."""
    train_lines = read_split(config.data, "train")
    tokenizer = prepare_vocabulary(config.vocabulary, run_dir, train_lines)
    train_ids = tokenize_stream(train_lines, tokenizer)
    if config.data.max_train_tokens:
        train_ids = train_ids[: config.data.max_train_tokens]
    valid_lines = read_split(config.data, "valid")
    valid_ids = tokenize_stream(valid_lines, tokenizer)
    logger.info("Language-model data: %d training tokens, %d validation tokens, vocabulary %d",
                len(train_ids), len(valid_ids), tokenizer.vocabulary_size)
    return LMData(tokenizer, train_ids, valid_ids, valid_lines)


def prepared_task_data(data, batch_size=None):
    """`prepare_data`'s `LMData` as the driver's `TaskData` (its batches come once the model exists)."""
    return TaskData(tokenizers=data.tokenizer, train_dataset=None, summary=f"{len(data.train_ids)} training tokens",
                    batch_units=batch_size,
                    extra=dict(tokenizer=data.tokenizer, train_ids=data.train_ids, valid_ids=data.valid_ids,
                               valid_lines=data.valid_lines, data=data))


def train_datasets(config, data, model):
    """`(epoch -> dataset, steps per epoch)`: shuffled windows, or contiguous segments for recurrence."""
    length, batch = config.data.sequence_length, config.data.batch_size
    stride, random_offset, seed = config.data.stride, config.data.random_offsets, config.training.seed
    if config.data.segments_per_chunk is not None and not model.reads_contiguous_streams:
        raise ValueError(f"data.segments_per_chunk is for Transformer-XL with memory; a {config.model.type!r} model "
                         "reads shuffled windows. Leave it unset (--segments-per-chunk in the recipe).")
    if model.reads_contiguous_streams:
        chunk = config.data.segments_per_chunk
        steps = num_contiguous_segments(data.train_ids, length, batch, random_offset, chunk)
        return (lambda epoch: contiguous_dataset(data.train_ids, length, batch, seed=seed, epoch=epoch,
                                                 random_offset=random_offset, segments_per_chunk=chunk)), steps
    count = num_windows(data.train_ids, length, stride, random_offset)
    return (lambda epoch: window_dataset(data.train_ids, length, batch, stride, seed=seed, epoch=epoch,
                                         random_offset=random_offset)), -(-count // batch)
