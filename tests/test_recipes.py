"""The recipes run as scripts: quiet by default like the `tflm` command (TensorFlow's C++ log lines hidden),
with `--verbose` to show them."""

import os
import subprocess
import sys

import pytest

from tflm.log import _NATIVE_LOG_LINE

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run_recipe(tmp_path, *extra, **env):
    """The translation recipe on a dataset that does not exist: it imports TensorFlow, then fails at once."""
    environment = {key: value for key, value in os.environ.items() if key != "TFLM_VERBOSE"}
    environment.update(PYTHONPATH=ROOT, **env)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "recipes", "translation.py"), "--dataset",
                             "no-such-corpus", "--run-dir", str(tmp_path / "run"), *extra], cwd=str(tmp_path),
                            env=environment, capture_output=True, timeout=180)
    assert result.returncode != 0 and b"Unknown dataset 'no-such-corpus'" in result.stderr, result.stderr[-2000:]
    return [line for line in result.stderr.splitlines(keepends=True) if _NATIVE_LOG_LINE.match(line)]


def test_a_recipe_hides_tensorflow_s_cpp_log_lines_unless_verbose(tmp_path):
    shown = run_recipe(tmp_path, "--verbose")
    if not shown:
        pytest.skip("TensorFlow wrote no C++ log line on this machine: nothing to hide")
    assert run_recipe(tmp_path) == []  # the traceback still reaches stderr (checked in run_recipe)
    assert run_recipe(tmp_path, TFLM_VERBOSE="1")  # as the `tflm` command: the variable shows them too


def test_every_pipeline_file_of_the_recipes_is_a_valid_configuration(tmp_path, monkeypatch):
    """`tflm run recipes/configs/*.yaml`: each file's task, sections and pipeline steps validate (a pretrained
    encoder's folder is made up where the file starts from one)."""
    import glob

    from tflm.pipeline import load_pipeline

    configs = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "recipes", "configs",
                                            "*.yaml")))
    assert len(configs) >= 7
    (tmp_path / "runs" / "pipeline-pretraining").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for path in configs:
        loaded = load_pipeline(path, overrides=["data.data_dir=../shared/data"])
        assert loaded is not None, path
