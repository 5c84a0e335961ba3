"""`tflm run CONFIG.yaml`: from raw text files to a checked export, one stage after another.

A pipeline file is a task's configuration (the sections `tflm train --config` reads) with two more keys:

    task: translation
    run_dir: runs/example-translation      # where the run lives (or `tflm run --run-dir`)
    pipeline:
      average: 3                           # average the last N checkpoints (0: export the best one)
      evaluate: [valid, test]              # splits to score
      export: {name: example-en-es, base_dir: saved_models}
    data: {...}
    training: {...}

Stages: vocabulary -> train -> average -> evaluate -> export (-> serve, with `--serve`). Each is skipped
when its output is there and current: `run_dir/pipeline.json` records, per stage, a fingerprint of what it
was made from (the configuration, the checkpoint files it read, the decoding settings, the export limits);
a stage whose fingerprint is unchanged and whose output still exists is not redone. Training resumes by
itself and answers "already done" once it reached its epochs, steps or time budget. One progress line per
stage.
"""

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Optional

from tflm import config as config_lib
from tflm.tasks import DEFAULT_TASK, get_task, runs
from tflm.training.checkpoints import checkpoint_paths, resolve_run_checkpoint

logger = logging.getLogger("tflm")

STATE_FILE = "pipeline.json"
STAGES = ("vocabulary", "train", "average", "evaluate", "export")


@dataclasses.dataclass
class PipelineConfig:
    """The `pipeline` section of a pipeline file."""

    average: int = 0  # average the last N training checkpoints and use that (0: use the best checkpoint)
    evaluate: list = dataclasses.field(default_factory=lambda: ["test"])
    export: Optional[dict] = None  # {"name": ..., "base_dir": "saved_models", "max_batch_size": ..., ...}


@dataclasses.dataclass
class Pipeline:
    task: object
    config: object
    run_dir: str
    steps: PipelineConfig

    @property
    def checkpoint(self):
        return "averaged" if self.steps.average else "best"


def load_pipeline(path, run_dir=None, overrides=()):
    """Reads a pipeline file: the task's configuration, its `run_dir` and its `pipeline` section, with
    `section.field=value` overrides applied to the file's values (e.g. `pipeline.export.base_dir=/tmp/m`)."""
    values = config_lib.load_file(path)
    for override in overrides:
        key, separator, raw = override.partition("=")
        if not separator:
            raise config_lib.ConfigError(f"Override {override!r} must look like section.field=value.")
        *sections, field = key.strip().split(".")
        target = values
        for section in sections:
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                raise config_lib.ConfigError(f"Override {override!r}: {section!r} is not a section of {path}.")
        target[field] = config_lib.parse_value(raw)
    task = get_task(values.get("task", DEFAULT_TASK))
    run_dir = run_dir or values.pop("run_dir", None)
    values.pop("run_dir", None)
    if not run_dir:
        raise config_lib.ConfigError(f"{path}: give run_dir (where the run lives), or tflm run --run-dir DIR.")
    steps = config_lib.from_dict(PipelineConfig, values.pop("pipeline", {}) or {}, f"{path}: pipeline")
    if steps.export is not None and not steps.export.get("name"):
        raise config_lib.ConfigError(f"{path}: pipeline.export needs a name (the model's name under base_dir).")
    values["task"] = task.name  # (the file may name a plug-in task by its import path)
    import dataclasses

    known = [field.name for field in dataclasses.fields(task.config_class)]
    unknown = sorted(set(values) - set(known))
    if unknown:  # named here, where `pipeline` and `run_dir` are fields too
        raise config_lib.ConfigError(f"{path}: unknown top-level field(s) {', '.join(unknown)}; a pipeline file "
                                     f"takes {', '.join(known + ['run_dir', 'pipeline'])}.")
    config = task.config_from_dict(values, path)  # the file's sections merged into the task's defaults
    return Pipeline(task, config, run_dir, steps)


