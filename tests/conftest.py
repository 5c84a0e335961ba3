"""Shared fixtures. The CPU is split into two logical devices before TensorFlow starts, so that
MirroredStrategy can be tested on a machine without accelerators."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tflm.training import split_cpu  # noqa: E402

CPU_DEVICES = split_cpu(2)
SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "..", "tflm", "data", "samples", "tatoeba-es-en-sample")
SHARED_DATA = os.environ.get("TFLM_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture(scope="session")
def sample_corpus():
    from tflm.data import read_parallel

    return read_parallel(os.path.join(SAMPLE_DIR, "train.en.gz"), os.path.join(SAMPLE_DIR, "train.es.gz"))


@pytest.fixture(scope="session")
def sample_tokenizer(sample_corpus):
    """A small joint SentencePiece vocabulary trained on the shipped sample."""
    from tflm.text import train_tokenizer

    return train_tokenizer(sample_corpus.source + sample_corpus.target, "unigram", 500)
