"""Gradient accumulation: K batches of B rows take exactly the optimizer step of one batch of K*B rows."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tflm.data import Batching, tokenize_pairs, translation_dataset
from tflm.training import Trainer, accumulation_steps_for, make_strategy

from conftest import CPU_DEVICES


@pytest.fixture(scope="module")
def batches(sample_corpus, sample_tokenizer):
    """Two batches of 16 rows, and each cut in two halves of 8 rows (the same padded length)."""
    pairs = tokenize_pairs(sample_corpus.head(120), sample_tokenizer, sample_tokenizer, 24, 24)
    full = list(translation_dataset(pairs, Batching(batch_size=16), seed=0).take(3))
    cut = lambda batch, rows: tf.nest.map_structure(lambda t: t[rows], batch)  # noqa: E731
    halves = [cut(b, s) for b in full for s in (slice(0, 8), slice(8, 16))]
    return full, halves


def as_dataset(batches):
    dataset = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(batch))
    return dataset


def tiny_translator(vocabulary_size):
    """A row-independent model of `{"source_ids", "target_ids"}` (a row's logits depend on its own row only,
    as in any tflm model), small and made of Keras layers alone; one embedding for both, so that its
    gradient is the sum of two sparse ones."""
    source = keras.Input((None,), dtype="int64", name="source_ids")
    target = keras.Input((None,), dtype="int64", name="target_ids")
    embedding = keras.layers.Embedding(vocabulary_size, 16)
    context = keras.layers.GlobalAveragePooling1D()(embedding(source))
    hidden = keras.layers.Dense(32, activation="tanh")(embedding(target) + keras.ops.expand_dims(context, 1))
    return keras.Model({"source_ids": source, "target_ids": target}, keras.layers.Dense(vocabulary_size)(hidden))


def make_trainer(run_dir, vocabulary_size, strategy=None, accumulation_steps=1, clip_norm=None, **kwargs):
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(7)
    with strategy.scope():
        model = tiny_translator(vocabulary_size)
        optimizer = keras.optimizers.SGD(0.5)  # plain SGD: its step shows any factor in the gradient
    return Trainer(model, optimizer, str(run_dir), strategy=strategy, clip_norm=clip_norm, label_smoothing=0.1,
                   accumulation_steps=accumulation_steps, save_every_epoch=False, verbose=False, **kwargs)


def assert_same_weights(a, b):
    for x, y in zip(a.model.weights, b.model.weights):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=1e-6, err_msg=x.path)


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
@pytest.mark.parametrize("clip_norm", [None, 0.05])
def test_accumulated_halves_take_the_step_of_the_whole_batch(batches, sample_tokenizer, tmp_path, strategy,
                                                             clip_norm):
    """[half, half, half] with K=2 against [whole, half] with K=1: the first step accumulates two halves, the
    second is the epoch's partial accumulation of one half, normalized by its own count. With a clip norm
    the clip must see the accumulated gradient (clipping each half would take another step)."""
    full, halves = batches
    size = sample_tokenizer.vocabulary_size
    whole = make_trainer(tmp_path / "whole", size, clip_norm=clip_norm)
    strategy = make_strategy(strategy, CPU_DEVICES)
    accumulated = make_trainer(tmp_path / "accumulated", size, strategy, accumulation_steps=2, clip_norm=clip_norm)
    for variable, value in zip(accumulated.model.weights, whole.model.weights):
        variable.assign(value)
    before = [np.asarray(w) for w in whole.model.weights]
    one = whole.fit(lambda epoch: as_dataset([full[0], halves[2]]), epochs=1)
    two = accumulated.fit(lambda epoch: as_dataset(halves[:3]), epochs=1)
    assert (one.step, two.step) == (2, 2)  # steps are optimizer steps
    assert int(accumulated.epoch.numpy()) == 1 and int(accumulated.step_in_epoch.numpy()) == 0
    assert one.count == two.count > 0
    moved = max(float(np.abs(np.asarray(w) - b).max()) for w, b in zip(whole.model.weights, before))
    assert moved > 1e-3
    assert_same_weights(whole, accumulated)
    if clip_norm:  # the clip was active: without it the step is another one
        free = make_trainer(tmp_path / "free", size, strategy, accumulation_steps=2)
        for variable, value in zip(free.model.weights, before):
            variable.assign(value)
        free.fit(lambda epoch: as_dataset(halves[:3]), epochs=1)
        assert max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                   for a, b in zip(free.model.weights, accumulated.model.weights)) > 1e-3


def test_three_accumulated_thirds_take_the_step_of_the_whole_batch(batches, sample_tokenizer, tmp_path):
    full, _ = batches
    size = sample_tokenizer.vocabulary_size
    plain = make_trainer(tmp_path / "plain", size)
    thirds = make_trainer(tmp_path / "thirds", size, accumulation_steps=3)
    cut = [tf.nest.map_structure(lambda t: t[rows], full[0]) for rows in (slice(0, 5), slice(5, 10), slice(10, 16))]
    plain.fit(lambda epoch: as_dataset(full[:1]), epochs=1)
    thirds.fit(lambda epoch: as_dataset(cut), epochs=1)
    assert (plain.step, thirds.step) == (1, 1)
    assert_same_weights(plain, thirds)


def failing_after(dataset, good):
    """`dataset` whose element `good` (0-based) raises, like a run killed while reading it."""
    def check(index, batch):
        with tf.control_dependencies([tf.debugging.assert_less(index, tf.constant(good, tf.int64))]):
            return tf.nest.map_structure(tf.identity, batch)

    return tf.data.Dataset.zip(tf.data.Dataset.range(1000), dataset).map(check)


def test_a_run_interrupted_inside_an_accumulation_resumes_to_the_uninterrupted_weights(batches, sample_tokenizer,
                                                                                       tmp_path):
    """Checkpoints come only between optimizer steps: a run that dies with one batch accumulated resumes from
    the step before it (step_in_epoch 4 of the batches), re-reads that batch, and ends where an uninterrupted
    run ends. The same trainer object resumes, so the accumulation it holds must be discarded."""
    _, halves = batches
    size = sample_tokenizer.vocabulary_size
    data = lambda epoch: as_dataset(halves[:6])  # noqa: E731
    straight = make_trainer(tmp_path / "straight", size, accumulation_steps=2)
    straight.fit(data, epochs=2)
    assert straight.step == 6
    resumed = make_trainer(tmp_path / "resumed", size, accumulation_steps=2, checkpoint_every_steps=1)
    with pytest.raises(tf.errors.InvalidArgumentError):
        resumed.fit(lambda epoch: failing_after(data(epoch), 5), epochs=2)  # dies after 5 batches: 2 steps
    assert resumed.steps.pending == 1
    assert resumed.step == 2
    resumed.fit(data, epochs=2)
    assert resumed.step == 6 and int(resumed.epoch.numpy()) == 2
    again = make_trainer(tmp_path / "resumed", size, accumulation_steps=2)
    again.restore()
    assert again.step == 6
    assert_same_weights(straight, resumed)


def test_the_checkpoint_of_an_interrupted_accumulation_is_between_steps(batches, sample_tokenizer, tmp_path):
    _, halves = batches
    trainer = make_trainer(tmp_path / "run", sample_tokenizer.vocabulary_size, accumulation_steps=2,
                           checkpoint_every_steps=1)
    with pytest.raises(tf.errors.InvalidArgumentError):
        trainer.fit(lambda epoch: failing_after(as_dataset(halves[:6]), 5), epochs=1)
    fresh = make_trainer(tmp_path / "run", sample_tokenizer.vocabulary_size, accumulation_steps=2)
    fresh.restore()
    assert (fresh.step, int(fresh.step_in_epoch.numpy())) == (2, 4)  # 5 batches read, 4 in the weights


def test_accumulation_steps_for_an_effective_batch():
    assert accumulation_steps_for(4096, 1024) == 4
    assert accumulation_steps_for(4097, 1024) == 5  # at least the effective batch
    assert accumulation_steps_for(1000, 1024) == 1
    assert accumulation_steps_for(4096, 512, replicas=2) == 4
    assert accumulation_steps_for(None, 64) == 1
    for bad in [(0, 64), (4096, 0), (4096, 64, 0), (4096.5, 64), ("4096", 64), (True, 64), (-1, 64)]:
        with pytest.raises(ValueError, match="positive integer"):
            accumulation_steps_for(*bad)
    with pytest.raises(ValueError, match="accumulation_steps"):
        Trainer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), keras.optimizers.SGD(), "unused",
                accumulation_steps=0)
