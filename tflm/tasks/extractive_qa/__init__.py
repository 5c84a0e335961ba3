"""Extractive question answering: the answer is a span of the context (SQuAD v1.1 and v2.0 JSON).

    import tflm
    qa = tflm.question_answering
    config = qa.QAConfig(data=qa.QADataConfig(train_file="train.json", valid_file="dev.json"),
                         init=qa.InitConfig(from_run="runs/bert"))
    qa.train(config, "runs/qa")
    qa.evaluate("runs/qa", "valid")["f1"]
    qa.load_answerer("runs/qa").predict([{"question": "Who?", "context": "Tom did."}])

See `tflm.tasks.extractive_qa.task` for the task, `tflm.data.qa_windows` for the windows and span decoding,
`tflm.metrics.squad` for exact match and F1.
"""

from tflm.tasks import Run, get_task
from tflm.tasks.extractive_qa.answerer import Answerer
from tflm.tasks.extractive_qa.config import QAConfig, QADataConfig, QAVocabularyConfig
from tflm.tasks.extractive_qa.task import ExtractiveQATask, build_span_extractor
from tflm.tasks.pretrained import InitConfig
from tflm.tasks.sections import ModelConfig, TrainingConfig


def train(config, run_dir, verbose=True):
    """Trains (or resumes) an extractive-QA run; returns the `TrainResult`."""
    return get_task("extractive_qa").train(config.validate(), run_dir, verbose=verbose)


def evaluate(run_dir, split="test", checkpoint="best", max_examples=None):
    """Exact match and F1 of a run on a split (and `eval/<split>.<checkpoint>.json`)."""
    return Run.open(run_dir).evaluate(split, checkpoint, max_examples=max_examples)


def load_answerer(run_dir, checkpoint="best"):
    """The run's `Answerer` (`predict`, `predict_answers`, and what `tflm.export` saves)."""
    return Run.open(run_dir).load_predictor(checkpoint)


__all__ = ["Answerer", "ExtractiveQATask", "InitConfig", "ModelConfig", "QAConfig", "QADataConfig",
           "QAVocabularyConfig", "TrainingConfig", "build_span_extractor", "evaluate", "load_answerer", "train"]
