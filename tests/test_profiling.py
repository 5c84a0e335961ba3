"""`--profile START:STOP`: `tflm train` and `tflm evaluate` write a TensorFlow profiler trace that TensorBoard's
Profile tab reads, of exactly the steps asked for; a bad range is refused before anything runs."""

import glob
import json
import os

import pytest
from click.testing import CliRunner

from tflm.cli import main
from tflm.training.profiling import StepProfiler, parse_profile_range, profiling, tick


def _traces(logs):
    return glob.glob(os.path.join(logs, "plugins", "profile", "*", "*.xplane.pb"))


def test_profile_ranges_are_parsed_and_bad_ones_named():
    assert parse_profile_range("10:20") == (10, 20)
    for bad in ("10", "a:b", "5:5", "-1:3", "9:2"):
        with pytest.raises(ValueError, match="--profile"):
            parse_profile_range(bad)


def test_a_step_profiler_traces_only_its_range(tmp_path):
    profiler = StepProfiler(str(tmp_path), 2, 4)
    seen = []
    for step in range(6):
        profiler.before(step)
        seen.append(profiler.active)
        profiler.after(step + 1)
    assert seen == [False, False, True, True, False, False] and profiler.done
    assert len(_traces(str(tmp_path))) == 1
    with profiling(str(tmp_path / "none"), "7:9"):  # a loop shorter than the range: a warning, no trace
        for _ in range(3):
            tick(lambda: None)
    assert not _traces(str(tmp_path / "none"))


def test_tflm_train_and_evaluate_write_profiles(trained_run, tmp_path):
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(trained_run, run_dir)
    logs = os.path.join(run_dir, "logs")
    result = CliRunner().invoke(main, ["train", "--run-dir", run_dir, "--max-steps", "36", "--profile", "32:34",
                                       "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["step"] == 36
    assert len(_traces(logs)) == 1
    result = CliRunner().invoke(main, ["evaluate", "--run-dir", run_dir, "--split", "valid", "--max-pairs", "100",
                                       "--profile", "1:2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(_traces(logs)) == 2
    refused = CliRunner().invoke(main, ["train", "--run-dir", run_dir, "--max-steps", "40", "--profile", "9"])
    assert refused.exit_code == 2 and "START:STOP" in refused.output
