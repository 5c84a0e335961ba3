"""`MaskedLMTask`: BERT-style pretraining (masked LM, optionally next-sentence prediction) on raw documents.

    tflm train --task masked_lm --dataset wikitext-2-raw --data-dir ../shared/data --run-dir runs/bert \
        --preset small --time-budget 60m
    tflm evaluate --run-dir runs/bert                    # masked-LM and next-sentence accuracy on the test text
    tflm train --task classification --dataset trec-6 --init-from runs/bert --run-dir runs/trec-bert

The loss is the masked-LM cross-entropy over the masked positions only (its count) plus the next-sentence
cross-entropy (a mean per sequence). After each epoch the log and TensorBoard get the masked-LM and next-sentence
losses and accuracies on the validation sequences (`valid/mlm_accuracy`, ...) and a few fill-in-the-blank samples.
"""

import logging

import numpy as np
import tensorflow as tf

from tflm.models.bert import BertPretrainer
from tflm.tasks.base import Evaluation, Task, TaskData
from tflm.tasks.masked_lm import data as data_lib
from tflm.tasks.masked_lm.config import MaskedLMConfig
from tflm.tasks.registry import register_task
from tflm.tasks.sections import model_dtype
from tflm.training.losses import Loss, smoothed_cross_entropy_sums

logger = logging.getLogger("tflm")


class MaskedLMLoss(Loss):
    """Masked-LM cross-entropy summed over the masked positions (`mask_weights`), counted by them, plus the
    next-sentence cross-entropy's batch mean times that count (so the reported loss is MLM + NSP)."""

    unit = "tokens"
    has_perplexity = True  # (of the masked positions: BERT's masked-LM perplexity)

    def sums(self, labels, outputs, label_smoothing):
        weights = tf.cast(labels["mask_weights"], tf.float32)
        loss_sum, nll_sum = smoothed_cross_entropy_sums(outputs["mlm_logits"], tf.cast(labels["mask_ids"], tf.int32),
                                                        weights, label_smoothing)
        count = tf.reduce_sum(weights)
        if "nsp_logits" in outputs:
            nsp = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.cast(labels["next_sentence"], tf.int32), outputs["nsp_logits"]))
            loss_sum += nsp * count
        return loss_sum, nll_sum, count


def pretraining_scores(model, dataset):
    """Masked-LM loss and accuracy (over masked positions) and next-sentence loss and accuracy over `dataset`."""
    totals = dict.fromkeys(("mlm_nll", "mlm_right", "masked", "nsp_nll", "nsp_right", "sequences"), 0.0)
    for inputs, labels in dataset:
        outputs = model(inputs, training=False)
        weights = labels["mask_weights"].numpy().astype("float64")
        logits = outputs["mlm_logits"]
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels["mask_ids"], tf.int32), logits).numpy()
        right = (np.argmax(logits.numpy(), -1) == labels["mask_ids"].numpy())
        totals["mlm_nll"] += float((nll * weights).sum())
        totals["mlm_right"] += float((right * weights).sum())
        totals["masked"] += float(weights.sum())
        if "nsp_logits" in outputs:
            target = labels["next_sentence"].numpy()
            totals["nsp_nll"] += float(tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.cast(target, tf.int32), outputs["nsp_logits"]).numpy().sum())
            totals["nsp_right"] += float((np.argmax(outputs["nsp_logits"].numpy(), -1) == target).sum())
            totals["sequences"] += float(len(target))
    scores = {"mlm_loss": totals["mlm_nll"] / max(totals["masked"], 1.0),
              "mlm_accuracy": 100.0 * totals["mlm_right"] / max(totals["masked"], 1.0),
              "masked_tokens": int(totals["masked"])}
    if totals["sequences"]:
        scores.update(nsp_loss=totals["nsp_nll"] / totals["sequences"],
                      nsp_accuracy=100.0 * totals["nsp_right"] / totals["sequences"],
                      sequences=int(totals["sequences"]))
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in scores.items()}


