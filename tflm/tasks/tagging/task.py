"""`TaggingTask`: a label per word (entities in BIO/BIOES, or any per-word label such as punctuation and case).

    tflm train --task tagging --set data.train_file=train.conll --set data.valid_file=valid.conll \
        --run-dir runs/ner --init-from runs/bert            # or --init-from-preset DIR, or a new --model bert
    tflm train --task tagging --dataset tatoeba-es-en --set data.derive=punctuation --run-dir runs/punct
    tflm evaluate --run-dir runs/ner                        # entity-level precision/recall/F1 (seqeval), per label
    tflm tag --run-dir runs/punct "i think so said tom"     # words and labels

The model (`tflm.models.TokenTagger`) labels each word from its first subword piece's state: the other pieces
are read but neither labelled nor counted in the loss.
"""

import logging
import os
import time

import tensorflow as tf

from tflm.models.token_models import TokenTagger
from tflm.tasks.base import Evaluation, Task, TaskData
from tflm.tasks.pretrained import PretrainedEncoderTask, encoder_setup
from tflm.tasks.registry import register_task
from tflm.tasks.sections import model_dtype
from tflm.tasks.tagging import data as data_lib
from tflm.tasks.tagging.config import TAGGER_PARAMS, TaggingConfig
from tflm.tasks.tagging.tagger import Tagger
from tflm.training.losses import ClassCrossEntropy

logger = logging.getLogger("tflm")


def build_tagger(config, vocabulary):
    """The `TokenTagger` of `config.model` for a vocabulary (`{"tokenizer", "labels", "encoder"}`), built."""
    params = dict(config.model.params)
    tagger = {name: params.pop(name) for name in TAGGER_PARAMS if name in params}
    model_type, params, backbone = encoder_setup(config, vocabulary.get("encoder") or {}, params)
    if "encoder_dropout" in params:
        params["dropout"] = params.pop("encoder_dropout")
    model = TokenTagger(vocabulary["tokenizer"].vocabulary_size, len(vocabulary["labels"]), encoder=model_type,
                        encoder_params=params, backbone=backbone, dtype=model_dtype(config.training.mixed_precision),
                        **tagger)
    model(model.dummy_inputs())
    return model


class WordCrossEntropy(ClassCrossEntropy):
    """Cross-entropy of a label per word: labels `(batch, words)` (-1: no word), logits `(batch, words, labels)`;
    counts words."""

    def __init__(self):
        super().__init__(0.0, unit="words")

    def sums(self, labels, outputs, label_smoothing):
        outputs = tf.cast(outputs, tf.float32)
        return super().sums(tf.reshape(labels, [-1]), tf.reshape(outputs, [-1, tf.shape(outputs)[-1]]),
                            label_smoothing)


@register_task
class TaggingTask(PretrainedEncoderTask, Task):
    name, config_class, command = "tagging", TaggingConfig, "tag"
    final_metrics = ("f1", "accuracy")
    option_fields = {**Task.option_fields, "max_examples": "data.max_examples", "max_train_pairs": "data.max_examples",
                     **PretrainedEncoderTask.init_option_fields}

    def decoding(self, config):
        return None

    def prepare_data(self, config, run_dir):
        train = data_lib.read_split(config, run_dir, "train", config.data.max_examples)
        vocabulary = data_lib.prepare_vocabulary(config, run_dir, train)
        tokenizer, labels = vocabulary["tokenizer"], vocabulary["labels"]
        valid = data_lib.read_split(config, run_dir, "valid")
        train_inputs, train_labels = data_lib.examples(config, tokenizer, train, labels)
        valid_batches = data_lib.batches(*data_lib.examples(config, tokenizer, valid, labels), config.data.batch_size)
        size = config.data.batch_size

        def train_dataset(epoch):
            return data_lib.batches(train_inputs, train_labels, size, shuffle_seed=config.training.seed + epoch)

        words = sum(len(sentence) for sentence in train.words)
        return TaskData(vocabulary, train_dataset, -(-len(train) // size), valid_batches,
                        summary=f"{len(train)} training sentences ({words} words, {len(labels)} labels), "
                                f"{len(valid)} validation", batch_units=size)

    def prepare_vocabulary(self, config, run_dir):
        data_lib.prepare_vocabulary(config, run_dir, data_lib.read_split(config, run_dir, "train",
                                                                         config.data.max_examples))
        return os.path.join(run_dir, "vocab")

    def load_tokenizers(self, run_dir):
        vocabulary = data_lib.saved_vocabulary(run_dir)
        if vocabulary is None:
            raise FileNotFoundError(f"{run_dir}/vocab: no labels.txt and tokenizer; was this run trained?")
        return vocabulary

    def build_model(self, config, tokenizers):
        return build_tagger(config, tokenizers)


    def loss(self, config):
        return WordCrossEntropy()

    def make_predictor(self, config, model, tokenizers, decoding=None):
        return Tagger(model, tokenizers["tokenizer"], tokenizers["labels"], config.data.max_length)

    def export_inputs(self, config, count=16):
        try:
            valid = data_lib.read_split(config, None, "valid", count) if not config.data.derive else None
        except (FileNotFoundError, ValueError):
            valid = None
        sentences = [" ".join(words) for words in valid.words] if valid else ["i think so said tom",
                                                                               "where is the station"]
        return sentences + [""]

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None):
        """Precision, recall and F1 (entities for BIO/BIOES, words for "tokens"; micro over labels, and per label),
        and word accuracy; the predicted labels of each sentence go to the `.hyp` file."""
        from tflm.metrics.tagging import tagging_scores

        tokenizers = self.load_tokenizers(run_dir)
        predictor = self.load_predictor(run_dir, checkpoint, config=config, tokenizers=tokenizers)
        tagged = data_lib.read_split(config, run_dir, split, max_examples)
        sentences = [" ".join(words) for words in tagged.words]
        predictor.predict_labels(sentences[:4])  # (traced before the clock starts)
        started = time.monotonic()
        predicted = predictor.predict_labels(sentences)
        seconds = time.monotonic() - started
        untagged = sum(len(gold) - len(labels) for gold, labels in zip(tagged.labels, predicted))
        outside = "O" if "O" in tokenizers["labels"] else tokenizers["labels"][0]
        predicted = [labels + [outside] * (len(gold) - len(labels)) for gold, labels in zip(tagged.labels, predicted)]
        scores = tagging_scores(tagged.labels, predicted, config.data.label_scheme)
        words = sum(len(gold) for gold in tagged.labels)
        scores = {"split": split, "checkpoint": str(checkpoint), "scheme": config.data.label_scheme, **scores,
                  "sentences": len(sentences), "words": words, "untagged_words": untagged,
                  "seconds": round(seconds, 2), "sentences_per_second": round(len(sentences) / max(seconds, 1e-9), 1)}
        summary = (f"F1 {scores['f1']:.2f} (precision {scores['precision']:.2f}, recall {scores['recall']:.2f}), "
                   f"accuracy {scores['accuracy']:.2f} ({len(sentences)} sentences, {words} words"
                   + (f", {untagged} past max_length" if untagged else "") + ")")
        return Evaluation(scores, outputs=[" ".join(labels) for labels in predicted], summary=summary)
