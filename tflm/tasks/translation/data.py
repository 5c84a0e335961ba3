"""A translation run's data: the splits of its corpus, its vocabularies, tokenized and batched pairs."""

import logging
import os

from tflm import config as config_lib
from tflm.data.parallel import read_parallel
from tflm.data.pipeline import Batching, num_batches, tokenize_pairs, translation_dataset
from tflm.data.registry import dataset_info, find_dataset, split_file
from tflm.tasks import runs
from tflm.tasks.base import TaskData
from tflm.text import load_tokenizer
from tflm.text.vocab import train_tokenizer

logger = logging.getLogger("tflm")


def explicit_split_files(data_config, split):
    """`data.<split>_files` as (source_path, target_path), or None when the configuration names none."""
    explicit = getattr(data_config, f"{split}_files")
    if not explicit:
        return None
    if len(explicit) != 2:
        raise config_lib.ConfigError(f"data.{split}_files must be [source_path, target_path]; got {explicit}.")
    return explicit[0], explicit[1]


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


def vocabulary_paths(run_dir, tokenizer_kind_suffix):
    directory = os.path.join(run_dir, "vocab")
    return (os.path.join(directory, "source" + tokenizer_kind_suffix),
            os.path.join(directory, "target" + tokenizer_kind_suffix))


def load_vocabularies(run_dir):
    """The (source, target) tokenizers saved in a run directory (None when there are none yet)."""
    for suffix in (".model", ".vocab"):
        source_path, target_path = vocabulary_paths(run_dir, suffix)
        if os.path.exists(source_path) and os.path.exists(target_path):
            source = load_tokenizer(source_path)
            target = source if _same_file(source_path, target_path) else load_tokenizer(target_path)
            return source, target
    return None


def _same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def prepare_vocabularies(vocabulary_config, run_dir, train_corpus):
    """Loads the run's vocabularies, or trains them on the training corpus and saves them in `run_dir/vocab`."""
    existing = load_vocabularies(run_dir)
    if existing:
        return existing
    if not runs.is_chief():
        return runs.wait_for_chief_vocabulary(run_dir, lambda: load_vocabularies(run_dir))
    kind, size, seed = vocabulary_config.type, vocabulary_config.size, 0
    logger.info("Training %s %s vocabulary of %d pieces", "a joint" if vocabulary_config.joint else "per-side",
                kind, size)
    if vocabulary_config.joint:
        source = target = train_tokenizer(train_corpus.source + train_corpus.target, kind, size, seed)
    else:
        source = train_tokenizer(train_corpus.source, kind, size, seed)
        target = train_tokenizer(train_corpus.target, kind, size, seed)
    source_path, target_path = vocabulary_paths(run_dir, source.file_suffix)
    runs.save_vocabulary({source_path: source, target_path: target})  # target last: a load needs both
    return source, target


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


def seq2seq_task_data(config, source_tokenizer, target_tokenizer, train_pairs, valid_pairs, valid_corpus, note=""):
    """The `TaskData` of an encoder-decoder task (translation, summarization): length-bucketed batches of the
    tokenized pairs, the order fixed by the seed and epoch; `note` is added to the log's summary line."""
    batching = Batching(batch_tokens=config.data.batch_tokens, batch_size=config.data.batch_size,
                        fixed_shapes=config.training.jit_compile,
                        bucket_growth=1.5 if config.training.jit_compile else 1.2)
    steps = num_batches(train_pairs, batching)
    seed = config.training.seed
    return TaskData(
        tokenizers=(source_tokenizer, target_tokenizer),
        train_dataset=lambda epoch: translation_dataset(train_pairs, batching, seed=seed, epoch=epoch),
        steps_per_epoch=steps,
        valid=translation_dataset(valid_pairs, batching, shuffle=False),
        summary=f"{len(train_pairs)} training pairs{note}, {steps} batches per epoch",
        batch_units=config.data.batch_tokens or config.data.batch_size,
        extra=dict(source_tokenizer=source_tokenizer, target_tokenizer=target_tokenizer, train_pairs=train_pairs,
                   valid_pairs=valid_pairs, valid_corpus=valid_corpus, batching=batching),
    )