def fill_in_the_blanks(model, tokenizer, batch, count):
    """Lines `original | masked | filled` for the first `count` sequences of a batch: each masked position shown
    as `[piece]` and filled with the model's most probable piece."""
    inputs, labels = batch
    logits = model(inputs, training=False)["mlm_logits"].numpy()
    lines = []
    for row in range(min(count, len(logits))):
        ids = inputs["token_ids"][row].numpy().copy()
        original, filled = ids.copy(), ids.copy()
        for slot, position in enumerate(inputs["mask_positions"][row].numpy()):
            if labels["mask_weights"][row, slot] > 0:
                original[position] = labels["mask_ids"][row, slot]
                filled[position] = int(np.argmax(logits[row, slot]))
        length = int(np.sum(inputs["padding_mask"][row].numpy()))
        lines.append(" | ".join(" ".join(tokenizer.pieces[int(i)] for i in seq[:length])[:300]
                                for seq in (original, ids, filled)))
    return lines


@register_task
class MaskedLMTask(Task):
    name, config_class, command = "masked_lm", MaskedLMConfig, "predict"
    final_metrics = ("mlm_accuracy", "nsp_accuracy")
    option_fields = {**Task.option_fields, "preset": "model.preset", "max_examples": "data.max_examples"}

    def decoding(self, config):
        return None

    def prepare_data(self, config, run_dir):
        return data_lib.prepare_data(config, run_dir)

    def prepare_vocabulary(self, config, run_dir):
        data_lib.prepare_vocabulary(config, run_dir, data_lib.documents(config, "train"))
        return f"{run_dir}/vocab"

    def load_tokenizers(self, run_dir):
        return data_lib.load_tokenizer(run_dir)

    def build_model(self, config, tokenizers):
        model = BertPretrainer(tokenizers.vocabulary_size, next_sentence=config.data.next_sentence,
                               dtype=model_dtype(config.training.mixed_precision), **config.sizes())
        model(model.dummy_inputs())
        return model

    def loss(self, config):
        return MaskedLMLoss()

    def samples(self, config, model, data):
        """After each epoch: the validation scores as `valid/...` scalars and fill-in-the-blank samples."""
        tokenizer, valid = data.tokenizers, data.valid

        def after_epoch(trainer, epoch, valid_loss):
            scores = pretraining_scores(model, valid)
            logger.info("epoch %d validation: %s", epoch, ", ".join(f"{k} {v}" for k, v in scores.items()))
            trainer.write_scalars({f"valid/{key}": value for key, value in scores.items()
                                   if key not in ("masked_tokens", "sequences")})
            lines = fill_in_the_blanks(model, tokenizer, next(iter(valid)), config.training.samples)
            for line in lines:
                logger.info("sample: %s", line)
            trainer.write_text("fill_in_the_blanks", "\n\n".join(f"    {line}" for line in lines))

        return after_epoch

    def make_predictor(self, config, model, tokenizers, decoding=None):
        raise ValueError("A masked_lm run is a pretrained encoder: fine-tune it (tflm train --task classification "
                         "--init-from RUN) and export that, or save its encoder as a keras-hub preset "
                         "(tflm.models.bert: backbone.save_to_preset).")

    def export_inputs(self, config, count=16):
        return []

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None):
        """Masked-LM and next-sentence loss and accuracy on a split's sequences (masked with a fixed seed)."""
        tokenizer = self.load_tokenizers(run_dir)
        model = self.load_model(run_dir, checkpoint, config, tokenizer)
        dataset = data_lib.evaluation_dataset(config, tokenizer, split, max_examples)
        scores = {"split": split, "checkpoint": str(checkpoint), **pretraining_scores(model, dataset)}
        summary = f"masked LM: accuracy {scores['mlm_accuracy']:.2f}, loss {scores['mlm_loss']:.3f}"
        if "nsp_accuracy" in scores:
            summary += f"; next sentence: accuracy {scores['nsp_accuracy']:.2f}"
        return Evaluation(scores, summary=summary)


__all__ = ["MaskedLMLoss", "MaskedLMTask", "TaskData", "fill_in_the_blanks", "pretraining_scores"]
