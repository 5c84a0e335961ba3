"""The configuration sections a task is made of: write a task's configuration as a dataclass of these.

    @dataclasses.dataclass
    class CaseTaggingData(DataConfig):          # the fields every task's data takes, and the task's own
        max_words: int = 64

    @dataclasses.dataclass
    class CaseTaggingConfig:
        task: str = "case_tagging"              # the task's name (its `Task.name`)
        data: CaseTaggingData = dataclasses.field(default_factory=CaseTaggingData)
        model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="bag_of_words"))
        training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

        def validate(self):
            validate_common(self)
            return self

`tflm train` sets `data.data_dir`, `data.dataset`, `data.batch_size`, ... from its options only where the
data section has that field (`Task.option_fields` says which option sets which field), and a YAML or JSON
file's sections merge into the task's defaults (`Task.config_from_dict`). A `data` section may also be a plain
dict; `DataConfig` is there so that the common fields have one name and one meaning across tasks.
"""

import dataclasses
from typing import Optional

from tflm import config as config_lib
from tflm.training.optimizers import OPTIMIZERS


@dataclasses.dataclass
class DataConfig:
    """What every task's data section may take; a task's own data section subclasses it.

    Attributes:
        dataset: a registered corpus (`tflm data list`), or None for the task's own files.
        data_dir: the folder holding the corpus (or its parent); `--data-dir`, `$TFLM_DATA_DIR`.
        batch_size: examples per batch.
        max_examples: use only the first N training examples (quick runs), or None for all.
    """

    dataset: Optional[str] = None
    data_dir: Optional[str] = None
    batch_size: Optional[int] = 32
    max_examples: Optional[int] = None


@dataclasses.dataclass
class ModelConfig:
    """The model: a type (`tflm.models.MODELS`, or any name the task's `build_model` knows), a size preset and
    constructor arguments (`--set model.params.NAME=VALUE`)."""

    type: str = "lstm"
    preset: Optional[str] = None  # a named size (tflm.models.PRESETS), e.g. "small"
    params: dict = dataclasses.field(default_factory=dict)  # constructor arguments (override the preset)


@dataclasses.dataclass
class TrainingConfig:
    """How a run trains: length, optimizer and schedule, checkpoints, strategy and precision (`tflm train`'s
    options and `--set training.NAME=VALUE`). Every task's trainer reads this section."""

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
    if config.training.optimizer not in OPTIMIZERS:
        raise config_lib.ConfigError(f"training.optimizer={config.training.optimizer!r} must be one of "
                                     f"{', '.join(OPTIMIZERS)}.")
    effective = config.training.effective_batch_size
    if effective is not None and effective < 1:
        raise config_lib.ConfigError(f"training.effective_batch_size={effective} must be a positive number of "
                                     "tokens or examples (or null: no accumulation).")
    return config


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
