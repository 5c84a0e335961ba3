import os

import numpy as np
import pytest
import tensorflow as tf

from tflm.models import TransformerSeq2Seq
from tflm.training import CheckpointError, average_checkpoints, checkpoint_paths, model_checkpoint, restore_model


def tiny():
    model = TransformerSeq2Seq(30, 30, hidden_dim=8, intermediate_dim=16, num_heads=2, num_encoder_layers=1,
                               num_decoder_layers=1)
    model.build()
    return model


def test_averaging_identical_checkpoints_is_the_identity(tmp_path):
    model = tiny()
    original = [np.asarray(v) for v in model.weights]
    path = model_checkpoint(model).write(str(tmp_path / "a"))
    other = tiny()
    average_checkpoints(other, [path, path, path])
    for value, variable in zip(original, other.weights):
        np.testing.assert_allclose(np.asarray(variable), value, rtol=1e-6)


def test_averaging_two_checkpoints_gives_their_mean(tmp_path):
    first, second = tiny(), tiny()
    paths = [model_checkpoint(first).write(str(tmp_path / "a")), model_checkpoint(second).write(str(tmp_path / "b"))]
    target = tiny()
    average_checkpoints(target, paths)
    for a, b, averaged in zip(first.weights, second.weights, target.weights):
        np.testing.assert_allclose(np.asarray(averaged), (np.asarray(a) + np.asarray(b)) / 2, rtol=1e-5, atol=1e-7)


def test_missing_or_mismatched_checkpoints_give_clear_errors(tmp_path):
    model = tiny()
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        restore_model(model, str(tmp_path / "nothing-here"))
    with pytest.raises(CheckpointError, match="no checkpoint in this directory"):
        restore_model(model, str(tmp_path))
    bigger = TransformerSeq2Seq(30, 30, hidden_dim=16, intermediate_dim=16, num_heads=2, num_encoder_layers=1,
                                num_decoder_layers=1)
    bigger.build()
    path = model_checkpoint(bigger).write(str(tmp_path / "big"))
    with pytest.raises(CheckpointError, match="different configuration"):
        restore_model(model, path)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    from tflm.training.checkpoints import restore_latest

    model = tiny()
    checkpoint = model_checkpoint(model)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
    good = [np.asarray(v) for v in model.weights]
    manager.save(checkpoint_number=1)
    for v in model.weights:
        v.assign(tf.zeros_like(v))
    newest = manager.save(checkpoint_number=2)
    for data_file in tmp_path.glob("ckpt-2.data-*"):
        data_file.write_bytes(b"garbage")
    restored = restore_latest(checkpoint, str(tmp_path))
    assert restored.endswith("ckpt-1") and newest.endswith("ckpt-2")
    for value, variable in zip(good, model.weights):
        np.testing.assert_array_equal(np.asarray(variable), value)


def test_checkpoint_paths_of_a_relative_directory_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manager = tf.train.CheckpointManager(model_checkpoint(tiny()), "run/checkpoints", max_to_keep=3)
    for step in (1, 2):
        manager.save(checkpoint_number=step)
    paths = checkpoint_paths("run/checkpoints")
    assert [os.path.basename(p) for p in paths] == ["ckpt-1", "ckpt-2"]
    assert all(os.path.exists(p + ".index") for p in paths)
