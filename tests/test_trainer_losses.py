"""The loss a task gives the trainer: what it minimizes, what it counts, and how the run reports it."""

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tflm.training import ClassCrossEntropy, Loss, TokenCrossEntropy, Trainer, token_cross_entropy


def test_class_zero_is_a_label_and_negative_labels_are_ignored():
    logits = tf.constant(np.random.default_rng(0).normal(size=(4, 3)), tf.float32)
    log_probs = tf.nn.log_softmax(logits).numpy()
    labels = tf.constant([0, 2, 0, 1])
    loss_sum, nll_sum, count = ClassCrossEntropy()(labels, logits)
    assert float(count) == 4  # class 0 is counted, unlike a PAD token
    expected = -(log_probs[0, 0] + log_probs[1, 2] + log_probs[2, 0] + log_probs[3, 1])
    np.testing.assert_allclose(float(nll_sum), expected, rtol=1e-6)
    np.testing.assert_allclose(float(loss_sum), expected, rtol=1e-6)
    # the token loss would mask the class-0 rows as PAD: another loss, another count
    _, masked_nll, masked_count = token_cross_entropy(labels[:, None], logits[:, None, :])
    assert float(masked_count) == 2
    assert abs(float(masked_nll) - expected) > 0.1
    # labels below 0 are no examples
    _, nll_sum, count = ClassCrossEntropy()(tf.constant([0, -1, 0, 1]), logits)
    assert float(count) == 3
    np.testing.assert_allclose(float(nll_sum), -(log_probs[0, 0] + log_probs[2, 0] + log_probs[3, 1]), rtol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_token_loss_gradient_is_autodiffs_of_the_plain_formula(smoothing):
    """The written-out gradient of the token loss (and of its nll) equals TensorFlow's gradient of the
    straightforward log-softmax formula, PAD masked, for both outputs at once."""
    rng = np.random.default_rng(2)
    logits = tf.constant(rng.normal(size=(3, 4, 7)) * 3, tf.float32)
    labels = tf.constant(rng.integers(1, 7, size=(3, 4)), tf.int32)
    labels = tf.tensor_scatter_nd_update(labels, [[0, 3], [2, 2]], [0, 0])  # two PAD positions

    def reference(x):
        log_probs = tf.nn.log_softmax(x)
        mask = tf.cast(labels != 0, tf.float32)
        nll = -tf.gather(log_probs, labels, batch_dims=2)
        smooth = -tf.reduce_mean(log_probs, axis=-1)
        return tf.reduce_sum(((1 - smoothing) * nll + smoothing * smooth) * mask), tf.reduce_sum(nll * mask)

    ours = None
    for function in (lambda x: token_cross_entropy(labels, x, smoothing)[:2], reference):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(logits)
            loss_sum, nll_sum = function(logits)
            mixed = 0.7 * loss_sum + 0.3 * nll_sum
        results = [loss_sum, nll_sum] + [tape.gradient(y, logits) for y in (loss_sum, nll_sum, mixed)]
        if function is reference:
            for got, want in zip(ours, results):
                np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
        ours = results
    assert float(tf.reduce_max(tf.abs(ours[2][0, 3]))) == 0.0  # a PAD position gets no gradient


def test_class_label_smoothing_and_the_unsmoothed_nll_for_evaluation():
    logits = tf.constant(np.random.default_rng(1).normal(size=(3, 5)), tf.float32)
    log_probs = tf.nn.log_softmax(logits).numpy()
    labels = tf.constant([4, 0, 2])
    loss = ClassCrossEntropy(label_smoothing=0.2, unit="sequences")
    loss_sum, nll_sum, _ = loss(labels, logits)
    nll = -log_probs[[0, 1, 2], [4, 0, 2]]
    np.testing.assert_allclose(float(loss_sum), (0.8 * nll - 0.2 * log_probs.mean(-1)).sum(), rtol=1e-6)
    eval_nll, eval_count = loss.nll(labels, logits)
    np.testing.assert_allclose(float(eval_nll), nll.sum(), rtol=1e-6)
    assert float(eval_count) == 3 and loss.label_smoothing == 0.2
    assert (loss.unit, loss.has_perplexity) == ("sequences", False)
    assert (TokenCrossEntropy.unit, TokenCrossEntropy.has_perplexity) == ("tokens", True)
    assert ClassCrossEntropy(unit="words").unit == "words"  # one class per word (tagging)
    with pytest.raises(ValueError, match="unit"):
        ClassCrossEntropy(unit="bytes")
    with pytest.raises(ValueError, match="label_smoothing"):
        ClassCrossEntropy(label_smoothing=1.0)


def classifier():
    tokens = keras.Input((None,), dtype="int64")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 8)(tokens))
    return keras.Model(tokens, keras.layers.Dense(3)(pooled))


