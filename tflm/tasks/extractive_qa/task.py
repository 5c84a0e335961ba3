"""`ExtractiveQATask`: the answer to a question is a span of its context (SQuAD v1.1; v2.0 with "no answer").

    tflm train --task extractive_qa --set data.train_file=train.json --set data.valid_file=dev.json \
        --run-dir runs/qa --init-from runs/bert             # or --init-from-preset DIR, or a new --model bert
    tflm evaluate --run-dir runs/qa                         # exact match and F1 as SQuAD's scripts
    tflm answer --run-dir runs/qa --question "Who ...?" --context "..."

The model (`tflm.models.SpanExtractor`) scores each position as the answer's start and end; a long context is
read in overlapping windows, and the best span of all windows wins (`tflm.data.qa_windows`).
"""

import logging
import os
import time

import tensorflow as tf

from tflm.models.token_models import SpanExtractor
from tflm.tasks.base import Evaluation, Task, TaskData
from tflm.tasks.extractive_qa import data as data_lib
from tflm.tasks.extractive_qa.answerer import Answerer
from tflm.tasks.extractive_qa.config import QAConfig
from tflm.tasks.pretrained import PretrainedEncoderTask, encoder_setup
from tflm.tasks.registry import register_task
from tflm.tasks.sections import model_dtype
from tflm.training.losses import Loss

logger = logging.getLogger("tflm")


def build_span_extractor(config, vocabulary):
    """The `SpanExtractor` of `config.model` for a vocabulary (`{"tokenizer", "encoder"}`), built."""
    model_type, params, backbone = encoder_setup(config, vocabulary.get("encoder") or {})
    if "encoder_dropout" in params:
        params["dropout"] = params.pop("encoder_dropout")
    model = SpanExtractor(vocabulary["tokenizer"].vocabulary_size, encoder=model_type, encoder_params=params,
                          backbone=backbone, dtype=model_dtype(config.training.mixed_precision))
    model(model.dummy_inputs())
    return model


class SpanCrossEntropy(Loss):
    """BERT's SQuAD loss: the mean of the start and the end positions' cross-entropies over each window's
    positions; labels `{"start_positions", "end_positions"}` `(batch,)`, outputs `{"start_logits",
    "end_logits"}` `(batch, length)`. Counts windows."""

    unit = "examples"
    has_perplexity = False

    def sums(self, labels, outputs, label_smoothing):
        total = 0.0
        for name in ("start", "end"):
            logits = tf.cast(outputs[f"{name}_logits"], tf.float32)
            positions = tf.cast(labels[f"{name}_positions"], tf.int32)
            total += tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(positions, logits))
        loss_sum = total / 2.0
        return loss_sum, loss_sum, tf.cast(tf.shape(labels["start_positions"])[0], tf.float32)


@register_task
class ExtractiveQATask(PretrainedEncoderTask, Task):
    name, config_class, command = "extractive_qa", QAConfig, "answer"
    final_metrics = ("exact_match", "f1")
    option_fields = {**Task.option_fields, "max_examples": "data.max_examples", "max_train_pairs": "data.max_examples",
                     **PretrainedEncoderTask.init_option_fields}

    def decoding(self, config):
        return None

    def prepare_data(self, config, run_dir):
        train = data_lib.read_split(config, "train", config.data.max_examples)
        vocabulary = data_lib.prepare_vocabulary(config, run_dir, train)
        tokenizer = vocabulary["tokenizer"]
        train_inputs, train_labels = data_lib.windows(config, tokenizer, train)
        valid = data_lib.read_split(config, "valid")
        valid_batches = data_lib.batches(*data_lib.windows(config, tokenizer, valid), config.data.batch_size)
        size = config.data.batch_size
        count = len(train_labels["start_positions"])

        def train_dataset(epoch):
            return data_lib.batches(train_inputs, train_labels, size, shuffle_seed=config.training.seed + epoch)

        answered = int((train_labels["start_positions"] > 0).sum())
        return TaskData(vocabulary, train_dataset, -(-count // size), valid_batches,
                        summary=f"{len(train)} training questions in {count} windows ({answered} holding their "
                                f"answer), {len(valid)} validation questions", batch_units=size)

    def prepare_vocabulary(self, config, run_dir):
        data_lib.prepare_vocabulary(config, run_dir, data_lib.read_split(config, "train", config.data.max_examples))
        return os.path.join(run_dir, "vocab")

    def load_tokenizers(self, run_dir):
        vocabulary = data_lib.saved_vocabulary(run_dir)
        if vocabulary is None:
            raise FileNotFoundError(f"{run_dir}/vocab: no qa.json and tokenizer; was this run trained?")
        return vocabulary

    def build_model(self, config, tokenizers):
        return build_span_extractor(config, tokenizers)


    def loss(self, config):
        return SpanCrossEntropy()

    def make_predictor(self, config, model, tokenizers, decoding=None):
        return Answerer(model, tokenizers["tokenizer"], config, tokenizers.get("no_answer", False))

    def export_inputs(self, config, count=16):
        try:
            examples = data_lib.read_split(config, "valid", count)
        except (FileNotFoundError, ValueError):
            examples = []
        rows = [{"question": e.question, "context": e.context} for e in examples]
        return rows or [{"question": "Where is the station?", "context": "The station is in the centre of town."},
                        {"question": "", "context": ""}]

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None):
        """Exact match and F1 (SQuAD's definitions; for v2.0 data also on the answerable and unanswerable
        questions apart); the predicted answers go to the `.hyp` file, one a line."""
        from tflm.metrics.squad import squad_scores

        tokenizers = self.load_tokenizers(run_dir)
        predictor = self.load_predictor(run_dir, checkpoint, config=config, tokenizers=tokenizers)
        examples = data_lib.read_split(config, split, max_examples)
        questions, contexts = [e.question for e in examples], [e.context for e in examples]
        predictor.predict_answers(questions[:2], contexts[:2])  # (traced before the clock starts)
        started = time.monotonic()
        answers = predictor.predict_answers(questions, contexts)
        seconds = time.monotonic() - started
        scores = squad_scores(examples, {e.id: a["answer"] for e, a in zip(examples, answers)})
        scores = {"split": split, "checkpoint": str(checkpoint), **scores, "seconds": round(seconds, 2),
                  "questions_per_second": round(len(examples) / max(seconds, 1e-9), 1)}
        summary = f"exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f} ({len(examples)} questions)"
        return Evaluation(scores, outputs=[a["answer"].replace("\n", " ") for a in answers], summary=summary)
