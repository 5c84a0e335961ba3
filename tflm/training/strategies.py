"""Choosing a tf.distribute strategy by name."""

import itertools

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")

# Every MirroredStrategy numbers its all-reduce collectives from the same group and instance keys, so a second
# one on the same devices in one process (two trainings in a notebook, a test suite) reuses the first one's keys
# with other tensor shapes and TF aborts ("Shape mismatch in the collective instance ..."). TF's own tests give
# each strategy its own key range through the class attribute `_collective_key_base`; so do we.
_KEY_RANGE = 100_000
_mirrored_count = itertools.count(1)


def _mirrored_strategy(devices):
    cls = tf.distribute.MirroredStrategy
    base = cls._collective_key_base
    cls._collective_key_base = base + _KEY_RANGE * next(_mirrored_count)
    try:
        return cls(devices=devices or None)
    finally:
        cls._collective_key_base = base


def make_strategy(name="default", devices=None):
    """Returns the strategy called `name`.

    Args:
        name: `"default"` (one device), `"mirrored"` (all local GPUs, or `devices`), `"multiworker"`
            (workers from the `TF_CONFIG` environment variable) or `"tpu"`.
        devices: optional list of device names for `"mirrored"`, e.g. `["/cpu:0", "/cpu:1"]`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored_strategy(devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


def split_cpu(count):
    """Splits the CPU into `count` logical devices (for MirroredStrategy tests and runs on CPU).

    Must run before TensorFlow initializes its devices (before any op runs).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    return [f"/cpu:{i}" for i in range(count)]


def worker_role(tf_config=None):
    """`(index, count, is_chief)` of this process in the cluster that `TF_CONFIG` describes, as
    MultiWorkerMirroredStrategy reads it: the "chief" task, or worker 0 when there is no chief, is the
    chief. Without a cluster (no `TF_CONFIG`, or one task): `(0, 1, True)`."""
    import json
    import os

    config = json.loads(tf_config if tf_config is not None else os.environ.get("TF_CONFIG") or "{}")
    cluster, task = config.get("cluster") or {}, config.get("task") or {}
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if chiefs + workers <= 1 or not task:
        return 0, 1, True
    kind, number = task.get("type"), int(task.get("index", 0))
    index = number if kind == "chief" else chiefs + number if kind == "worker" else None
    if index is None:  # an evaluator or parameter server does not train
        return None, chiefs + workers, False
    return index, chiefs + workers, index == 0
