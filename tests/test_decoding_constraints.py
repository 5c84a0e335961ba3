"""The decoding constraints `min_length` and `no_repeat_ngram_size` as Python ints and as scalar tensors (the
controls of an exported signature): greedy, beam and sampling obey them, a tensor control is real (0 lets the
repetition through), tensors decode as the ints do, and the export's range checks name input, value and range."""

import re

import numpy as np
import pytest
import tensorflow as tf

from tflm.decoding import DecodingOptions, SearchSettings, beam_search, greedy_search, sample, search
from tflm.decoding.search import search_by_controls
from tflm.export.exporter import _bounded
from tflm.export.limits import ServingLimits, decoding_checks
from tflm.tasks.predictor import CONTROL_DTYPES, WARMUP_CONTROLS, Signature, control_inputs, text_input
from tflm.text import BOS_ID, EOS_ID, PAD_ID

A, B, C, D, E = 4, 5, 6, 7, 8
VOCABULARY = 9
BATCH = 3
MAX_LENGTH = 12
STRATEGIES = {"greedy": (greedy_search, {}),
              "beam": (beam_search, dict(beam_size=4, num_hypotheses=4, length_penalty=0.6)),
              "sample": (sample, dict(num_hypotheses=4, seed=5))}
# The rows start at different places of the cycle.
START_IDS = tf.constant([BOS_ID, B, E], tf.int32)
STATE = {"static": {"dummy": tf.zeros([BATCH, 1])}}


def table(transitions, rest=0.02, eos=0.02):
    """Next-token probabilities by previous token: `transitions` {previous: {token: p}}, the rest spread."""
    probabilities = np.full((VOCABULARY, VOCABULARY), rest)
    probabilities[:, EOS_ID] = eos
    for previous, row in transitions.items():
        for token, p in row.items():
            probabilities[previous, token] = p
    return probabilities / probabilities.sum(axis=1, keepdims=True)


# "a b c a b c ...": every token strongly prefers the next of the cycle (then a second choice, so that a
# blocked hypothesis goes on), EOS is unlikely.
CYCLE = table({BOS_ID: {A: 0.7, D: 0.2}, A: {B: 0.7, D: 0.2}, B: {C: 0.7, E: 0.2}, C: {A: 0.7, D: 0.2},
               D: {A: 0.7, E: 0.2}, E: {B: 0.7, C: 0.2}}, rest=0.01, eos=0.001)
# EOS is by far the most likely token everywhere.
EAGER_TO_STOP = table({token: {EOS_ID: 0.9} for token in range(VOCABULARY)})


def step_fn_of(probabilities):
    log_table = tf.math.log(tf.constant(probabilities, tf.float32))

    def step_fn(token_ids, state, step):
        return tf.gather(log_table, token_ids), state

    return step_fn


def decode(strategy, probabilities=CYCLE, **constraints):
    function, settings = STRATEGIES[strategy]
    settings = SearchSettings(max_length=MAX_LENGTH, start_ids=START_IDS, **settings, **constraints)
    return function(step_fn_of(probabilities), STATE, BATCH, settings)


def words(hypothesis):
    """The generated tokens before EOS (PAD after the end dropped)."""
    hypothesis = list(hypothesis)
    if EOS_ID in hypothesis:
        hypothesis = hypothesis[: hypothesis.index(EOS_ID)]
    return [token for token in hypothesis if token != PAD_ID]


def repeated_ngrams(tokens, n):
    grams = [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) - len(set(grams))


def hypotheses(token_ids):
    token_ids = np.asarray(token_ids)
    return [token_ids[row, k] for row in range(token_ids.shape[0]) for k in range(token_ids.shape[1])]


