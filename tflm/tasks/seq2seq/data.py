"""What the encoder-decoder tasks (translation, summarization) read and batch alike: explicit split files,
the run's source and target vocabularies (one joint file pair or two), and the `TaskData` of tokenized pairs
in length-bucketed batches."""

import logging
import os

from tflm import config as config_lib
from tflm.data.pipeline import Batching, num_batches, translation_dataset
from tflm.tasks import workers
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
    if not workers.is_chief():
        return workers.wait_for_chief_vocabulary(run_dir, lambda: load_vocabularies(run_dir))
    kind, size, seed = vocabulary_config.type, vocabulary_config.size, 0
    logger.info("Training %s %s vocabulary of %d pieces", "a joint" if vocabulary_config.joint else "per-side",
                kind, size)
    if vocabulary_config.joint:
        source = target = train_tokenizer(train_corpus.source + train_corpus.target, kind, size, seed)
    else:
        source = train_tokenizer(train_corpus.source, kind, size, seed)
        target = train_tokenizer(train_corpus.target, kind, size, seed)
    source_path, target_path = vocabulary_paths(run_dir, source.file_suffix)
    workers.save_vocabulary({source_path: source, target_path: target})  # target last: a load needs both
    return source, target


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
