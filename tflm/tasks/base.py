"""`Task`: the run driver, written once, and the hooks each task supplies.

A run directory is `config.json` (the task's configuration dataclass, with its task name and, for a plug-in
task, the import path of its class), `vocab/`, `checkpoints/`, `logs/`, `eval/` and `progress.json`. The driver
here starts or resumes a run, trains it under its distribution strategy, evaluates it (writing
`eval/<split>.<checkpoint><setting>.json`), averages its checkpoints and loads its predictor; `tflm.export`
exports whatever signatures that predictor declares. A task supplies only what differs, and may live in a
module of its own (`tflm train --task mymodule:Reverse`; see `tflm.tasks`):

    class Reverse(Task):
        name = "reverse"
        config_class = ReverseConfig              # a dataclass: task, data, model, training sections, ...

        def prepare_data(self, config, run_dir):  # -> TaskData: tokenizers, training and validation data
        def load_tokenizers(self, run_dir):       # -> what build_model and the predictor take
        def build_model(self, config, tokenizers):
        def make_predictor(self, config, model, tokenizers, decoding=None):
        def evaluate_split(self, run_dir, config, split, checkpoint, **options):  # -> Evaluation

and optionally `projector_tables` (the embedding tables TensorBoard's Projector shows), `loss` (default: token cross-entropy with the run's label smoothing; a loss says its unit and
whether perplexity means anything), `samples` (outputs logged after each epoch), `export_inputs` (the rows an
export is checked and warmed up with: texts, or dicts for a signature with several inputs), `option_fields`
(which `tflm train` option sets which field) and `decoding` (None: the task does not decode).
"""

import dataclasses
import json
import logging
import os
from typing import Callable, Optional

from tflm import config as config_lib
from tflm.tasks import runs, workers
from tflm.training.checkpoints import resolve_run_checkpoint, restore_model, save_averaged_checkpoint
from tflm.training import projector
from tflm.training.profiling import StepProfiler, parse_profile_range, profiling
from tflm.training.reporting import flat_hparams, write_metrics
from tflm.training.steps import accumulation_steps_for
from tflm.training.strategies import make_strategy
from tflm.training.trainer import Trainer

logger = logging.getLogger("tflm")


@dataclasses.dataclass
class TaskData:
    """What training needs from a task's data.

    Attributes:
        tokenizers: what `Task.build_model` takes (a tuple or dict of tokenizers).
        train_dataset: `epoch -> tf.data.Dataset` of `(inputs, labels)` batches (order fixed by the epoch).
        steps_per_epoch: batches per epoch (for the progress bar and schedules), or None.
        valid: a `tf.data.Dataset` of validation batches, or a callable `() -> (mean loss, count)`.
        on_epoch_start: optional `(trainer, epoch) -> None` (e.g. Transformer-XL resets its memory).
        summary: a line for the log, e.g. "12,000 training pairs".
        batch_units: the tokens (token-budget batching) or examples (fixed batch size) of one batch:
            `training.effective_batch_size` accumulates gradients over ceil(effective / batch_units) batches.
        extra: anything else the task's other hooks use (e.g. the validation corpus for samples).
    """

    tokenizers: object
    train_dataset: Callable
    steps_per_epoch: Optional[int] = None
    valid: object = None
    on_epoch_start: Optional[Callable] = None
    summary: str = ""
    batch_units: Optional[int] = None  # tokens or examples in one batch (for training.effective_batch_size)
    extra: dict = dataclasses.field(default_factory=dict)

    def __getattr__(self, name):  # the task's own parts, e.g. `data.tokenizer`, `data.valid_corpus`
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"TaskData has no {name!r} (its extra parts: {', '.join(extra) or 'none'})")


@dataclasses.dataclass
class Evaluation:
    """A task's scores on one split: `metrics` (JSON-able), `setting` (appended to the file name, e.g.
    ".beam4"), `outputs` (lines written next to the scores as `.hyp`, or None) and a one-line `summary`."""

    metrics: dict
    setting: str = ""
    outputs: Optional[list] = None
    summary: str = ""


