"""tflm: language models with TensorFlow and Keras 3, from raw text to TensorFlow Serving.

The public API (subpackages are imported on first use, so `import tflm` and `tflm --help` are quick):

- `tflm.text`: in-graph subword tokenizers (SentencePiece, WordPiece) and their trainers;
- `tflm.data`: the corpus registry, parallel-text and classification reading, tf.data pipelines;
- `tflm.layers`: attention, embeddings, LSTM encoder and attention decoder;
- `tflm.models`: `Seq2Seq` and its models;
- `tflm.decoding`: in-graph decoding (one `tf.while_loop` per strategy);
- `tflm.training`: the resumable, distributed trainer, losses, schedules, checkpoints;
- `tflm.metrics`: sacreBLEU BLEU and chrF, ROUGE (rouge-score, Unicode-safe) and summarization baselines,
  classification scores (scikit-learn) and a bag-of-words baseline;
- `tflm.tasks`: `Task`, the run driver written once (train, resume, evaluate, average, predict), its registry;
- `tflm.translation`: configuration, training, `Translator` and evaluation of translation runs;
- `tflm.language_modeling`: the same for language models (GPT, Transformer-XL), with `Generator`;
- `tflm.summarization`: summarization runs (copy attention, coverage, ROUGE, baselines), with `Summarizer`;
- `tflm.classification`, `tflm.masked_lm`: text classification and sentence pairs; BERT-style pretraining;
- `tflm.tagging`, `tflm.question_answering`: a label per word; extractive question answering (SQuAD);
- `tflm.export`: SavedModels for TF Serving and their servability check; `tflm.serving`: `tflm serve`;
- `tflm.pipeline`: `tflm run CONFIG.yaml`, from raw text to a checked export; `tflm.results`: result records.
"""

import importlib
import os
import sys

from tflm.version import __version__

# tflm runs Keras on TensorFlow: its tokenizers are tensorflow-text ops, its pipelines tf.data, its decoding
# loops `tf.while_loop`s and its exports SavedModels. Select that backend before Keras is first imported.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_backend = sys.modules["keras"].backend.backend() if "keras" in sys.modules else os.environ["KERAS_BACKEND"]
if _backend != "tensorflow":
    raise ImportError(
        f"tflm needs the Keras TensorFlow backend, but Keras uses {_backend!r}. Set KERAS_BACKEND=tensorflow "
        "(or unset it) before importing Keras and tflm."
    )

_SUBMODULES = {
    "classification": "tflm.tasks.classification",
    "config": "tflm.config",
    "data": "tflm.data",
    "decoding": "tflm.decoding",
    "export": "tflm.export",
    "language_modeling": "tflm.tasks.language_modeling",
    "layers": "tflm.layers",
    "log": "tflm.log",
    "masked_lm": "tflm.tasks.masked_lm",
    "metrics": "tflm.metrics",
    "models": "tflm.models",
    "pipeline": "tflm.pipeline",
    "results": "tflm.results",
    "serving": "tflm.serving",
    "question_answering": "tflm.tasks.extractive_qa",
    "summarization": "tflm.tasks.summarization",
    "tagging": "tflm.tasks.tagging",
    "tasks": "tflm.tasks",
    "text": "tflm.text",
    "training": "tflm.training",
    "translation": "tflm.tasks.translation",
}

__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(_SUBMODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tflm' has no attribute {name!r}")


def __dir__():
    return __all__
