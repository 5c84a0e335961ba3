"""A new task (tests/toy_task.py, a small file on `tflm.tasks.Task`) trains, resumes, evaluates, exports,
passes `tflm check`, answers `tflm predict` and is served by `tflm serve`, all through the CLI, with no
edit to tflm/cli, tflm/export or tflm/training."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from click.testing import CliRunner

import toy_task  # noqa: F401  (registers the "toy_questions" task)
from tflm.cli import main


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_toy_task_trains_evaluates_exports_checks_and_serves_through_the_cli(tmp_path):
    run_dir, base = tmp_path / "run", tmp_path / "models"
    trained = json.loads(cli("train", "--task", "toy_questions", "--run-dir", run_dir, "--max-steps", 40,
                             "--learning-rate", 0.02, "--quiet").splitlines()[-1])
    assert trained["step"] == 40 and "examples_per_second" in trained  # the loss counts examples, not tokens
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == "toy_questions" and json.loads((run_dir / "progress.json").read_text())["step"] == 40
    resumed = json.loads(cli("train", "--run-dir", run_dir, "--max-steps", 45, "--quiet").splitlines()[-1])
    assert resumed["step"] == 45  # the run's task comes from its config.json

    scores = json.loads(cli("evaluate", "--run-dir", run_dir, "--split", "valid"))
    # "?" is easy to see: clearly better than the constant answer (87% of the sentences are statements)
    assert scores["accuracy"] > scores["majority_baseline"] + 5 and scores["examples"] == 500
    assert json.loads((run_dir / "eval" / "valid.best.json").read_text()) == scores
    from tensorboard.plugins.hparams import metadata
    from test_trainer_hparams import read_events

    contents, scalars = read_events(str(run_dir / "logs"))  # the run's row in TensorBoard's HParams table
    session = metadata.parse_session_start_info_plugin_data(contents[metadata.SESSION_START_INFO_TAG])
    assert session.hparams["training.learning_rate"].number_value == 0.02
    step, accuracy = scalars["valid/accuracy"][-1]
    assert step == 45 and abs(accuracy - scores["accuracy"]) < 1e-4
    answers = [json.loads(line) for line in cli("predict", "--run-dir", run_dir, "Where is Tom?", "Tom is here.")
               .splitlines()]
    assert [answer["label"] for answer in answers] == ["question", "statement"]

    path = cli("export", run_dir, "--name", "toy", "--base-dir", base, "--no-check").strip().splitlines()[-1]
    assert path.endswith(os.path.join("toy", "1"))
    info = json.loads(open(os.path.join(path, "assets.extra", "tflm.json")).read())
    assert info["task"] == "toy_questions" and info["signatures"] == ["serving_default"]
    assert "OK" in cli("check", path)  # ops, the TF1 session loader, warm-up, parity (once: export skipped it)

    ports = _free_port(), _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tflm.cli", "serve", str(base), "--rest-port", str(ports[0]),
                               "--grpc-port", str(ports[1])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        url = f"http://127.0.0.1:{ports[0]}/v1/models/toy:predict"
        request = urllib.request.Request(url, json.dumps({"instances": ["Is this a question?"]}).encode(),
                                         {"Content-Type": "application/json"})
        ends = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    prediction = json.loads(response.read())["predictions"][0]
                break
            except OSError:
                assert time.monotonic() < ends and server.poll() is None, server.communicate()[0]
                time.sleep(0.3)
        assert prediction["label"] == "question" and abs(sum(prediction["scores"]) - 1) < 1e-5
    finally:
        server.terminate()
        server.wait(30)


def test_tflm_run_takes_the_example_config_from_text_to_a_checked_export_and_skips_what_is_current(tmp_path):
    config = os.path.join(os.path.dirname(__file__), "..", "recipes", "configs", "translation.yaml")
    run_dir, base = tmp_path / "run", tmp_path / "models"
    tiny = ["--set", "model.preset=tiny", "--set", "vocabulary.size=300", "--set", "training.max_steps=12",
            "--set", "training.checkpoint_every_steps=4", "--set", "training.time_budget=null", "--set",
            "data.max_train_pairs=300", "--set", "decoding.max_length=8", "--set", f"pipeline.export.base_dir={base}",
            "--set", 'pipeline.evaluate=["valid"]']
    runner = CliRunner()
    first = runner.invoke(main, ["run", config, "--run-dir", str(run_dir), *tiny], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    results = json.loads(first.stdout)
    assert results["train"]["step"] == 12 and set(results["evaluate valid"]) >= {"bleu", "chrf"}
    assert os.path.exists(os.path.join(results["export"], "saved_model.pb"))
    info = json.loads(open(os.path.join(results["export"], "assets.extra", "tflm.json")).read())
    assert info["checkpoint"] == "averaged" and info["limits"]["max_batch_size"] == 64  # the file's pipeline section
    lines = first.stderr.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("[")] == [
        "[1/5] vocabulary", "[2/5] train", "[3/5] average", "[4/5] evaluate valid", "[5/5] export"]
    export_line = [line for line in lines if line.startswith("[5/5]")][0]
    assert "checked: servable by TF Serving 2.20" in export_line  # export_run's check: ops, TF1 loader, parity
    again = runner.invoke(main, ["run", config, "--run-dir", str(run_dir), *tiny], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert sum("current, skipped" in line for line in again.stderr.splitlines()) == 4  # all but train
    assert "already done" in again.stderr and json.loads(again.stdout)["export"] == results["export"]
    assert sorted(os.listdir(base / "pipeline-en-es")) == ["1"]  # no second version of the same weights


def test_effective_batch_size_accumulates_the_batches_of_a_step(tmp_path):
    """training.effective_batch_size=128 over batches of 64: each optimizer step takes two batches."""
    run_dir = tmp_path / "run"
    cli("train", "--task", "toy_questions", "--run-dir", run_dir, "--max-steps", 10, "--quiet",
        "--set", "training.effective_batch_size=128", "--set", "training.samples=0")
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["step"] == 10 and progress["step_in_epoch"] == 20  # 20 batches read for 10 steps
    assert "Accumulating the gradients of 2 batches per step" in (run_dir / "train.log").read_text()
