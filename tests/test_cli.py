"""The command line, end to end on a tiny run trained once for the module."""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

from tflm.cli import main

from conftest import SAMPLE_DIR

TINY = ["--model", "transformer", "--preset", "tiny", "--learning-rate", "0.003", "--vocab-size", "300",
        "--max-train-pairs", "400",
        "--batch-tokens", "600", "--set", "training.samples=2", "--set", "data.max_target_length=40",
        "--set", "data.max_source_length=40", "--set", "decoding.max_length=24"]


def invoke(*args, input=None):
    result = CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cli") / "run")
    result = invoke("train", "--run-dir", path, "--max-steps", 40, "--quiet", *TINY)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["step"] == 40 and summary["stopped_by"] == "max_steps"
    return path


def test_a_run_directory_holds_everything(run_dir):
    assert json.load(open(os.path.join(run_dir, "config.json")))["model"]["type"] == "transformer"
    assert glob.glob(os.path.join(run_dir, "vocab", "source.model"))
    assert glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-40.index"))
    assert glob.glob(os.path.join(run_dir, "checkpoints", "best", "best-*.index"))
    assert "step 40" in open(os.path.join(run_dir, "train.log")).read()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = EventAccumulator(os.path.join(run_dir, "logs", "train"), size_guidance={"tensors": 0}).Reload()
    valid = EventAccumulator(os.path.join(run_dir, "logs", "valid"),
                             size_guidance={"tensors": 0, "images": 0}).Reload()
    assert {"loss", "perplexity", "learning_rate", "tokens_per_second"} <= set(train.Tags()["tensors"])
    assert {"loss", "perplexity", "sample_translations", "attention/0"} <= set(valid.Tags()["tensors"])


def test_resuming_with_another_model_is_refused(run_dir):
    result = CliRunner().invoke(main, ["train", "--run-dir", run_dir, "--set", "model.params.hidden_dim=32"])
    assert result.exit_code == 1
    assert "model.params" in result.output and "new --run-dir" in result.output
    result = invoke("train", "--run-dir", run_dir, "--max-steps", 40, "--quiet")
    assert json.loads(result.output.strip().splitlines()[-1])["stopped_by"] == "already_done"


def test_translate_arguments_file_and_stdin_line_for_line(run_dir, tmp_path):
    result = invoke("translate", "--run-dir", run_dir, "Good morning.", "", "I am here.")
    assert result.exit_code == 0 and result.output.count("\n") == 3 and result.output.split("\n")[1] == ""
    source = tmp_path / "in.txt"
    source.write_text("Good morning.\n\nI am here.\n")
    out = tmp_path / "out.txt"
    invoke("translate", "--run-dir", run_dir, "--input", str(source), "--output", str(out))
    assert out.read_text() == result.output
    piped = invoke("translate", "--run-dir", run_dir, input="Good morning.\n\nI am here.\n")
    assert piped.output == result.output
    # an empty line is not decoded at all: empty text, score 0; real lines get the model's (negative) score
    rows = [line.split("\t") for line in invoke("translate", "--run-dir", run_dir, "--n-best", 2, "Good morning.",
                                                 "").output.strip("\n").split("\n")]
    assert [r[0] for r in rows] == ["0", "0", "1", "1"]
    assert float(rows[0][1]) < 0 and rows[2][1:] == ["0.0000", ""] and rows[3][1:] == ["0.0000", ""]


def test_translate_n_best_and_sampling(run_dir):
    result = invoke("translate", "--run-dir", run_dir, "--beam-size", 3, "--n-best", 3, "Good morning.", "Hi.")
    rows = [line.split("\t") for line in result.output.strip().split("\n")]
    assert [r[0] for r in rows] == ["0", "0", "0", "1", "1", "1"]
    scores = [float(r[1]) for r in rows[:3]]
    assert scores == sorted(scores, reverse=True)
    first = invoke("translate", "--run-dir", run_dir, "--sample", "--seed", 4, "--n-best", 2, "Good morning.")
    again = invoke("translate", "--run-dir", run_dir, "--sample", "--seed", 4, "--n-best", 2, "Good morning.")
    assert first.output == again.output and len(first.output.strip().split("\n")) == 2


def test_evaluate_average_and_attention(run_dir, tmp_path):
    result = invoke("evaluate", "--run-dir", run_dir, "--max-pairs", 40, "--beam-size", 2)
    scores = json.loads(result.output[result.output.index("{"):])
    assert scores["sentences"] == 40 and scores["decoding"]["beam_size"] == 2
    hypotheses = open(os.path.join(run_dir, "eval", "test.best.beam2.first40.hyp")).read().splitlines()
    # the hypotheses are the library's beam-2 translations, and the score is sacreBLEU's of them
    from tflm.metrics import corpus_scores
    from tflm.tasks import translation

    config = translation.load_run_config(run_dir)
    test = translation.read_split(config.data, "test", max_pairs=40)
    decoding = dataclasses.replace(config.decoding, strategy="beam", beam_size=2)
    assert hypotheses == translation.Translator.from_run_dir(run_dir, decoding=decoding).translate(test.source)
    expected = corpus_scores(hypotheses, test.target)
    assert scores["bleu"] == pytest.approx(expected["bleu"], abs=1e-6) and scores["chrf"] == pytest.approx(
        expected["chrf"], abs=1e-6)
    averaged = invoke("average", "--run-dir", run_dir, "--last", 2)
    assert averaged.exit_code == 0 and "averaged" in averaged.output
    result = invoke("evaluate", "--run-dir", run_dir, "--max-pairs", 10, "--checkpoint", "averaged")
    assert result.exit_code == 0 and os.path.exists(os.path.join(run_dir, "eval", "test.averaged.greedy.first10.json"))
    png = tmp_path / "attention.png"
    result = invoke("attention", run_dir, "Good morning.", "-o", str(png))
    assert result.exit_code == 0
    width, height = Image.open(png).size
    assert width > 40 and height > 40


