"""A user's task in a module of its own (tests/plugins/word_pairs.py: two text inputs, one tag per word), run
only as a user runs it: the console script in a subprocess, the module on PYTHONPATH, never imported here.

Train, resume with the same command, evaluate, predict, export (with its check), `tflm check`, and `tflm serve`
with concurrent requests of different lengths batched together, each getting exactly its own words back."""

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins")
SENTENCES = [("tom", "Tom"), ("where is mary", "¿Dónde está María?"),
             ("tom and mary live in boston now", "Tom y María viven en Boston ahora"),
             ("i think that tom will go to school tomorrow with his friends", "Creo que Tom irá a la escuela"),
             ("hi", "Hola"), ("do you know john", "¿Conoces a John?")]


def tflm(*args, plugin=True, check=True, cwd=None):
    """`python -m tflm ARGS` in a fresh process; the plug-in's folder on PYTHONPATH (or not)."""
    environment = dict(os.environ)
    paths = [PLUGINS] if plugin else []
    environment["PYTHONPATH"] = os.pathsep.join(paths + [p for p in environment.get("PYTHONPATH", "").split(
        os.pathsep) if p and os.path.abspath(p) != PLUGINS])
    finished = subprocess.run([sys.executable, "-m", "tflm", *map(str, args)], capture_output=True, text=True,
                              env=environment, timeout=600, cwd=cwd)
    if check:
        assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished


def test_the_plug_in_module_is_not_imported_by_the_test_process():
    assert "word_pairs" not in sys.modules and PLUGINS not in sys.path


