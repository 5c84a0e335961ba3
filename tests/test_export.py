"""Export: the SavedModel answers like the in-memory model through both loaders; the check catches what
stock TF Serving cannot run; an interrupted export leaves nothing behind."""

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tflm.export import check_saved_model, export_translator, next_version
from tflm.export.check import run_tf1_requests
from tflm.tasks import translation

SENTENCES = ["Good morning.", "", "Where is the station?", "Tom is reading a book in the garden."]


def test_export_layout_and_models_config(exported):
    base, path = exported
    assert path == os.path.join(base, "tiny", "1")
    assert sorted(os.listdir(os.path.join(path, "assets"))) == ["config.json", "source.model", "target.model"]
    assert {"tflm.json", "tf_serving_warmup_requests"} <= set(os.listdir(os.path.join(path, "assets.extra")))
    config = open(os.path.join(base, "models.config")).read()
    assert 'name: "tiny"' in config and 'base_path: "/models/tiny"' in config
    assert next_version(os.path.join(base, "tiny")) == 2
    assert not [n for n in os.listdir(base) if n.startswith(".")]


CONTROLS = {"beam_size": 3, "num_hypotheses": 2, "max_length": 15, "length_penalty": 0.6, "temperature": 0.0,
            "top_k": 0, "top_p": 1.0, "seed": 0}


@pytest.fixture(scope="session")
def tf1_results(exported):
    """One fresh process, as TF Serving: only tensorflow-text's op libraries, the TF1 session loader."""
    _, path = exported
    result, error = run_tf1_requests(path, [
        {"signature": "serving_default", "inputs": {"text": SENTENCES}},
        {"signature": "translate", "inputs": dict(CONTROLS, text=SENTENCES[:2])},
    ], warmup=True)
    assert error is None, error
    return result


def test_both_loaders_give_the_in_memory_outputs(exported, trained_run, tf1_results):
    _, path = exported
    translator = translation.Translator.from_run_dir(trained_run)
    expected = translator.translate_batch(tf.constant(SENTENCES))
    expected_texts = [t.decode() for t in np.asarray(expected["outputs"])]
    tf1 = tf1_results["results"][0]
    loaded = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(SENTENCES))
    assert tf1["outputs"] == expected_texts == [t.decode() for t in np.asarray(loaded["outputs"])]
    np.testing.assert_allclose(tf1["scores"], np.asarray(expected["scores"]), rtol=1e-4, atol=1e-4)
    assert expected_texts[1] == "" and tf1["scores"][1] == 0.0
    assert tf1_results["warmup_requests"] == 3  # serving_default twice, translate once


def test_translate_tokenize_detokenize_and_score_signatures(exported, trained_run, tf1_results):
    _, path = exported
    translator = translation.Translator.from_run_dir(trained_run)
    signatures = tf.saved_model.load(path).signatures
    controls = dict(beam_size=tf.constant(3), num_hypotheses=tf.constant(2), max_length=tf.constant(15),
                    length_penalty=tf.constant(0.6), temperature=tf.constant(0.0), top_k=tf.constant(0),
                    top_p=tf.constant(1.0), seed=tf.constant(0))
    beam = signatures["translate"](text=tf.constant(SENTENCES[:2]), **controls)
    assert beam["outputs"].shape == (2, 2) and beam["scores"].shape == (2, 2)
    tf1 = tf1_results["results"][1]
    assert tf1["outputs"] == [[t.decode() for t in row] for row in np.asarray(beam["outputs"])]
    sampled = signatures["translate"](text=tf.constant(SENTENCES[:1]), **dict(controls, temperature=tf.constant(1.0),
                                                                                num_hypotheses=tf.constant(3)))
    assert sampled["outputs"].shape == (1, 3)
    tokens = signatures["tokenize"](text=tf.constant(SENTENCES[:1]))
    ids = translator.source_tokenizer.tokenize(SENTENCES[:1]).to_list()[0]
    assert np.asarray(tokens["token_ids"])[0].tolist() == ids and int(tokens["lengths"][0]) == len(ids)
    text = signatures["detokenize"](token_ids=tf.constant([translator.target_tokenizer.tokenize(
        ["Buenos días."]).to_list()[0]]))["text"]
    assert np.asarray(text)[0].decode() == "Buenos días."
    score = signatures["score"](source=tf.constant(["Good morning."]), target=tf.constant(["Buenos días."]))
    expected = translator.score_batch(tf.constant(["Good morning."]), tf.constant(["Buenos días."]))
    np.testing.assert_allclose(np.asarray(score["log_prob"]), np.asarray(expected["log_prob"]), rtol=1e-5)


