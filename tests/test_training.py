import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tflm.data import Batching, num_batches, tokenize_pairs, translation_dataset
from tflm.models import LSTMAttentionSeq2Seq
from tflm.tasks.translation import DecodingConfig, Translator
from tflm.text import train_tokenizer
from tflm.training import Trainer, WarmupInverseSqrt, make_strategy, token_cross_entropy

from conftest import CPU_DEVICES


def tiny_model(vocabulary_size, **kwargs):
    params = dict(embedding_dim=16, hidden_dim=32, num_encoder_layers=1, num_decoder_layers=1, dropout=0.0)
    params.update(kwargs)
    model = LSTMAttentionSeq2Seq(vocabulary_size, vocabulary_size, **params)
    model.build()
    return model


@pytest.fixture(scope="module")
def small_pairs(sample_corpus, sample_tokenizer):
    return tokenize_pairs(sample_corpus.head(120), sample_tokenizer, sample_tokenizer, 24, 24)


def test_label_smoothing_loss_matches_its_definition():
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 5)), tf.float32)
    labels = tf.constant([[1, 2, 0], [3, 0, 0]])
    loss_sum, nll_sum, tokens = token_cross_entropy(labels, logits, label_smoothing=0.2)
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected_nll = -(log_probs[0, 0, 1] + log_probs[0, 1, 2] + log_probs[1, 0, 3])
    expected_smooth = -(log_probs[0, 0].mean() + log_probs[0, 1].mean() + log_probs[1, 0].mean())
    assert float(tokens) == 3
    np.testing.assert_allclose(float(nll_sum), expected_nll, rtol=1e-6)
    np.testing.assert_allclose(float(loss_sum), 0.8 * expected_nll + 0.2 * expected_smooth, rtol=1e-6)


def test_tiny_model_overfits_and_greedy_decoding_reproduces_the_targets(sample_corpus, tmp_path):
    # 32 pairs with distinct sources, and a vocabulary of their own
    seen, index = set(), []
    for i, source in enumerate(sample_corpus.source):
        if source not in seen and len(source) < 40:
            seen.add(source)
            index.append(i)
        if len(index) == 32:
            break
    sources = [sample_corpus.source[i] for i in index]
    targets = [sample_corpus.target[i] for i in index]
    tokenizer = train_tokenizer(sources + targets, "unigram", 200)
    corpus = sample_corpus.head(0)
    corpus.source, corpus.target, corpus.line_numbers = sources, targets, list(range(1, 33))
    pairs = tokenize_pairs(corpus, tokenizer, tokenizer)
    keras.utils.set_random_seed(1)
    model = tiny_model(tokenizer.vocabulary_size, embedding_dim=32, hidden_dim=64)
    trainer = Trainer(model, keras.optimizers.Adam(1e-2), str(tmp_path), clip_norm=1.0, save_every_epoch=False,
                      verbose=False)
    trainer.fit(lambda epoch: translation_dataset(pairs, Batching(batch_size=32), seed=0, epoch=epoch),
                max_steps=250)
    translator = Translator(model, tokenizer, tokenizer, DecodingConfig(max_length=40))
    assert translator.translate(sources) == targets


def make_trainer(run_dir, vocabulary_size, strategy=None, seed=7, optimizer=None, clip_norm=0.5):
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = tiny_model(vocabulary_size)
        optimizer = optimizer() if optimizer else keras.optimizers.Adam(WarmupInverseSqrt(1e-2, warmup_steps=4))
    return Trainer(model, optimizer, str(run_dir), strategy=strategy, clip_norm=clip_norm, label_smoothing=0.1,
                   save_every_epoch=False, verbose=False)


