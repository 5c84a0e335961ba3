import numpy as np
import pytest
import tensorflow as tf

from tflm.decoding import (
    DecodingOptions,
    SearchSettings,
    beam_search,
    greedy_search,
    length_penalty,
    rescore,
    sample,
    search,
)
from tflm.models import TransformerSeq2Seq
from tflm.text import BOS_ID, EOS_ID, PAD_ID

A, B, C = 4, 5, 6
VOCABULARY = 7


def table_step_fn(table):
    """A step function whose next-token probabilities depend only on the previous token."""
    log_table = tf.math.log(tf.constant(table, tf.float32) + 1e-12)

    def step_fn(token_ids, state, step):
        return tf.gather(log_table, token_ids), state

    return step_fn


def probabilities(**rows):
    table = np.full((VOCABULARY, VOCABULARY), 1e-6)
    for previous, distribution in rows.items():
        index = {"bos": BOS_ID, "a": A, "b": B, "c": C, "pad": PAD_ID}[previous]
        for token, p in distribution.items():
            table[index, {"a": A, "b": B, "c": C, "eos": EOS_ID}[token]] = p
    return table / table.sum(axis=1, keepdims=True)


# Greedy picks A (0.6) and is then stuck with a flat continuation; B then EOS has probability 0.4 * 0.99.
TRAP = probabilities(bos={"a": 0.6, "b": 0.4}, a={"eos": 0.3, "a": 0.35, "c": 0.35},
                     b={"eos": 0.99, "c": 0.01}, c={"eos": 1.0}, pad={"eos": 1.0})
STATE = {"static": {"dummy": tf.zeros([2, 1])}}


def run(fn, table=TRAP, batch=2, **settings):
    return fn(table_step_fn(table), STATE, batch, SearchSettings(max_length=6, **settings))


def tokens_of(result):
    return result.token_ids.numpy().tolist()


def test_beam_finds_the_hypothesis_greedy_misses():
    greedy = run(greedy_search)
    beam = run(beam_search, beam_size=2, length_penalty=0.0)
    assert tokens_of(greedy)[0][0][:3] == [A, A, C] or tokens_of(greedy)[0][0][0] == A
    assert tokens_of(beam)[0][0][:2] == [B, EOS_ID]
    assert beam.scores.numpy()[0, 0] > greedy.scores.numpy()[0, 0]
    np.testing.assert_allclose(beam.scores.numpy()[0, 0], np.log(TRAP[BOS_ID, B] * TRAP[B, EOS_ID]), rtol=1e-5)


def test_beam_width_one_equals_greedy():
    greedy = run(greedy_search)
    beam = run(beam_search, beam_size=1, length_penalty=0.0)
    assert tokens_of(beam) == tokens_of(greedy)
    np.testing.assert_allclose(beam.scores.numpy(), greedy.scores.numpy(), rtol=1e-5)


def test_ended_hypotheses_are_final_and_unique():
    result = run(beam_search, beam_size=4, length_penalty=0.6, num_hypotheses=4)
    hypotheses = [tuple(h) for h in tokens_of(result)[0]]
    assert len(set(hypotheses)) == 4
    for hypothesis in hypotheses:
        if EOS_ID in hypothesis:
            after = hypothesis[hypothesis.index(EOS_ID) + 1:]
            assert set(after) <= {PAD_ID}
    assert sum(h[:2] == (B, EOS_ID) for h in hypotheses) == 1
    scores = result.scores.numpy()[0]
    assert (np.diff(scores) <= 1e-6).all()


def test_min_length_and_no_repeat_ngram():
    eager_to_stop = probabilities(bos={"eos": 0.9, "a": 0.1}, a={"eos": 0.9, "b": 0.1}, b={"eos": 0.9, "a": 0.1},
                                  c={"eos": 1.0}, pad={"eos": 1.0})
    for fn, kwargs in ((greedy_search, {}), (beam_search, dict(beam_size=3)), (sample, dict(seed=3))):
        result = run(fn, eager_to_stop, min_length=3, **kwargs)
        for hypothesis in tokens_of(result)[0]:
            assert hypothesis.index(EOS_ID) >= 3
    loop = probabilities(bos={"a": 1.0}, a={"b": 0.9, "c": 0.1}, b={"a": 0.9, "c": 0.1}, c={"a": 0.5, "eos": 0.5},
                         pad={"eos": 1.0})
    for fn, kwargs in ((greedy_search, {}), (beam_search, dict(beam_size=3, num_hypotheses=3)), (sample, dict(seed=1))):
        result = run(fn, loop, no_repeat_ngram_size=2, **kwargs)
        for hypothesis in tokens_of(result)[0]:
            words = [t for t in hypothesis if t not in (PAD_ID, EOS_ID)]
            bigrams = list(zip(words, words[1:]))
            assert len(bigrams) == len(set(bigrams)), hypothesis
        unblocked = run(fn, loop, **kwargs)
        words = [t for t in tokens_of(unblocked)[0][0] if t not in (PAD_ID, EOS_ID)]
        assert len(list(zip(words, words[1:]))) > len(set(zip(words, words[1:])))  # the test can fail


