"""A toy task written on `tflm.tasks.Task` alone: is an English sentence a question? (label 0 "statement",
1 "question"; class id 0 is a label like any other). Everything else (training, resuming, evaluation files,
export, `tflm check`, serving) is the driver's; tests/test_toy_task.py runs it through the CLI."""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from tflm.data import read_lines
from tflm.tasks import Evaluation, ModelConfig, Predictor, Signature, Task, TaskData, TrainingConfig, register_task
from tflm.tasks.workers import save_vocabulary
from tflm.tasks.predictor import text_input
from tflm.text import load_tokenizer, train_tokenizer
from tflm.training import ClassCrossEntropy

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "tflm", "data", "samples", "tatoeba-es-en-sample")
LABELS = ["statement", "question"]


@dataclasses.dataclass
class ToyConfig:
    task: str = "toy_questions"
    data: dict = dataclasses.field(default_factory=lambda: {"max_examples": 2000, "batch_size": 64})
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="bag_of_pieces"))
    training: TrainingConfig = dataclasses.field(default_factory=lambda: TrainingConfig(samples=0))

    def validate(self):
        return self


def examples(split, tokenizer, count):
    texts = read_lines(os.path.join(SAMPLE, f"{split}.en.gz"))[:count]
    ids = tokenizer.tokenize(tf.constant(texts)).to_tensor(0, shape=[None, 48]).numpy()
    return texts, ids, np.array([text.rstrip().endswith("?") for text in texts], np.int32)


class ToyPredictor(Predictor):
    def __init__(self, model, tokenizer):
        super().__init__(model)
        self.tokenizer = tokenizer

    def tokenizers(self):
        return {"tokenizer": self.tokenizer}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def classify(self, text):
        probabilities = tf.nn.softmax(self.model(self.tokenizer.tokenize(text).to_tensor(0, shape=[None, 48])))
        return {"label": tf.gather(LABELS, tf.argmax(probabilities, -1)), "scores": probabilities}

    def signatures(self):
        return [Signature("serving_default", self.classify, text_input("text"), rows="text", row_name="sentence")]


@register_task
class ToyQuestions(Task):
    name, config_class, final_metrics = "toy_questions", ToyConfig, ("accuracy",)

    def prepare_data(self, config, run_dir):
        path = os.path.join(run_dir, "vocab", "tokenizer.vocab")
        if not os.path.exists(path):
            save_vocabulary({path: train_tokenizer(read_lines(os.path.join(SAMPLE, "train.en.gz")), "wordpiece",
                                                        300)})
        tokenizer, size = self.load_tokenizers(run_dir), config.data["batch_size"]
        _, ids, labels = examples("train", tokenizer, config.data["max_examples"])
        _, valid_ids, valid_labels = examples("valid", tokenizer, 500)
        return TaskData(tokenizer, lambda epoch: tf.data.Dataset.from_tensor_slices((ids, labels)).shuffle(
            len(ids), seed=epoch).batch(size), -(-len(ids) // size),
            tf.data.Dataset.from_tensor_slices((valid_ids, valid_labels)).batch(size), batch_units=size)

    def load_tokenizers(self, run_dir):
        return load_tokenizer(os.path.join(run_dir, "vocab", "tokenizer.vocab"))

    def build_model(self, config, tokenizer):
        model = keras.Sequential([keras.layers.Embedding(tokenizer.vocabulary_size, 16),
                                  keras.layers.GlobalMaxPooling1D(), keras.layers.Dense(len(LABELS))])
        model(np.zeros([1, 48], np.int32))
        return model

    def loss(self, config):
        return ClassCrossEntropy()

    def make_predictor(self, config, model, tokenizer, decoding=None):
        return ToyPredictor(model, tokenizer)

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None):
        predictor = self.load_predictor(run_dir, checkpoint, config=config)
        texts, _, labels = examples(split, predictor.tokenizer, max_examples or 500)
        predicted = [LABELS.index(label.decode()) for label in predictor.serving_default(texts)["label"]]
        majority = 100 * max(float(np.mean(labels)), 1 - float(np.mean(labels)))  # what a constant answer gets
        return Evaluation({"accuracy": 100 * float(np.mean(np.array(predicted) == labels)),
                           "majority_baseline": majority, "examples": len(texts)})
