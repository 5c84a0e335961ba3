"""Language models: GPT and Transformer-XL, their data, generation and export."""

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tflm import config as config_lib
from tflm.data.language_modeling import (
    contiguous_dataset,
    contiguous_segments,
    count_words,
    num_contiguous_segments,
    num_windows,
    tokenize_stream,
    window_dataset,
    window_starts,
    windows,
)
from tflm.decoding import DecodingOptions, search
from tflm.layers import RelativeMultiHeadAttention
from tflm.layers.relative_attention import relative_shift
from tflm.models import GPT, LSTMAttentionSeq2Seq, TransformerXL, preset_params
from tflm.tasks import language_modeling
from tflm.text import train_tokenizer

from conftest import CPU_DEVICES

TEXT = ["ROMEO:\n", "But, soft! what light through yonder window breaks?\n", "It is the east, and Juliet is the sun.\n"]


def gpt(**kwargs):
    params = dict(hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=2, dropout=0.0, max_sequence_length=64)
    params.update(kwargs)
    model = GPT(30, **params)
    model.build()
    return model


def txl(**kwargs):
    params = dict(hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=2, dropout=0.0, memory_length=6)
    params.update(kwargs)
    model = TransformerXL(30, **params)
    model.build()
    return model


@pytest.mark.parametrize("make", [gpt, lambda: gpt(position_embedding="rotary"), txl], ids=["gpt", "rotary", "txl"])
def test_changing_a_future_token_never_changes_earlier_logits(make):
    model = make()
    tokens = np.random.default_rng(0).integers(4, 30, (2, 10)).astype("int32")
    changed = tokens.copy()
    changed[:, 6] = (changed[:, 6] + 1 - 4) % 26 + 4
    before, after = np.asarray(model({"token_ids": tokens})), np.asarray(model({"token_ids": changed}))
    np.testing.assert_array_equal(before[:, :6], after[:, :6])
    assert np.abs(before[:, 6:] - after[:, 6:]).max() > 0


@pytest.mark.parametrize("make", [gpt, lambda: gpt(position_embedding="rotary"), txl], ids=["gpt", "rotary", "txl"])
@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_cached_generation_equals_uncached(make, strategy):
    model = make()
    options = DecodingOptions(strategy=strategy, beam_size=3, n_best=2, max_length=12, max_length_a=0.0)
    start = tf.constant([5, 9], tf.int32)
    cached = search(model.decode_step, model.initial_state(2, 12), 2, options, start_ids=start)
    step_fn, state = model.uncached_decoding(2, 12)
    uncached = search(step_fn, state, 2, options, start_ids=start)
    np.testing.assert_array_equal(cached.token_ids, uncached.token_ids)
    np.testing.assert_allclose(cached.scores, uncached.scores, rtol=1e-4, atol=1e-5)


def test_transformer_xl_memory_length_zero_is_the_model_without_memory():
    with_memory, without = txl(memory_length=6), txl(memory_length=0)
    for source, target in zip(without.weights, with_memory.weights):
        target.assign(source)
    tokens = np.random.default_rng(1).integers(4, 30, (2, 8)).astype("int32")
    plain, memory = without.forward(tokens)
    assert memory is None
    np.testing.assert_allclose(np.asarray(with_memory.forward(tokens)[0]), np.asarray(plain), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(without({"token_ids": tokens})), np.asarray(plain), rtol=1e-6)


def test_relative_attention_is_invariant_to_shifting_all_positions():
    layer = RelativeMultiHeadAttention(num_heads=2, key_dim=4)
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(2, 3, 8)).astype("float32")
    context = rng.normal(size=(2, 7, 8)).astype("float32")
    queries, keys = np.arange(4, 7), np.arange(7)
    base = np.asarray(layer(inputs, context, queries, keys))
    shifted = np.asarray(layer(inputs, context, queries + 41, keys + 41))
    np.testing.assert_allclose(shifted, base, rtol=1e-5, atol=1e-6)
    moved = np.asarray(layer(inputs, context, queries + 1, keys))  # a different distance does change it
    assert np.abs(moved - base).max() > 1e-4


@pytest.mark.parametrize("memory_length", [0, 4])
def test_the_relative_shift_places_scores_as_the_gather_does(memory_length):
    layer = RelativeMultiHeadAttention(num_heads=2, key_dim=4)
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(2, 3, 8)).astype("float32")
    context = rng.normal(size=(2, memory_length + 3, 8)).astype("float32")
    layer(inputs, context, np.arange(3) + memory_length, np.arange(memory_length + 3))  # build
    for weight in layer.weights:  # u and v start at zero: make them count
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    queries, keys = np.arange(3) + memory_length, np.arange(memory_length + 3)
    gathered = np.asarray(layer(inputs, context, queries, keys))
    shifted = np.asarray(layer(inputs, context, queries, keys, memory_length=memory_length))
    np.testing.assert_allclose(shifted, gathered, rtol=1e-5, atol=1e-5)
    scores = np.arange(2 * 1 * 3 * 5).reshape(2, 1, 3, 5)  # T=3 queries at 2..4 over K=5 keys
    out = np.asarray(relative_shift(scores))
    for i in range(3):
        for j in range(2 + i + 1):  # keys up to the query: distance 2 + i - j, stored at column 4 - distance
            assert (out[:, :, i, j] == scores[:, :, i, 4 - (2 + i - j)]).all()


def test_word_perplexity_covers_every_token_of_the_text():
    class Characters:  # metrics reads only the tokenizer's kind
        kind = "character"

    lines = ["one two three", "four five"]  # 5 words + 2 line ends = 7
    scored = language_modeling.metrics(0.5, 90, lines, Characters(), text_tokens=90)
    partial = language_modeling.metrics(0.5, 60, lines, Characters(), text_tokens=90)  # a third left unscored
    assert scored["word_perplexity"] == partial["word_perplexity"] == pytest.approx(np.exp(0.5 * 90 / 7), rel=1e-3)
    assert partial["tokens"] == 60 and partial["text_tokens"] == 90


