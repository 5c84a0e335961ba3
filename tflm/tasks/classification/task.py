"""`ClassificationTask`: one text (or a sentence pair) to one label.

    tflm train --task classification --dataset trec-6 --run-dir runs/trec --model cnn \
        --set vectors.path=glove-6b-50d
    tflm evaluate --run-dir runs/trec          # accuracy, macro-F1, per class, confusion matrix
    tflm classify --run-dir runs/trec "What is the capital of Peru ?"

The model (`model.type`) is a sentence encoder by name (cnn, bilstm, bigru, transformer) or a Keras layer of
your own (`mymodule:MyEncoder`, see `tflm.layers.sentence_encoders`), inside `tflm.models.TextClassifier`.
"""

import logging
import os
import time

import numpy as np
import tensorflow as tf

from tflm.data.classification import encode_labels
from tflm.models.classifier import TextClassifier
from tflm.tasks.base import Evaluation, Task, TaskData
from tflm.tasks.registry import register_task
from tflm.tasks.classification import data as data_lib
from tflm.tasks.classification.classifier import Classifier
from tflm.tasks.classification.config import CLASSIFIER_PARAMS, ClassificationConfig
from tflm.tasks.pretrained import PretrainedEncoderTask, encoder_setup
from tflm.tasks.sections import model_dtype
from tflm.training.losses import ClassCrossEntropy

logger = logging.getLogger("tflm")


def build_classifier(config, vocabulary):
    """The `TextClassifier` of `config.model` for a vocabulary (`{"tokenizer", "labels", "embedding_dim"}`), built."""
    params = dict(config.model.params)
    classifier = {name: params.pop(name) for name in CLASSIFIER_PARAMS if name in params}
    model_type, params, backbone = encoder_setup(config, vocabulary.get("encoder") or {}, params)
    if "encoder_dropout" in params:
        params["dropout"] = params.pop("encoder_dropout")
    if vocabulary.get("embedding_dim"):
        given = classifier.get("embedding_dim")
        if given and given != vocabulary["embedding_dim"]:
            raise ValueError(f"model.params.embedding_dim={given} but the word vectors have "
                             f"{vocabulary['embedding_dim']} dimensions; leave embedding_dim out with vectors.")
        classifier["embedding_dim"] = vocabulary["embedding_dim"]
    if len(data_lib.text_fields(config.data)) == 2:
        classifier.setdefault("pair_mode", "joint")
    elif classifier.get("pair_mode"):
        raise ValueError(f"model.params.pair_mode={classifier['pair_mode']!r} needs two text fields "
                         f"(data.text_fields), not {list(data_lib.text_fields(config.data))}.")
    model = TextClassifier(vocabulary["tokenizer"].vocabulary_size, len(vocabulary["labels"]),
                           encoder=model_type, encoder_params=params,
                           embedding_mode=config.vectors.mode if config.vectors.path else "non_static",
                           dtype=model_dtype(config.training.mixed_precision), backbone=backbone, **classifier)
    model(model.dummy_inputs())
    return model