def test_vocab_and_data_commands(tmp_path):
    output = tmp_path / "joint"
    result = invoke("vocab", os.path.join(SAMPLE_DIR, "valid.en.gz"), os.path.join(SAMPLE_DIR, "valid.es.gz"),
                    "--type", "bpe", "--size", 300, "-o", str(output))
    assert result.exit_code == 0 and os.path.exists(str(output) + ".model")
    from tflm.text import load_tokenizer

    tokenizer = load_tokenizer(str(output) + ".model")  # a 300-piece BPE vocabulary that round-trips text
    assert tokenizer.vocabulary_size == 300 and tokenizer.kind == "sentencepiece"
    text = "¿Dónde está la estación?"
    ids = tokenizer.tokenize([text]).to_list()[0]
    assert 1 < len(ids) < len(text) and np.asarray(tokenizer.detokenize(tf.constant([ids])))[0].decode() == text
    assert "tatoeba-es-en-sample" in invoke("data", "list").output
    assert invoke("data", "verify", "tatoeba-es-en-sample").output.strip().endswith("OK")


def test_bad_input_gives_one_clear_line(tmp_path):
    a, b = tmp_path / "a.en", tmp_path / "a.es"
    a.write_text("one\ntwo\n")
    b.write_text("uno\n")
    result = CliRunner().invoke(main, ["train", "--run-dir", str(tmp_path / "run"), "--set",
                                       f'data.train_files=["{a}", "{b}"]', "--set", f'data.valid_files=["{a}", "{b}"]',
                                       "--set", "data.dataset=null"])
    assert result.exit_code == 1
    assert "has 2 lines" in result.output and "has 1" in result.output and "Traceback" not in result.output


def test_export_check_and_serve_commands_end_to_end(run_dir, tmp_path):
    """`tflm export` writes a checked version and models.config; `tflm check` passes it; `tflm serve` (a real
    process) answers with the run's translations and stops on SIGTERM."""
    import http.client
    import signal
    import socket
    import subprocess
    import sys
    import time

    from tflm.tasks import translation

    base = str(tmp_path / "models")
    # --no-check: the check runs once, as `tflm check` below (export runs the same one by default)
    result = invoke("export", run_dir, "--name", "tiny", "--base-dir", base, "--max-beam-size", 4, "--no-check")
    assert result.exit_code == 0 and result.output.strip().endswith(os.path.join(base, "tiny", "1")), result.output
    assert 'name: "tiny"' in open(os.path.join(base, "models.config")).read()
    info = json.load(open(os.path.join(base, "tiny", "1", "assets.extra", "tflm.json")))
    assert info["limits"]["max_beam_size"] == 4
    result = invoke("check", os.path.join(base, "tiny", "1"))
    assert result.exit_code == 0 and "OK" in result.output and "refuses requests beyond" in result.output

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tflm.cli", "serve", base, "--rest-port", str(port),
                               "--grpc-port", "0", "--poll-seconds", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("POST", "/v1/models/tiny:predict", body=json.dumps(
                    {"instances": ["Good morning.", "I am here."]}))
                answer = json.loads(connection.getresponse().read())
                break
            except (OSError, http.client.HTTPException):
                time.sleep(0.3)
        expected = translation.Translator.from_run_dir(run_dir).translate(["Good morning.", "I am here."])
        assert [p["outputs"] for p in answer["predictions"]] == expected
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert server.returncode == 0 and "Stopped in" in output, output[-2000:]


def test_the_console_script_hides_tensorflow_cpp_log_lines_and_keeps_everything_else(tmp_path):
    import re
    import subprocess
    import sys

    run = os.path.join(os.path.dirname(__file__), "fixtures", "old_runs", "runs", "transformer")
    native = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl)")
    environment = {k: v for k, v in os.environ.items() if k != "TFLM_VERBOSE"}

    def tflm(*args):
        return subprocess.run([sys.executable, "-m", "tflm.cli", *args], capture_output=True, text=True,
                              env=environment, timeout=300)

    refused = tflm("translate", "--run-dir", run, "--beam-size", "2", "--num-hypotheses", "3", "I love you.")
    # TensorFlow was imported and the run's configuration read before the refusal: its C++ lines would be there
    assert refused.returncode == 1 and "Error: decoding.num_hypotheses=3" in refused.stderr  # Python's stderr stays
    assert not [line for line in refused.stderr.splitlines() if native.match(line)]
    assert not refused.stdout
    shown = tflm("--verbose", "translate", "--run-dir", run, "--beam-size", "2", "--num-hypotheses", "3", "x")
    assert [line for line in shown.stderr.splitlines() if native.match(line)]  # what the filter took away