@pytest.mark.parametrize("segments_per_chunk", [None, 2])
def test_transformer_xl_memory_lowers_the_loss_on_repeated_text(tmp_path, segments_per_chunk):
    """Random 8-token chunks, each repeated once: the repeat is predictable only from the previous segment
    (read as unbroken streams, or as shuffled chunks of two segments: a text and its repeat)."""
    rng = np.random.default_rng(3)
    length, vocabulary = 8, 16
    chunks = rng.integers(4, vocabulary, (600, length))
    ids = np.repeat(chunks, 2, axis=0).reshape(-1).astype("int32")
    keras.utils.set_random_seed(0)
    model = TransformerXL(vocabulary, hidden_dim=32, intermediate_dim=64, num_heads=2, num_layers=1, dropout=0.0,
                          memory_length=length)
    model.build()
    model.enable_memory_state(8)
    from tflm.training import Trainer

    trainer = Trainer(model, keras.optimizers.Adam(3e-3), str(tmp_path), save_every_epoch=False, verbose=False)
    trainer.fit(lambda epoch: contiguous_dataset(ids, length, 8, epoch=epoch, segments_per_chunk=segments_per_chunk),
                epochs=4,
                on_epoch_start=lambda trainer, epoch: model.reset_memory())
    held_out = np.repeat(rng.integers(4, vocabulary, (60, length)), 2, axis=0).reshape(-1).astype("int32")
    with_memory, _ = language_modeling.evaluate_ids(model, held_out, length, batch_size=4)
    model_without = TransformerXL(vocabulary, hidden_dim=32, intermediate_dim=64, num_heads=2, num_layers=1,
                                  dropout=0.0, memory_length=0)
    model_without.build()
    for source, target in zip(model.weights, model_without.weights):
        target.assign(source)
    without_memory, _ = language_modeling.evaluate_ids(model_without, held_out, length, batch_size=4, stride=length)
    # Half the tokens (the repeats) are predictable from the memory: with it, the loss falls well below the
    # memoryless one. On shuffled chunks a chunk's first segment trains with an empty memory, so the model
    # leans on it less (0.70-0.79 over three seeds) than on unbroken streams (0.59-0.63).
    assert with_memory < (0.7 if segments_per_chunk is None else 0.8) * without_memory, (with_memory, without_memory)
    # The same weights without memory still predict the unrepeated half about as well as chance allows
    # (ln 12 = 2.48 nats): had training attended to zero-filled "empty" slots, it would have learned to depend
    # on them (4.0 nats here before the memory was masked instead).
    assert without_memory < 1.25 * np.log(vocabulary - 4), without_memory


def test_windows_and_contiguous_segments():
    ids = np.arange(100, dtype=np.int32)
    cut = windows(ids, 10, stride=5)
    assert cut.shape == (18, 11) and cut[1, 0] == 5
    batch = next(iter(window_dataset(ids, 10, batch_size=4, stride=10, shuffle=False)))
    np.testing.assert_array_equal(batch[0]["token_ids"][0], np.arange(10))
    np.testing.assert_array_equal(batch[1][0], np.arange(1, 11))
    segments = contiguous_segments(ids, 5, batch_size=3)  # 3 streams of 33 tokens
    assert segments.shape == (6, 3, 6)
    np.testing.assert_array_equal(segments[1, 0, :2], [5, 6])  # row 0 of batch 1 continues row 0 of batch 0
    np.testing.assert_array_equal(segments[0, 1, :2], [33, 34])
    assert count_words(["a b c\n", "\n"]) == 5


def test_contiguous_random_offsets_cut_each_epoch_elsewhere_and_keep_streams_continuous():
    ids = np.arange(1001, dtype=np.int32)
    steps = num_contiguous_segments(ids, 10, 4, random_offset=True)
    assert steps == num_contiguous_segments(ids, 10, 4) - 1 == 24  # room left for any offset below 10
    epochs = [[(np.asarray(x["token_ids"]), np.asarray(y)) for x, y in
               contiguous_dataset(ids, 10, 4, seed=3, epoch=epoch, random_offset=True)] for epoch in range(6)]
    assert {len(batches) for batches in epochs} == {steps}  # the same number of steps every epoch
    assert len({int(batches[0][0][0, 0]) for batches in epochs}) > 1  # the cut moves between epochs
    for batches in epochs:
        for (x, y), (next_x, _) in zip(batches, batches[1:]):
            np.testing.assert_array_equal(x + 1, y)  # labels are the next tokens (ids are their positions)
            np.testing.assert_array_equal(next_x[:, 0], x[:, -1] + 1)  # each row continues the same row
        assert int(batches[-1][1].max()) < len(ids)
    again = next(iter(contiguous_dataset(ids, 10, 4, seed=3, epoch=2, random_offset=True)))[0]["token_ids"]
    np.testing.assert_array_equal(again, epochs[2][0][0])  # (seed, epoch) decides the cut: resumable
    plain = next(iter(contiguous_dataset(ids, 10, 4)))[0]["token_ids"]
    np.testing.assert_array_equal(np.asarray(plain)[:, 0], [0, 250, 500, 750])


