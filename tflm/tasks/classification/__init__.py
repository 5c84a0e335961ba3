"""Text classification and sentence-pair matching: one text (or a pair) to one label.

    import tflm
    cls = tflm.classification
    config = cls.ClassificationConfig(data=cls.ClassificationDataConfig(dataset="trec-6", data_dir="../shared/data"),
                                      vectors=cls.VectorsConfig(path="glove-6b-50d"),
                                      model=cls.ModelConfig(type="cnn"))
    cls.train(config, "runs/trec")
    cls.evaluate("runs/trec", "test")["accuracy"]
    cls.load_classifier("runs/trec").predict(["What is the capital of Peru ?"])

See `tflm.tasks.classification.task` for the task and `tflm.layers.sentence_encoders` for the encoders.
"""

from tflm.tasks import Run, get_task
from tflm.tasks.classification.classifier import Classifier
from tflm.tasks.classification.config import (
    ClassificationConfig,
    ClassificationDataConfig,
    ClassificationVocabularyConfig,
    InitConfig,
    VectorsConfig,
)
from tflm.tasks.classification.task import ClassificationTask, build_classifier
from tflm.tasks.sections import ModelConfig, TrainingConfig


def train(config, run_dir, verbose=True):
    """Trains (or resumes) a classification run; returns the `TrainResult`."""
    return get_task("classification").train(config.validate(), run_dir, verbose=verbose)


def evaluate(run_dir, split="test", checkpoint="best", max_examples=None):
    """The scores of a run on a split (and `eval/<split>.<checkpoint>.json`)."""
    return Run.open(run_dir).evaluate(split, checkpoint, max_examples=max_examples)


def data_rows(config, split, max_examples=None):
    """`(rows, labels)` of a split: rows as `Classifier.predict` takes them (str, or dicts naming a pair's texts)."""
    from tflm.tasks.classification.data import read_split

    data = read_split(config.data, split, max_examples)
    fields = data.text_fields
    rows = [dict(zip(fields, texts)) for texts in zip(*(data.texts[f] for f in fields))]
    return [row["text"] for row in rows] if fields == ("text",) else rows, data.labels


def load_classifier(run_dir, checkpoint="best"):
    """The run's `Classifier` (`predict`, `predict_proba`, and what `tflm.export` saves)."""
    return Run.open(run_dir).load_predictor(checkpoint)


__all__ = ["Classifier", "ClassificationConfig", "ClassificationDataConfig", "ClassificationTask",
           "ClassificationVocabularyConfig", "InitConfig", "ModelConfig", "TrainingConfig", "VectorsConfig", "build_classifier",
           "data_rows", "evaluate", "load_classifier", "train"]
