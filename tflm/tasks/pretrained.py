"""Tasks whose model starts from a pretrained encoder: a tflm masked-LM run (BERT), a tflm language-model run (GPT),
or a keras-hub preset / Hugging Face folder (`--init-from RUN`, `--init-from-preset DIR`). Classification, tagging
and extractive QA share this.

A run that starts from another encoder keeps everything it needs in its own `vocab/` (the run never reads the
source again once its first checkpoint exists):

    vocab/tokenizer.*     the source's tokenizer
    vocab/encoder.json    {"kind": "bert" | "gpt" | "preset", "source", "checkpoint", "sizes" (bert, gpt)}
    vocab/preset/         a keras-hub / Hugging Face folder's architecture and tokenizer (no weights)

and its first training copies the source's weights into the encoder (`initialize_encoder`). Fine-tuning may scale
each layer's learning rate (`init.layer_decay`: the pooler and the task's head x1, the top layer x decay, each
layer below x decay more, the embeddings least) and keep the encoder still for the first `init.frozen_steps` steps, so that a new head
learns before its gradients reach the encoder.
"""

import dataclasses
import json
import logging
import os
import re
import shutil
from typing import Optional

from tflm import config as config_lib

logger = logging.getLogger("tflm")

ENCODER_FILE = "encoder.json"
PRESET_DIR = "preset"
# model.type values whose encoder reads token ids itself and may start from pretrained weights
PRETRAINED_TYPES = ("bert", "gpt")


@dataclasses.dataclass
class InitConfig:
    """Where a fine-tuned run starts, and how it fine-tunes.

    `from_run`: a masked-LM run of tflm (its BERT encoder and tokenizer) or a language-model run with a GPT
    (`--init-from RUN`, its `checkpoint`: best or last); `from_preset`: a keras-hub preset or Hugging Face
    folder of a BERT-family encoder (`--init-from-preset DIR`). `weights: false` takes only the tokenizer and sizes
    (random weights: the from-scratch baseline). `layer_decay` < 1 scales the learning rate of encoder layer l
    (of L; the embeddings are layer 0) by `layer_decay ** (L + 1 - l)`; `frozen_steps` keeps the encoder still
    for the first optimizer steps."""

    from_run: Optional[str] = None
    checkpoint: str = "best"
    from_preset: Optional[str] = None
    weights: bool = True
    layer_decay: float = 1.0
    frozen_steps: int = 0


def validate_init(config):
    """Checks `config.init` against `config.model` (a `ConfigError` naming the field and the fix)."""
    init = config.init
    if init.from_run and init.from_preset:
        raise config_lib.ConfigError("init.from_run and init.from_preset both set: a run starts from one encoder "
                                     "(--init-from RUN or --init-from-preset DIR).")
    for field, path in (("from_run", init.from_run), ("from_preset", init.from_preset)):
        if path and not os.path.isdir(path):
            raise config_lib.ConfigError(f"init.{field}={path!r}: no such folder.")
    if init.from_preset and config.model.type != "bert":
        raise config_lib.ConfigError(f"--init-from-preset starts a BERT-family encoder; model.type is "
                                     f"{config.model.type!r} (use --model bert).")
    if init.from_run and config.model.type not in PRETRAINED_TYPES:
        raise config_lib.ConfigError(f"--init-from starts a bert or gpt encoder; model.type is {config.model.type!r} "
                                     "(leave --model out: the source run says which).")
    if not 0.0 < init.layer_decay <= 1.0:
        raise config_lib.ConfigError(f"init.layer_decay={init.layer_decay} must be in (0, 1] (1: no decay; "
                                     "0.8 is usual for a 4-layer encoder).")
    if init.frozen_steps < 0:
        raise config_lib.ConfigError(f"init.frozen_steps={init.frozen_steps} must be 0 or more.")
    if (init.layer_decay != 1.0 or init.frozen_steps) and config.model.type not in PRETRAINED_TYPES:
        raise config_lib.ConfigError(f"init.layer_decay / init.frozen_steps are for a bert or gpt encoder; "
                                     f"model.type is {config.model.type!r}.")
    if (init.layer_decay != 1.0 or init.frozen_steps) and config.training.optimizer != "adam":
        raise config_lib.ConfigError(f"init.layer_decay / init.frozen_steps need training.optimizer=adam "
                                     f"(not {config.training.optimizer!r}).")


