"""The task interface's contracts, on the toy task (tests/toy_task.py: a plain-dict data section): each command
reads config.json once and read commands never write it; options reach a task's configuration only where it
has the field; a configuration file's sections merge into the task's defaults."""

import builtins
import json
import os

import pytest
from click.testing import CliRunner

import toy_task  # noqa: F401  (registers "toy_questions")
from tflm.cli import main
from tflm.tasks import DataConfig, ModelConfig, TrainingConfig, get_task


def cli(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("toy") / "run"
    cli("train", "--task", "toy_questions", "--run-dir", run_dir, "--max-steps", 20, "--learning-rate", 0.02,
        "--quiet")
    return run_dir


class ConfigReads:
    """Counts the opens of `run_dir/config.json` (reads and writes) while it is active."""

    def __init__(self, monkeypatch, run_dir):
        self.reads, self.writes, real = [], [], builtins.open
        path = os.path.abspath(os.path.join(run_dir, "config.json"))

        def counting(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in (path, path + ".tmp"):
                (self.writes if any(flag in mode for flag in "wax+") else self.reads).append(str(file))
            return real(file, mode, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", counting)


@pytest.mark.parametrize("command", [
    ["evaluate", "--run-dir", "{run}", "--split", "valid", "--max-pairs", "50"],
    ["evaluate", "--run-dir", "{run}", "--split", "valid", "--max-pairs", "50", "--data-dir", "{run}"],
    ["predict", "--run-dir", "{run}", "Where is Tom?"],
    ["average", "--run-dir", "{run}", "--last", "2"],
    ["export", "{run}", "--name", "toy", "--base-dir", "{models}", "--no-check"],
])
def test_a_command_reads_config_json_once_and_never_writes_it(toy_run, tmp_path, monkeypatch, command):
    before = (toy_run / "config.json").read_text()
    reads = ConfigReads(monkeypatch, toy_run)
    arguments = [part.format(run=toy_run, models=tmp_path / "models") for part in command]
    if "--data-dir" in arguments:  # the toy task's data section has no data_dir: one clear error, nothing written
        result = cli(*arguments, code=1)
        assert "--data-dir does not apply to a toy_questions run" in result.output
    else:
        cli(*arguments)
    assert reads.reads == [str(toy_run / "config.json")] and reads.writes == []
    assert (toy_run / "config.json").read_text() == before


def test_the_exported_config_is_the_runs_without_reading_it_again(toy_run, tmp_path):
    path = cli("export", toy_run, "--name", "toy", "--base-dir", tmp_path, "--no-check").stdout.split()[-1]
    assert json.load(open(os.path.join(path, "assets", "config.json"))) == json.loads((toy_run / "config.json")
                                                                                        .read_text())


def test_options_reach_a_plain_dict_section_only_where_it_has_the_field(tmp_path):
    task = get_task("toy_questions")
    config = task.apply_options(task.default_config(), {"batch_size": 16, "data_dir": None})
    assert config.data == {"max_examples": 2000, "batch_size": 16}
    with pytest.raises(ValueError, match="--data-dir does not apply to a toy_questions run"):
        task.apply_options(task.default_config(), {"data_dir": "/some/where"})
    result = cli("train", "--task", "toy_questions", "--run-dir", tmp_path / "run", "--batch-tokens", 100, code=1)
    assert "--batch-tokens does not apply" in result.output and not (tmp_path / "run").exists()


def test_a_files_sections_merge_into_the_tasks_defaults():
    task = get_task("toy_questions")
    config = task.config_from_dict({"data": {"batch_size": 8}, "model": {"preset": "x"},
                                    "training": {"max_steps": 3}})
    assert config.data == {"max_examples": 2000, "batch_size": 8}  # the dict default kept its other key
    assert config.model.type == "bag_of_pieces" and config.model.preset == "x"  # the task's default type kept
    assert config.training.samples == 0 and config.training.max_steps == 3


def test_the_configuration_building_blocks_are_public():
    import dataclasses

    assert {f.name for f in dataclasses.fields(DataConfig)} >= {"dataset", "data_dir", "batch_size", "max_examples"}
    assert ModelConfig().params == {} and TrainingConfig().epochs == 10
    from tflm.tasks import runs

    assert runs.ModelConfig is ModelConfig  # (the earlier home still works for existing task modules)


def _console(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tflm", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_a_missing_data_dir_is_one_line_and_nothing_is_written(tmp_path):
    for extra in ([], ["--dataset", "tatoeba-es-en"]):  # the default (shipped sample) dataset, and a named one
        finished = _console("train", "--run-dir", tmp_path / "run", "--data-dir", tmp_path / "no-such-folder",
                            "--max-steps", 1, *extra)
        assert finished.returncode == 1 and "Traceback" not in finished.stderr, finished.stderr
        assert "no-such-folder" in finished.stderr and "no such folder" in finished.stderr
        assert not (tmp_path / "run").exists()  # nothing trained on other data, nothing written


def test_bad_yaml_and_a_misspelt_section_name_the_file_line_and_the_fields(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: translation\nrun_dir: runs/x\npipeline:\n  average: [1, 2\n  evaluate: [valid]\n")
    for command in (["run", bad], ["train", "--run-dir", tmp_path / "run", "--config", bad]):
        finished = _console(*command)
        assert finished.returncode == 1 and "Traceback" not in finished.stderr, finished.stderr
        assert f"{bad}:" in finished.stderr and "invalid YAML" in finished.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text("task: translation\nrun_dir: runs/x\npipelin:\n  average: 1\n")
    finished = _console("run", typo)
    assert finished.returncode == 1 and "pipelin" in finished.stderr
    assert "pipeline" in finished.stderr.split("takes")[1] and "run_dir" in finished.stderr.split("takes")[1]


def test_models_config_lists_savedmodel_models_only(tmp_path):
    from tflm.export.exporter import write_models_config

    (tmp_path / "en-es" / "1").mkdir(parents=True)
    (tmp_path / "en-es" / "1" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "en-es-ct2" / "1").mkdir(parents=True)
    (tmp_path / "en-es-ct2" / "1" / "model.bin").write_bytes(b"")  # a CTranslate2 version
    text = open(write_models_config(str(tmp_path))).read()
    assert 'name: "en-es"' in text and "en-es-ct2" not in text