class Task:
    """The run driver. Subclasses set `name` and `config_class` and implement the hooks (see the module)."""

    name = None
    config_class = None
    command = "predict"  # the CLI command that answers with this task's predictor
    evaluation_options = ()  # the task-specific keyword options `evaluate` accepts
    final_metrics = ()  # the scores `evaluate` adds to the run's row in TensorBoard's HParams table

    # ------------------------------------------------------------------ hooks (see the module docstring)

    def prepare_data(self, config, run_dir):
        raise NotImplementedError

    def load_tokenizers(self, run_dir):
        raise NotImplementedError

    def build_model(self, config, tokenizers):
        raise NotImplementedError

    def make_predictor(self, config, model, tokenizers, decoding=None):
        raise NotImplementedError

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None, **options):
        raise NotImplementedError

    def prepare_vocabulary(self, config, run_dir):
        """Makes (or finds) the run's vocabularies in `run_dir/vocab` (`tflm run`'s first stage); default: by
        preparing the data. Returns what it made, for the progress line."""
        self.prepare_data(config, run_dir)
        return os.path.join(run_dir, "vocab")

    def loss(self, config):
        """The training loss (a `tflm.training.losses` object); None: token cross-entropy with the run's
        `training.label_smoothing`."""
        return None

    def samples(self, config, model, data):
        """Optional `(trainer, epoch, valid_loss) -> None` called after each epoch (e.g. sample outputs)."""
        return None

    def export_inputs(self, config, count=16):
        """Inputs of `serving_default` the export is checked with (a few are its warm-up requests)."""
        return ["Hello.", "Where is the station?", ""]

    def decoding(self, config):
        """The run's decoding settings (None for a task that does not decode)."""
        return getattr(config, "decoding", None)

    def projector_tables(self, config, model, tokenizers):
        """`[(name, words, tables)]`: what TensorBoard's Embedding Projector shows after training (and `tflm
        projector`): a vocabulary's row labels and the model's 2-D weights with one row per word. Default: the
        token embeddings of each tokenizer (`tflm.training.projector.embedding_tables`); [] writes nothing."""
        return projector.embedding_tables(model, tokenizers)

    def class_path(self):
        """The import path of this task's class (`module:Class`) that a run records in config.json, so that
        every later command finds the task again; None for tflm's own tasks and for a class defined in a script
        run as `__main__` (which no later command could import)."""
        cls = type(self)
        if cls.__module__.startswith("tflm.") or cls.__module__ == "__main__":
            return None
        return f"{cls.__module__}:{cls.__qualname__}"

    # ------------------------------------------------------------------ configuration

    # Which `tflm train` option sets which configuration field. An option applies to a run only where the
    # task's section has that field (a dataclass field, or a key of a plain-dict section); a task may change
    # the mapping (e.g. `{**Task.option_fields, "batch_size": "data.sentences_per_batch"}`).
    option_fields = {
        "dataset": "data.dataset", "data_dir": "data.data_dir", "batch_size": "data.batch_size",
        "batch_tokens": "data.batch_tokens", "max_train_pairs": "data.max_train_pairs",
        "source_lang": "data.source_language", "target_lang": "data.target_language",
        "sequence_length": "data.sequence_length", "vocab_type": "vocabulary.type", "vocab_size": "vocabulary.size",
        "model": "model.type", "preset": "model.preset", "epochs": "training.epochs",
        "max_steps": "training.max_steps", "time_budget": "training.time_budget",
        "learning_rate": "training.learning_rate", "strategy": "training.strategy",
        "mixed_precision": "training.mixed_precision", "seed": "training.seed",
    }

    def default_config(self):
        return self.config_class()

    def load_config(self, run_dir, values=None):
        """The run's configuration (`values`: config.json's, when read already: a command reads it once)."""
        return runs.load_config(run_dir, self.config_class, values)

    def config_from_dict(self, values, where="config"):
        """A configuration from a file's or a pipeline's values, merged into the task's defaults: a section the
        file gives in part keeps the task's other defaults (also in a plain-dict section)."""
        values = {key: value for key, value in values.items() if key != runs.TASK_CLASS}
        merged = _merge(config_lib.to_dict(self.default_config()), values)
        return config_lib.from_dict(self.config_class, merged, where).validate()

    def apply_options(self, config, options, overrides=()):
        """`config` with command-line options ({option name: value}, None for not given; `option_fields` says
        which field each sets) and `section.field=value` overrides applied. An option whose field this task's
        configuration lacks is an error naming the option."""
        flags = []
        for name, value in options.items():
            if value is None:
                continue
            field = self.option_fields.get(name)
            if field is None or not _has_field(config, field):
                raise config_lib.ConfigError(f"--{name.replace('_', '-')} does not apply to a {self.name} run "
                                             f"(its configuration has no {field or name} field).")
            flags.append(f"{field}={json.dumps(value)}")
        return config_lib.apply_overrides(config, flags + list(overrides)).validate()

    def with_data_dir(self, config, data_dir):
        """`config` reading its corpus from `data_dir` (`tflm evaluate --data-dir`; only in memory)."""
        if not _has_field(config, "data.data_dir"):
            raise config_lib.ConfigError(f"--data-dir does not apply to a {self.name} run (its data section has no "
                                         "data_dir field).")
        data = config.data
        data = {**data, "data_dir": data_dir} if isinstance(data, dict) else dataclasses.replace(data, data_dir=data_dir)
        config = dataclasses.replace(config, data=data)
        runs.check_data_dir(config)
        return config

    # ------------------------------------------------------------------ the driver

    def train(self, config, run_dir, verbose=True, profile=None, saved_values=None):
        """Trains (or resumes) a run of this task in `run_dir`; returns the `TrainResult`. `profile`
        ("START:STOP") traces those optimizer steps with the TensorFlow profiler into `run_dir/logs`.
        `saved_values`: the run's config.json values when the caller read them already (resuming).

        Saves (or checks) the configuration, creates the distribution strategy (before any TensorFlow op:
        MultiWorkerMirroredStrategy configures collectives at program start), prepares the data (training
        the vocabularies on first use), builds the model and optimizer under the strategy, and trains with
        checkpoints, validation and samples after each epoch; then (the chief) writes the Embedding
        Projector's files for the run's `projector_tables` into `run_dir/logs` (a failure only warns).
        """
        config = runs.start_run(config, run_dir, self.class_path(), saved_values)
        strategy = make_strategy(config.training.strategy, config.training.devices)
        data = self.prepare_data(config, run_dir)
        trainer = self.build_trainer(config, run_dir, data, strategy=strategy, verbose=verbose)
        if profile:
            trainer.profiler = StepProfiler(os.path.join(run_dir, "logs"), *parse_profile_range(profile))
        tokenizers = data.tokenizers
        data = self.training_data(config, data, trainer.model)
        training = config.training
        result = trainer.fit(
            data.train_dataset, epochs=training.epochs, max_steps=training.max_steps,
            time_budget=config_lib.parse_duration(training.time_budget), valid_data=data.valid,
            steps_per_epoch=data.steps_per_epoch,
            on_epoch_end=self.samples(config, trainer.model, data) if training.samples else None,
            on_epoch_start=data.on_epoch_start,
        )
        if workers.is_chief():
            projector.write_after_training(self, run_dir, config, trainer.model, tokenizers)
        return result

    def build_trainer(self, config, run_dir, data, strategy=None, verbose=True):
        """The model, optimizer and `Trainer` of a run, created under its distribution strategy."""
        training = config.training
        strategy = strategy or make_strategy(training.strategy, training.devices)
        if training.effective_batch_size and not data.batch_units:
            raise config_lib.ConfigError("training.effective_batch_size needs the size of one batch, which this "
                                         f"task's data ({self.name}) does not give (TaskData.batch_units).")
        accumulation = accumulation_steps_for(training.effective_batch_size, data.batch_units or 1)
        epoch_steps = -(-(data.steps_per_epoch or 0) // accumulation)  # optimizer steps per epoch
        total_steps = training.max_steps or (training.epochs or 0) * epoch_steps or None
        with strategy.scope():
            model = self.build_model(config, data.tokenizers)
            optimizer = runs.build_optimizer(training, total_steps)
        self.prepare_model_for_training(config, model)
        logger.info("Model %s: %d parameters%s", config.model.type, runs.count_parameters(model),
                    f"; {data.summary}" if data.summary else "")
        loss = self.loss(config)
        if accumulation > 1:
            logger.info("Accumulating the gradients of %d batches per step (effective batch %d)", accumulation,
                        training.effective_batch_size)
        trainer = Trainer(
            model, optimizer, run_dir, strategy=strategy, loss=loss,
            label_smoothing=training.label_smoothing if loss is None else 0.0,
            clip_norm=training.clip_norm, keep_checkpoints=training.keep_checkpoints,
            checkpoint_every_steps=training.checkpoint_every_steps,
            checkpoint_every_seconds=training.checkpoint_every_seconds,
            log_every_steps=training.log_every_steps, jit_compile=training.jit_compile, verbose=verbose,
            accumulation_steps=accumulation, hparams=flat_hparams(config),
            final_metrics=[f"{split}/{name}" for split in ("valid", "test") for name in self.final_metrics],
        )
        multipliers = self.learning_rate_multipliers(config, model)
        if multipliers:  # (after the Trainer has built the optimizer on the model's variables)
            inner = getattr(optimizer, "inner_optimizer", optimizer)  # (under a float16 loss scale)
            if not hasattr(inner, "set_learning_rate_multipliers"):
                raise config_lib.ConfigError(f"Per-layer learning rates need training.optimizer=adam, not "
                                             f"{training.optimizer!r}.")
            inner.set_learning_rate_multipliers(multipliers)
        return trainer

    def learning_rate_multipliers(self, config, model):
        """`[(variable, factor, frozen_steps)]`: variables trained at `factor` times the learning rate, and still
        for the first `frozen_steps` steps (layer-wise decay and a frozen encoder when fine-tuning,
        `tflm.tasks.pretrained`); [] (the default) trains every variable at the schedule's rate."""
        return []

    def prepare_model_for_training(self, config, model):
        """Called once the model is built for training, before the `Trainer` (e.g. Transformer-XL carries
        its memory from batch to batch)."""

    def training_data(self, config, data, model):
        """The `TaskData` to train on once the model exists (default: `data`; a language model reads windows
        or, with memory, contiguous segments)."""
        return data

    def load_model(self, run_dir, checkpoint="best", config=None, tokenizers=None):
        """The run's model with the weights of `checkpoint` ("best", "last", "averaged" or a path)."""
        config = config or self.load_config(run_dir)
        model = self.build_model(config, tokenizers if tokenizers is not None else self.load_tokenizers(run_dir))
        restore_model(model, resolve_run_checkpoint(run_dir, checkpoint))
        return model

    def load_predictor(self, run_dir, checkpoint="best", decoding=None, config=None, tokenizers=None, **options):
        """The run's predictor (what `tflm predict`/`translate`/`generate` run and export saves)."""
        config = config or self.load_config(run_dir)
        tokenizers = tokenizers if tokenizers is not None else self.load_tokenizers(run_dir)
        model = self.load_model(run_dir, checkpoint, config, tokenizers)
        return self.make_predictor(config, model, tokenizers, decoding or self.decoding(config), **options)

    def average(self, run_dir, count=5, config=None, tokenizers=None):
        """Averages the last `count` training checkpoints into `checkpoints/averaged/`; returns its path."""
        config = config or self.load_config(run_dir)
        tokenizers = tokenizers if tokenizers is not None else self.load_tokenizers(run_dir)
        return save_averaged_checkpoint(run_dir, self.build_model(config, tokenizers), count)

    def evaluate(self, run_dir, split="test", checkpoint="best", max_examples=None, decoding=None, profile=None,
                 config=None, **options):
        """Scores the run on a split; writes `eval/<split>.<checkpoint><setting>.json` (and `.hyp` for
        outputs) and returns the scores. `options` are the task's own (`evaluation_options`). `profile`
        ("START:STOP") traces those batches of a predictor's loop (`tflm.training.profiling.tick`).
        `max_examples` evaluates the first N only, and the file's name says so (`.first100`)."""
        given = {name: value for name, value in options.items() if value is not None}
        unknown = sorted(set(given) - set(self.evaluation_options))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not an evaluation option of {self.name} runs "
                             f"({run_dir}); they take {', '.join(self.evaluation_options) or 'none'}.")
        config = config or self.load_config(run_dir)
        with profiling(os.path.join(run_dir, "logs"), profile):
            result = self.evaluate_split(run_dir, config, split, checkpoint, max_examples=max_examples,
                                         decoding=decoding, **given)
        directory = os.path.join(run_dir, "eval")
        os.makedirs(directory, exist_ok=True)
        setting = result.setting
        if max_examples and f".first{max_examples}" not in setting:
            setting += f".first{max_examples}"  # a partial evaluation never overwrites the whole split's scores
        name = f"{split}.{os.path.basename(str(checkpoint))}{setting}"
        if result.outputs is not None:
            with open(os.path.join(directory, name + ".hyp"), "w", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in result.outputs)
        with open(os.path.join(directory, name + ".json"), "w") as f:
            json.dump(result.metrics, f, indent=1)
        logger.info("%s %s: %s", run_dir, split, result.summary or json.dumps(result.metrics))
        self._log_scores(run_dir, split, result.metrics)
        return result.metrics

    def _log_scores(self, run_dir, split, metrics):
        """The `final_metrics` among the scores, as `split/name` scalars in the run's `logs/` (the HParams
        dashboard shows them in the run's row), at the step the run has reached."""
        scores = {f"{split}/{name}": metrics[name] for name in self.final_metrics
                  if isinstance(metrics.get(name), (int, float))}
        if not scores or not workers.is_chief():
            return
        import tensorflow as tf

        try:
            with open(os.path.join(run_dir, "progress.json")) as f:
                step = int(json.load(f)["step"])
        except (OSError, ValueError, KeyError):
            step = 0
        writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs"))
        write_metrics(writer, step, scores)
        writer.close()


def _merge(defaults, values):
    """`values` (nested dicts) laid over `defaults`: a mapping merges key by key, anything else replaces."""
    merged = dict(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_field(config, dotted):
    """Whether `config` has the field `section.field` (a dataclass field or a key of a plain-dict section)."""
    section_name, _, field = dotted.partition(".")
    section = getattr(config, section_name, None)
    if section is None:
        return False
    if isinstance(section, dict):
        return field in section
    return dataclasses.is_dataclass(section) and field in {f.name for f in dataclasses.fields(section)}