def source_model_type(run_dir):
    """The encoder type ("bert" or "gpt") that a run's model gives, or a `ConfigError` saying why it gives none."""
    from tflm.tasks import Run

    source = Run.open(run_dir)
    if source.task.name == "masked_lm":
        return "bert"
    if source.task.name == "language_modeling" and source.config.model.type == "gpt":
        return "gpt"
    kind = f"{source.task.name} run" + (f" of a {source.config.model.type} model"
                                         if source.task.name == "language_modeling" else "")
    raise config_lib.ConfigError(f"--init-from {run_dir}: a {kind}; fine-tuning starts from a masked_lm run (BERT), "
                                 "a language_modeling run of a gpt model, or --init-from-preset DIR.")


def prepare_initial_encoder(init, directory):
    """Copies what a run starting from another encoder needs into its vocabulary folder (see the module
    docstring); returns the encoder description (`encoder.json`)."""
    os.makedirs(directory, exist_ok=True)
    if init.from_preset:  # its tokenizer and architecture (the weights come at the first training)
        from tflm.models.hub import load_hub_encoder, save_hub_encoder

        backbone, tokenizer = load_hub_encoder(init.from_preset)
        tokenizer.save(os.path.join(directory, "tokenizer" + tokenizer.file_suffix))
        save_hub_encoder(backbone, tokenizer, os.path.join(directory, PRESET_DIR), weights=False)
        encoder = {"kind": "preset", "preset": PRESET_DIR, "source": os.path.abspath(init.from_preset)}
    else:
        from tflm.tasks import Run

        kind = source_model_type(init.from_run)
        source = Run.open(init.from_run)
        for name in os.listdir(os.path.join(init.from_run, "vocab")):
            if name.startswith("tokenizer."):
                shutil.copy(os.path.join(init.from_run, "vocab", name), os.path.join(directory, name))
        if kind == "bert":
            sizes = source.config.sizes()
        else:  # the GPT's constructor arguments
            sizes = {key: value for key, value in source.load_model(init.checkpoint).get_config().items()
                     if key in GPT_SIZES}
        encoder = {"kind": kind, "sizes": sizes, "source": os.path.abspath(init.from_run),
                   "checkpoint": init.checkpoint}
    with open(os.path.join(directory, ENCODER_FILE), "w") as f:
        json.dump(encoder, f, indent=1)
    return saved_encoder(directory)


GPT_SIZES = ("hidden_dim", "intermediate_dim", "num_heads", "num_layers", "dropout", "max_sequence_length",
             "position_embedding")


