"""Shared fixtures. The CPU is split into two logical devices before TensorFlow starts, so that
MirroredStrategy can be tested on a machine without accelerators."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

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


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny Transformer translation run, trained for a few steps on the shipped sample."""
    from tflm.tasks import translation

    run_dir = str(tmp_path_factory.mktemp("export") / "run")
    config = translation.TranslationConfig(
        data=translation.DataConfig(batch_tokens=800, max_train_pairs=500, max_source_length=40,
                                    max_target_length=40),
        vocabulary=translation.VocabularyConfig(size=300),
        model=translation.ModelConfig(type="transformer", preset="tiny"),
        training=translation.TrainingConfig(max_steps=30, learning_rate=3e-3, samples=0),
        decoding=translation.DecodingConfig(max_length=20),
    )
    translation.train(config, run_dir, verbose=False)
    return run_dir


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory):
    """`trained_run` exported (and checked) as saved_models/tiny/1: returns (base_dir, version path)."""
    from tflm.export import export_run

    base = str(tmp_path_factory.mktemp("saved_models"))
    return base, export_run(trained_run, "tiny", base)
