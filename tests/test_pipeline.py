"""`tflm run`'s stages (`tflm.pipeline.run_pipeline`) redo what changed and only that: a stage's fingerprint
(configuration, checkpoint files, decoding settings, export limits) decides. Evaluation and export are recorded
by stand-ins (they are tested for themselves elsewhere); the vocabulary and training stages are the real ones,
on a copy of the shared trained run (training answers "already done")."""

import dataclasses
import os
import shutil

import pytest

import tflm.export
from tflm import pipeline as pipeline_lib
from tflm.tasks import get_task, runs


@pytest.fixture
def pipeline_run(trained_run, tmp_path, monkeypatch):
    run_dir = str(tmp_path / "run")
    shutil.copytree(trained_run, run_dir)
    task = get_task("translation")
    calls = []

    def evaluate(self, run_dir, split, checkpoint, decoding=None, **options):
        calls.append(("evaluate", split, decoding.max_length))
        return {"bleu": 1.0, "examples": 3}

    def export_run(run_dir, name, base_dir, checkpoint="best", limits=None, **kwargs):
        version = len(os.listdir(os.path.join(base_dir, name))) + 1 if os.path.isdir(os.path.join(base_dir, name)) \
            else 1
        path = os.path.join(base_dir, name, str(version))
        os.makedirs(path)
        open(os.path.join(path, "saved_model.pb"), "w").close()
        calls.append(("export", limits.max_batch_size))
        return path

    monkeypatch.setattr(type(task), "evaluate", evaluate)
    monkeypatch.setattr(tflm.export, "export_run", export_run)
    config = runs.load_config(run_dir, task.config_class)

    def run(decoding=None, export=None):
        lines = []
        steps = pipeline_lib.PipelineConfig(evaluate=["valid"], export=dict(
            {"name": "piped", "base_dir": str(tmp_path / "models"), "max_batch_size": 64}, **(export or {})))
        changed = dataclasses.replace(config, decoding=dataclasses.replace(config.decoding, **(decoding or {})))
        del calls[:]
        pipeline_lib.run_pipeline(pipeline_lib.Pipeline(task, changed, run_dir, steps), report=lines.append,
                                  verbose=False)
        return list(calls), [line for line in lines if "current, skipped" in line]

    return run


def test_a_changed_fingerprint_redoes_its_stage_and_only_it(pipeline_run):
    calls, _ = pipeline_run()
    assert calls == [("evaluate", "valid", 20), ("export", 64)]  # the first run does every stage
    calls, skipped = pipeline_run()
    assert calls == [] and len(skipped) == 3  # unchanged: vocabulary, evaluate valid and export are current
    calls, skipped = pipeline_run(export={"max_batch_size": 32})
    assert calls == [("export", 32)]  # other export limits: a new export, nothing evaluated again
    assert [line.split(":")[0] for line in skipped] == ["[1/5] vocabulary", "[4/5] evaluate valid"]
    calls, _ = pipeline_run(export={"max_batch_size": 32})
    assert calls == []
    # other decoding settings: scored again, and exported again (serving_default decodes with them)
    calls, skipped = pipeline_run(decoding={"max_length": 12}, export={"max_batch_size": 32})
    assert calls == [("evaluate", "valid", 12), ("export", 32)]
    assert [line.split(":")[0] for line in skipped] == ["[1/5] vocabulary"]
    assert pipeline_run(decoding={"max_length": 12}, export={"max_batch_size": 32})[0] == []