def saved_encoder(directory):
    """The encoder description of a run's vocabulary folder (`{}` for a run that started from nothing)."""
    path = os.path.join(directory, ENCODER_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        encoder = json.load(f)
    encoder.setdefault("kind", "preset" if encoder.get("preset") else "bert")  # (runs of before "kind")
    if encoder.get("preset"):
        encoder["run_preset"] = os.path.join(directory, encoder["preset"])
    return encoder


def encoder_setup(config, encoder, params=None):
    """`(model type, encoder constructor arguments, backbone or None)` of a run's encoder: the pretrained
    source's sizes, a folder's architecture, or the model's preset and `params` (default `model.params`)."""
    params = dict(config.model.params if params is None else params)
    if encoder.get("kind") == "preset":
        from tflm.models.hub import load_hub_encoder

        return "bert", params, load_hub_encoder(encoder["run_preset"], load_weights=False)[0]
    if encoder.get("sizes"):
        return encoder["kind"], {**params, **encoder["sizes"]}, None
    if config.model.type == "bert":
        from tflm.models.bert import BERT_PRESETS

        return "bert", {**BERT_PRESETS.get(config.model.preset or "small", {}), **params}, None
    if config.model.type == "gpt":
        from tflm.models import preset_params

        preset = preset_params("gpt", config.model.preset)  # ({} without a preset: GPTEncoder's own sizes)
        return "gpt", {**{k: v for k, v in preset.items() if k in GPT_SIZES}, **params}, None
    return config.model.type, params, None


def initialize_encoder(encoder_layer, encoder, init):
    """Copies the pretrained weights into a model's encoder layer (`BackboneEncoder` or `GPTEncoder`), unless
    `init.weights` is false. Called before a new run's first step (a resumed run restores its checkpoint)."""
    if not encoder or not init.weights:
        return
    if encoder["kind"] == "preset":
        from tflm.models.hub import load_hub_encoder

        source = load_hub_encoder(init.from_preset or encoder["source"])[0]
        weights = source.get_weights()
    else:
        from tflm.tasks import Run

        pretrained = Run.open(encoder["source"]).load_model(encoder.get("checkpoint", "best"))
        weights = (pretrained.backbone if encoder["kind"] == "bert" else pretrained).get_weights()
    encoder_layer.backbone.set_weights(weights)
    logger.info("The encoder starts from %s%s: %d weights", encoder["source"],
                f" ({encoder['checkpoint']} checkpoint)" if encoder.get("checkpoint") else "", len(weights))


_LAYER_INDEX = re.compile(r"(?:layer|block|encoder)_(\d+)(?:/|$)")


def learning_rate_multipliers(encoder_layer, init):
    """`[(variable, factor, frozen_steps)]` for the variables of a pretrained encoder (see `InitConfig`), or [] when
    fine-tuning is plain. A variable's layer is the number in its path (keras-hub's `transformer_layer_3`, tflm
    GPT's `block_3`); a variable without one is an embedding (layer 0), except the pooler and final norm (top)."""
    if init.layer_decay == 1.0 and not init.frozen_steps:
        return []
    variables = encoder_layer.backbone.trainable_variables
    layers = [_LAYER_INDEX.search(variable.path) for variable in variables]
    count = 1 + max((int(match.group(1)) for match in layers if match), default=-1)
    multipliers = []
    for variable, match in zip(variables, layers):
        if match:
            depth = int(match.group(1)) + 1
        else:
            depth = count + 1 if re.search(r"pool|final_norm", variable.path) else 0
        multipliers.append((variable, init.layer_decay ** (count + 1 - depth), init.frozen_steps))
    logger.info("Fine-tuning: layer-wise learning-rate decay %g (embeddings x%.3g), encoder frozen for %d steps",
                init.layer_decay, init.layer_decay ** (count + 1), init.frozen_steps)
    return multipliers


def pretrained_model_option(options):
    """Command-line options with `--model` implied: `--init-from RUN` gives the run's encoder type (bert or gpt),
    `--init-from-preset DIR` gives bert."""
    if options.get("model"):
        return options
    if options.get("init_from_preset"):
        return {**options, "model": "bert"}
    if options.get("init_from") and os.path.isdir(options["init_from"]):
        return {**options, "model": source_model_type(options["init_from"])}
    return options


class PretrainedEncoderTask:
    """What a task whose model may start from a pretrained encoder adds to `Task` (a mixin, before `Task` in the
    bases): the `--init-from` options, `--model` implied by them, the weights copied in before the first step,
    and the fine-tuning learning rates. The model has `encoder` and `reads_token_ids` (tflm's models of
    classification, tagging and extractive QA)."""

    init_option_fields = {"init_from": "init.from_run", "init_from_preset": "init.from_preset",
                          "init_checkpoint": "init.checkpoint"}

    def apply_options(self, config, options, overrides=()):
        """As `Task.apply_options`; `--init-from RUN` implies the run's model (`--model bert` or `gpt`),
        `--init-from-preset` implies `--model bert`."""
        return super().apply_options(config, pretrained_model_option(options), overrides)

    def training_data(self, config, data, model):
        """Copies the pretrained encoder's weights into the model (before a resumed run restores its own
        checkpoint); then the task's own `training_data`."""
        if getattr(model, "reads_token_ids", False):
            initialize_encoder(model.encoder, data.tokenizers.get("encoder") or {}, config.init)
        return super().training_data(config, data, model)

    def learning_rate_multipliers(self, config, model):
        if not getattr(model, "reads_token_ids", False):
            return []
        return learning_rate_multipliers(model.encoder, config.init)


def prepare_encoder_vocabulary(config, directory, texts):
    """The tokenizer of a run's vocabulary folder: a pretrained encoder's (`config.init`), or one trained on
    `texts()` (a function: the texts are read only when needed) with `config.vocabulary`'s type and size."""
    from tflm.tasks import workers
    from tflm.text.vocab import train_tokenizer

    os.makedirs(directory, exist_ok=True)
    if config.init.from_run or config.init.from_preset:
        encoder = prepare_initial_encoder(config.init, directory)
        logger.info("The encoder and its tokenizer come from %s", encoder["source"])
        return
    tokenizer = train_tokenizer(texts(), config.vocabulary.type, config.vocabulary.size, seed=config.training.seed)
    workers.save_vocabulary({os.path.join(directory, "tokenizer" + tokenizer.file_suffix): tokenizer})


def saved_tokenizer(directory):
    """The tokenizer saved in a run's vocabulary folder (`tokenizer.*`), or None."""
    from tflm.text import load_tokenizer

    if not os.path.isdir(directory):
        return None
    return next((load_tokenizer(os.path.join(directory, name)) for name in sorted(os.listdir(directory))
                 if name.startswith("tokenizer.")), None)
