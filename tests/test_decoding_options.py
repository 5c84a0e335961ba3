"""`DecodingOptions.num_hypotheses` and its old name `n_best`; `SearchSettings` as Python values and tensors."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from tflm import config as config_lib
from tflm.decoding import DecodingOptions, SearchSettings, beam_search, greedy_search, sample, search
from tflm.models import TransformerSeq2Seq


def test_n_best_is_an_alias_of_num_hypotheses():
    options = DecodingOptions(n_best=3)
    assert options.num_hypotheses == 3 and options.n_best == 3
    assert DecodingOptions().num_hypotheses == 1
    assert options == DecodingOptions(num_hypotheses=3)
    assert "n_best" not in repr(options)
    assert dataclasses.replace(options, n_best=2).num_hypotheses == 2
    assert dataclasses.replace(options, num_hypotheses=2).num_hypotheses == 2  # the old value does not win
    assert DecodingOptions(**{**vars(options), "n_best": 1}).num_hypotheses == 1  # as tools/bench does
    options.n_best = 4
    assert options.num_hypotheses == 4
    with pytest.raises(ValueError, match="decoding.num_hypotheses=5 must be between 1 and beam_size=4"):
        DecodingOptions(strategy="beam", num_hypotheses=5).validate()


def test_old_and_new_configs_load():
    saved = config_lib.to_dict(DecodingOptions(strategy="beam", num_hypotheses=2))
    assert saved["num_hypotheses"] == 2 and "n_best" not in saved  # a new config.json has the new name only
    assert config_lib.from_dict(DecodingOptions, json.loads(json.dumps(saved))).num_hypotheses == 2
    old = {key: value for key, value in saved.items() if key != "num_hypotheses"}
    old["n_best"] = 3  # an old config.json
    loaded = config_lib.from_dict(DecodingOptions, old, "decoding")
    assert loaded == DecodingOptions(strategy="beam", num_hypotheses=3)
    assert config_lib.from_dict(DecodingOptions, {"n_best": "2"}).num_hypotheses == 2  # as from the command line
    with pytest.raises(config_lib.ConfigError, match="unknown field"):
        config_lib.from_dict(DecodingOptions, {"num_best": 2})


@pytest.fixture(scope="module")
def transformer():
    model = TransformerSeq2Seq(40, 40, hidden_dim=16, intermediate_dim=32, num_heads=2, num_encoder_layers=1,
                               num_decoder_layers=2, dropout=0.0)
    model.build()
    source = tf.constant([[5, 9, 12, 7, 3, 0], [8, 21, 3, 0, 0, 0], [30, 31, 32, 33, 34, 3]])
    return model, source


CASES = [
    (greedy_search, dict(strategy="greedy", min_length=2), {}),
    (beam_search, dict(strategy="beam", beam_size=3, n_best=2, length_penalty=1.0, no_repeat_ngram_size=2),
     dict(beam_size=3, num_hypotheses=2, length_penalty=1.0, no_repeat_ngram_size=2)),
    (sample, dict(strategy="sample", n_best=3, temperature=1.3, top_k=5, top_p=0.9, seed=4),
     dict(num_hypotheses=3, temperature=1.3, top_k=5, top_p=0.9, seed=4)),
]


@pytest.mark.parametrize("function, options, settings", CASES, ids=["greedy", "beam", "sample"])
def test_search_and_settings_decode_the_same(transformer, function, options, settings):
    model, source = transformer
    encoded = model.encode(source)
    options = DecodingOptions(max_length=10, max_length_a=0.0, **options)
    through_search = search(model.decode_step, model.initial_state(encoded, 10), 3, options)
    settings = SearchSettings(max_length=10, min_length=options.min_length, **settings)
    direct = function(model.decode_step, model.initial_state(encoded, 10), 3, settings)
    np.testing.assert_array_equal(through_search.token_ids, direct.token_ids)
    np.testing.assert_array_equal(through_search.scores, direct.scores)


def test_settings_of_tensors_in_a_tf_function(transformer):
    model, source = transformer
    encoded = model.encode(source)

    @tf.function
    def decode(beam_size, num_hypotheses, length_penalty, temperature, top_k, top_p, seed, min_length):
        state = model.initial_state(encoded, 10)
        settings = SearchSettings(max_length=10, row_max_length=tf.constant([10, 6, 10]), min_length=min_length,
                                  beam_size=beam_size, num_hypotheses=num_hypotheses, length_penalty=length_penalty,
                                  temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        beam = beam_search(model.decode_step, state, 3, settings)
        sampled = sample(model.decode_step, state, 3, settings)
        return beam.token_ids, beam.scores, sampled.token_ids, sampled.scores

    tensors = decode(tf.constant(3), tf.constant(2), tf.constant(0.6), tf.constant(1.2), tf.constant(4),
                     tf.constant(0.95), tf.constant(7), tf.constant(1))
    assert tensors[0].shape == (3, 2, 10) and tensors[2].shape == (3, 2, 10)
    assert (tensors[0].numpy()[1, :, 6:] == 0).all()  # the per-row limit
    # the same with Python values, through search (which fills SearchSettings from DecodingOptions)
    state = model.initial_state(encoded, 10)
    for strategy, (ids, scores) in (("beam", tensors[:2]), ("sample", tensors[2:])):
        options = DecodingOptions(strategy=strategy, beam_size=3, num_hypotheses=2, length_penalty=0.6,
                                  temperature=1.2, top_k=4, top_p=0.95, seed=7, min_length=1, max_length=10)
        expected = search(model.decode_step, state, 3, options, row_max_length=tf.constant([10, 6, 10]))
        np.testing.assert_array_equal(ids, expected.token_ids)
        np.testing.assert_allclose(scores, expected.scores, rtol=1e-5, atol=1e-6)


def test_search_overrides_take_either_name(transformer):
    model, source = transformer
    state = model.initial_state(model.encode(source), 10)
    options = DecodingOptions(strategy="beam", beam_size=4, max_length=10, max_length_a=0.0)
    old = search(model.decode_step, state, 3, options, n_best=tf.constant(3))
    new = search(model.decode_step, state, 3, options, num_hypotheses=tf.constant(3))
    assert old.token_ids.shape == (3, 3, 10)
    np.testing.assert_array_equal(old.token_ids, new.token_ids)