def test_a_plug_in_task_with_two_inputs_and_a_per_word_output_through_every_command(tmp_path):
    run_dir, base = tmp_path / "run", tmp_path / "models"
    first = json.loads(tflm("train", "--task", "word_pairs:WordPairs", "--run-dir", run_dir, "--max-steps", 50,
                            "--quiet").stdout.splitlines()[-1])
    assert first["step"] == 50 and "words_per_second" in first  # the task's loss counts words
    assert json.loads((run_dir / "config.json").read_text())["task_class"] == "word_pairs:WordPairs"

    # the same command again resumes (the run's task found from config.json), with a longer budget
    resumed = json.loads(tflm("train", "--task", "word_pairs:WordPairs", "--run-dir", run_dir, "--max-steps", 60,
                              "--quiet").stdout.splitlines()[-1])
    assert resumed["step"] == 60

    # without the module on PYTHONPATH: one line naming the module and the fix, and nothing changes
    config_before = (run_dir / "config.json").read_text()
    missing = tflm("evaluate", "--run-dir", run_dir, plugin=False, check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "cannot import module 'word_pairs'" in missing.stderr and "PYTHONPATH" in missing.stderr
    assert (run_dir / "config.json").read_text() == config_before

    scores = json.loads(tflm("evaluate", "--run-dir", run_dir, "--split", "valid").stdout)
    # a constant answer ("lower" everywhere) gets majority_baseline; the model must do clearly better
    assert scores["accuracy"] > scores["majority_baseline"] + 8, scores
    part = json.loads(tflm("evaluate", "--run-dir", run_dir, "--split", "valid", "--max-pairs", 20).stdout)
    assert part["examples"] == 20 and json.loads((run_dir / "eval" / "valid.best.json").read_text()) == scores
    assert (run_dir / "eval" / "valid.best.first20.json").exists()  # the partial score did not overwrite it
    refused = tflm("evaluate", "--run-dir", run_dir, "--beam-size", 3, check=False)
    assert refused.returncode != 0 and "does not decode" in refused.stderr  # not accepted and ignored

    rows = [json.dumps({"text_a": a, "text_b": b}, ensure_ascii=False) for a, b in SENTENCES[:2]]
    answers = [json.loads(line) for line in tflm("predict", "--run-dir", run_dir, *rows).stdout.splitlines()]
    assert [answer["words"] for answer in answers] == [["tom"], ["where", "is", "mary"]]  # each row its own words
    assert answers[0]["tags"] == ["upper"] and len(answers[1]["tags"]) == 3

    path = tflm("export", run_dir, "--name", "pairs", "--base-dir", base).stdout.strip().splitlines()[-1]
    info = json.loads(open(os.path.join(path, "assets.extra", "tflm.json")).read())
    assert info["task"] == "word_pairs" and "decoding" not in info and set(info["limits"]) == {"max_batch_size"}
    assert info["signature_rows"]["serving_default"]["row_lengths"]["tags"] == "lengths"
    checked = tflm("check", path)
    assert "OK" in checked.stdout and "2 warm-up requests replayed" in checked.stdout
    _serve_and_batch(base)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, body, timeout=60):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _serve_and_batch(base):
    rest, grpc = _free_port(), _free_port()
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([PLUGINS, os.environ.get("PYTHONPATH", "")]))
    # a long batch window, so that the concurrent requests below share batches
    server = subprocess.Popen([sys.executable, "-m", "tflm", "serve", str(base), "--rest-port", str(rest),
                               "--grpc-port", str(grpc), "--batch-timeout-ms", "300"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=environment)
    url = f"http://127.0.0.1:{rest}/v1/models/pairs:predict"
    try:
        ends = time.monotonic() + 120
        while True:
            try:
                status, _ = _post(url, {"instances": [{"text_a": "hi", "text_b": "Hola"}]})
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < ends and server.poll() is None, "tflm serve did not answer within 120 s"
            time.sleep(0.3)

        def ask(pair):
            return _post(url, {"instances": [{"text_a": pair[0], "text_b": pair[1]}]})

        with concurrent.futures.ThreadPoolExecutor(len(SENTENCES)) as pool:
            answers = list(pool.map(ask, SENTENCES))
        for (text, _), (status, body) in zip(SENTENCES, answers):
            assert status == 200, body
            prediction = body["predictions"][0]
            assert prediction["words"] == text.split() and prediction["lengths"] == len(text.split())
            assert len(prediction["tags"]) == len(text.split()) and "" not in prediction["tags"]
        # columnar form: a two-row request gets its rows padded to its own longest row only
        status, body = _post(url, {"inputs": {"text_a": ["tom", "where is mary"], "text_b": ["Tom", "María"]}})
        assert status == 200 and body["outputs"]["words"] == [["tom", "", ""], ["where", "is", "mary"]]
        # a text pair with one side missing is refused by name, and the next request is answered
        status, body = _post(url, {"inputs": {"text_a": ["tom", "mary"], "text_b": ["Tom"]}})
        assert status == 400 and "text_a" in body["error"] and "text_b" in body["error"]
        assert ask(SENTENCES[1])[0] == 200
    finally:
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.parametrize("args", [["train", "--task", "no_such_module:Task"], ["train", "--task", "word_pairs:Nope"]])
def test_a_task_that_cannot_be_found_is_one_line_and_writes_nothing(tmp_path, args):
    run_dir = tmp_path / "new-run"
    finished = tflm(*args, "--run-dir", run_dir, check=False)
    assert finished.returncode == 1 and "Traceback" not in finished.stderr
    assert finished.stderr.startswith("Error: task ") and not run_dir.exists()


def test_the_batcher_gives_each_request_its_own_rows_and_lengths():
    """In process, with a stand-in model whose outputs are padded to the batch's longest row: two requests
    that share one batch each get their rows padded to their own longest only (the old batcher gave the one-word
    request the other's padding)."""
    import numpy as np

    from tflm.serving.batching import Batcher

    class PaddingModel:
        path, runs = "stand-in", []

        def run(self, signature, inputs):
            words = [text.split() for text in inputs["text_a"].astype(str)]
            self.runs.append(len(words))
            width = max(len(w) for w in words)
            return {"words": np.array([w + [""] * (width - len(w)) for w in words], dtype=object),
                    "lengths": np.array([len(w) for w in words], np.int32)}

        def row_lengths(self, signature):
            return {"words": "lengths"}

    model, batcher = PaddingModel(), Batcher(max_batch_size=8, timeout_ms=200)
    try:
        futures = [batcher.submit(model, "serving_default", {"text_a": np.array([text], dtype=object)})
                   for text in ("tom", "where is mary going")]
        answers = [future.result(timeout=30) for future in futures]
    finally:
        batcher.stop()
    assert model.runs == [2]  # one batch held both requests
    assert answers[0]["words"].tolist() == [["tom"]] and answers[1]["words"].tolist() == [["where", "is", "mary",
                                                                                           "going"]]
    model.row_lengths = lambda signature: {}  # control: without the declaration, the batch's padding leaks
    batcher = Batcher(max_batch_size=8, timeout_ms=200)
    try:
        futures = [batcher.submit(model, "serving_default", {"text_a": np.array([text], dtype=object)})
                   for text in ("tom", "where is mary going")]
        assert futures[0].result(timeout=30)["words"].tolist() == [["tom", "", "", ""]]
    finally:
        batcher.stop()
