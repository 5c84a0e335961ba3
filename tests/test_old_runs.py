"""Runs and exports made by tflm before the one task interface (commit 5e6ab39, tests/fixtures/old_runs/make.sh)
still load, evaluate, translate, generate and serve as they did then (expected.json holds what that code said).

The runs were trained a few hundred steps on data they learn (the translation runs on pairs.en/es, scored on
the same pairs), so their outputs are real ones: a load that lost or reinitialised weights changes them, and
the loaded variables are compared with the old code's, value checksums included."""

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
    assert scores["bleu"] > 20 and scores["chrf"] > 40  # trained: measured 78.3/85.3 (Transformer), 32.9/47.9 (LSTM)
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
    assert scores["bits_per_character"] < 3.2  # measured 2.81 (GPT), 2.70 (Transformer-XL); 120 steps gave 3.74
    output = cli(old_runs, "generate", "--run-dir", f"runs/{run}", "--greedy", "--no-stream", *EXPECTED["prompts"][1:])
    assert output.splitlines() == expected["generate"]


def test_old_runs_resume_and_average(old_runs):
    """An old run trains on from its last checkpoint (step 600) and averages its checkpoints."""
    progress = os.path.join(old_runs, "runs", "transformer", "progress.json")
    cli(old_runs, "train", "--run-dir", "runs/transformer", "--max-steps", "602", "--quiet")
    with open(progress) as f:
        assert json.load(f)["step"] == 602
    assert "averaged" in cli(old_runs, "average", "--run-dir", "runs/gpt", "--last", "3")


def variable_checksums(model):
    """Each weight of `model` in order: its shape, and its sum and norm (rounded as expected.json has them)."""
    import numpy as np

    return [[list(v.shape), round(float(np.sum(v)), 4), round(float(np.linalg.norm(np.ravel(v))), 4)]
            for v in (np.asarray(w) for w in model.weights)]


@pytest.mark.parametrize("run", ["transformer", "lstm", "gpt", "transformer_xl"])
def test_old_runs_load_every_variable_with_its_trained_values(run):
    from tflm.tasks import task_of_run

    directory = os.path.join(FIXTURE, "runs", run)
    predictor = task_of_run(directory).load_predictor(directory, "best")
    loaded, expected = variable_checksums(predictor.model), EXPECTED[run]["variables"]
    assert [shape for shape, _, _ in loaded] == [shape for shape, _, _ in expected]
    for index, ((shape, total, norm), (_, old_total, old_norm)) in enumerate(zip(loaded, expected)):
        assert total == pytest.approx(old_total, abs=2e-3) and norm == pytest.approx(old_norm, abs=2e-3), \
            (run, index, shape)
    # the control: the same model freshly initialised has other values
    fresh = type(predictor.model).from_config(predictor.model.get_config())
    fresh.build()
    assert variable_checksums(fresh) != expected


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