def test_shuffled_chunks_of_segments_for_transformer_xl():
    ids = np.arange(1001, dtype=np.int32)
    steps = num_contiguous_segments(ids, 10, 4, random_offset=True, segments_per_chunk=3)
    assert steps == 24  # 33 chunks of 30 tokens fit at any offset below 10: 8 batches of 4, 3 segments each
    epochs = []
    for epoch in range(3):
        batches = [({k: np.asarray(v) for k, v in x.items()}, np.asarray(y)) for x, y in contiguous_dataset(
            ids, 10, 4, seed=1, epoch=epoch, random_offset=True, segments_per_chunk=3)]
        assert len(batches) == steps
        for n, (x, y) in enumerate(batches):
            np.testing.assert_array_equal(x["token_ids"] + 1, y)
            assert x["new_chunk"].tolist() == [n % 3 == 0] * 4  # the memory empties where chunks start
            if n % 3:  # within a chunk, each row continues the same row
                np.testing.assert_array_equal(x["token_ids"][:, 0], batches[n - 1][0]["token_ids"][:, -1] + 1)
        starts = np.concatenate([x["token_ids"][:, 0] for x, _ in batches[::3]])
        assert len(set(starts % 30)) == 1 and len(set(starts)) == 32  # one offset, each chunk read once
        epochs.append(starts)
    orders = [starts - starts % 30 for starts in epochs]  # where each epoch's chunks lie, in reading order
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])  # reshuffled
    with pytest.raises(ValueError, match="segments_per_chunk"):
        contiguous_dataset(ids, 10, 4, segments_per_chunk=0)
    with pytest.raises(ValueError, match="too few"):
        contiguous_dataset(ids, 10, 64, segments_per_chunk=3)
    config = language_modeling.LanguageModelConfig()
    config.data.segments_per_chunk = 3
    gpt = GPT(20, hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=1)
    with pytest.raises(ValueError, match="segments_per_chunk is for Transformer-XL"):  # not silently ignored
        language_modeling.train_datasets(config, language_modeling.LMData(None, ids, ids, []), gpt)


def test_transformer_xl_new_chunk_empties_the_memory_of_its_rows():
    keras.utils.set_random_seed(0)
    model = TransformerXL(20, hidden_dim=16, intermediate_dim=32, num_heads=2, num_layers=2, dropout=0.0,
                          memory_length=4)
    model.build()
    model.enable_memory_state(2)
    first, second = np.array([[1, 2, 3, 4], [5, 6, 7, 8]]), np.array([[9, 10, 11, 12], [13, 14, 15, 16]])
    model({"token_ids": first})
    carried = np.asarray(model({"token_ids": second}))
    model.reset_memory()
    after_reset = np.asarray(model({"token_ids": first}))
    mixed = np.asarray(model({"token_ids": second, "new_chunk": np.array([True, False])}))
    # the reference is a segment read with no memory at all, as evaluation starts: an emptied memory must
    # be masked, not merely zero-filled (zero slots would still take attention weight)
    no_memory = np.asarray(model.forward(second, None)[0])
    np.testing.assert_allclose(after_reset, np.asarray(model.forward(first, None)[0]), atol=1e-5)
    np.testing.assert_allclose(mixed[0], no_memory[0], atol=1e-5)  # row 0 forgot the first segment
    np.testing.assert_allclose(mixed[1], carried[1], atol=1e-5)  # row 1 kept it
    assert np.abs(carried[0] - no_memory[0]).max() > 1e-3  # (the memory matters)
    zero_filled = np.asarray(model.forward(second, [np.zeros((2, 4, 16), "float32")] * 2)[0])
    assert np.abs(zero_filled[0] - no_memory[0]).max() > 1e-3  # (and zero-filling is not emptying)


def test_random_offsets_cut_each_epoch_elsewhere_with_a_fixed_count():
    ids = np.arange(103, dtype=np.int32)
    epochs = [window_starts(ids, 10, seed=0, epoch=epoch, random_offset=True) for epoch in range(6)]
    offsets = {int(starts[0] % 10) for starts in epochs}
    assert len(offsets) > 1  # the cut moves between epochs
    for starts in epochs:
        assert len(starts) == num_windows(ids, 10, random_offset=True) == 9
        assert len({int(start % 10) for start in starts}) == 1  # one offset per epoch, windows `stride` apart
        assert starts.max() + 10 < len(ids)  # every window (with its label) inside the text
    np.testing.assert_array_equal(epochs[2], window_starts(ids, 10, seed=0, epoch=2, random_offset=True))
    np.testing.assert_array_equal(np.sort(window_starts(ids, 10, random_offset=False)), np.arange(0, 93, 10))
    short = np.arange(12, dtype=np.int32)  # room for one window only: offset 0
    assert list(window_starts(short, 10, random_offset=True)) == [0] == list(window_starts(short, 10))
    batch = next(iter(window_dataset(ids, 10, 4, seed=0, epoch=1, random_offset=True)))
    np.testing.assert_array_equal(batch[0]["token_ids"][:, 0], epochs[1][:4])


@pytest.mark.parametrize("kind", ["character", "byte_bpe", "unigram"])
def test_text_streams_keep_line_breaks(kind):
    tokenizer = train_tokenizer(TEXT * 20 if kind != "unigram" else [t.strip() for t in TEXT * 20], kind,
                                300 if kind == "byte_bpe" else 60)
    ids = tokenize_stream(TEXT, tokenizer)
    text = tokenizer.detokenize(tf.constant([ids.tolist()])).numpy()[0].decode()
    if kind == "unigram":  # EOS closes each line; detokenization stops at the first
        assert list(ids).count(3) == len(TEXT)
    else:
        assert text == "".join(TEXT)


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory):
    """A tiny character GPT trained on a short text until it knows it by heart."""
    directory = tmp_path_factory.mktemp("lm")
    text_file = directory / "text.txt"
    text_file.write_text("".join(TEXT) * 30)
    run_dir = str(directory / "run")
    config = language_modeling.LanguageModelConfig()
    config.data.dataset = None
    config.data.train_file = config.data.valid_file = config.data.test_file = str(text_file)
    # stride 1: the text at every offset of the window, so a prompt at position 0 is familiar
    config.data.sequence_length, config.data.batch_size, config.data.stride = 64, 16, 1
    config.model.preset = "tiny"
    config.model.params = {"dropout": 0.0}
    config.training = language_modeling.TrainingConfig(epochs=None, max_steps=300, learning_rate=3e-3,
                                                       label_smoothing=0.0, samples=0)
    # 44 new tokens: with the 21-token prompts below, the model's whole context (65 positions: the window + 1)
    config.decoding = DecodingOptions(strategy="greedy", max_length=44, max_length_a=0.0)
    language_modeling.train(config, run_dir, verbose=False)
    return run_dir