def assert_no_repeated_trigram(token_ids):
    generated = [words(h) for h in hypotheses(token_ids)]
    assert sum(len(w) >= 6 for w in generated) >= BATCH  # long enough that a trigram could repeat
    for tokens in generated:
        assert repeated_ngrams(tokens, 3) == 0, tokens


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_python_int_no_repeat_ngram_size_blocks_the_cycle(strategy):
    unblocked = decode(strategy)
    assert repeated_ngrams(words(hypotheses(unblocked.token_ids)[0]), 3) > 0 or strategy == "sample"
    assert sum(repeated_ngrams(words(h), 3) for h in hypotheses(unblocked.token_ids)) > 0  # the test can fail
    assert_no_repeated_trigram(decode(strategy, no_repeat_ngram_size=3).token_ids)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_tensor_no_repeat_ngram_size_in_a_tf_function(strategy):
    @tf.function
    def run(n):
        return decode(strategy, no_repeat_ngram_size=n).token_ids

    assert_no_repeated_trigram(run(tf.constant(3)))
    # the control is real: 0 (and 1, also off) let the repetition through, as no constraint does
    off = run(tf.constant(0))
    np.testing.assert_array_equal(off, decode(strategy).token_ids)
    assert sum(repeated_ngrams(words(h), 3) for h in hypotheses(off)) > 0
    np.testing.assert_array_equal(run(tf.constant(1)), off)
    # a tensor n decodes as the Python int does
    np.testing.assert_array_equal(run(tf.constant(3)), decode(strategy, no_repeat_ngram_size=3).token_ids)
    np.testing.assert_array_equal(run(tf.constant(2)), decode(strategy, no_repeat_ngram_size=2).token_ids)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_tensor_min_length_forbids_eos_before_it(strategy):
    @tf.function
    def run(min_length):
        return decode(strategy, EAGER_TO_STOP, min_length=min_length).token_ids

    early = [list(h) for h in hypotheses(run(tf.constant(0)))]
    assert min(h.index(EOS_ID) for h in early if EOS_ID in h) < 4  # the control is real
    assert early[0].index(EOS_ID) == 0
    later = [list(h) for h in hypotheses(run(tf.constant(4)))]
    assert later[0].index(EOS_ID) == 4
    for hypothesis in later:
        if any(token != PAD_ID for token in hypothesis):  # beam search may return fewer finished ones
            assert EOS_ID in hypothesis and hypothesis.index(EOS_ID) >= 4, hypothesis
    np.testing.assert_array_equal(run(tf.constant(4)), decode(strategy, EAGER_TO_STOP, min_length=4).token_ids)


def test_search_overrides_and_search_by_controls_take_the_constraints_as_tensors():
    """A tf.function with every control a tensor input, as an exported signature has them, decodes what
    `search` with Python ints in `DecodingOptions` does, whichever strategy the controls choose."""
    step_fn = step_fn_of(CYCLE)

    @tf.function
    def with_controls(beam_size, num_hypotheses, length_penalty, temperature, top_k, top_p, seed, min_length,
                      no_repeat_ngram_size):
        options = DecodingOptions(max_length=MAX_LENGTH)

        def run(strategy, **overrides):
            result = search(step_fn, STATE, BATCH, options, start_ids=START_IDS, strategy=strategy, **overrides)
            return result.token_ids, result.scores

        return search_by_controls(run, beam_size, num_hypotheses, length_penalty, temperature, top_k, top_p, seed,
                                  min_length=min_length, no_repeat_ngram_size=no_repeat_ngram_size)

    cases = [("greedy", dict(beam_size=1, num_hypotheses=1, temperature=0.0)),
             ("beam", dict(beam_size=4, num_hypotheses=3, temperature=0.0)),
             ("sample", dict(beam_size=1, num_hypotheses=2, temperature=1.0))]
    for strategy, controls in cases:
        for min_length, n in ((5, 3), (0, 0), (7, 2)):
            values = dict(length_penalty=0.6, top_k=0, top_p=1.0, seed=5, **controls)
            token_ids, scores = with_controls(**{key: tf.constant(value) for key, value in values.items()},
                                              min_length=tf.constant(min_length), no_repeat_ngram_size=tf.constant(n))
            options = DecodingOptions(strategy=strategy, max_length=MAX_LENGTH, beam_size=values["beam_size"],
                                      num_hypotheses=values["num_hypotheses"], temperature=values["temperature"],
                                      seed=5, min_length=min_length, no_repeat_ngram_size=n)
            expected = search(step_fn, STATE, BATCH, options, start_ids=START_IDS)
            np.testing.assert_array_equal(token_ids, expected.token_ids, err_msg=f"{strategy} {min_length} {n}")
            np.testing.assert_allclose(scores, expected.scores, rtol=1e-5, atol=1e-5)
            if n == 3:
                assert_no_repeated_trigram(token_ids)
            for hypothesis in hypotheses(token_ids):
                hypothesis = list(hypothesis)
                if EOS_ID in hypothesis:
                    assert hypothesis.index(EOS_ID) >= min_length


