"""Language-modelling runs: configuration, vocabulary, data, model, training, evaluation, generation.

The task (`LanguageModelingTask`, registered as "language_modeling") is what `tflm train --task
language_modeling`, `tflm evaluate`, `tflm generate` and `tflm export` run; a `Generator` generates in the
graph and is what export saves.

Metrics (`evaluate`): mean token loss (nats), perplexity, bits per character for character models, and the
word-level perplexity `exp(total loss / words)` for any tokenizer, where words are counted as WikiText's
word-level version counts them (whitespace words plus one end-of-line per line), so figures compare with
published ones.
"""

from tflm.tasks import get_task
from tflm.tasks.language_modeling.config import (
    LanguageModelConfig,
    LMDataConfig,
    LMVocabularyConfig,
    generation_defaults,
)
from tflm.tasks.language_modeling.data import (
    LMData,
    load_vocabulary,
    prepare_vocabulary,
    prepared_task_data,
    read_split,
    split_path,
    train_datasets,
)
from tflm.tasks.language_modeling.data import prepare_data as _prepare_lm_data
from tflm.tasks.language_modeling.generator import SAMPLE_PROMPTS, Generator, SampleGenerations
from tflm.tasks.language_modeling.scoring import (
    DynamicEvaluation,
    NeuralCache,
    cache_nll,
    evaluate_ids,
    is_recurrent,
    metrics,
    score_ids,
)
from tflm.tasks.language_modeling.task import LanguageModelingTask, build_model
from tflm.tasks.runs import (  # noqa: F401  (the sections every task shares, re-exported for scripts)
    ModelConfig,
    TrainingConfig,
    build_optimizer,
    count_parameters,
    start_run,
)

TASK = get_task("language_modeling")


def load_run_config(run_dir):
    return TASK.load_config(run_dir)


def prepare_data(config, run_dir):
    """Reads and tokenizes the train and valid text (training the vocabulary on first use): an `LMData`."""
    return _prepare_lm_data(config, run_dir)


def build_trainer(config, run_dir, data, strategy=None, verbose=True):
    """The model, optimizer and `Trainer` of a run (`data`: `prepare_data`'s `LMData`)."""
    if isinstance(data, LMData):
        data = prepared_task_data(data, config.data.batch_size)
    return TASK.build_trainer(config, run_dir, data, strategy=strategy, verbose=verbose)


def train(config, run_dir, verbose=True):
    """Trains (or resumes) a language-model run in `run_dir`; returns the `TrainResult`."""
    return TASK.train(config, run_dir, verbose=verbose)


def evaluate(run_dir, split="test", checkpoint="best", max_tokens=None, stride=None, memory_length=None,
             dynamic=None, cache=None):
    """Loss, perplexity, bits per character and word-level perplexity on a split; writes eval/<split>.json
    (see `LanguageModelingTask.evaluate_split`)."""
    return TASK.evaluate(run_dir, split, checkpoint, max_examples=max_tokens, stride=stride,
                         memory_length=memory_length, dynamic=dynamic, cache=cache)


def average_run_checkpoints(run_dir, count=5):
    """Averages the last `count` training checkpoints of a run into `checkpoints/averaged/`; returns its path."""
    return TASK.average(run_dir, count)


__all__ = ["DynamicEvaluation", "Generator", "LMData", "LMDataConfig", "LMVocabularyConfig", "LanguageModelConfig",
           "LanguageModelingTask", "NeuralCache", "SAMPLE_PROMPTS", "SampleGenerations", "average_run_checkpoints",
           "build_model", "build_trainer", "cache_nll", "evaluate", "evaluate_ids", "generation_defaults",
           "is_recurrent", "load_run_config", "load_vocabulary", "metrics", "prepare_data", "prepare_vocabulary",
           "read_split", "score_ids", "split_path", "train", "train_datasets"]