def _train_tiny_lm(tmp_path, run_name, model_type="gpt", data=None, params=None, **training):
    """Trains the tiny GPT (or `model_type`) on TEXT for a few steps (constant learning rate), with `data`'s
    fields set on the data configuration (and `params` on the model's); returns the run directory."""
    text_file = tmp_path / "text.txt"
    text_file.write_text("".join(TEXT) * 10)
    config = language_modeling.LanguageModelConfig()
    config.data.dataset = None
    config.data.train_file = config.data.valid_file = config.data.test_file = str(text_file)
    config.data.sequence_length, config.data.batch_size = 32, 4
    for field, value in (data or {}).items():
        setattr(config.data, field, value)
    config.model.type, config.model.preset = model_type, "tiny"
    config.model.params = {"dropout": 0.0, **(params or {})}
    config.training = language_modeling.TrainingConfig(
        epochs=None, learning_rate=3e-3, schedule="constant", warmup_steps=1, label_smoothing=0.0, samples=0,
        **training)
    run_dir = str(tmp_path / run_name)
    language_modeling.train(config, run_dir, verbose=False)
    return run_dir


def test_transformer_xl_run_on_shuffled_chunks_evaluates_with_longer_memory(tmp_path):
    keras.utils.set_random_seed(0)
    run_dir = _train_tiny_lm(tmp_path, "txl", model_type="transformer_xl", data={"segments_per_chunk": 2},
                             max_steps=16)
    trained = language_modeling.evaluate(run_dir, "test", checkpoint="last")
    assert trained["context"] == "contiguous segments with memory 32"  # the tiny preset's memory
    assert trained["loss"] < 0.9 * np.log(language_modeling.load_vocabulary(run_dir).vocabulary_size)  # it learned
    same = language_modeling.evaluate(run_dir, "test", checkpoint="last", memory_length=32)
    longer = language_modeling.evaluate(run_dir, "test", checkpoint="last", memory_length=96)
    assert same["loss"] == pytest.approx(trained["loss"], abs=1e-6)
    assert longer["context"] == "contiguous segments with memory 96" and longer["loss"] != trained["loss"]
    assert os.path.exists(os.path.join(run_dir, "eval", "test.last.memory96.json"))
    with pytest.raises(ValueError, match="memory_length instead"):
        language_modeling.evaluate(run_dir, "test", checkpoint="last", stride=8)


def test_xla_training_steps_match_graph_training_steps(tmp_path):
    weights = {}
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        run_dir = _train_tiny_lm(tmp_path, f"run-{jit_compile}", max_steps=8, jit_compile=jit_compile)
        generator = language_modeling.Generator.from_run_dir(run_dir, checkpoint="last")
        weights[jit_compile] = [w.numpy() for w in generator.model.weights]
        loss = language_modeling.evaluate(run_dir, "test", checkpoint="last")["loss"]
        assert loss < 0.9 * np.log(generator.tokenizer.vocabulary_size), loss  # it learned something
    for graph, xla in zip(weights[False], weights[True]):
        np.testing.assert_allclose(xla, graph, rtol=1e-3, atol=1e-4)


def test_transformer_xl_resumed_mid_epoch_with_dropout_ends_with_the_uninterrupted_weights(tmp_path):
    """The training checkpoint carries Transformer-XL's memory and the dropout generators' states: a run
    stopped in the middle of an epoch and resumed takes exactly the steps an uninterrupted one takes."""
    import tensorflow as tf

    def train(run_name, max_steps):
        return _train_tiny_lm(tmp_path, run_name, model_type="transformer_xl", params={"dropout": 0.2},
                              max_steps=max_steps, checkpoint_every_steps=100)

    def weights(run_dir):
        reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")))
        names = [n for n in reader.get_variable_to_shape_map() if n.startswith(("model/", "carried/"))]
        return {n: reader.get_tensor(n) for n in names}

    whole = weights(train("whole", 10))
    train("resumed", 3)
    progress = json.load(open(tmp_path / "resumed" / "progress.json"))
    assert progress["epoch"] == 0 and progress["step_in_epoch"] == 3  # stopped inside the first epoch
    resumed = weights(train("resumed", 10))
    assert any(n.startswith("carried/") for n in whole) and sorted(whole) == sorted(resumed)
    for name, value in whole.items():
        np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_muon_trains_the_blocks_matrices_and_a_resumed_run_continues_exactly(tmp_path):
    def train(run_name, max_steps):
        run_dir = _train_tiny_lm(tmp_path, run_name, max_steps=max_steps, optimizer="muon", checkpoint_every_steps=4)
        return language_modeling.Generator.from_run_dir(run_dir, checkpoint="last")

    keras.utils.set_random_seed(0)
    whole = train("whole", 12)
    loss = language_modeling.evaluate(str(tmp_path / "whole"), "test", checkpoint="last")["loss"]
    assert loss < 0.9 * np.log(whole.tokenizer.vocabulary_size), loss  # it learned something
    denser = language_modeling.evaluate(str(tmp_path / "whole"), "test", checkpoint="last", stride=4)
    assert denser["context"] == "windows of 32, stride 4" and denser["loss"] != loss  # more context per token
    with pytest.raises(ValueError, match="stride instead"):
        language_modeling.evaluate(str(tmp_path / "whole"), "test", checkpoint="last", memory_length=64)

    keras.utils.set_random_seed(0)
    train("resumed", 4)
    resumed = train("resumed", 12)  # the same command again, with a longer run: resumes at step 4
    for a, b in zip(whole.model.weights, resumed.model.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)

    optimizer = language_modeling.build_optimizer(language_modeling.TrainingConfig(optimizer="muon"))
    adam = {v.path for v in whole.model.trainable_variables if optimizer._should_use_adamw(v)}
    assert any(path.endswith("token_embedding/embeddings") for path in adam)
    assert not any(path.endswith("kernel") for path in adam)  # the blocks' matrices: Muon
    lstm = LSTMAttentionSeq2Seq(source_vocabulary_size=20, target_vocabulary_size=30, **preset_params("lstm", "tiny"))
    lstm({"source_ids": np.ones((1, 5), "int32"), "target_ids": np.ones((1, 4), "int32")})
    adam = {v.path for v in lstm.trainable_variables if optimizer._should_use_adamw(v)}
    assert any(path.endswith("logits/kernel") for path in adam)  # its untied output layer
    assert any(path.endswith("recurrent_kernel") for path in {v.path for v in lstm.trainable_variables} - adam)
    with pytest.raises(config_lib.ConfigError, match="training.optimizer"):
        language_modeling.build_optimizer(language_modeling.TrainingConfig(optimizer="sgd"))
    config = language_modeling.LanguageModelConfig()
    config.training.optimizer = "sgd"
    with pytest.raises(config_lib.ConfigError, match="training.optimizer"):  # before any data is read
        config.validate()


