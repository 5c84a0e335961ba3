"""Tagging: a label per word (entities in BIO/BIOES with seqeval's scores, or any per-word label, such as the
punctuation and capitalisation that tflm derives from any text).

    import tflm
    tagging = tflm.tagging
    config = tagging.TaggingConfig(data=tagging.TaggingDataConfig(dataset="tatoeba-es-en", derive="punctuation",
                                                                  data_dir="../shared/data"))
    tagging.train(config, "runs/punct")
    tagging.evaluate("runs/punct", "test")["f1"]
    tagging.load_tagger("runs/punct").predict(["i think so said tom"])

See `tflm.tasks.tagging.task` for the task and `tflm.models.TokenTagger` for the model.
"""

from tflm.tasks import Run, get_task
from tflm.tasks.pretrained import InitConfig
from tflm.tasks.sections import ModelConfig, TrainingConfig
from tflm.tasks.tagging.config import TaggingConfig, TaggingDataConfig, TaggingVocabularyConfig
from tflm.tasks.tagging.tagger import Tagger
from tflm.tasks.tagging.task import TaggingTask, build_tagger


def train(config, run_dir, verbose=True):
    """Trains (or resumes) a tagging run; returns the `TrainResult`."""
    return get_task("tagging").train(config.validate(), run_dir, verbose=verbose)


def evaluate(run_dir, split="test", checkpoint="best", max_examples=None):
    """The scores of a run on a split (and `eval/<split>.<checkpoint>.json`)."""
    return Run.open(run_dir).evaluate(split, checkpoint, max_examples=max_examples)


def load_tagger(run_dir, checkpoint="best"):
    """The run's `Tagger` (`predict`, `predict_labels`, and what `tflm.export` saves)."""
    return Run.open(run_dir).load_predictor(checkpoint)


__all__ = ["InitConfig", "ModelConfig", "Tagger", "TaggingConfig", "TaggingDataConfig", "TaggingTask",
           "TaggingVocabularyConfig", "TrainingConfig", "build_tagger", "evaluate", "load_tagger", "train"]
