"""Issue 32, item 10: training printed Keras' "softmax over axis -1 of a tensor of shape (1, 2, 1, 1) ... will always
return the value 1". It came from the sample attention heatmap after an epoch: a hypothesis of one piece (EOS)
makes the decoder's self-attention one query over one key. Not a bug (a first position attends to itself with
weight 1), so the weights are written out for a single key, exactly, without the warning."""

import warnings

import numpy as np
from keras import ops

from tflm.layers.masking import masked_softmax


def test_a_single_key_gets_weight_one_where_allowed_without_a_warning():
    scores = np.random.default_rng(0).normal(size=(3, 2, 1, 1)).astype("float32")
    mask = np.array([True, False, True])[:, None, None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        weights = np.asarray(masked_softmax(scores, mask))
        unmasked = np.asarray(masked_softmax(scores, None))
    assert weights[:, :, 0, 0].tolist() == [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    assert (unmasked == 1.0).all()
    with warnings.catch_warnings(record=True) as caught:  # control: Keras' own softmax warns on this shape
        warnings.simplefilter("always")
        ops.softmax(ops.convert_to_tensor(scores), axis=-1)
    assert any("softmax over axis -1" in str(warning.message) for warning in caught)


def test_several_keys_are_unchanged():
    scores = np.random.default_rng(1).normal(size=(2, 2, 3, 4)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, False]])[:, None, None, :]
    weights = np.asarray(masked_softmax(scores, mask))
    expected = np.where(mask, np.exp(scores), 0.0)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected, atol=1e-6)