def test_bfloat16_training_with_muon_learns_and_orthogonalizes_in_bfloat16(tmp_path):
    keras.utils.set_random_seed(0)
    run_dir = _train_tiny_lm(tmp_path, "bf16", max_steps=12, optimizer="muon", mixed_precision="bfloat16")
    generator = language_modeling.Generator.from_run_dir(run_dir, checkpoint="last")
    assert {w.dtype for w in generator.model.weights} == {"float32"}  # mixed precision: float32 variables
    loss = language_modeling.evaluate(run_dir, "test", checkpoint="last")["loss"]
    assert loss < 0.9 * np.log(generator.tokenizer.vocabulary_size), loss  # it learned something

    bf16 = language_modeling.build_optimizer(language_modeling.TrainingConfig(optimizer="muon",
                                                                              mixed_precision="bfloat16"))
    fp32 = language_modeling.build_optimizer(language_modeling.TrainingConfig(optimizer="muon"))
    assert (bf16.newton_schulz_dtype, fp32.newton_schulz_dtype) == ("bfloat16", "float32")
    assert type(bf16).from_config(bf16.get_config()).newton_schulz_dtype == "bfloat16"
    # The bfloat16 iterations orthogonalize as the float32 ones do: singular values in the band the quintic
    # iteration leaves (about 0.7-1.2 instead of exactly 1), and an update in nearly the same direction (rounding
    # moves it by a few percent), returned in float32.
    momentum = tf.random.stateless_normal((48, 96), seed=(1, 2)) * 1e-3
    seen = []  # the dtype Keras' own iterations receive
    original = keras.optimizers.Muon.zeropower_via_newtonschulz5

    def spy(self, x, steps):
        seen.append(str(x.dtype))
        return original(self, x, steps)

    keras.optimizers.Muon.zeropower_via_newtonschulz5 = spy
    try:
        rounded, exact = (optimizer.zeropower_via_newtonschulz5(momentum, 5).numpy() for optimizer in (bf16, fp32))
    finally:
        keras.optimizers.Muon.zeropower_via_newtonschulz5 = original
    assert seen == ["<dtype: 'bfloat16'>", "<dtype: 'float32'>"], seen
    assert rounded.dtype == np.float32
    singular_values = np.linalg.svd(rounded, compute_uv=False)
    assert 0.6 < singular_values.min() and singular_values.max() < 1.25, singular_values
    cosine = np.sum(rounded * exact) / (np.linalg.norm(rounded) * np.linalg.norm(exact))
    # rounded to bfloat16 (8 significant bits), not computed in float32: different, but by a few percent only
    difference = np.abs(rounded - exact).max() / np.abs(exact).max()
    assert 1e-3 < difference < 0.2 and cosine > 0.99, (difference, cosine)


def test_muon_under_mirrored_strategy_takes_the_one_device_steps(tmp_path):
    """Two replicas (the CPU split in two) each see half of every batch; Muon's update of the summed gradient
    must give the weights of one device seeing the whole batch."""
    weights, messages = {}, []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    tflm_logger = logging.getLogger("tflm")
    level = tflm_logger.level
    tflm_logger.addHandler(handler)
    tflm_logger.setLevel(logging.INFO)
    try:
        losses = {}
        for strategy in ("default", "mirrored"):
            keras.utils.set_random_seed(0)
            devices = CPU_DEVICES if strategy == "mirrored" else None
            first = len(messages)
            run_dir = _train_tiny_lm(tmp_path, strategy, max_steps=6, optimizer="muon", strategy=strategy,
                                     devices=devices)
            weights[strategy] = language_modeling.Generator.from_run_dir(run_dir, checkpoint="last").model.weights
            # the training and validation losses logged at step 6
            losses[strategy] = [float(m.split("loss ")[1].split(",")[0]) for m in messages[first:]
                                if m.startswith("step 6: ") and "loss " in m]
    finally:
        tflm_logger.removeHandler(handler)
        tflm_logger.setLevel(level)
    assert "Training with MirroredStrategy on 2 replica(s), Muon" in messages
    assert len(losses["default"]) == 2 and np.allclose(losses["mirrored"], losses["default"], rtol=2e-3), losses
    for one, two in zip(weights["default"], weights["mirrored"]):
        np.testing.assert_allclose(two.numpy(), one.numpy(), rtol=1e-3, atol=1e-4, err_msg=one.path)


