"""What every task's run shares: the model and training sections of its configuration, the run directory's
config.json (saved, reloaded, checked on resume), the optimizer, checkpoints by name."""

import dataclasses
import json
import logging
import os
from typing import Optional

import keras
import tensorflow as tf

from tflm import config as config_lib
from tflm.training.checkpoints import average_checkpoints, checkpoint_paths, model_checkpoint
from tflm.training.optimizers import FusedAdam, Muon
from tflm.training.schedules import make_schedule
from tflm.training.strategies import worker_role
from tflm.training.trainer import set_seed

logger = logging.getLogger("tflm")

CONFIG_FILE = "config.json"

# Fields that may change when a run is resumed: how long to train, how often to log, where the data is.
RESUMABLE_FIELDS = ("training.epochs", "training.max_steps", "training.time_budget", "training.log_every_steps",
                    "training.checkpoint_every_steps", "training.checkpoint_every_seconds",
                    "training.keep_checkpoints", "training.samples", "training.strategy", "training.devices",
                    "data.data_dir")


@dataclasses.dataclass
class ModelConfig:
    type: str = "lstm"
    preset: Optional[str] = None  # a named size (tflm.models.PRESETS), e.g. "small"
    params: dict = dataclasses.field(default_factory=dict)  # constructor arguments (override the preset)


@dataclasses.dataclass
class TrainingConfig:
    epochs: Optional[int] = 10
    max_steps: Optional[int] = None
    time_budget: Optional[str] = None  # e.g. "25m": stop after this much training time (across resumes)
    learning_rate: float = 1e-3
    schedule: str = "constant"  # "constant", "inverse_sqrt" or "cosine"
    warmup_steps: int = 0
    label_smoothing: float = 0.1
    clip_norm: Optional[float] = 1.0
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" (AdamW when weight_decay is set) or "muon" (Muon for 2-D weights, Adam else)
    seed: int = 0
    keep_checkpoints: int = 5
    checkpoint_every_steps: Optional[int] = None
    checkpoint_every_seconds: Optional[float] = 600.0
    log_every_steps: int = 50
    strategy: str = "default"  # "default", "mirrored", "multiworker" or "tpu"
    devices: Optional[list] = None  # for "mirrored", e.g. ["/gpu:0", "/gpu:1"]
    mixed_precision: Optional[str] = None  # "bfloat16" or "float16"
    jit_compile: bool = False  # XLA-compile the forward/backward pass (batches then get fixed shapes)
    samples: int = 4  # outputs written to the log and TensorBoard after each epoch
    # Gradient accumulation: one optimizer step per this many tokens (token-budget batches) or examples
    # (fixed-size batches), over as many batches as it takes (OpenNMT-tf's effective_batch_size); None: one.
    effective_batch_size: Optional[int] = None


def validate_common(config):
    """Checks the sections every task has (model type, training), before any data is read."""
    from tflm.models import get_model_class

    get_model_class(config.model.type)
    config_lib.parse_duration(config.training.time_budget)
    check_optimizer(config.training.optimizer)
    effective = config.training.effective_batch_size
    if effective is not None and effective < 1:
        raise config_lib.ConfigError(f"training.effective_batch_size={effective} must be a positive number of "
                                     "tokens or examples (or null: no accumulation).")
    return config


def task_name(run_dir):
    """The task of a run directory ("translation" for runs that predate the field)."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir}: not a tflm run directory (no {CONFIG_FILE}). Train one with `tflm train`.")
    with open(path) as f:
        return json.load(f).get("task", "translation")


def load_config(run_dir, config_class):
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir}: not a tflm run directory (no {CONFIG_FILE}). Train one with `tflm train`.")
    return config_lib.from_dict(config_class, config_lib.load_file(path), path).validate()


def reconcile_config(run_dir, config):
    """The configuration of a run: `config` for a new run directory; for an existing one, its saved
    configuration, updated with the fields of `config` that may change on resume (and its decoding
    settings). Any other difference is an error, since the checkpoints were made for the saved one."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return config
    saved = load_config(run_dir, type(config))
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


def start_run(config, run_dir):
    """Creates (or reopens) a run directory: checks and saves the configuration, seeds everything.

    In a multi-worker cluster (`TF_CONFIG`) only the chief writes the run directory's shared files
    (config.json here, vocab/ with `save_vocabulary`, train.log, checkpoints, progress.json, TensorBoard);
    the other workers check the configuration against what is there and read what the chief writes.
    """
    config.validate()
    if is_chief():
        os.makedirs(run_dir, exist_ok=True)
    config = reconcile_config(run_dir, config)
    if is_chief():
        config_lib.save_file(config, os.path.join(run_dir, CONFIG_FILE))
    set_seed(config.training.seed)
    return config


def is_chief():
    """Whether this process writes the run directory: the only process, or the chief of its cluster."""
    return worker_role()[2]


