"""TensorBoard HParams: a run's hyperparameters and final metrics in `run_dir/logs/`."""

import dataclasses
import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import metadata

from tflm.training import ClassCrossEntropy, Trainer, flat_hparams


def classifier():
    tokens = keras.Input((None,), dtype="int64")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 8)(tokens))
    return keras.Model(tokens, keras.layers.Dense(3)(pooled))


def data(batches):
    rng = np.random.default_rng(5)
    inputs, labels = rng.integers(1, 20, size=(batches * 4, 5)), np.tile([0, 1, 2, 1], batches)
    return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(4)


def read_events(directory):
    """`(plugin contents by tag, scalar values by tag)` of the event files directly in `directory`."""
    contents, scalars = {}, {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                    contents.setdefault(value.tag, value.metadata.plugin_data.content)
                elif value.HasField("tensor"):
                    scalars.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return contents, scalars


def test_hparams_and_final_metrics_are_written_for_the_hparams_dashboard(tmp_path):
    hparams = {"training.learning_rate": 0.1, "model.type": "tiny", "data.shuffle": False, "model.layers": 1}
    keras.utils.set_random_seed(0)
    trainer = Trainer(classifier(), keras.optimizers.SGD(0.1), str(tmp_path / "run-7"), loss=ClassCrossEntropy(),
                      hparams=hparams, final_metrics=("accuracy",), save_every_epoch=False, verbose=False)
    result = trainer.fit(lambda epoch: data(3), max_steps=4, valid_data=data(2))
    trainer.log_final_metrics({"accuracy": 0.75})
    contents, scalars = read_events(str(tmp_path / "run-7" / "logs"))

    experiment = metadata.parse_experiment_plugin_data(contents[metadata.EXPERIMENT_TAG])
    assert {info.name for info in experiment.hparam_infos} == set(hparams)
    declared = {(info.name.group, info.name.tag) for info in experiment.metric_infos}
    assert {("", "best_valid_loss"), ("", "last_valid_loss"), ("", "step"), ("", "accuracy"),
            ("valid", "loss"), ("train", "loss")} <= declared
    session = metadata.parse_session_start_info_plugin_data(contents[metadata.SESSION_START_INFO_TAG])
    assert session.hparams["training.learning_rate"].number_value == pytest.approx(0.1)
    assert session.hparams["model.type"].string_value == "tiny"
    assert session.hparams["data.shuffle"].HasField("bool_value") and not session.hparams["data.shuffle"].bool_value
    assert session.hparams["model.layers"].number_value == 1
    assert session.group_name  # from the trial id

    assert scalars["step"] == [(4, 4.0)]
    assert scalars["best_valid_loss"] == [(4, pytest.approx(result.best_valid_loss, rel=1e-6))]
    assert scalars["last_valid_loss"] == [(4, pytest.approx(result.last_valid_loss, rel=1e-6))]
    assert scalars["accuracy"] == [(4, 0.75)]
    # the metrics of group "valid" are the scalars of logs/valid
    assert "loss" in read_events(str(tmp_path / "run-7" / "logs" / "valid"))[1]


def test_without_hparams_nothing_is_written_into_logs_itself(tmp_path):
    trainer = Trainer(classifier(), keras.optimizers.SGD(0.1), str(tmp_path), loss=ClassCrossEntropy(),
                      save_every_epoch=False, verbose=False)
    trainer.fit(lambda epoch: data(2), max_steps=2)
    assert not glob.glob(str(tmp_path / "logs" / "events.out.tfevents.*"))
    assert sorted(os.listdir(tmp_path / "logs")) == ["train", "valid"]


def test_hparams_must_be_flat_and_simple(tmp_path):
    with pytest.raises(TypeError, match="flat_hparams"):
        Trainer(classifier(), keras.optimizers.SGD(0.1), str(tmp_path), loss=ClassCrossEntropy(),
                hparams={"model.sizes": [1, 2]})


def test_flat_hparams_of_a_nested_configuration():
    @dataclasses.dataclass
    class Training:
        learning_rate: float = 1e-3
        devices: list = dataclasses.field(default_factory=lambda: ["/cpu:0", "/cpu:1"])
        max_steps: int = None

    config = {"training": Training(), "model": {"type": "gpt", "params": {"layers": 2, "tied": True}, "extra": {}},
              "seed": np.int64(3), "ratio": np.float32(0.5), "sizes": (1, 2)}
    assert flat_hparams(config) == {
        "training.learning_rate": 1e-3, "training.devices": '["/cpu:0", "/cpu:1"]', "training.max_steps": "null",
        "model.type": "gpt", "model.params.layers": 2, "model.params.tied": True, "model.extra": "{}",
        "seed": 3, "ratio": 0.5, "sizes": "[1, 2]",
    }
    assert flat_hparams(Training()) == {"learning_rate": 1e-3, "devices": '["/cpu:0", "/cpu:1"]', "max_steps": "null"}
    with pytest.raises(TypeError):
        flat_hparams([1, 2])


def test_tensorboards_hparams_backend_lists_the_runs_with_their_metrics(tmp_path):
    """What the HParams dashboard shows (TensorBoard's own backend, reading a folder of two runs)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    for name, rate in (("a", 0.1), ("b", 0.3)):
        trainer = Trainer(classifier(), keras.optimizers.SGD(rate), str(tmp_path / name), loss=ClassCrossEntropy(),
                          hparams={"lr": rate}, final_metrics=("accuracy",), save_every_epoch=False, verbose=False)
        trainer.fit(lambda epoch: data(3), max_steps=3, valid_data=data(2))
        trainer.log_final_metrics({"accuracy": rate})
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    tensorboard = type("TBContext", (), {})()
    tensorboard.data_provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    tensorboard.multiplexer = multiplexer
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=10,
                                               allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_RUNNING])
    groups = list_session_groups.Handler(context.RequestContext(), backend_context.Context(tensorboard), "",
                                         request).run().session_groups
    assert sorted(g.name for g in groups) == ["a", "b"]
    for group in groups:
        rate = group.hparams["lr"].number_value
        metrics = {(m.name.group, m.name.tag): m.value for m in group.metric_values}
        assert metrics[("", "accuracy")] == pytest.approx(rate) and metrics[("", "step")] == 3
        assert metrics[("", "best_valid_loss")] == pytest.approx(metrics[("valid", "loss")])
        assert ("train", "loss") in metrics