def run_pipeline(pipeline, report=print, serve=False, verbose=True, **serve_options):
    """Runs the stages that are not current; `report(line)` gets one progress line per stage (`verbose`: and
    training shows its progress bar on a console). Returns a dict of each stage's result (the training
    summary, the evaluation scores, the export's path)."""
    from tflm.export import ServingLimits, export_run

    task, run_dir = pipeline.task, pipeline.run_dir
    state = _read_state(run_dir)
    results = {}

    def stage(index, name, fingerprint, output_exists, action, describe):
        key = _fingerprint(fingerprint)
        previous = state.get(name)
        started = time.monotonic()
        if previous and previous.get("fingerprint") == key and output_exists(previous.get("output")):
            results[name] = previous.get("output")
            report(f"[{index}/{len(STAGES)}] {name}: current, skipped ({describe(previous.get('output'))})")
            return results[name]
        output = action()
        state[name] = {"fingerprint": key, "output": output}
        _write_state(run_dir, state)
        results[name] = output
        report(f"[{index}/{len(STAGES)}] {name}: {describe(output)} ({time.monotonic() - started:.0f}s)")
        return output

    config = runs.start_run(pipeline.config, run_dir, task.class_path())
    values = config_lib.to_dict(config)
    stage(1, "vocabulary", {"data": values.get("data"), "vocabulary": values.get("vocabulary")},
          lambda output: os.path.isdir(os.path.join(run_dir, "vocab")),
          lambda: task.prepare_vocabulary(config, run_dir) or os.path.join(run_dir, "vocab"),
          lambda output: f"{output}")

    started = time.monotonic()
    result = task.train(config, run_dir, verbose=verbose)
    trained = {"step": result.step, "epoch": result.epoch, "stopped_by": result.stopped_by,
               "best_valid_loss": round(result.best_valid_loss, 4)}
    results["train"] = trained
    report(f"[2/{len(STAGES)}] train: {'already done' if result.stopped_by == 'already_done' else 'trained'}, "
           f"step {result.step}, best valid loss {result.best_valid_loss:.4f} ({time.monotonic() - started:.0f}s)")

    checkpoints = checkpoint_paths(os.path.join(run_dir, "checkpoints"))
    if pipeline.steps.average:
        used = checkpoints[-pipeline.steps.average:]
        stage(3, "average", {"checkpoints": _files(used)}, lambda output: bool(output) and os.path.exists(
            output + ".index"), lambda: task.average(run_dir, pipeline.steps.average, config=config),
            lambda output: f"{len(used)} checkpoints into {output}")
    else:
        report(f"[3/{len(STAGES)}] average: off (pipeline.average is 0), using the best checkpoint")
    weights = _files(_checkpoint_files(run_dir, pipeline.checkpoint))
    decoding = task.decoding(config)
    scores = {}
    for split in pipeline.steps.evaluate:
        scores[split] = stage(
            4, f"evaluate {split}", {"weights": weights, "split": split,
                                     "decoding": dataclasses.asdict(decoding) if decoding else None},
            lambda output: output is not None,
            lambda split=split: task.evaluate(run_dir, split, pipeline.checkpoint, decoding=decoding, config=config),
            lambda output: _short(output))
    if pipeline.steps.export is None:
        report(f"[5/{len(STAGES)}] export: off (no pipeline.export)")
    else:
        options = dict(pipeline.steps.export)
        name, base_dir = options.pop("name"), options.pop("base_dir", "saved_models")
        limits = ServingLimits.from_dict(options)
        # the decoding settings too: the export's serving_default decodes with them (the run's config.json)
        stage(5, "export", {"weights": weights, "name": name, "base_dir": os.path.abspath(base_dir),
                            "limits": limits.to_dict(),
                            "decoding": dataclasses.asdict(decoding) if decoding else None},
              lambda output: bool(output) and os.path.exists(os.path.join(output, "saved_model.pb")),
              lambda: export_run(run_dir, name, base_dir, checkpoint=pipeline.checkpoint, limits=limits),
              lambda output: f"{output}, checked: servable by TF Serving 2.20")
        if serve:
            from tflm.serving import serve as run_server

            report(f"serving {base_dir} (Ctrl-C stops)")
            run_server(base_dir, **serve_options)
    return results


def _checkpoint_files(run_dir, checkpoint):
    import tensorflow as tf

    path = resolve_run_checkpoint(run_dir, checkpoint)
    latest = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
    return [latest] if latest else []


def _files(prefixes):
    """Each checkpoint's index file with its size and modification time: changes when it is rewritten."""
    found = []
    for prefix in prefixes:
        index = prefix + ".index"
        if os.path.exists(index):
            info = os.stat(index)
            found.append([os.path.abspath(index), info.st_size, info.st_mtime_ns])
    return found


def _fingerprint(values):
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _short(scores):
    if not isinstance(scores, dict):
        return str(scores)
    keys = [k for k in ("bleu", "chrf", "rougeL", "accuracy", "perplexity", "loss") if k in scores]
    return ", ".join(f"{k} {scores[k]}" for k in keys) or json.dumps(scores)[:120]


def _read_state(run_dir):
    try:
        with open(os.path.join(run_dir, STATE_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_state(run_dir, state):
    temporary = os.path.join(run_dir, STATE_FILE + ".tmp")
    with open(temporary, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(temporary, os.path.join(run_dir, STATE_FILE))
