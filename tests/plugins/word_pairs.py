"""A plug-in task in a module of its own, with two text inputs and an output per word.

Which words of an English sentence are capitalized? The model reads the sentence lower-cased (`text_a`) beside
its Spanish translation as written (`text_b`: names keep their capitals there) and tags each word of `text_a`
"upper" or "lower". tflm knows nothing of this module: tests/test_plugin_task.py runs it only as a user would,
with this folder on PYTHONPATH and the console script in a subprocess:

    PYTHONPATH=tests/plugins python -m tflm train --task word_pairs:WordPairs --run-dir runs/wp --max-steps 60
    PYTHONPATH=tests/plugins python -m tflm evaluate --run-dir runs/wp          # the run found its task again
    PYTHONPATH=tests/plugins python -m tflm predict --run-dir runs/wp '{"text_a": "tom is here", "text_b": "Tom está aquí"}'

Words are hashed into buckets in the graph (`tf.strings.to_hash_bucket_fast`), so there is no vocabulary file.
"""

import dataclasses
import os
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

import tflm.data
from tflm.data import read_lines
from tflm.tasks import DataConfig, Evaluation, ModelConfig, Predictor, Signature, Task, TaskData, TrainingConfig
from tflm.tasks import text_input
from tflm.training import TokenCrossEntropy

TAGS = ["", "lower", "upper"]  # id 0 pads (no word), as the token loss expects
SAMPLE = os.path.join(os.path.dirname(tflm.data.__file__), "samples", "tatoeba-es-en-sample")


@dataclasses.dataclass
class WordPairsData(DataConfig):
    data_dir: Optional[str] = None  # a folder of {train,valid,test}.{en,es}.gz; default: tflm's shipped sample
    batch_size: Optional[int] = 64
    max_examples: Optional[int] = 3000
    max_words: int = 24  # words of text_a a model reads (longer sentences are cut in training only)


@dataclasses.dataclass
class WordPairsConfig:
    task: str = "word_pairs"
    data: WordPairsData = dataclasses.field(default_factory=WordPairsData)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="word_tagger",
                                                                                params={"buckets": 4096}))
    training: TrainingConfig = dataclasses.field(
        default_factory=lambda: TrainingConfig(samples=0, label_smoothing=0.0, learning_rate=0.01))

    def validate(self):
        if self.data.max_words < 1:
            raise ValueError(f"data.max_words={self.data.max_words} must be at least 1.")
        return self


class WordCrossEntropy(TokenCrossEntropy):
    """The token loss over words: PAD (0) is no word. It counts words, and exp(loss) is no perplexity."""

    unit = "words"
    has_perplexity = False


def word_ids(text, buckets, lower):
    """int32 `(batch, words)`, 0 padding: each word's hash bucket + 1; and the words themselves (ragged)."""
    words = tf.strings.split(tf.strings.lower(text, encoding="utf-8") if lower else text)
    ids = tf.strings.to_hash_bucket_fast(words, buckets) + 1
    return tf.cast(ids.to_tensor(0), tf.int32), words


class WordTagger(keras.Model):
    """Each word of `text_a` from its own embedding, its position and the bag of `text_b`'s words."""

    def __init__(self, buckets=4096, hidden_dim=32, max_positions=64, **kwargs):
        super().__init__(**kwargs)
        self.buckets, self.max_positions = buckets, max_positions
        self.words = keras.layers.Embedding(buckets + 1, hidden_dim)
        self.positions = keras.layers.Embedding(max_positions, 8)
        self.context = keras.layers.Embedding(buckets + 1, hidden_dim)
        self.hidden = keras.layers.Dense(64, activation="relu")
        self.tags = keras.layers.Dense(len(TAGS))

    def call(self, inputs):
        a, b = inputs["words_a"], inputs["words_b"]  # (B, N), (B, M)
        length = tf.shape(a)[1]
        positions = self.positions(tf.minimum(tf.range(length), self.max_positions - 1))  # (N, 8)
        mask_b = tf.cast(b > 0, "float32")[..., None]
        context = tf.reduce_max(self.context(b) * mask_b - 1e4 * (1 - mask_b), axis=1)  # (B, H)
        features = tf.concat([self.words(a), tf.broadcast_to(positions[None], [tf.shape(a)[0], length, 8]),
                              tf.repeat(context[:, None], length, axis=1)], -1)
        return self.tags(self.hidden(features))  # (B, N, tags)