def test_resumed_run_continues_exactly_where_it_stopped(small_pairs, sample_tokenizer, tmp_path):
    batching = Batching(batch_size=24)
    data = lambda epoch: translation_dataset(small_pairs, batching, seed=0, epoch=epoch)  # noqa: E731
    size = sample_tokenizer.vocabulary_size
    per_epoch = num_batches(small_pairs, batching)
    stop, total = per_epoch + 2, 2 * per_epoch + 3  # stop inside the second epoch, end inside the third

    straight = make_trainer(tmp_path / "straight", size)
    straight.fit(data, max_steps=total)

    first = make_trainer(tmp_path / "resumed", size)
    result = first.fit(data, max_steps=stop)
    assert (result.step, result.epoch) == (stop, 1)
    resumed = make_trainer(tmp_path / "resumed", size, seed=123)  # other initial weights: all from the checkpoint
    resumed.restore()
    assert resumed.step == stop
    assert int(resumed.epoch.numpy()) == 1 and int(resumed.step_in_epoch.numpy()) == 2
    np.testing.assert_allclose(float(resumed.optimizer.learning_rate), float(WarmupInverseSqrt(1e-2, 4)(stop)))
    resumed.fit(data, max_steps=total)
    assert resumed.step == total
    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_mirrored_strategies_made_one_after_another_in_one_process_do_not_share_collective_keys():
    """Each MirroredStrategy numbers its all-reduces from the same keys unless given its own range; the second
    strategy's all-reduce of another shape then aborts."""
    def all_reduce(size):  # as in a training step: in a graph, from the replica context
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.fill([size], 1.0))

    for size in (3, 5, 7):
        strategy = make_strategy("mirrored", CPU_DEVICES)
        assert strategy.num_replicas_in_sync == 2
        step = tf.function(lambda: strategy.experimental_local_results(strategy.run(all_reduce, args=(size,))))
        for total in step():
            np.testing.assert_allclose(total.numpy(), np.full([size], 2.0))


@pytest.mark.parametrize("fused", [False, True])
def test_mirrored_strategy_matches_one_device(small_pairs, sample_tokenizer, tmp_path, fused):
    from tflm.training.optimizers import FusedAdam

    inputs, labels = next(iter(translation_dataset(small_pairs, Batching(batch_size=16), seed=0)))
    size = sample_tokenizer.vocabulary_size
    optimizer = (lambda: FusedAdam(WarmupInverseSqrt(1e-2, warmup_steps=4))) if fused else None
    single = make_trainer(tmp_path / "single", size, optimizer=optimizer)
    mirrored = make_trainer(tmp_path / "mirrored", size, tf.distribute.MirroredStrategy(CPU_DEVICES),
                            optimizer=optimizer)
    assert mirrored.strategy.num_replicas_in_sync == 2
    for variable, value in zip(mirrored.model.weights, single.model.weights):
        variable.assign(value)
    for _ in range(3):
        one, two = single.train_on_batch(inputs, labels), mirrored.train_on_batch(inputs, labels)
        assert one["tokens"] == two["tokens"]
        np.testing.assert_allclose(one["loss"], two["loss"], rtol=1e-5)
    for a, b in zip(single.model.weights, mirrored.model.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def _train_command(run_dir):
    return [sys.executable, "-m", "tflm.cli", "train", "--run-dir", run_dir, "--max-train-pairs", "600",
            "--batch-tokens", "400", "--vocab-size", "300", "--epochs", "2", "--quiet",
            "--set", 'model.params={"embedding_dim": 16, "hidden_dim": 16, "num_encoder_layers": 1, '
                     '"num_decoder_layers": 1}',
            "--set", "training.checkpoint_every_steps=3", "--set", "training.samples=0"]


def _model_weights(run_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")))
    names = [name for name in reader.get_variable_to_shape_map() if name.startswith("model/")]
    assert names
    return {name: reader.get_tensor(name) for name in names}


def test_mirrored_strategy_with_plain_sgd_takes_the_one_device_step(small_pairs, sample_tokenizer, tmp_path):
    """Adam normalizes the gradient's scale away and clipping caps it, so both are blind to a gradient summed
    over the replicas with a missing or extra 1/replicas; plain SGD without clipping is not: its step is the
    gradient times the learning rate."""
    inputs, labels = next(iter(translation_dataset(small_pairs, Batching(batch_size=16), seed=0)))
    size = sample_tokenizer.vocabulary_size
    sgd = lambda: keras.optimizers.SGD(0.5)  # noqa: E731
    single = make_trainer(tmp_path / "single", size, optimizer=sgd, clip_norm=None)
    mirrored = make_trainer(tmp_path / "mirrored", size, make_strategy("mirrored", CPU_DEVICES), optimizer=sgd,
                            clip_norm=None)  # make_strategy: collective keys of its own (another test made one)
    for variable, value in zip(mirrored.model.weights, single.model.weights):
        variable.assign(value)
    before = [np.asarray(w) for w in single.model.weights]
    for _ in range(2):
        one, two = single.train_on_batch(inputs, labels), mirrored.train_on_batch(inputs, labels)
        np.testing.assert_allclose(one["loss"], two["loss"], rtol=1e-5)
    moved = max(float(np.abs(np.asarray(w) - b).max()) for w, b in zip(single.model.weights, before))
    assert moved > 1e-3  # the step is large enough to show a factor of two
    for a, b in zip(single.model.weights, mirrored.model.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_float16_with_loss_scaling_takes_the_float32_step(small_pairs, sample_tokenizer, tmp_path):
    """float16 mixed precision: the loss is scaled up for the backward pass (so small gradients survive
    float16) and the gradients scaled back before the update. Forgetting either would move plain SGD by a
    factor of the scale (2**15) or leave it at zero."""
    inputs, labels = next(iter(translation_dataset(small_pairs, Batching(batch_size=16), seed=0)))
    size = sample_tokenizer.vocabulary_size

    def make(name, dtype, optimizer):
        keras.utils.set_random_seed(7)
        model = tiny_model(size, dtype=dtype)
        return Trainer(model, optimizer, str(tmp_path / name), clip_norm=1.0, label_smoothing=0.0,
                       save_every_epoch=False, verbose=False)

    full = make("float32", "float32", keras.optimizers.SGD(0.5))
    half = make("float16", "mixed_float16", keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5)))
    assert {w.dtype for w in half.model.weights} == {"float32"}
    for variable, value in zip(half.model.weights, full.model.weights):
        variable.assign(value)
    before = [np.asarray(w) for w in full.model.weights]
    one, two = full.train_on_batch(inputs, labels), half.train_on_batch(inputs, labels)
    assert float(half.optimizer.dynamic_scale) > 1.0  # the loss really was scaled
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-2)
    for a, b, start in zip(full.model.weights, half.model.weights, before):
        step_full, step_half = np.asarray(a) - start, np.asarray(b) - start
        assert np.abs(step_half - step_full).max() <= 0.05 * np.abs(step_full).max() + 1e-5, a.path