def test_sampling_is_reproducible_and_top_k_one_is_greedy():
    flat = probabilities(bos={"a": 0.3, "b": 0.3, "c": 0.4}, a={"a": 0.3, "b": 0.3, "eos": 0.4},
                         b={"a": 0.3, "c": 0.3, "eos": 0.4}, c={"b": 0.45, "eos": 0.55}, pad={"eos": 1.0})
    first = run(sample, flat, batch=2, seed=11, num_hypotheses=8)
    again = run(sample, flat, batch=2, seed=11, num_hypotheses=8)
    other = run(sample, flat, batch=2, seed=12, num_hypotheses=8)
    assert tokens_of(first) == tokens_of(again)
    assert tokens_of(first) != tokens_of(other)
    assert len({tuple(h) for h in tokens_of(first)[0]}) > 1
    np.testing.assert_array_equal(run(sample, flat, top_k=1, seed=5).token_ids, run(greedy_search, flat).token_ids)
    nucleus = run(sample, flat, top_p=0.35, seed=5, num_hypotheses=8)  # only the most likely token qualifies
    np.testing.assert_array_equal(nucleus.token_ids[:, :1], run(greedy_search, flat).token_ids)


@pytest.fixture(scope="module")
def transformer():
    model = TransformerSeq2Seq(40, 40, hidden_dim=16, intermediate_dim=32, num_heads=2, num_encoder_layers=1,
                               num_decoder_layers=2, dropout=0.0)
    model.build()
    source = tf.constant([[5, 9, 12, 7, 3, 0], [8, 21, 3, 0, 0, 0], [30, 31, 32, 33, 34, 3]])
    return model, source


def test_num_hypotheses_scores_equal_the_models_rescoring(transformer):
    model, source = transformer
    state = model.initial_state(model.encode(source), 12)
    result = beam_search(model.decode_step, state, 3, SearchSettings(max_length=12, beam_size=4, length_penalty=0.6,
                                                                  num_hypotheses=4))
    scores = result.scores.numpy()
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    for n in range(4):
        expected = rescore(model, source, result.token_ids[:, n], alpha=0.6)
        np.testing.assert_allclose(scores[:, n], expected.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("options", [DecodingOptions(strategy="greedy", max_length=10),
                                     DecodingOptions(strategy="beam", beam_size=3, num_hypotheses=2, max_length=10)])
def test_cached_and_uncached_decoding_agree(transformer, options):
    model, source = transformer
    encoded = model.encode(source)
    cached = search(model.decode_step, model.initial_state(encoded, 10), 3, options)
    step_fn, state = model.uncached_decoding(encoded, 10)
    uncached = search(step_fn, state, 3, options)
    np.testing.assert_array_equal(cached.token_ids, uncached.token_ids)
    np.testing.assert_allclose(cached.scores, uncached.scores, rtol=1e-4, atol=1e-5)


def test_xla_and_graph_decoding_agree(transformer):
    model, source = transformer

    def decode(source_ids):
        state = model.initial_state(model.encode(source_ids), 10)
        beam = beam_search(model.decode_step, state, 3, SearchSettings(max_length=10, beam_size=3, length_penalty=0.6,
                                                                       num_hypotheses=2))
        greedy = greedy_search(model.decode_step, state, 3, SearchSettings(max_length=10))
        return beam.token_ids, beam.scores, greedy.token_ids

    graph = tf.function(decode)(source)
    xla = tf.function(decode, jit_compile=True)(source)
    for a, b in zip(graph, xla):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_length_penalty():
    np.testing.assert_allclose(length_penalty(7, 0.6).numpy(), (12 / 6) ** 0.6)
    np.testing.assert_allclose(length_penalty(7, 0.0).numpy(), 1.0)


def _while_body_casts(concrete):
    """Cast ops inside the while loops of a traced function (the per-step work)."""
    graph_def = concrete.graph.as_graph_def()
    bodies = {node.attr["body"].func.name for node in graph_def.node if node.op in ("While", "StatelessWhile")}
    return sum(node.op == "Cast" for f in graph_def.library.function if f.signature.name in bodies
               for node in f.node_def)


def test_mixed_precision_decoding_casts_the_matrices_once_and_decodes_the_same(trained_run):
    """Under bfloat16 mixed precision, `Predictor.compute_weights` casts kernels and embeddings before the
    decoding loop instead of at every step: fewer casts per step, the same hypotheses and scores."""
    import dataclasses

    import keras

    from tflm.decoding import DecodingOptions
    from tflm.tasks import get_task
    from tflm.tasks.predictor import Predictor

    task = get_task("translation")
    config = task.load_config(trained_run)
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, mixed_precision="bfloat16"))
    sentences = tf.constant(["Where is the train station?", "I love you.", "Tom is reading a book today."])
    results, casts = {}, {}
    for hoisted in (True, False):
        original = Predictor.compute_weights
        if not hoisted:  # Keras' own reads: a cast at every step
            Predictor.compute_weights = lambda self: __import__("contextlib").nullcontext()
        try:
            translator = task.load_predictor(trained_run, "last", config=config,
                                             decoding=DecodingOptions(strategy="beam", beam_size=3))
            assert translator.model.dtype_policy.compute_dtype == "bfloat16"
            concrete = translator.translate_batch.get_concrete_function(sentences)
            results[hoisted] = {k: np.asarray(v) for k, v in translator.translate_batch(sentences).items()}
            casts[hoisted] = _while_body_casts(concrete)
        finally:
            Predictor.compute_weights = original
    assert casts[True] + 10 <= casts[False]  # every layer's kernels no longer cast per step
    assert list(results[True]["outputs"]) == list(results[False]["outputs"])
    np.testing.assert_allclose(results[True]["scores"], results[False]["scores"], rtol=1e-6)
    matrix = next(v for v in translator.model.weights if len(v.shape) == 2)
    with translator.compute_weights():  # inside the scope a kernel reads as bfloat16; outside, float32 again
        assert keras.backend.standardize_dtype(matrix.value.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(matrix.value.dtype) == "float32"
