"""A translation run's data: the splits of its corpus (a registered translation corpus or explicit files),
tokenized and filtered pairs (vocabularies and batching: `tflm.tasks.seq2seq.data`)."""

from tflm import config as config_lib
from tflm.data.parallel import read_parallel
from tflm.data.pipeline import tokenize_pairs
from tflm.data.registry import dataset_info, find_dataset, split_file
from tflm.tasks.seq2seq.data import explicit_split_files, prepare_vocabularies, seq2seq_task_data


def split_files(data_config, split):
    """(source_path, target_path) of a split."""
    explicit = explicit_split_files(data_config, split)
    if explicit:
        return explicit
    if data_config.dataset is None:
        raise config_lib.ConfigError(f"No data for the {split} split: set data.dataset or data.{split}_files.")
    info = dataset_info(data_config.dataset)
    languages = (data_config.source_language, data_config.target_language)
    if info.task != "translation" or set(languages) != set(info.languages):
        raise config_lib.ConfigError(
            f"Dataset {info.name!r} ({info.task}, languages {'/'.join(info.languages) or '-'}) has no "
            f"{'-'.join(languages)} translation; pick --source-lang/--target-lang from {list(info.languages)}."
        )
    directory = find_dataset(data_config.dataset, data_config.data_dir)
    return split_file(directory, split, languages[0]), split_file(directory, split, languages[1])


def read_split(data_config, split, max_pairs=None):
    """Reads one split of the configured corpus into a `ParallelCorpus`."""
    source_path, target_path = split_files(data_config, split)
    return read_parallel(source_path, target_path, max_pairs=max_pairs)


def prepare_data(config, run_dir):
    """Reads the train and valid splits, builds (or loads) the vocabularies, tokenizes and filters.

    Returns a `TaskData` whose tokenizers are `(source, target)`; its extra parts: `source_tokenizer`,
    `target_tokenizer`, `train_pairs`, `valid_pairs`, `valid_corpus`, `batching`.
    """
    train_corpus = read_split(config.data, "train", max_pairs=config.data.max_train_pairs)
    source_tokenizer, target_tokenizer = prepare_vocabularies(config.vocabulary, run_dir, train_corpus)
    limits = dict(max_source_length=config.data.max_source_length, max_target_length=config.data.max_target_length)
    train_pairs = tokenize_pairs(train_corpus, source_tokenizer, target_tokenizer, **limits)
    if not len(train_pairs):
        raise ValueError("No training pairs are left after filtering; check the data and the length limits.")
    valid_corpus = read_split(config.data, "valid")
    valid_pairs = tokenize_pairs(valid_corpus, source_tokenizer, target_tokenizer, **limits)
    return seq2seq_task_data(config, source_tokenizer, target_tokenizer, train_pairs, valid_pairs, valid_corpus)
