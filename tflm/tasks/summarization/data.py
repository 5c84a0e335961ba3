"""A summarization run's data: documents and summaries of a `{split}.source` / `{split}.target` folder,
tokenized with one joint vocabulary, long documents truncated (and counted), batched by length."""

import logging

import numpy as np
import tensorflow as tf

from tflm import config as config_lib
from tflm.data.parallel import DropReport, read_parallel
from tflm.data.pipeline import TokenizedPairs, tokenize_texts
from tflm.data.registry import dataset_info, find_dataset, split_file
from tflm.tasks.seq2seq.data import explicit_split_files, prepare_vocabularies, seq2seq_task_data

logger = logging.getLogger("tflm")

SUFFIXES = ("source", "target")


def split_files(data_config, split):
    """(source_path, target_path) of a split: explicit files, a registered corpus, or a `data_dir` folder."""
    explicit = explicit_split_files(data_config, split)
    if explicit:
        return explicit
    if data_config.dataset is None:
        if not data_config.data_dir:
            raise config_lib.ConfigError(f"No data for the {split} split: set data.dataset, data.data_dir or "
                                         f"data.{split}_files.")
        directory = data_config.data_dir
    else:
        info = dataset_info(data_config.dataset)
        if info.task != "summarization":
            raise config_lib.ConfigError(f"Dataset {info.name!r} is a {info.task} corpus, not a summarization one; "
                                         "pick one with `tflm data list` or give data.data_dir.")
        directory = find_dataset(data_config.dataset, data_config.data_dir)
    return tuple(split_file(directory, split, suffix) for suffix in SUFFIXES)


def read_split(data_config, split, max_pairs=None):
    """One split as a `ParallelCorpus` (`.source`: documents, `.target`: summaries)."""
    return read_parallel(*split_files(data_config, split), max_pairs=max_pairs)


def tokenize_documents(corpus, tokenizer, max_source_length, max_target_length=None, target_tokenizer=None):
    """Tokenizes documents and summaries: sources longer than `max_source_length` tokens (EOS included) are
    truncated to their first tokens, summaries longer than `max_target_length` are dropped (when given);
    both are counted and logged with their first line numbers. Summaries are tokenized with `target_tokenizer`
    when given (separate vocabularies), else with `tokenizer`.

    Returns:
        `TokenizedPairs`.
    """
    source = tokenize_texts(corpus.source, tokenizer)
    target = tokenize_texts(corpus.target, target_tokenizer or tokenizer)
    line_numbers = np.asarray(corpus.line_numbers, dtype=np.int64)
    where = f"{corpus.source_path} / {corpus.target_path}"
    lengths = source.row_lengths().numpy() + 1
    truncated = DropReport(where)
    for number, length in zip(line_numbers[lengths > max_source_length], lengths[lengths > max_source_length]):
        truncated.add(f"source longer than {max_source_length} tokens", int(number))
    if truncated.total():
        logger.info("truncated %s", truncated.summary())
    source = source[:, : max_source_length - 1]
    if max_target_length:
        dropped = DropReport(where)
        over = target.row_lengths().numpy() + 1 > max_target_length
        for number in line_numbers[over]:
            dropped.add(f"summary longer than {max_target_length} tokens", int(number))
        dropped.log("dropped")
        keep = ~over
        source, target = tf.ragged.boolean_mask(source, keep), tf.ragged.boolean_mask(target, keep)
        line_numbers = line_numbers[keep]
    pairs = TokenizedPairs(source, target, line_numbers)
    pairs.truncated = truncated.total()
    return pairs


def prepare_data(config, run_dir):
    """Reads the train and valid splits, builds (or loads) the vocabulary, tokenizes, truncates, batches.

    Returns a `TaskData` whose tokenizers are `(source, target)`; its extra parts: `source_tokenizer`,
    `target_tokenizer`, `train_pairs`, `valid_pairs`, `valid_corpus`, `batching`.
    """
    data = config.data
    train_corpus = read_split(data, "train", max_pairs=data.max_train_pairs)
    source_tokenizer, target_tokenizer = prepare_vocabularies(config.vocabulary, run_dir, train_corpus)
    train_pairs = tokenize_documents(train_corpus, source_tokenizer, data.max_source_length, data.max_target_length,
                                     target_tokenizer)
    if not len(train_pairs):
        raise ValueError(f"No training pairs are left in {train_corpus.source_path}: every summary is longer than "
                         f"data.max_target_length={data.max_target_length} tokens; raise it.")
    valid_corpus = read_split(data, "valid")
    valid_pairs = tokenize_documents(valid_corpus, source_tokenizer, data.max_source_length, data.max_target_length,
                                     target_tokenizer)
    truncated = f", {train_pairs.truncated} sources truncated to {data.max_source_length} tokens" \
        if train_pairs.truncated else ""
    return seq2seq_task_data(config, source_tokenizer, target_tokenizer, train_pairs, valid_pairs, valid_corpus,
                             note=truncated)
