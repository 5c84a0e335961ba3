"""Runs and exports made by tflm before the one task interface (commit 5e6ab39, tests/fixtures/old_runs/make.sh)
still load, evaluate, translate, generate and serve as they did then (expected.json holds what that code said)."""

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from tflm.cli import main

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "old_runs")
with open(os.path.join(FIXTURE, "expected.json"), encoding="utf-8") as f:
    EXPECTED = json.load(f)


@pytest.fixture(scope="module")
def old_runs(tmp_path_factory):
    """A copy of the fixture (evaluation writes into the run directories); the language-model runs read
    lm.txt relative to the working directory, as they did when they were made."""
    directory = tmp_path_factory.mktemp("old") / "old_runs"
    shutil.copytree(FIXTURE, directory)
    return str(directory)


def cli(directory, *args):
    previous = os.getcwd()
    os.chdir(directory)
    try:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("run", ["transformer", "lstm"])
def test_old_translation_runs_evaluate_and_translate_the_same(old_runs, run):
    expected = EXPECTED[run]
    scores = json.loads(cli(old_runs, "evaluate", "--run-dir", f"runs/{run}", "--split", "valid", "--max-pairs", "40"))
    for key in ("bleu", "chrf", "sentences", "brevity_penalty"):
        assert scores[key] == expected["evaluate"][key], key
    sentences = EXPECTED["sentences"][:2]
    assert cli(old_runs, "translate", "--run-dir", f"runs/{run}", *sentences).splitlines() == expected["translate"]
    assert cli(old_runs, "translate", "--run-dir", f"runs/{run}", "--beam-size", "3", "--n-best", "2",
               *sentences).splitlines() == expected["beam"]


@pytest.mark.parametrize("run", ["gpt", "transformer_xl"])
def test_old_language_model_runs_evaluate_and_generate_the_same(old_runs, run):
    expected = EXPECTED[run]
    scores = json.loads(cli(old_runs, "evaluate", "--run-dir", f"runs/{run}", "--split", "valid"))
    for key in ("loss", "tokens", "words", "bits_per_character"):
        assert scores[key] == pytest.approx(expected["evaluate"][key], abs=2e-4), key
    output = cli(old_runs, "generate", "--run-dir", f"runs/{run}", "--greedy", "--no-stream", *EXPECTED["prompts"][1:])
    assert output.splitlines() == expected["generate"]


def test_old_runs_resume_and_average(old_runs):
    """An old run trains on from its last checkpoint (step 120) and averages its checkpoints."""
    progress = os.path.join(old_runs, "runs", "transformer", "progress.json")
    cli(old_runs, "train", "--run-dir", "runs/transformer", "--max-steps", "122", "--quiet")
    with open(progress) as f:
        assert json.load(f)["step"] == 122
    assert "averaged" in cli(old_runs, "average", "--run-dir", "runs/gpt", "--last", "3")


@pytest.mark.parametrize("name,key,inputs", [("translation", "text", "sentences"), ("gpt", "prompt", "prompts")])
def test_old_exports_load_and_answer_the_same(name, key, inputs):
    import numpy as np
    import tensorflow as tf

    from tflm.export import load

    model = load(os.path.join(FIXTURE, "saved_models", name, "1"))
    outputs = model.signatures["serving_default"](**{key: tf.constant(EXPECTED[inputs])})
    texts = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(outputs["outputs"].numpy()).tolist()
    assert texts == EXPECTED[f"export_{name}"]["outputs"]
    np.testing.assert_allclose(outputs["scores"].numpy(), EXPECTED[f"export_{name}"]["scores"], rtol=1e-5)
