"""Evaluation metrics."""

from tflm.metrics.translation import corpus_scores