class WordPairsPredictor(Predictor):
    def __init__(self, model):
        super().__init__(model)

    def tokenizers(self):
        return {}

    def tag(self, text_a, text_b):
        ids_a, words = word_ids(text_a, self.model.buckets, lower=True)
        ids_b, _ = word_ids(text_b, self.model.buckets, lower=False)
        probabilities = tf.nn.softmax(self.model({"words_a": ids_a, "words_b": ids_b})[..., 1:])  # never PAD
        tags = tf.gather(TAGS[1:], tf.argmax(probabilities, -1))
        lengths = tf.cast(words.row_lengths(), tf.int32)
        mask = tf.sequence_mask(lengths, tf.shape(ids_a)[1])
        return {"words": words.to_tensor(""), "tags": tf.where(mask, tags, ""),
                "scores": tf.where(mask, tf.reduce_max(probabilities, -1), 0.0), "lengths": lengths}

    def signatures(self):
        return [Signature("serving_default", self.tag, text_input("text_a", "text_b"), rows=("text_a", "text_b"),
                          row_name="sentence pair",
                          row_lengths={"words": "lengths", "tags": "lengths", "scores": "lengths"})]


def read_pairs(config, split, count=None):
    folder = config.data.data_dir or SAMPLE
    english = read_lines(os.path.join(folder, f"{split}.en.gz"))[:count]
    spanish = read_lines(os.path.join(folder, f"{split}.es.gz"))[:count]
    return english, spanish


def examples(config, split, count=None):
    """Model inputs and per-word labels (fixed width `max_words`) of a split."""
    english, spanish = read_pairs(config, split, count)
    width, buckets = config.data.max_words, config.model.params.get("buckets", 4096)
    ids_a, _ = word_ids(tf.constant(english), buckets, lower=True)
    ids_b, _ = word_ids(tf.constant(spanish), buckets, lower=False)
    labels = np.zeros([len(english), width], np.int32)
    for row, sentence in enumerate(english):
        for column, word in enumerate(sentence.split()[:width]):
            labels[row, column] = 2 if word[:1].isupper() else 1
    pad = lambda ids: tf.pad(ids, [[0, 0], [0, max(0, width - ids.shape[1])]])[:, :width].numpy()  # noqa: E731
    return {"words_a": pad(ids_a), "words_b": ids_b.numpy()[:, :48]}, labels


class WordPairs(Task):
    name, config_class, final_metrics = "word_pairs", WordPairsConfig, ("accuracy",)

    def prepare_data(self, config, run_dir):
        inputs, labels = examples(config, "train", config.data.max_examples)
        valid_inputs, valid_labels = examples(config, "valid", 500)
        size = config.data.batch_size

        def train_dataset(epoch):
            return tf.data.Dataset.from_tensor_slices((inputs, labels)).shuffle(len(labels), seed=epoch).batch(size)

        return TaskData(None, train_dataset, -(-len(labels) // size),
                        tf.data.Dataset.from_tensor_slices((valid_inputs, valid_labels)).batch(size),
                        summary=f"{len(labels)} sentence pairs", batch_units=size)

    def load_tokenizers(self, run_dir):
        return None  # words are hashed in the graph

    def build_model(self, config, tokenizers):
        model = WordTagger(**config.model.params)
        model({"words_a": np.zeros([1, 4], np.int32), "words_b": np.zeros([1, 4], np.int32)})
        return model

    def loss(self, config):
        return WordCrossEntropy()

    def make_predictor(self, config, model, tokenizers, decoding=None):
        return WordPairsPredictor(model)

    def export_inputs(self, config, count=16):
        english, spanish = read_pairs(config, "valid", count)
        return [{"text_a": a.lower(), "text_b": b} for a, b in zip(english, spanish)] + [{"text_a": "", "text_b": ""}]

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None):
        """Word accuracy, and the accuracy of always answering the commoner tag (what a constant model gets)."""
        predictor = self.load_predictor(run_dir, checkpoint, config=config)
        english, spanish = read_pairs(config, split, max_examples or 500)
        answers = predictor.predict([{"text_a": a.lower(), "text_b": b} for a, b in zip(english, spanish)])
        truth = [["upper" if word[:1].isupper() else "lower" for word in sentence.split()] for sentence in english]
        right = sum(p == t for answer, tags in zip(answers, truth) for p, t in zip(answer["tags"], tags))
        words = sum(len(tags) for tags in truth)
        lower = sum(tag == "lower" for tags in truth for tag in tags)
        return Evaluation({"accuracy": 100 * right / words, "majority_baseline": 100 * max(lower, words - lower) / words,
                           "words": words, "examples": len(english)})