def wait_for_chief_vocabulary(run_dir, load, timeout=600.0):
    """For a worker that is not the chief: waits until `load()` finds the vocabulary the chief saves in
    `run_dir/vocab` and returns it, so that every worker tokenizes alike."""
    import time

    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        found = load()
        if found:
            logger.info("Read the chief's vocabulary from %s/vocab", run_dir)
            return found
        time.sleep(1.0)
    raise TimeoutError(f"{run_dir}/vocab: the chief wrote no vocabulary within {timeout:.0f} s. The workers of a "
                       "multi-worker run need the run directory on a shared filesystem (or train the vocabulary "
                       "first with `tflm vocab` and start from a run directory that has it).")


def save_vocabulary(tokenizers):
    """Saves `tokenizers` ({path: tokenizer}, in order), each file appearing whole (written under a
    temporary name, then renamed), so a worker waiting for them never reads half a file."""
    import shutil
    import tempfile

    for path, tokenizer in tokenizers.items():
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=".tmp-", dir=directory)
        try:
            tokenizer.save(os.path.join(scratch, os.path.basename(path)))
            os.replace(os.path.join(scratch, os.path.basename(path)), path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def model_dtype(mixed_precision):
    if mixed_precision in (None, "", "float32"):
        return None
    if mixed_precision not in ("bfloat16", "float16"):
        raise config_lib.ConfigError(
            f"training.mixed_precision={mixed_precision!r} must be bfloat16, float16 or null."
        )
    return f"mixed_{mixed_precision}"


def model_params(model_config, accepted, fixed=("self", "kwargs")):
    """The model's constructor arguments: its preset, then `params`; unknown names are an error."""
    from tflm.models import preset_params

    params = {**preset_params(model_config.type, model_config.preset), **model_config.params}
    unknown = [name for name in params if name not in accepted]
    if unknown:
        known = [n for n in accepted if n not in fixed]
        raise config_lib.ConfigError(
            f"model.params has unknown field(s) {', '.join(unknown)} for model type {model_config.type!r}; "
            f"known: {', '.join(known)}."
        )
    return params


OPTIMIZERS = ("adam", "muon")


def check_optimizer(name):
    """Checked when a configuration is validated, so that a typo fails before data preparation."""
    if name not in OPTIMIZERS:
        raise config_lib.ConfigError(f"training.optimizer={name!r} must be one of {', '.join(OPTIMIZERS)}.")


def build_optimizer(training_config, total_steps=None):
    """Adam (AdamW with `weight_decay`; both `FusedAdam`), or Muon: orthogonalized momentum for the 2-D weights of
    the Transformer blocks, Adam for embeddings, biases and norms (Keras' `Muon`, whose update is rescaled to
    Adam's size so that the two share one learning rate and schedule)."""
    schedule = make_schedule(training_config.schedule, training_config.learning_rate,
                             training_config.warmup_steps, total_steps)
    check_optimizer(training_config.optimizer)
    if training_config.optimizer == "muon":
        # Embedding tables (paths with "embedding"; GPT's output projection is tied to one) and the LSTM model's
        # untied output layer (".../logits/kernel") stay with Adam, as the Muon authors advise. Under bfloat16 mixed
        # precision the Newton–Schulz iterations run in bfloat16 too (float16's range is too small for them).
        newton_schulz_dtype = "bfloat16" if training_config.mixed_precision == "bfloat16" else "float32"
        optimizer = Muon(schedule, adam_beta_2=0.98, weight_decay=training_config.weight_decay or None,
                         exclude_layers=["/logits/"], newton_schulz_dtype=newton_schulz_dtype)
    else:  # Keras' Adam (AdamW: with decoupled weight decay), its dense updates fused
        optimizer = FusedAdam(schedule, weight_decay=training_config.weight_decay or None, beta_2=0.98)
    if training_config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def count_parameters(model):
    return int(sum(keras.ops.size(v) for v in model.trainable_weights))


def save_averaged_checkpoint(run_dir, model, count=5):
    """Averages the last `count` training checkpoints of a run into `model` and saves the result in
    `run_dir/checkpoints/averaged/` (replacing an earlier average); returns its path."""
    if count < 1:
        raise ValueError(f"Average at least one checkpoint (got {count}).")
    paths = checkpoint_paths(os.path.join(run_dir, "checkpoints"))
    if not paths:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no training checkpoints to average; was this run trained?")
    if len(paths) < count:
        logger.warning("%s has %d training checkpoints; averaging them all (asked for %d).", run_dir, len(paths),
                       count)
    paths = paths[-count:]
    average_checkpoints(model, paths)
    manager = tf.train.CheckpointManager(model_checkpoint(model), os.path.join(run_dir, "checkpoints", "averaged"),
                                         max_to_keep=1, checkpoint_name="averaged")
    step = int(os.path.basename(paths[-1]).split("-")[-1])
    return manager.save(checkpoint_number=step)


def resolve_run_checkpoint(run_dir, checkpoint):
    """A checkpoint path from `"best"`, `"last"`, `"averaged"` or a path."""
    if checkpoint == "averaged":
        return os.path.join(run_dir, "checkpoints", "averaged")
    if checkpoint in ("best", None):
        best = os.path.join(run_dir, "checkpoints", "best")
        if tf.train.latest_checkpoint(best):
            return best
        logger.info("%s has no best checkpoint yet; using the last one.", run_dir)
        return os.path.join(run_dir, "checkpoints")
    if checkpoint == "last":
        return os.path.join(run_dir, "checkpoints")
    return checkpoint
