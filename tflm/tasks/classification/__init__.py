"""Text classification and sentence-pair matching (see `tflm.tasks.classification.task`)."""

from tflm.tasks.classification.classifier import Classifier
from tflm.tasks.classification.config import ClassificationConfig
from tflm.tasks.classification.task import ClassificationTask, build_classifier

__all__ = ["Classifier", "ClassificationConfig", "ClassificationTask", "build_classifier"]