@register_task
class ClassificationTask(PretrainedEncoderTask, Task):
    name, config_class, command = "classification", ClassificationConfig, "classify"
    final_metrics = ("accuracy", "macro_f1")
    option_fields = {**Task.option_fields, "max_examples": "data.max_examples", "max_train_pairs": "data.max_examples",
                     "vocab_type": "vocabulary.type", "vocab_size": "vocabulary.size", "vectors": "vectors.path",
                     **PretrainedEncoderTask.init_option_fields}

    def decoding(self, config):
        return None

    def prepare_data(self, config, run_dir):
        train, valid, vocabulary = data_lib.training_corpus(config, run_dir)
        tokenizer, labels = vocabulary["tokenizer"], vocabulary["labels"]
        train_inputs = data_lib.example_inputs(config, tokenizer, train)
        train_labels = encode_labels(train, labels)
        valid_batches = data_lib.batches(data_lib.example_inputs(config, tokenizer, valid),
                                         encode_labels(valid, labels), config.data.batch_size)
        size = config.data.batch_size

        def train_dataset(epoch):
            return data_lib.batches(train_inputs, train_labels, size, shuffle_seed=config.training.seed + epoch)

        counts = ", ".join(f"{label} {sum(1 for x in train.labels if x == label)}" for label in labels)
        return TaskData(vocabulary, train_dataset, -(-len(train) // size), valid_batches,
                        summary=f"{len(train)} training examples ({counts}), {len(valid)} validation",
                        batch_units=size, extra={"train": train,
                                                 "weights": data_lib.class_weight_vector(config, train, labels)})

    def prepare_vocabulary(self, config, run_dir):
        train = data_lib.read_split(config.data, "train", config.data.max_examples)
        data_lib.prepare_vocabulary(config, run_dir, train)
        return os.path.join(run_dir, "vocab")

    def load_tokenizers(self, run_dir):
        vocabulary = data_lib._saved(run_dir)
        if vocabulary is None:
            raise FileNotFoundError(f"{run_dir}/vocab: no labels.txt and tokenizer; was this run trained?")
        return vocabulary

    def build_model(self, config, tokenizers):
        return build_classifier(config, tokenizers)

    def training_data(self, config, data, model):
        """Sets the embedding table from the word vectors, or the encoder from the run or folder it starts from
        (before a resumed run restores its own checkpoint)."""
        data = super().training_data(config, data, model)
        if config.vectors.path:
            path = data_lib.resolve_vectors(config.vectors.path, config.data.data_dir)
            model.embedding.load_vectors(path, data.tokenizers["tokenizer"].pieces, data_lib.word_counts(data.train),
                                         seed=config.training.seed)  # (logs the coverage)
        return data

    def loss(self, config):
        return _WeightedClassLoss(getattr(self, "_weights", None))

    def build_trainer(self, config, run_dir, data, strategy=None, verbose=True):
        self._weights = data.extra.get("weights")
        return super().build_trainer(config, run_dir, data, strategy=strategy, verbose=verbose)

    def make_predictor(self, config, model, tokenizers, decoding=None):
        return Classifier(model, tokenizers["tokenizer"], tokenizers["labels"], data_lib.text_fields(config.data),
                          config.data.max_length)

    def export_inputs(self, config, count=16):
        fields = data_lib.text_fields(config.data)
        try:
            valid = data_lib.read_split(config.data, "valid", count)
            rows = [dict(zip(fields, texts)) for texts in zip(*(valid.texts[f] for f in fields))]
        except (FileNotFoundError, ValueError) as error:
            logger.warning("No validation texts for the export check (%s); using built-in ones.", error)
            rows = [dict.fromkeys(fields, text) for text in ("Hello.", "What is the capital of Peru ?")]
        rows.append(dict.fromkeys(fields, ""))
        return [row["text"] for row in rows] if fields == ("text",) else rows

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None):
        """Accuracy, macro-F1, per-class scores, the positive class's F1 (`data.positive_label`) and the
        confusion matrix of a split; the predicted labels go to the `.hyp` file."""
        from tflm.metrics.classification import classification_scores

        tokenizers = self.load_tokenizers(run_dir)
        predictor = self.load_predictor(run_dir, checkpoint, config=config, tokenizers=tokenizers)
        data = data_lib.read_split(config.data, split, max_examples)
        encode_labels(data, tokenizers["labels"])  # (an unseen label is an error naming its line)
        fields = data.text_fields
        rows = [dict(zip(fields, texts)) for texts in zip(*(data.texts[f] for f in fields))]
        predictor.predict_proba(rows[:8])  # (traced before the clock starts)
        started = time.monotonic()
        probabilities = predictor.predict_proba(rows)
        seconds = time.monotonic() - started
        predictions = [tokenizers["labels"][i] for i in np.argmax(probabilities, axis=-1)]
        scores = classification_scores(data.labels, predictions, tokenizers["labels"], config.data.positive_label)
        scores = {"split": split, "checkpoint": str(checkpoint), **scores, "seconds": round(seconds, 2),
                  "examples_per_second": round(len(rows) / max(seconds, 1e-9), 1)}
        self._log_confusion(run_dir, split, scores["confusion_matrix"])
        summary = f"accuracy {scores['accuracy']:.2f}, macro-F1 {scores['macro_f1']:.2f}"
        if "positive" in scores:
            summary += f", {scores['positive']['label']} F1 {scores['positive']['f1']:.2f}"
        return Evaluation(scores, outputs=predictions,
                          summary=f"{summary} ({len(rows)} examples, {scores['examples_per_second']:.0f}/s)")

    def _log_confusion(self, run_dir, split, confusion):
        """The confusion matrix as an image in the run's TensorBoard logs (`<split>/confusion_matrix`)."""
        try:
            from tflm.visualization import confusion_matrix_image

            image = np.asarray(confusion_matrix_image(confusion["matrix"], confusion["labels"]))
            writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs"))
            with writer.as_default():
                tf.summary.image(f"{split}/confusion_matrix", image[None], step=0)
            writer.close()
        except Exception as error:  # noqa: BLE001  (a picture must never fail an evaluation)
            logger.warning("Could not write the confusion matrix image: %s", error)


class _WeightedClassLoss(ClassCrossEntropy):
    """Class cross-entropy, each example weighted by its class's weight (`data.class_weights`)."""

    def __init__(self, weights=None):
        super().__init__(0.0, unit="examples")
        self.weights = weights

    def sums(self, labels, outputs, label_smoothing):
        if self.weights is None:
            return super().sums(labels, outputs, label_smoothing)
        from tflm.training.losses import smoothed_cross_entropy_sums

        labels = tf.cast(labels, tf.int32)
        mask = tf.cast(labels >= 0, tf.float32)
        weights = tf.gather(tf.constant(self.weights, tf.float32), tf.maximum(labels, 0)) * mask
        loss_sum, _ = smoothed_cross_entropy_sums(tf.cast(outputs, tf.float32), tf.maximum(labels, 0), weights,
                                                  label_smoothing)
        _, nll_sum = smoothed_cross_entropy_sums(tf.cast(outputs, tf.float32), tf.maximum(labels, 0), mask, 0.0)
        return loss_sum, nll_sum, tf.reduce_sum(mask)