def test_a_tiny_lm_overfits_and_greedy_generation_reproduces_the_text(overfit_run):
    generator = language_modeling.Generator.from_run_dir(overfit_run)
    continuation = generator.generate(["But, soft! what light"])[0][0]
    assert continuation.startswith(" through yonder window breaks?\nIt is the ea")
    streamed = "".join(generator.stream("But, soft! what light", max_new_tokens=20))
    assert streamed == continuation[:20]
    result = language_modeling.evaluate(overfit_run, "test")
    assert result["loss"] < 0.2 and "bits_per_character" in result


@pytest.mark.parametrize("options", [
    DecodingOptions(strategy="greedy", max_length=24, max_length_a=0.0, no_repeat_ngram_size=3),
    DecodingOptions(strategy="beam", beam_size=3, n_best=2, max_length=16, max_length_a=0.0),
    DecodingOptions(strategy="sample", temperature=1.3, n_best=2, seed=3, max_length=16, max_length_a=0.0),
], ids=["greedy-no-repeat", "beam", "sample"])
@pytest.mark.parametrize("prompts", [["But, soft! what light", "It is"], ["But, soft! what light"], ["ROMEO:", ""]],
                         ids=["mixed-lengths", "one-prompt", "with-an-empty-prompt"])
def test_reading_the_prompt_in_one_pass_equals_step_by_step(overfit_run, options, prompts):
    generator = language_modeling.Generator.from_run_dir(overfit_run, decoding=options)
    stepwise = language_modeling.Generator(generator.model, generator.tokenizer, options, prefill=False)
    assert generator.prefill and not stepwise.prefill
    fast, slow = generator.generate_batch(tf.constant(prompts)), stepwise.generate_batch(tf.constant(prompts))
    assert fast["outputs"].numpy().tolist() == slow["outputs"].numpy().tolist()
    np.testing.assert_allclose(fast["scores"], slow["scores"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("options", [
    DecodingOptions(strategy="greedy", max_length=40, max_length_a=0.0, no_repeat_ngram_size=3),
    DecodingOptions(strategy="beam", beam_size=3, n_best=2, max_length=16, max_length_a=0.0),
], ids=["greedy-no-repeat", "beam"])
def test_xla_generation_equals_graph_generation(overfit_run, options):
    # prompts of 21, 5 and 0 characters: a prefill of 0 (the empty prompt), buffers rounded up past the need
    prompts = ["But, soft! what light", "It is", ""]
    graph = language_modeling.Generator.from_run_dir(overfit_run, decoding=options)
    xla = language_modeling.Generator.from_run_dir(overfit_run, decoding=options, jit_compile=True)
    assert xla.generate(prompts) == graph.generate(prompts)
    assert xla.generate(prompts[:2]) == graph.generate(prompts[:2])  # a prefill of 4: another compilation
    np.testing.assert_allclose(xla._generate_xla(tf.constant(prompts))["scores"],
                               graph.generate_batch(tf.constant(prompts))["scores"], rtol=1e-3, atol=1e-3)
    if options.strategy == "greedy":
        assert "".join(xla.stream("But, soft! what light", max_new_tokens=12)) == graph.generate(prompts)[0][0][:12]


@pytest.mark.parametrize("prefill", [True, False], ids=["prefill", "step-by-step"])
def test_streaming_draws_exactly_what_the_graph_draws(overfit_run, prefill):
    """`tflm generate` streams through `Generator.stream`; the export runs `generate_batch`'s graph. For the
    same prompt and seed they must give the same text: samples (with temperature, top-k, top-p), and greedy
    decoding with n-gram blocking, whose buffer holds the prompt."""
    base = language_modeling.Generator.from_run_dir(overfit_run)
    cases = [DecodingOptions(strategy="sample", temperature=t, top_k=k, top_p=p, seed=seed, max_length=25,
                             max_length_a=0.0)
             for t, k, p, seed in [(1.5, 0, 1.0, 1), (1.5, 0, 1.0, 2), (2.0, 10, 1.0, 3), (1.2, 0, 0.9, 4)]]
    cases.append(DecodingOptions(strategy="greedy", no_repeat_ngram_size=2, max_length=25, max_length_a=0.0))
    texts = set()
    for options in cases:
        generator = language_modeling.Generator(base.model, base.tokenizer, options, prefill=prefill)
        for prompt in ("It is", ""):
            graph = generator.generate_batch(tf.constant([prompt]))["outputs"].numpy()[0, 0].decode()
            assert "".join(generator.stream(prompt)) == graph, (options, prompt)
            texts.add(graph)
    assert len(texts) >= 6  # the seeds and settings did draw different texts


def test_sampling_with_a_seed_is_reproducible(overfit_run):
    options = DecodingOptions(strategy="sample", temperature=1.5, max_length=30, max_length_a=0.0, n_best=3, seed=7)
    generator = language_modeling.Generator.from_run_dir(overfit_run, decoding=options)
    first, again = generator.generate(["It is"]), generator.generate(["It is"])
    assert first == again and len(set(first[0])) > 1
    other = language_modeling.Generator.from_run_dir(overfit_run, decoding=DecodingOptions(
        **{**vars(options), "seed": 8}))
    assert other.generate(["It is"]) != first


def test_the_exported_lm_gives_the_in_memory_outputs_and_refuses_requests_beyond_its_limits(overfit_run, tmp_path):
    import tensorflow as tf

    import tflm.export
    from tflm.export import ServingLimits, export_run
    from tflm.export.check import run_tf1_requests

    limits = ServingLimits(max_batch_size=4, max_beam_size=3, max_hypotheses=3, max_new_tokens=30,
                           max_input_tokens=20)
    # check=False: this test runs the TF1 loader itself and compares with the in-memory outputs (the parity check)
    path = export_run(overfit_run, "tiny-lm", str(tmp_path), limits=limits, check=False)
    prompts = ["But, soft!", "", "ROMEO:"]
    expected = language_modeling.Generator.from_run_dir(overfit_run).generate(prompts)
    good = {"prompt": prompts[:1], "beam_size": 2, "num_hypotheses": 2, "max_new_tokens": 10,
            "length_penalty": 0.6, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0, "truncate": False}
    refused = [  # (signature, inputs, what the error says): the character vocabulary has 30-odd entries
        ("generate", dict(good, beam_size=4), "beam_size = 4 is out of range: allowed 1 to 3"),
        ("generate", dict(good, max_new_tokens=31), "max_new_tokens = 31 is out of range: allowed 1 to 30"),
        ("generate", dict(good, num_hypotheses=3), "num_hypotheses = 3 exceeds beam_size = 2"),
        ("generate", dict(good, temperature=1.0, num_hypotheses=4), "num_hypotheses = 4 is out of range"),
        ("generate", dict(good, prompt=["x" * 21]), "prompt length in tokens = 21 is out of range: allowed 0 to 20"),
        ("serving_default", {"prompt": ["a"] * 5}, "the number of prompts in the request = 5 is out of range"),
        ("score", {"text": ["y" * 25]}, "text length in tokens = 25 is out of range: allowed 0 to 20"),
    ]
    result, error = run_tf1_requests(path, [{"signature": "serving_default", "inputs": {"prompt": prompts}},
                                            {"signature": "generate", "inputs": good}]
                                     + [{"signature": s, "inputs": i} for s, i, _ in refused], warmup=True,
                                     keep_going=True)
    assert error is None, error
    assert result["warmup_requests"] == 3  # serving_default twice, generate once
    assert result["results"][0]["outputs"] == expected
    assert np.asarray(result["results"][1]["outputs"]).shape == (1, 2)
    for (signature, _, message), answer in zip(refused, result["results"][2:]):
        assert message in answer.get("error", ""), (signature, message, answer)
    sampled = dict(good, temperature=1.0, num_hypotheses=3)  # sampling may ask more than beam_size
    del sampled["truncate"]  # (optional for load(...).run and tflm serve: false when left out)
    assert tflm.export.load(path).run("generate", **sampled)["outputs"].shape == (1, 3)
    sampled["num_return_sequences"] = sampled.pop("num_hypotheses")  # the earlier name is an alias
    assert tflm.export.load(path).run("generate", **sampled)["outputs"].shape == (1, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="beam_size = 4 is out of range"):
        tflm.export.load(path).run("generate", **refused[0][1])
    info = json.load(open(os.path.join(path, "assets.extra", "tflm.json")))
    assert "generate" in info["signatures"] and info["limits"] == limits.to_dict()


def test_generate_and_evaluate_commands(overfit_run):
    from click.testing import CliRunner

    from tflm.cli import main

    result = CliRunner().invoke(main, ["generate", "--run-dir", overfit_run, "--greedy", "--max-new-tokens", "12",
                                       "But, soft! what light"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("But, soft! what light through")
    result = CliRunner().invoke(main, ["generate", "--run-dir", overfit_run, "--sample", "--seed", "3", "--n-best",
                                       "2", "--max-new-tokens", "8", "It is"])
    assert result.exit_code == 0 and result.output.count("It is") == 2
    greedy = ["generate", "--run-dir", overfit_run, "--greedy", "--max-new-tokens", "12", "--no-stream", "It is",
              "ROMEO"]
    plain, xla = (CliRunner().invoke(main, greedy + extra) for extra in ([], ["--jit-compile"]))
    assert xla.exit_code == 0 and xla.output == plain.output and xla.output.startswith("It is")
    result = CliRunner().invoke(main, ["evaluate", "--run-dir", overfit_run, "--split", "valid"])
    scores = json.loads(result.output[result.output.index("{"):])
    assert {"loss", "perplexity", "word_perplexity", "bits_per_character"} <= set(scores)
    result = CliRunner().invoke(main, ["evaluate", "--run-dir", overfit_run, "--split", "valid", "--dynamic-lr",
                                       "0.01", "--cache-size", "100", "--cache-theta", "0.5", "--cache-mix", "0.2"])
    assert result.exit_code == 0, result.output
    adaptive = json.loads(result.output[result.output.index("{"):])
    assert adaptive["dynamic"] == {"learning_rate": 0.01, "decay": 0.0, "streams": 1}
    assert adaptive["cache"] == {"size": 100, "theta": 0.5, "mix": 0.2} and adaptive["loss"] != scores["loss"]
    assert os.path.exists(os.path.join(overfit_run, "eval", "valid.best.dynamic0.01.cache100t0.5m0.2.json"))
    result = CliRunner().invoke(main, ["evaluate", "--run-dir", overfit_run, "--dynamic-lr", "0"])
    assert result.exit_code != 0 and "--dynamic-lr" in result.output
    result = CliRunner().invoke(main, ["translate", "--run-dir", overfit_run, "hello"])
    assert result.exit_code != 0 and "tflm generate" in result.output


def test_averaging_a_language_model_run_from_a_relative_run_directory(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tflm.cli import main
    from tflm.training import checkpoint_paths, restore_model

    monkeypatch.chdir(tmp_path)
    _train_tiny_lm(tmp_path, "run", max_steps=9, checkpoint_every_steps=3)
    result = CliRunner().invoke(main, ["average", "--run-dir", "run", "--last", "2"])  # relative, as users type it
    assert result.exit_code == 0, result.output
    config, tokenizer = language_modeling.load_run_config("run"), language_modeling.load_vocabulary("run")
    weights = []
    last_two = checkpoint_paths("run/checkpoints")[-2:]  # every 3 steps and at the epoch's end
    for path in last_two + ["run/checkpoints/averaged"]:
        model = language_modeling.build_model(config, tokenizer)
        restore_model(model, path)
        weights.append([np.asarray(v) for v in model.weights])
    assert any(not np.allclose(a, b) for a, b in zip(weights[0], weights[1]))
    for a, b, averaged in zip(*weights):
        np.testing.assert_allclose(averaged, (a + b) / 2, rtol=1e-5, atol=1e-6)
    result = CliRunner().invoke(main, ["evaluate", "--run-dir", "run", "--split", "valid", "--checkpoint", "averaged"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["checkpoint"] == "averaged"


def _repeated_text(length=12, repeats=8, vocabulary=30, seed=5):
    """A random run of `length` tokens, `repeats` times: learnable only from the text itself."""
    return np.tile(np.random.default_rng(seed).integers(4, vocabulary, length), repeats).astype("int32")


@pytest.mark.parametrize("make", [gpt, txl], ids=["gpt", "txl"])
def test_dynamic_evaluation_learns_from_the_text_it_has_scored_and_restores_the_weights(make):
    keras.utils.set_random_seed(0)
    model = make()
    ids = _repeated_text(repeats=16)
    weights = [w.numpy() for w in model.weights]
    static = language_modeling.score_ids(model, ids, 8, batch_size=1)[0]
    dynamic = language_modeling.DynamicEvaluation(learning_rate=0.5)
    adapted = language_modeling.score_ids(model, ids, 8, dynamic=dynamic)[0]
    np.testing.assert_array_equal(adapted["targets"], static["targets"])
    # The first window or segment is scored before any step; later ones by a model that learned the run.
    np.testing.assert_allclose(adapted["nll"][:8], static["nll"][:8], rtol=1e-5)
    assert adapted["nll"][-24:].mean() < 0.7 * static["nll"][-24:].mean(), (adapted["nll"], static["nll"])
    for before, after in zip(weights, model.weights):  # the trained weights are back
        np.testing.assert_array_equal(before, after.numpy())
    again, _ = language_modeling.evaluate_ids(model, ids, 8, batch_size=1)
    assert again == pytest.approx(float(static["nll"].mean()), rel=1e-6)
    two = language_modeling.score_ids(model, ids, 8, dynamic=language_modeling.DynamicEvaluation(0.5, streams=2))
    assert len(two) == (2 if make is txl else 1)  # Transformer-XL: two streams; windows: two at a time
    with pytest.raises(ValueError, match="learning_rate"):
        language_modeling.DynamicEvaluation(learning_rate=0)


def _cache_reference(hidden, targets, p_model, size, theta, mix):
    """The neural cache formula, one position at a time."""
    nll = []
    for t in range(len(targets)):
        keys = range(max(0, t - size), t)
        if not keys:
            nll.append(-np.log(p_model[t]))
            continue
        weights = np.array([np.exp(theta * hidden[t] @ hidden[i]) for i in keys])
        p_cache = sum(w for w, i in zip(weights, keys) if targets[i] == targets[t]) / weights.sum()
        nll.append(-np.log((1 - mix) * p_model[t] + mix * p_cache))
    return np.array(nll)


def test_the_neural_cache_mixes_in_the_tokens_that_followed_similar_states():
    rng = np.random.default_rng(0)
    n = 600  # more than one block of 256 queries
    stream = {"hidden": rng.normal(size=(n, 8)).astype("float32"), "targets": rng.integers(0, 5, n).astype("int32"),
              "nll": rng.uniform(0.5, 3, n).astype("float32")}
    for size, theta, mix in [(50, 0.3, 0.2), (300, 1.0, 0.5), (5, 0.0, 1.0)]:
        np.testing.assert_allclose(
            language_modeling.cache_nll(stream, language_modeling.NeuralCache(size, theta, mix)),
            _cache_reference(stream["hidden"], stream["targets"], np.exp(-stream["nll"].astype(np.float64)),
                             size, theta, mix), rtol=1e-5)
    np.testing.assert_allclose(language_modeling.cache_nll(stream, language_modeling.NeuralCache(50, 0.3, 0.0)),
                               stream["nll"], rtol=1e-6)

    # On a repeated run, an untrained model's states repeat with their context: the cache finds the next token.
    keras.utils.set_random_seed(0)
    model = gpt()
    ids = _repeated_text()
    static, _ = language_modeling.evaluate_ids(model, ids, 8, stride=8)
    cached, count = language_modeling.evaluate_ids(model, ids, 8, stride=8,
                                                   cache=language_modeling.NeuralCache(size=40, theta=1.0, mix=0.5))
    assert count == len(ids) - 1 and cached < 0.7 * static, (cached, static)

    # With a cache, Transformer-XL reads the text as one stream (every position's cache is the text before it).
    model = txl()
    one_stream = language_modeling.evaluate_ids(model, ids, 8, batch_size=1)
    assert language_modeling.evaluate_ids(model, ids, 8, batch_size=4) != one_stream
    no_mix = language_modeling.evaluate_ids(model, ids, 8, batch_size=4,
                                            cache=language_modeling.NeuralCache(size=40, mix=0.0))
    assert no_mix[1] == one_stream[1] and no_mix[0] == pytest.approx(one_stream[0], rel=1e-6)
