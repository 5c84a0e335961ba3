"""A run directory's `config.json`: read once, saved, checked on resume; the run's start (seeding, and in a
multi-worker cluster, who writes what).

`config.json` holds the task's configuration dataclass and, for a task that is not built in, `task_class`:
the import path (`package.module:ClassName`) that `tflm train --task` resolved, so that every later command on
the run (resume, evaluate, export, ...) finds the same task again (`tflm.tasks.registry`).
"""

import json
import logging
import os

from tflm import config as config_lib
from tflm.tasks.sections import (  # noqa: F401  (re-exported: the sections' earlier home)
    DataConfig, ModelConfig, TrainingConfig, model_dtype, model_params, validate_common,
)
from tflm.tasks.workers import is_chief
from tflm.training.optimizers import build_optimizer  # noqa: F401  (re-exported for scripts)
from tflm.training.seeds import set_seed

logger = logging.getLogger("tflm")

CONFIG_FILE = "config.json"
TASK_CLASS = "task_class"  # config.json's record of where a plug-in task's class is (module:Class)

# Fields that may change when a run is resumed: how long to train, how often to log, where the data is.
RESUMABLE_FIELDS = ("training.epochs", "training.max_steps", "training.time_budget", "training.log_every_steps",
                    "training.checkpoint_every_steps", "training.checkpoint_every_seconds",
                    "training.keep_checkpoints", "training.samples", "training.strategy", "training.devices",
                    "data.data_dir")


def config_path(run_dir):
    return os.path.join(run_dir, CONFIG_FILE)


def is_run(run_dir):
    return bool(run_dir) and os.path.exists(config_path(run_dir))


def read_run_file(run_dir):
    """The values of `run_dir/config.json` (a dict): the one read of it that a command makes."""
    path = config_path(run_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir}: not a tflm run directory (no {CONFIG_FILE}). Train one with `tflm train`.")
    return config_lib.load_file(path)


def task_name(run_dir, values=None):
    """The task of a run directory ("translation" for runs that predate the field)."""
    values = read_run_file(run_dir) if values is None else values
    return values.get("task", "translation")


def config_from_values(values, config_class, where):
    """The configuration dataclass of a run from config.json's values (without the task's record)."""
    import dataclasses

    fields = {field.name for field in dataclasses.fields(config_class)}
    values = {key: value for key, value in values.items()
              if key != TASK_CLASS and (key != "task" or "task" in fields)}
    return config_lib.from_dict(config_class, values, where).validate()


def load_config(run_dir, config_class, values=None):
    """The run's configuration; `values`: config.json's, when the caller has read them already."""
    values = read_run_file(run_dir) if values is None else values
    return config_from_values(values, config_class, config_path(run_dir))


def config_values(config, task_class=None):
    """What config.json holds for `config`: its fields, and `task_class` for a plug-in task."""
    values = config_lib.to_dict(config)
    if task_class:
        values[TASK_CLASS] = task_class
    return values


def save_config(config, path, task_class=None):
    """Writes `config` (and the plug-in task's `task_class`) as JSON at `path`, whole or not at all."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(config_values(config, task_class), f, indent=2)
        f.write("\n")
    os.replace(temporary, path)


def reconcile_config(run_dir, config, saved_values=None):
    """The configuration of a run: `config` for a new run directory; for an existing one, its saved
    configuration, updated with the fields of `config` that may change on resume (and its decoding
    settings). Any other difference is an error, since the checkpoints were made for the saved one."""
    if saved_values is None:
        if not is_run(run_dir):
            return config
        saved_values = read_run_file(run_dir)
    saved = load_config(run_dir, type(config), saved_values)
    saved_values, new_values = config_lib.to_dict(saved), config_lib.to_dict(config)
    changed = [name for name in config_lib.diff(saved_values, new_values) if not name.startswith("decoding.")]
    fixed = [name for name in changed if not name.startswith(RESUMABLE_FIELDS)]
    if fixed:
        details = "; ".join(f"{name}: saved {_lookup(saved_values, name)!r}, now {_lookup(new_values, name)!r}"
                            for name in fixed)
        raise config_lib.ConfigError(
            f"{run_dir} was trained with a different configuration ({details}). Resume with the same settings, "
            "or train in a new --run-dir."
        )
    merged = saved_values
    for name in changed:
        section, field = name.split(".", 1)
        merged[section][field.split(".")[0]] = new_values[section][field.split(".")[0]]
    if "decoding" in new_values:
        merged["decoding"] = new_values["decoding"]
    return config_lib.from_dict(type(config), merged)


def _lookup(values, dotted):
    for part in dotted.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def start_run(config, run_dir, task_class=None, saved_values=None):
    """Creates (or reopens) a run directory: checks and saves the configuration, seeds everything.

    `task_class` (a plug-in task's `module:Class`) is recorded in config.json; `saved_values`: config.json's
    values when the caller has read them already. In a multi-worker cluster (`TF_CONFIG`) only the chief writes
    the run directory's shared files (config.json here, vocab/ with `save_vocabulary`, train.log, checkpoints,
    progress.json, TensorBoard); the other workers check the configuration against what is there and read
    what the chief writes.
    """
    config.validate()
    check_data_dir(config)
    if is_chief():
        os.makedirs(run_dir, exist_ok=True)
    config = reconcile_config(run_dir, config, saved_values)
    if is_chief():
        save_config(config, config_path(run_dir), task_class)
    set_seed(config.training.seed)
    return config


def check_data_dir(config):
    """A `data.data_dir` that is no folder is an error naming it, before anything is read or written (a run
    must never fall back to other data, e.g. the shipped sample, because its folder was mistyped)."""
    data = getattr(config, "data", None)
    data_dir = data.get("data_dir") if isinstance(data, dict) else getattr(data, "data_dir", None)
    if data_dir and not os.path.isdir(data_dir):
        raise config_lib.ConfigError(f"data.data_dir={data_dir!r} (--data-dir or $TFLM_DATA_DIR): no such folder. "
                                     "Give the folder that holds the corpus (or its parent), or leave it out.")


def count_parameters(model):
    import keras

    return int(sum(keras.ops.size(v) for v in model.trainable_weights))
