"""Evaluation metrics."""

from tflm.metrics.bag_of_words import bag_of_words_baseline
from tflm.metrics.classification import classification_scores
from tflm.metrics.squad import squad_scores
from tflm.metrics.tagging import tagging_scores
from tflm.metrics.translation import corpus_scores
from tflm.visualization import confusion_matrix_image
