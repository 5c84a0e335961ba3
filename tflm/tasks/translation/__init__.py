"""Translation runs: configuration, vocabularies, data, model, training, decoding and evaluation.

The task (`TranslationTask`, registered as "translation") is what `tflm train`, `tflm evaluate`,
`tflm translate` and `tflm export` run; the functions here are its steps, for scripts and recipes:

    config = TranslationConfig(...)
    result = train(config, run_dir)             # or: get_task("translation").train(config, run_dir)
    scores = evaluate(run_dir, split="test")
    translator = Translator.from_run_dir(run_dir)
    translator.translate(["Hello."])
"""

from tflm.tasks import get_task
from tflm.tasks.runs import (  # noqa: F401  (the sections every task shares, re-exported for scripts)
    ModelConfig,
    TrainingConfig,
    build_optimizer,
    count_parameters,
    start_run,
)
from tflm.tasks.translation.config import DataConfig, DecodingConfig, TranslationConfig, VocabularyConfig
from tflm.tasks.seq2seq.data import load_vocabularies, prepare_vocabularies
from tflm.tasks.translation.data import prepare_data, read_split, split_files
from tflm.tasks.translation.task import TranslationTask, build_model
from tflm.tasks.translation.translator import Translator

TASK = get_task("translation")


def load_run_config(run_dir):
    return TASK.load_config(run_dir)


def train(config, run_dir, verbose=True):
    """Trains (or resumes) a translation run in `run_dir`; returns the `TrainResult`."""
    return TASK.train(config, run_dir, verbose=verbose)


def build_trainer(config, run_dir, data, strategy=None, verbose=True):
    return TASK.build_trainer(config, run_dir, data, strategy=strategy, verbose=verbose)


def evaluate(run_dir, split="test", checkpoint="best", decoding=None, max_pairs=None):
    """Translates a split of the run's corpus and scores it with sacreBLEU (BLEU, chrF); writes
    `eval/<split>.<checkpoint>.<strategy>.hyp` and `.json` and returns the scores."""
    return TASK.evaluate(run_dir, split, checkpoint, max_examples=max_pairs, decoding=decoding)


def average_run_checkpoints(run_dir, count=5):
    """Averages the last `count` training checkpoints of a run into `checkpoints/averaged/`; returns its path."""
    return TASK.average(run_dir, count)


__all__ = ["DataConfig", "DecodingConfig", "ModelConfig", "TrainingConfig", "TranslationConfig",
           "TranslationTask", "Translator", "VocabularyConfig", "average_run_checkpoints", "build_model",
           "build_trainer", "evaluate", "load_run_config", "load_vocabularies", "prepare_data", "prepare_vocabularies",
           "read_split", "split_files", "train"]