def test_adamw_decays_the_weights_and_adam_does_not():
    from tflm.tasks import TrainingConfig
    from tflm.training.optimizers import build_optimizer

    for weight_decay, expected in ((0.1, 1.0 - 1e-2 * 0.1), (0.0, 1.0)):
        optimizer = build_optimizer(TrainingConfig(learning_rate=1e-2, weight_decay=weight_decay))
        assert type(optimizer).__name__ == "FusedAdam" and optimizer.weight_decay == (weight_decay or None)
        variable = keras.Variable(np.full((3,), 2.0, "float32"))
        optimizer.build([variable])
        optimizer.apply([np.zeros((3,), "float32")], [variable])  # no gradient: only the decay moves it
        np.testing.assert_allclose(np.asarray(variable), 2.0 * expected, rtol=1e-6)


@pytest.mark.parametrize("weight_decay", [None, 0.01])
def test_fused_adam_takes_the_steps_of_keras_adam(weight_decay):
    """The fused update (dense gradients) and Keras' own (the embedding's sparse gradient) give Keras' Adam's
    weights and slots, with a schedule and weight decay, in a tf.function as the trainer runs it."""
    from tflm.training.optimizers import FusedAdam

    def train(optimizer_class):
        keras.utils.set_random_seed(0)
        embedding, dense = keras.layers.Embedding(50, 16), keras.layers.Dense(16)
        embedding.build((None,))
        dense.build((None, 16))
        variables = embedding.trainable_variables + dense.trainable_variables
        optimizer = optimizer_class(keras.optimizers.schedules.InverseTimeDecay(1e-2, 10, 0.5), beta_2=0.98,
                                    weight_decay=weight_decay)
        ids = tf.constant(np.random.default_rng(0).integers(0, 50, (8, 5)))

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(dense(embedding(ids)) ** 2)
            optimizer.apply(tape.gradient(loss, variables), variables)

        start = np.asarray(dense.kernel)
        for _ in range(4):
            step()
        assert np.abs(np.asarray(dense.kernel) - start).max() > 1e-3  # the weights did move
        moments = [v for v in optimizer.variables if v.path.endswith(("_momentum", "_velocity"))]
        return [np.asarray(v) for v in variables + moments]

    fused, reference = train(FusedAdam), train(keras.optimizers.Adam)
    assert len(fused) == 3 + 2 * 3  # weights, then the two moments of each
    for got, want in zip(fused, reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_cosine_schedule_warms_up_linearly_then_decays_to_its_floor():
    from tflm.training import WarmupCosine, make_schedule

    schedule = make_schedule("cosine", 1e-3, warmup_steps=10, total_steps=110)
    assert isinstance(schedule, WarmupCosine)
    rate = lambda step: float(schedule(step))  # noqa: E731  (steps count from 0: step s is the (s+1)-th)
    np.testing.assert_allclose([rate(0), rate(4), rate(9)], [1e-4, 5e-4, 1e-3], rtol=1e-5)  # linear warmup
    np.testing.assert_allclose(rate(59), 1e-3 * (0.1 + 0.9 * 0.5), rtol=1e-5)  # half way: the mean of peak, floor
    np.testing.assert_allclose([rate(109), rate(500)], [1e-4, 1e-4], rtol=1e-5)  # the floor, 10% of the peak
    rates = [rate(s) for s in range(9, 110)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # never rises after the warmup
    with pytest.raises(ValueError, match="total number of steps"):
        make_schedule("cosine", 1e-3, 10, None)


def test_killed_runs_resume_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """Real `tflm train` processes are killed (SIGKILL) at random moments of their training, several times;
    each time the same command resumes and ends with exactly the weights of an uninterrupted run."""
    import random

    env = dict(os.environ, TFLM_CACHE_DIR=str(tmp_path / "cache"))
    reference_dir = str(tmp_path / "uninterrupted")
    finished = subprocess.run(_train_command(reference_dir), env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    reference = _model_weights(reference_dir)
    train_seconds = json.load(open(os.path.join(reference_dir, "progress.json")))["train_seconds"]
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    for attempt in range(3):
        run_dir = str(tmp_path / f"killed-{attempt}")
        command = _train_command(run_dir)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = os.path.join(run_dir, "train.log")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (os.path.exists(log) and "Training with" in open(log).read()):
            time.sleep(0.05)
        delay = rng.uniform(0.0, 1.2 * train_seconds)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        progress = os.path.join(run_dir, "progress.json")
        killed_at = json.load(open(progress))["step"] if os.path.exists(progress) else 0
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        where = f"(seed {seed}, attempt {attempt}: killed {delay:.2f} s into training, after step {killed_at})"
        if killed_at:
            assert "Resuming from" in open(log).read(), where
        weights = _model_weights(run_dir)
        assert sorted(weights) == sorted(reference), where
        for name, value in reference.items():
            np.testing.assert_allclose(weights[name], value, rtol=1e-6, atol=1e-7, err_msg=f"{name} {where}")
        assert json.load(open(progress))["step"] == json.load(open(os.path.join(reference_dir, "progress.json")))[
            "step"], where


def test_multiworker_tflm_train_over_two_processes_matches_one_device_and_only_the_chief_writes(tmp_path):
    """`tflm train --strategy multiworker` as two local processes with TF_CONFIG: the same steps and final
    weights as `tflm train` on one device; config.json, vocab/, train.log, checkpoints and progress.json come
    from the chief alone (the other worker logs to a place of its own)."""
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    env = dict(os.environ, TFLM_CACHE_DIR=str(tmp_path / "cache"))
    extra = ["--max-steps", "6", "--set", "training.checkpoint_every_steps=3", "--set", "model.params.dropout=0.0"]
    reference_dir, run_dir = str(tmp_path / "one-device"), str(tmp_path / "multiworker")
    reference = subprocess.run(_train_command(reference_dir) + extra, env=env, capture_output=True, text=True,
                               timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]
    processes = []
    for index in range(2):
        worker_env = dict(env, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(_train_command(run_dir) + extra + ["--strategy", "multiworker"],
                                          env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=400) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["step"] for r in results] == [6, 6]
    expected, weights = _model_weights(reference_dir), _model_weights(run_dir)
    assert sorted(weights) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(weights[name], value, rtol=2e-4, atol=2e-6, err_msg=name)
    log = open(os.path.join(run_dir, "train.log")).read()
    assert "This process is worker 0 of 2 (the chief)" in log and "worker 1 of 2" not in log
    assert "not the chief, so it logs to" in outputs[1][1]
    worker_log = outputs[1][1].split("logs to ", 1)[1].split()[0]
    assert "Read the chief's vocabulary" in open(worker_log).read()
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "config.json", "logs", "progress.json", "train.log",
                                           "vocab"]
    assert sorted(os.listdir(os.path.join(run_dir, "vocab"))) == ["source.model", "target.model"]
    assert all(name in ("checkpoint", "best") or name.startswith(("ckpt-3.", "ckpt-6.")) for name in os.listdir(
        os.path.join(run_dir, "checkpoints")))  # the other worker's collective saves went to a scratch folder
    assert json.load(open(os.path.join(run_dir, "progress.json")))["step"] == 6