def language_model():
    tokens = keras.Input((None,), dtype="int64")
    return keras.Model(tokens, keras.layers.Dense(20)(keras.layers.Embedding(20, 8)(tokens)))


def data(kind, batches=4, rows=8, length=6):
    rng = np.random.default_rng(3)
    inputs = rng.integers(1, 20, size=(batches * rows, length))
    if kind == "classes":
        labels = np.tile([0, 1, 2, 0], batches * rows // 4)  # half of the examples are class 0
    else:
        labels = np.roll(inputs, -1, axis=1)
        labels[:, -2:] = 0  # PAD
    return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(rows)


@pytest.mark.parametrize("kind", ["classes", "tokens"])
def test_the_run_reports_in_the_loss_unit(kind, tmp_path, caplog):
    keras.utils.set_random_seed(0)
    loss = ClassCrossEntropy() if kind == "classes" else None  # None: the default token loss
    trainer = Trainer(classifier() if kind == "classes" else language_model(), keras.optimizers.SGD(0.1),
                      str(tmp_path), loss=loss, log_every_steps=2, save_every_epoch=False, verbose=False)
    with caplog.at_level(logging.INFO, logger="tflm"):
        result = trainer.fit(lambda epoch: data(kind), max_steps=4, valid_data=data(kind, batches=2))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    train_lines, valid_lines = [x for x in lines if "valid" not in x], [x for x in lines if "valid" in x]
    assert len(train_lines) == 2 and len(valid_lines) == 1
    tensorboard = event_accumulator.EventAccumulator(str(tmp_path / "logs" / "train"))
    tensorboard.Reload()
    tags = set(tensorboard.Tags()["tensors"])
    progress = json.load(open(tmp_path / "progress.json"))
    if kind == "classes":
        assert result.unit == "examples" and progress["unit"] == "examples"
        assert result.count == result.target_tokens == 32  # every example counts, class 0 included
        assert trainer.evaluate(data(kind, batches=2))[1] == 16
        assert all("examples/s" in x and "perplexity" not in x and "tokens" not in x for x in train_lines)
        assert "over 16 examples" in valid_lines[0] and "perplexity" not in valid_lines[0]
        assert "examples_per_second" in tags and "perplexity" not in tags and "tokens_per_second" not in tags
        assert progress["examples_per_second"] > 0 and "tokens_per_second" not in progress
        assert "best_valid_perplexity" not in progress and result.best_valid_perplexity is None
        assert set(result.summary()) >= {"examples_per_second", "best_valid_loss"}
        assert "best_valid_perplexity" not in result.summary() and "tokens_per_second" not in result.summary()
    else:
        assert result.unit == "tokens" and progress["unit"] == "tokens"
        assert result.count == 32 * 4  # the two PAD labels of each row are not counted
        assert all("tokens/s" in x and "perplexity" in x for x in train_lines)
        assert "over 64 tokens" in valid_lines[0] and "perplexity" in valid_lines[0]
        assert {"tokens_per_second", "perplexity"} <= tags
        assert progress["tokens_per_second"] > 0
        assert progress["best_valid_perplexity"] == result.best_valid_perplexity == pytest.approx(
            np.exp(result.best_valid_loss), rel=1e-3)
        assert set(result.summary()) >= {"tokens_per_second", "best_valid_perplexity"}
    assert result.tokens_per_second == result.per_second > 0


def test_a_trainer_with_a_loss_refuses_a_label_smoothing_of_its_own(tmp_path):
    with pytest.raises(ValueError, match="label smoothing"):
        Trainer(classifier(), keras.optimizers.SGD(0.1), str(tmp_path), loss=ClassCrossEntropy(), label_smoothing=0.1)
    trainer = Trainer(language_model(), keras.optimizers.SGD(0.1), str(tmp_path), label_smoothing=0.1)
    assert isinstance(trainer.loss, TokenCrossEntropy) and trainer.loss.label_smoothing == 0.1
    assert not os.path.exists(tmp_path / "logs")  # nothing is written before fit


class SequenceLoss(Loss):
    """A loss of the task's own: one count per sequence, a NaN from its third batch on."""

    unit = "sequences"

    def __init__(self):
        super().__init__()
        self.calls = tf.Variable(0)

    def sums(self, labels, outputs, label_smoothing):
        nll = tf.reduce_sum(-tf.nn.log_softmax(tf.cast(outputs, tf.float32))[:, 0])
        broken = self.calls.assign_add(1) > 2
        return tf.where(broken, np.nan, nll), nll, tf.cast(tf.shape(labels)[0], tf.float32)


def test_a_loss_of_the_tasks_own_and_a_nan_inside_an_accumulation(tmp_path):
    trainer = Trainer(classifier(), keras.optimizers.SGD(0.1), str(tmp_path), loss=SequenceLoss(),
                      accumulation_steps=2, save_every_epoch=False, verbose=False)
    with pytest.raises(FloatingPointError, match="at step 1"):  # the third batch: one step, one batch accumulated
        trainer.fit(lambda epoch: data("classes"), max_steps=3)
    assert trainer.steps.pending == 1
    progress = json.load(open(tmp_path / "progress.json"))
    assert progress["step"] == 1 and progress["target_tokens"] == 16 and progress["unit"] == "sequences"


@pytest.mark.parametrize("model_type, params", [
    ("transformer", dict(hidden_dim=16, intermediate_dim=32, num_heads=2, num_encoder_layers=1,
                         num_decoder_layers=1, dropout=0.0)),
    ("lstm", dict(embedding_dim=8, hidden_dim=16, num_encoder_layers=1, num_decoder_layers=1, dropout=0.0)),
])
def test_the_coverage_loss_the_train_step_adds_scales_with_model_params_coverage_loss_weight(model_type, params):
    """`model.params.coverage_loss_weight` = w adds w times See et al.'s coverage loss to the step's summed loss:
    nothing at 0, and at 2.5 two and a half times what weight 1 adds (the same weights, the same batch)."""
    import types

    from tflm.layers import coverage_loss
    from tflm.tasks import translation
    from tflm.training.steps import TrainSteps

    vocabulary = types.SimpleNamespace(vocabulary_size=30)
    inputs = {"source_ids": np.array([[5, 6, 7, 6, 3], [8, 9, 3, 0, 0]], "int32"),
              "target_ids": np.array([[2, 5, 6, 7, 6], [2, 8, 9, 0, 0]], "int32")}
    labels = np.array([[5, 6, 7, 6, 3], [8, 9, 3, 0, 0]], "int32")
    added, reference = {}, None
    for weight in (0.0, 1.0, 2.5):
        config = translation.TranslationConfig(model=translation.ModelConfig(
            type=model_type, params=dict(params, copy_attention=True, coverage_loss_weight=weight)))
        model = translation.build_model(config, vocabulary, vocabulary)
        assert model.decoder.copy.coverage_loss_weight == weight  # the config's value reached the layer
        if reference is None:
            reference = model
        else:
            model.set_weights(reference.get_weights())
        steps = TrainSteps(model, keras.optimizers.SGD(0.0), tf.distribute.get_strategy(), token_cross_entropy)
        loss_sum, nll_sum, _, _ = steps._gradients(inputs, labels)
        added[weight] = float(loss_sum - nll_sum)
    assert added[0.0] == 0.0
    # weight 1 adds the coverage loss of the copy attention's weights over the real target tokens
    decoder, encoded = reference.decoder, reference.encode(inputs["source_ids"])
    static = decoder.initial_state(encoded, 8)["static"]["copy"]
    if model_type == "transformer":
        x = decoder._embed(inputs["target_ids"])
        embedded = x
        for block in decoder.blocks:
            x, _, _ = block(x, memory=encoded["memory"], memory_mask=encoded["memory_mask"])
        features = decoder.norm(x) if decoder.normalize_first else x
    else:
        embedded = decoder._embed(inputs["target_ids"], False)
        features, _ = decoder.rnn(embedded, decoder.initial_state(encoded))
    _, weights, _ = decoder.copy(features, embedded, tf.zeros([2, 5, 30]), static, return_parts=True)
    expected = float(coverage_loss(weights, inputs["target_ids"] != 0))
    assert expected > 0.05
    np.testing.assert_allclose(added[1.0], expected, rtol=1e-4)
    np.testing.assert_allclose(added[2.5], 2.5 * added[1.0], rtol=1e-4)