def test_the_constraints_are_int32_controls_warmed_up_off():
    assert CONTROL_DTYPES["min_length"] == tf.int32 and CONTROL_DTYPES["no_repeat_ngram_size"] == tf.int32
    assert WARMUP_CONTROLS["min_length"] == 0 and WARMUP_CONTROLS["no_repeat_ngram_size"] == 0
    specs = control_inputs("min_length", "no_repeat_ngram_size")
    assert all(spec.shape == [] and spec.dtype == tf.int32 for spec in specs.values())


GOOD = {"beam_size": 2, "num_hypotheses": 1, "max_length": 20, "length_penalty": 0.6, "temperature": 0.0,
        "top_k": 0, "top_p": 1.0, "seed": 0, "min_length": 3, "no_repeat_ngram_size": 3}
BAD = [
    ("min_length", -1, "min_length = -1 is out of range: allowed 0 to 512 (max_new_tokens, set at export)"),
    ("min_length", 513, "min_length = 513 is out of range: allowed 0 to 512"),
    ("min_length", 21, "min_length = 21 exceeds max_length = 20"),
    ("no_repeat_ngram_size", 1,
     "no_repeat_ngram_size = 1 is out of range: allowed 0 or 2 to 8 (0 turns n-gram blocking off)"),
    ("no_repeat_ngram_size", -2, "no_repeat_ngram_size = -2 is out of range: allowed 0 or 2 to 8"),
    ("no_repeat_ngram_size", 9, "no_repeat_ngram_size = 9 is out of range: allowed 0 or 2 to 8"),
]


def test_the_exported_signature_checks_the_constraints_it_takes():
    """A signature taking the constraints (as a summarizer's would) refuses out-of-range values in the
    graph, naming the input, its value and the allowed range; good values (0 and 0 too) pass."""
    names = list(GOOD)
    signature = Signature("summarize", lambda text, **controls: {"echo": tf.stack(
        [controls["min_length"], controls["no_repeat_ngram_size"]])},
        {**text_input("text"), **control_inputs(*names)}, rows="text", row_name="text", length="max_length",
        vocabulary_size=VOCABULARY)
    endpoint = tf.function(_bounded(signature, None, ServingLimits()),
                           input_signature=list(signature.inputs.values()))

    def call(**values):
        values = {**GOOD, **values}
        return endpoint(tf.constant(["x"]), *[tf.constant(values[name], CONTROL_DTYPES[name]) for name in names])

    np.testing.assert_array_equal(call()["echo"], [3, 3])
    np.testing.assert_array_equal(call(min_length=0, no_repeat_ngram_size=0)["echo"], [0, 0])
    np.testing.assert_array_equal(call(min_length=20, no_repeat_ngram_size=8)["echo"], [20, 8])
    for name, value, message in BAD:
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
            call(**{name: value})


def test_decoding_checks_without_the_constraints_are_unchanged():
    controls = {name: tf.constant(value, CONTROL_DTYPES[name]) for name, value in GOOD.items()
                if name not in ("min_length", "no_repeat_ngram_size")}
    with_constraints = {name: tf.constant(value, CONTROL_DTYPES[name]) for name, value in GOOD.items()}
    limits = ServingLimits()
    assert len(decoding_checks(with_constraints, limits, "num_hypotheses", "max_length", VOCABULARY)) == \
        len(decoding_checks(controls, limits, "num_hypotheses", "max_length", VOCABULARY)) + 3
