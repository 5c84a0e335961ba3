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


def distribute_dataset(strategy, dataset):
    """`dataset`'s batches spread over the replicas of `strategy`, each global batch one batch of `dataset`.

    On one machine, tf.distribute splits each batch over the local replicas. Across workers its default
    (auto-sharding by data) would instead give each worker different whole batches, so that a step
    trained on as many batches as there are workers and a run took other steps than on one device.
    Here each worker takes its replicas' rows of every batch (rows `r::replicas` for global replica `r`),
    with auto-sharding off: a run takes the same steps, on the same global batches, under any strategy
    (tested against one device), and resumes the same way.
    """
    if worker_count(strategy) <= 1:
        return strategy.experimental_distribute_dataset(dataset)
    replicas = strategy.num_replicas_in_sync

    def per_worker(context):
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def rows(*batch):
            parts = [tf.data.Dataset.from_tensors(tf.nest.map_structure(lambda t: t[first + r::replicas], batch))
                     for r in range(local)]
            for part in parts[1:]:
                parts[0] = parts[0].concatenate(part)
            return parts[0]

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.flat_map(rows).with_options(options)

    return strategy.distribute_datasets_from_function(per_worker)


def is_chief(strategy):
    """Whether this process writes the run's files (always, but under a multi-worker strategy)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )


def worker_count(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return sum(len(jobs.get(job, [])) for job in ("chief", "worker")) or 1


def worker_dir(directory, chief):
    """`directory` on the chief; a scratch folder elsewhere. Under MultiWorkerMirroredStrategy every worker
    must save (the save is a collective), but only the chief's files are kept."""
    if chief:
        return directory
    import tempfile

    return tempfile.mkdtemp(prefix="tflm-worker-checkpoints-")
