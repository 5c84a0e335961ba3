"""A language model's context window is enforced (issue 32, item 4): a GPT that attends to 40 positions refuses a
prompt plus max_new_tokens beyond them by name with both numbers, or keeps the prompt's last tokens when asked
(`truncate`), in the graph (in process, through the TF1 loader as TF Serving runs it) and in `tflm generate`; its
export's token limits never exceed the context; scoring a text longer than the context is refused by name."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tflm.decoding import DecodingOptions
from tflm.tasks import language_modeling

TEXT = "It is the east, and Juliet is the sun. Arise, fair sun, and kill the envious moon.\n"
CONTEXT = 40


@pytest.fixture(scope="module")
def small_context_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("context")
    (directory / "text.txt").write_text(TEXT * 20)
    config = language_modeling.LanguageModelConfig()
    config.data.dataset = None
    config.data.train_file = config.data.valid_file = config.data.test_file = str(directory / "text.txt")
    config.data.sequence_length, config.data.batch_size = 32, 8
    config.model.preset = "tiny"
    config.model.params = {"dropout": 0.0, "max_sequence_length": CONTEXT}
    config.training = language_modeling.TrainingConfig(epochs=None, max_steps=30, learning_rate=3e-3, samples=0)
    config.decoding = DecodingOptions(strategy="greedy", max_length=8, max_length_a=0.0)
    run_dir = str(directory / "run")
    language_modeling.train(config, run_dir, verbose=False)
    return run_dir


def controls(plain=False, **changes):
    """The `generate` signature's controls (tensors, as a request gives them; `plain`: JSON values)."""
    from tflm.tasks.predictor import CONTROL_DTYPES

    values = dict(beam_size=1, num_hypotheses=1, max_new_tokens=8, length_penalty=0.6, temperature=0.0, top_k=0,
                  top_p=1.0, seed=0, truncate=False)
    values.update(changes)
    return values if plain else {key: tf.constant(value, CONTROL_DTYPES[key]) for key, value in values.items()}


def test_a_prompt_beyond_the_context_is_refused_by_name_or_truncated_when_asked(small_context_run):
    generator = language_modeling.Generator.from_run_dir(small_context_run)
    assert generator.context_length() == CONTEXT
    fits, too_long = "It is the east", TEXT * 3
    tokens = int(generator.tokenizer.tokenize(tf.constant([too_long])).row_lengths()[0])
    assert tokens > CONTEXT
    outputs, _ = generator.generate_with_controls(tf.constant([fits]), **controls())
    assert len(generator.tokenizer.tokenize(outputs[0]).to_list()[0]) == 8  # all 8 new tokens, not fewer
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"a prompt of {tokens} tokens \+ max_new_tokens 8 = "
                                                             rf"{tokens + 8} exceeds the model's context of 40 tokens"):
        generator.generate_with_controls(tf.constant([fits, too_long]), **controls())
    outputs, scores = generator.generate_with_controls(tf.constant([too_long]), **controls(truncate=True))
    # truncated: the prompt's last 32 tokens, so the continuation equals that of those tokens alone
    last = generator.tokenizer.detokenize(generator.tokenizer.tokenize(tf.constant([too_long]))[:, -32:].to_tensor())
    alone, _ = generator.generate_with_controls(last, **controls())
    assert outputs.numpy()[0][0] == alone.numpy()[0][0] and outputs.numpy()[0][0]
    assert np.isfinite(scores.numpy()).all() and scores.numpy()[0][0] != 0.0
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_new_tokens = 40 leaves no room for a prompt"):
        generator.generate_with_controls(tf.constant([fits]), **controls(max_new_tokens=40, truncate=True))
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"a text of {tokens} tokens exceeds the model's context"):
        generator.score_batch(tf.constant([too_long]))
    assert generator.score_batch(tf.constant([fits]))["tokens"].numpy()[0] > 0  # the next call still works


def test_the_export_bounds_its_token_limits_by_the_context_and_refuses_through_the_tf1_loader(small_context_run,
                                                                                              tmp_path):
    from tflm.export import export_run
    from tflm.export.check import run_tf1_requests

    path = export_run(small_context_run, "lm", str(tmp_path), check=False)  # (the TF1 loader is run below)
    info = json.load(open(os.path.join(path, "assets.extra", "tflm.json")))
    assert info["limits"]["max_input_tokens"] == CONTEXT - 1 and info["limits"]["max_new_tokens"] == CONTEXT - 1
    assert info["context"]["tokens"] == CONTEXT
    generator = language_modeling.Generator.from_run_dir(small_context_run)
    count = lambda text: int(generator.tokenizer.tokenize(tf.constant([text])).row_lengths()[0])  # noqa: E731
    prompt = next(TEXT[:end] for end in range(len(TEXT)) if count(TEXT[:end]) == 36)  # within max_input_tokens
    requests = [{"signature": "generate", "inputs": {"prompt": [prompt], **controls(plain=True)}},
                {"signature": "generate", "inputs": {"prompt": [prompt], **controls(True, truncate=True)}},
                {"signature": "score", "inputs": {"text": [prompt]}}]
    result, error = run_tf1_requests(path, requests, keep_going=True)
    assert error is None
    refused, truncated, scored = result["results"]
    from tflm.serving.errors import graph_error_message

    assert "a prompt of 36 tokens + max_new_tokens 8 = 44 exceeds the model's context of 40 tokens" in \
        graph_error_message(refused["error"])
    assert truncated["outputs"][0][0] and scored["tokens"] == [36]


def test_tflm_generate_refuses_in_one_line_and_truncates_when_asked(small_context_run):
    command = [sys.executable, "-m", "tflm", "generate", "--run-dir", small_context_run, "--greedy"]
    refused = subprocess.run(command + [TEXT * 3], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "exceeds the model's context of 40 tokens" in refused.stderr and refused.stdout == ""
    kept = subprocess.run(command + ["--truncate-prompt", TEXT * 3], capture_output=True, text=True, timeout=300)
    assert kept.returncode == 0 and kept.stdout.startswith(TEXT * 3) and len(kept.stdout) > len(TEXT * 3) + 1