class _Untracked(tf.Module):
    """A Keras 3 model whose layers live in a list, held by a plain tf.Module: loads in Python, not in TF1."""

    def __init__(self):
        super().__init__()

        class Model(keras.Model):
            def __init__(self):
                super().__init__()
                self.blocks = [keras.layers.Dense(3), keras.layers.Dense(3)]

            def call(self, x):
                for block in self.blocks:
                    x = block(x)
                return x

        self.model = Model()
        self.model(np.zeros((1, 3), "float32"))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        x = tf.cast(tf.strings.length(text)[:, None], tf.float32) * tf.ones([1, 3])
        y = self.model(x)[:, 0]
        return {"outputs": tf.strings.as_string(y), "scores": y}


class _PythonStep(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        upper = tf.py_function(lambda t: np.char.upper(t.numpy().astype(str)).astype(object), [text], tf.string)
        return {"outputs": tf.reshape(upper, [-1]), "scores": tf.zeros([tf.shape(text)[0]])}


@pytest.mark.parametrize("module, cause", [(_Untracked, "tracked explicitly"), (_PythonStep, "py_function")])
def test_check_names_the_cause_of_what_tf_serving_cannot_run(module, cause, tmp_path):
    instance = module()
    path = str(tmp_path / "model")
    tf.saved_model.save(instance, path, signatures={"serving_default": instance.serve})
    # both load and answer in this Python process...
    assert tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(["ab"]))["outputs"].shape == (1,)
    report = check_saved_model(path, ["ab"])
    assert not report.ok and cause in report.summary(), report.summary()


def test_an_interrupted_export_leaves_no_version(trained_run, tmp_path, monkeypatch):
    import tflm.export.exporter as exporter

    translator = translation.Translator.from_run_dir(trained_run)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "_write_extra", fail)
    with pytest.raises(KeyboardInterrupt):
        export_translator(translator, str(tmp_path), "tiny")
    assert os.listdir(tmp_path) == [] or os.listdir(tmp_path) == ["tiny"] and not os.listdir(tmp_path / "tiny")
    with pytest.raises(ValueError, match="plain directory name"):
        export_translator(translator, str(tmp_path), "../escape")
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_tflm_check_names_an_op_outside_the_serving_set_and_a_function_that_needs_xla(tmp_path):
    """`DecodeJxl` is new in TensorFlow 2.21 (absent from TF Serving 2.20's op set); a `jit_compile=True`
    function needs XLA, which stock TF Serving runs without. `tflm check` must name both and fail."""
    from click.testing import CliRunner

    from tflm.cli import main

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, text):
            return {"outputs": text, "scores": tf.zeros(tf.shape(text), tf.float32)}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def image(self, data):
            return {"pixels": tf.raw_ops.DecodeJxl(contents=data, channels=3)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)], jit_compile=True)
        def fast(self, x):
            return {"y": x * 2.0}

    module = Module()
    path = str(tmp_path / "model" / "1")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve, "image": module.image,
                                                  "fast": module.fast})
    result = CliRunner().invoke(main, ["check", path])
    assert result.exit_code == 1, result.output
    assert "op DecodeJxl" in result.output and "not in TF Serving 2.20's op set" in result.output
    assert "requires XLA (jit_compile=True)" in result.output
    clean, plain = str(tmp_path / "clean" / "1"), tf.Module()
    plain.serve = module.serve  # the same serving function, without the others
    tf.saved_model.save(plain, clean, signatures={"serving_default": module.serve})
    result = CliRunner().invoke(main, ["check", clean])
    assert result.exit_code == 0 and "OK" in result.output, result.output


def test_the_op_set_generator_refuses_a_tensorflow_other_than_2_20(tmp_path):
    """Run under this environment's TensorFlow 2.21, the generator must refuse rather than write a 2.21 list
    under the 2.20 name (it makes its own 2.20 environment when run without --generate)."""
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "tools", "make_serving_op_set.py")
    out = tmp_path / "ops.txt"
    finished = subprocess.run([sys.executable, script, "--generate"], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, TFLM_OP_SET_OUT=str(out), TF_CPP_MIN_LOG_LEVEL="3"))
    assert finished.returncode != 0 and "refusing to write the TF Serving 2.20 op set" in finished.stderr
    assert "'tensorflow': '2.21" in finished.stderr and not out.exists()
