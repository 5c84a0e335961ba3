"""The CTranslate2 engine: a CTranslate2 export decodes as tflm does (greedy pieces and scores, the run's
limits), behind `tflm translate/generate --engine ctranslate2` and behind `tflm serve`'s REST and gRPC APIs
with the SavedModel's signatures, outputs and request checks."""

import dataclasses
import http.client
import json
import os
import shutil
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

ctranslate2 = pytest.importorskip("ctranslate2")

from click.testing import CliRunner  # noqa: E402

from tflm import config as config_lib  # noqa: E402
from tflm.cli import main  # noqa: E402
from tflm.decoding import DecodingOptions  # noqa: E402
from tflm.engines.ctranslate2 import (  # noqa: E402
    METADATA_FILE,
    CTranslate2Generator,
    CTranslate2Translator,
    convert_run,
    convert_run_cached,
    decoding_from_metadata,
    load_engine,
)
from tflm.tasks import get_task, language_modeling  # noqa: E402
from tflm.tasks.translation import Translator  # noqa: E402
from tflm.text import EOS_ID, CharacterTokenizer  # noqa: E402
from tflm.training.checkpoints import model_checkpoint  # noqa: E402

SENTENCES = ["Good morning.", "Where is the station?", "", "I love you.", "   ", "Tom knew it was far too late.",
             "Who drove?", "It is the east, and Juliet is the sun."]
TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
PROMPTS = ["ROMEO:", "w", "light through yonder", "", "It is"]


def save_random_checkpoint(task, run_dir, seed):
    """Builds the run's model with random weights (distinct outputs, unlike a few training steps) and saves
    them as its best checkpoint."""
    config = task.load_config(run_dir)
    keras.utils.set_random_seed(seed)
    model = task.build_model(config, task.load_tokenizers(run_dir))
    manager = tf.train.CheckpointManager(model_checkpoint(model), os.path.join(run_dir, "checkpoints", "best"),
                                         max_to_keep=1, checkpoint_name="best")
    return manager.save(checkpoint_number=1)


def declarations(predictor):
    """A predictor's or an engine's signatures without their functions."""
    return [dataclasses.replace(signature, function=None) for signature in predictor.signatures()]


# int8 weights move a score of the random tiny model by a small fraction of it (measured: under 1%)
INT8_SCORE_TOLERANCE = 0.02
RUN_DECODING = DecodingOptions(strategy="greedy", max_length=40, max_length_a=1.0, max_length_b=2)


@pytest.fixture(scope="module")
def random_run(sample_tokenizer, tmp_path_factory):
    """A tiny Transformer translation run with random weights (distinct outputs, which a few training steps do
    not give) decoding greedily to at most pieces + 3 tokens: the model seldom stops before its limit, so the
    rows of a batch end at different limits."""
    from tflm.tasks import translation

    run_dir = str(tmp_path_factory.mktemp("ct2-engine") / "run")
    os.makedirs(os.path.join(run_dir, "vocab"))
    for name in ("source", "target"):
        sample_tokenizer.save(os.path.join(run_dir, "vocab", f"{name}.model"))
    config = translation.TranslationConfig(
        data=translation.DataConfig(max_source_length=40, max_target_length=40),
        model=translation.ModelConfig(type="transformer", preset="tiny"), decoding=RUN_DECODING)
    config_lib.save_file(config, os.path.join(run_dir, "config.json"))
    save_random_checkpoint(get_task("translation"), run_dir, seed=3)
    return run_dir


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    """A character GPT run with random weights, 24 positions (so long prompts meet the limit)."""
    run_dir = str(tmp_path_factory.mktemp("ct2-gpt") / "run")
    text_file = os.path.join(os.path.dirname(run_dir), "text.txt")
    with open(text_file, "w") as f:
        f.write(TEXT)
    config = language_modeling.LanguageModelConfig()
    config.data.dataset = None
    config.data.train_file = config.data.valid_file = config.data.test_file = text_file
    config.data.sequence_length = 16
    config.model.preset = "tiny"
    config.model.params = {"dropout": 0.0, "max_sequence_length": 24}
    config.decoding = DecodingOptions(strategy="greedy", max_length=12, max_length_a=0.0)
    os.makedirs(os.path.join(run_dir, "vocab"))
    CharacterTokenizer(sorted(set(TEXT))).save(os.path.join(run_dir, "vocab", "tokenizer.chars"))
    config_lib.save_file(config, os.path.join(run_dir, "config.json"))
    save_random_checkpoint(get_task("language_modeling"), run_dir, seed=4)
    return run_dir


@pytest.fixture(scope="module")
def engine_path(random_run):
    return convert_run_cached(random_run)


def test_greedy_translations_and_scores_are_tflms(random_run, engine_path):
    metadata = json.load(open(os.path.join(engine_path, METADATA_FILE)))
    assert metadata["decoding"]["max_length"] == 40 and metadata["max_source_length"] == 40
    assert decoding_from_metadata(metadata) == get_task("translation").load_config(random_run).decoding
    translator = Translator.from_run_dir(random_run)
    engine = load_engine(engine_path)  # with the run's decoding, from the export's metadata
    assert isinstance(engine, CTranslate2Translator) and engine.decoding == translator.decoding == RUN_DECODING
    expected = translator.translate_n_best(SENTENCES)
    found = engine.translate_n_best(SENTENCES)
    assert [row[0][0] for row in found] == [row[0][0] for row in expected]
    assert len({row[0][0] for row in expected}) >= 4  # distinct outputs: the comparison is not of empty lines
    lengths = {len(row[0][0]) for row, sentence in zip(expected, SENTENCES) if sentence.strip()}
    assert len(lengths) >= 4, expected
    assert found[2] == [("", 0.0)] and found[4] == [("", 0.0)]
    np.testing.assert_allclose([row[0][1] for row in found], [row[0][1] for row in expected], rtol=1e-4, atol=1e-4)
    assert engine.translate(SENTENCES) == [row[0][0] for row in expected]
    assert declarations(engine) == declarations(translator)  # one declaration: names, inputs, rows, limits
    # without the rescoring pass: the same texts, the search's scores (suppressed tokens renormalized away)
    fast = CTranslate2Translator(engine_path, exact_scores=False).translate_n_best(SENTENCES)
    assert [row[0][0] for row in fast] == [row[0][0] for row in expected]
    difference = np.array([f[0][1] for f in fast]) - np.array([e[0][1] for e in expected])
    assert np.all(difference >= -1e-3) and np.abs(difference).max() < 0.05 * np.abs([e[0][1] for e in expected]).max()


def test_beam_and_sampling_return_n_best_in_score_order(engine_path, random_run):
    options = dataclasses.replace(RUN_DECODING, strategy="beam", beam_size=2, num_hypotheses=2, length_penalty=0.6,
                                  max_length=12)
    engine = CTranslate2Translator(engine_path, decoding=options)
    found = engine.translate_n_best(SENTENCES)
    assert all(len(row) == 2 for row in found) and found[2] == [("", 0.0)] * 2
    for row in found:
        assert row[0][1] >= row[1][1]
    assert sum(row[0][0] != row[1][0] for row in found) >= 5
    # tflm's beam search of the same model: its best hypothesis is the engine's for most sentences, and the
    # engine's scores are tflm's GNMT-normalized scores of its hypotheses
    expected = Translator.from_run_dir(random_run, decoding=options).translate_n_best(SENTENCES)
    same = [f[0][0] == e[0][0] for f, e in zip(found, expected)]
    assert sum(same) >= 6, (found, expected)
    np.testing.assert_allclose([f[0][1] for f, s in zip(found, same) if s],
                               [e[0][1] for e, s in zip(expected, same) if s], rtol=1e-4, atol=1e-4)
    sampled = CTranslate2Translator(engine_path, decoding=DecodingOptions(strategy="sample", num_hypotheses=2,
                                                                          top_k=5))
    samples = sampled.translate_n_best(SENTENCES[:2])
    assert all(len(row) == 2 and row[0][1] >= row[1][1] for row in samples)


def test_int8_weights_decode_as_float32_nearly_does(random_run, engine_path, tmp_path):
    # the same greedy translations of most sentences, scores within INT8_SCORE_TOLERANCE (relative), both
    # for weights quantized at conversion and a float32 export quantized as it loads
    reference = load_engine(engine_path).translate_n_best(SENTENCES)
    assert len({row[0][0] for row in reference}) >= 4  # distinct outputs: the comparison can fail
    int8 = convert_run(random_run, str(tmp_path / "int8"), quantization="int8")
    for engine in (load_engine(int8), load_engine(engine_path, compute_type="int8")):
        found = engine.translate_n_best(SENTENCES)
        same = [f[0][0] == r[0][0] for f, r in zip(found, reference)]
        differences = [abs(f[0][1] - r[0][1]) / abs(r[0][1])
                       for f, r, s in zip(found, reference, same) if s and r[0][1]]
        print(f"int8 ({engine.compute_type}): {sum(same)}/{len(same)} greedy translations as float32's, relative "
              f"score differences up to {max(differences):.4f}")
        assert sum(same) >= 6, (found, reference)
        assert max(differences) < INT8_SCORE_TOLERANCE, differences


def test_gpt_generation_is_tflms(gpt_run):
    path = convert_run_cached(gpt_run)
    metadata = json.load(open(os.path.join(path, METADATA_FILE)))
    assert metadata["separator"] == {"id": 4, "piece": "\n"} and metadata["max_sequence_length"] == 24
    assert metadata["max_new_tokens"] == 12
    generator = language_modeling.Generator.from_run_dir(gpt_run)
    engine = load_engine(path)
    assert isinstance(engine, CTranslate2Generator)
    assert declarations(engine) == declarations(generator)
    # the longest prompt (20 tokens) + 12 new ones exceed the model's 24 positions: both refuse it, alike
    from tflm.serving.errors import graph_error_message

    with pytest.raises(tf.errors.InvalidArgumentError) as refused_by_graph:
        generator.generate(PROMPTS)
    with pytest.raises(tf.errors.InvalidArgumentError) as refused_by_engine:
        engine.generate(PROMPTS)
    message = graph_error_message(refused_by_graph.value.message)
    assert message == graph_error_message(refused_by_engine.value.message)
    assert "a prompt of 20 tokens + max_new_tokens 12 = 32 exceeds the model's context of 24 tokens" in message
    # with truncate, each prompt keeps its last 12 tokens, alike; one batch, as tflm's
    generator = language_modeling.Generator(generator.model, generator.tokenizer, generator.decoding, truncate=True)
    engine.truncate = True
    expected = generator.generate(PROMPTS)
    assert engine.generate(PROMPTS) == expected
    assert len({row[0] for row in expected}) == len(PROMPTS)
    graph = generator.generate_batch(tf.constant(PROMPTS))
    served = engine.run("serving_default", {"prompt": np.array([p.encode() for p in PROMPTS], dtype=object)})
    assert served["outputs"].shape == (len(PROMPTS), 1)
    assert [t.decode() for t in served["outputs"][:, 0]] == [row[0] for row in expected]
    np.testing.assert_allclose(served["scores"], np.asarray(graph["scores"]), rtol=1e-4, atol=1e-4)
    scored = engine.run("score", {"text": np.array([b"It is the sun.", b""], dtype=object)})
    reference = generator.score_batch(tf.constant(["It is the sun.", ""]))
    np.testing.assert_allclose(scored["log_prob"], np.asarray(reference["log_prob"]), rtol=1e-4, atol=1e-4)
    assert list(scored["tokens"]) == list(np.asarray(reference["tokens"]))


def _cli(*arguments):
    return CliRunner().invoke(main, list(arguments), catch_exceptions=False)


def test_the_cli_decodes_with_ctranslate2_as_with_tensorflow(random_run, gpt_run, tmp_path):
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(SENTENCES) + "\n")
    tensorflow = _cli("translate", "--run-dir", random_run, "-i", str(inputs))
    engine = _cli("translate", "--run-dir", random_run, "-i", str(inputs), "--engine", "ctranslate2")
    assert tensorflow.exit_code == 0 and engine.exit_code == 0, engine.output
    assert engine.output.splitlines() == tensorflow.output.splitlines() and len(engine.output.splitlines()) == 8
    # the conversion is cached in the run, and done again once the checkpoint is newer
    cache = os.path.join(random_run, "ctranslate2", "best", METADATA_FILE)
    converted = os.path.getmtime(cache)
    assert convert_run_cached(random_run) and os.path.getmtime(cache) == converted
    later = time.time() + 5
    for name in os.listdir(os.path.join(random_run, "checkpoints", "best")):
        os.utime(os.path.join(random_run, "checkpoints", "best", name), (later, later))
    n_best = _cli("translate", "--run-dir", random_run, "--engine", "ctranslate2", "--compute-type", "int8",
                  "--beam-size", "2", "--num-hypotheses", "2", "Good morning.", "Who drove?")
    assert n_best.exit_code == 0, n_best.output
    assert os.path.getmtime(cache) > converted
    rows = [line.split("\t") for line in n_best.output.splitlines()]
    assert [r[0] for r in rows] == ["0", "0", "1", "1"] and float(rows[0][1]) >= float(rows[1][1])
    generated = _cli("generate", "--run-dir", gpt_run, "--engine", "ctranslate2", "--truncate-prompt", *PROMPTS[:3])
    expected = _cli("generate", "--run-dir", gpt_run, "--no-stream", "--truncate-prompt", *PROMPTS[:3])
    assert generated.exit_code == 0 and generated.output == expected.output
    assert len(generated.output) > len("\n".join(PROMPTS[:3])) + 10


def test_the_cli_refuses_what_ctranslate2_cannot_decode(random_run, tmp_path):
    run_dir = tmp_path / "lstm-run"
    shutil.copytree(os.path.join(random_run, "vocab"), run_dir / "vocab")
    config = json.load(open(os.path.join(random_run, "config.json")))
    config["model"] = {"type": "lstm", "preset": "tiny", "params": {}}
    (run_dir / "config.json").write_text(json.dumps(config))
    refused = CliRunner().invoke(main, ["translate", "--run-dir", str(run_dir), "--engine", "ctranslate2", "Hi."])
    assert refused.exit_code == 1
    assert "'lstm' model" in refused.output and "--engine tensorflow" in refused.output, refused.output
    assert not os.path.exists(run_dir / "ctranslate2" / "best")
    server = CliRunner().invoke(main, ["translate", "--server", "localhost:1", "--model", "x", "--engine",
                                       "ctranslate2", "Hi."])
    assert server.exit_code == 2 and "--engine ctranslate2" in server.output


# ----------------------------------------------------------------------------------------- summarization

WORDS = ("the cat sat on a mat and dog ran to park with red ball under old tree by river bank near house in "
         "town where people walk every day").split()
DOCUMENTS = ["the cat sat on a mat and the dog ran to the park", "a red ball under the old tree",
             "people walk by the river bank every day", "the house in town"]


@pytest.fixture(scope="module")
def summary_run(tmp_path_factory):
    """A tiny Transformer summarization run with random weights over a word vocabulary (one piece per word, so
    a summary's words are its pieces), whose last layer norm is shifted toward EOS: without `min_length` every
    summary ends at once, and with EOS banned the model repeats itself."""
    from tflm.tasks import summarization
    from tflm.text import SPECIAL_TOKENS, WordPieceTokenizer

    run_dir = str(tmp_path_factory.mktemp("ct2-summaries") / "run")
    os.makedirs(os.path.join(run_dir, "vocab"))
    tokenizer = WordPieceTokenizer(list(SPECIAL_TOKENS) + ["\u2581" + word for word in WORDS])
    for name in ("source", "target"):
        tokenizer.save(os.path.join(run_dir, "vocab", f"{name}.vocab"))
    config = summarization.SummarizationConfig(
        data=summarization.SummarizationDataConfig(dataset=None, data_dir=run_dir, max_source_length=32),
        vocabulary=summarization.SummarizationVocabularyConfig(type="wordpiece", size=len(WORDS) + 4),
        model=summarization.ModelConfig(type="transformer", preset="tiny", params={"dropout": 0.0}),
        decoding=DecodingOptions(strategy="greedy", max_length=12, max_length_a=0.0, max_length_b=0))
    config_lib.save_file(config, os.path.join(run_dir, "config.json"))
    task = get_task("summarization")
    keras.utils.set_random_seed(5)
    model = task.build_model(task.load_config(run_dir), task.load_tokenizers(run_dir))
    decoder = model.decoder
    last = decoder.norm if decoder.normalize_first else decoder.blocks[-1].feedforward_norm
    eos = np.asarray(decoder.embedding.embeddings)[EOS_ID]
    last.beta.assign(np.asarray(last.beta) + 40.0 * eos / np.dot(eos, eos))  # + 40 to EOS's logit
    manager = tf.train.CheckpointManager(model_checkpoint(model), os.path.join(run_dir, "checkpoints", "best"),
                                         max_to_keep=1, checkpoint_name="best")
    manager.save(checkpoint_number=1)
    return run_dir


@pytest.fixture(scope="module")
def summary_engines(summary_run):
    """(the CTranslate2 engine, the in-memory `Summarizer`) of `summary_run`."""
    from tflm.tasks.summarization import Summarizer

    return load_engine(convert_run_cached(summary_run)), Summarizer.from_run_dir(summary_run)


SUMMARY_CONTROLS = {"beam_size": 1, "num_hypotheses": 1, "max_length": 12, "length_penalty": 0.0, "temperature": 0.0,
                    "top_k": 0, "top_p": 1.0, "seed": 0, "min_length": 0, "no_repeat_ngram_size": 0}


def summarize(engine, summarizer, **controls):
    """The `summarize` signature's summaries (lists of words) by the engine and by the in-memory
    `Summarizer`'s own signature (what its SavedModel exports), asserted equal, with their scores."""
    inputs = dict(SUMMARY_CONTROLS, **controls)
    found = engine.run("summarize", {"text": np.array([d.encode() for d in DOCUMENTS], dtype=object), **{
        key: np.asarray(value, np.float32 if isinstance(value, float) else np.int32) for key, value in inputs.items()}})
    signature = summarizer.signatures()[1]
    expected = signature.function(text=tf.constant(DOCUMENTS), **{
        key: tf.constant(value, signature.inputs[key].dtype) for key, value in inputs.items()})
    texts = [[t.decode() for t in row] for row in found["outputs"]]
    assert texts == [[t.decode() for t in row] for row in np.asarray(expected["outputs"])], inputs
    np.testing.assert_allclose(found["scores"], np.asarray(expected["scores"]), rtol=1e-4, atol=1e-4)
    return [row[0].split() for row in texts]


def repeated_bigrams(words):
    bigrams = list(zip(words, words[1:]))
    return {bigram for bigram in bigrams if bigrams.count(bigram) > 1}


def test_the_summarize_signature_is_the_summarizers(summary_engines):
    engine, summarizer = summary_engines
    assert declarations(engine) == declarations(summarizer)
    summarize = engine.signature("summarize")
    assert list(summarize.inputs)[-2:] == ["min_length", "no_repeat_ngram_size"] and summarize.row_name == "document"


def test_ctranslate2_summaries_respect_min_length_as_tflms(summary_engines):
    engine, summarizer = summary_engines
    unconstrained = summarize(engine, summarizer)
    assert all(len(words) < 5 for words in unconstrained), unconstrained  # the control: EOS comes at once
    at_least = summarize(engine, summarizer, min_length=5)
    assert all(len(words) >= 5 for words in at_least), at_least


def test_ctranslate2_summaries_block_repeated_bigrams_as_tflms(summary_engines):
    engine, summarizer = summary_engines
    repeating = summarize(engine, summarizer, min_length=12)  # EOS banned: the model repeats itself
    assert all(len(words) == 12 for words in repeating), repeating
    assert any(repeated_bigrams(words) for words in repeating), repeating  # the control: the check can fail
    blocked = summarize(engine, summarizer, min_length=12, no_repeat_ngram_size=2)
    assert all(len(words) == 12 and not repeated_bigrams(words) for words in blocked), blocked
    assert blocked != repeating


# ----------------------------------------------------------------------------------------- serving


@pytest.fixture(scope="module")
def served(random_run, tmp_path_factory):
    """One server with the random run as a SavedModel ("saved") and as a CTranslate2 export ("ct2")."""
    from tflm.export import export_run
    from tflm.serving import Server

    base = str(tmp_path_factory.mktemp("ct2-serve") / "models")
    export_run(random_run, "saved", base, check=False)
    convert_run(random_run, os.path.join(base, "ct2", "1"))
    server = Server(base, rest_port=0, grpc_port=0, max_batch_size=8, batch_timeout_ms=5, poll_seconds=0).start()
    yield server
    server.stop()


def rest(server, method, path, payload=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=120)
    connection.request(method, path, body=json.dumps(payload).encode() if payload is not None else None,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


CONTROLS = {"beam_size": 1, "num_hypotheses": 1, "max_length": 12, "length_penalty": 0.6, "temperature": 0.0,
            "top_k": 0, "top_p": 1.0, "seed": 0}


def test_a_ctranslate2_export_answers_rest_and_grpc_as_the_saved_model(served):
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    answers = {}
    for name in ("saved", "ct2"):
        status, body = rest(served, "GET", f"/v1/models/{name}")
        assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE", body
        status, default = rest(served, "POST", f"/v1/models/{name}:predict", {"instances": SENTENCES})
        assert status == 200, default
        status, controlled = rest(served, "POST", f"/v1/models/{name}:predict",
                                  {"signature_name": "translate", "inputs": dict(CONTROLS, text=SENTENCES)})
        assert status == 200, controlled
        status, metadata = rest(served, "GET", f"/v1/models/{name}/metadata")
        answers[name] = default, controlled, metadata["metadata"]["signature_def"]["signature_def"]
        tokenized = rest(served, "POST", f"/v1/models/{name}:predict",
                         {"signature_name": "tokenize", "inputs": {"text": SENTENCES}})
        detokenized = rest(served, "POST", f"/v1/models/{name}:predict",
                           {"signature_name": "detokenize",
                            "inputs": {"token_ids": [[5, 6, 7, 3, 0], [8, 9, 0, 0, 0]]}})
        answers[name, "tokens"] = tokenized, detokenized
    (saved_default, saved_controlled, saved_defs), (default, controlled, defs) = answers["saved"], answers["ct2"]
    assert [p["outputs"] for p in default["predictions"]] == [p["outputs"] for p in saved_default["predictions"]]
    assert default["predictions"][2] == {"outputs": "", "scores": 0.0}
    np.testing.assert_allclose([p["scores"] for p in default["predictions"]],
                               [p["scores"] for p in saved_default["predictions"]], rtol=1e-4, atol=1e-4)
    assert controlled["outputs"]["outputs"] == saved_controlled["outputs"]["outputs"]
    assert np.asarray(controlled["outputs"]["scores"]).shape == (len(SENTENCES), 1)
    assert set(defs) == set(saved_defs) == {"serving_default", "translate", "tokenize", "detokenize", "score"}
    assert answers["ct2", "tokens"] == answers["saved", "tokens"]  # tokenize and detokenize: status and answer
    assert answers["ct2", "tokens"][0][0] == 200 and answers["ct2", "tokens"][0][1]["outputs"]["lengths"][0] > 0
    for name, definition in defs.items():
        for kind in ("inputs", "outputs"):
            shapes = {key: (info["dtype"], info["tensor_shape"]) for key, info in definition[kind].items()}
            assert shapes == {key: (info["dtype"], info["tensor_shape"])
                              for key, info in saved_defs[name][kind].items()}, (name, kind)
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        outputs = {}
        for name in ("saved", "ct2"):
            request = predict_pb2.PredictRequest(model_spec={"name": name})
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(SENTENCES))
            response = stub.Predict(request, timeout=120)
            outputs[name] = {key: tf.make_ndarray(value) for key, value in response.outputs.items()}
        assert list(outputs["ct2"]["outputs"]) == list(outputs["saved"]["outputs"])
        assert outputs["ct2"]["scores"].dtype == np.float32
        np.testing.assert_allclose(outputs["ct2"]["scores"], outputs["saved"]["scores"], rtol=1e-4, atol=1e-4)
        metadata = stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec={"name": "ct2"}, metadata_field=["signature_def"]), timeout=30)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        metadata.metadata["signature_def"].Unpack(signatures)
        assert {"serving_default", "translate", "score"} <= set(signatures.signature_def)


def test_bad_controls_are_refused_as_the_saved_model_refuses_them(served):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    for control, value, message in [
            ("beam_size", 0, "beam_size = 0 is out of range: allowed 1 to 16 (max_beam_size, set at export)"),
            ("beam_size", 17, "beam_size = 17 is out of range: allowed 1 to 16"),
            ("num_hypotheses", 2, "num_hypotheses = 2 exceeds beam_size = 1"),
            ("top_p", 0.0, "top_p = 0 is out of range: allowed greater than 0 and at most 1")]:
        errors = []
        for name in ("saved", "ct2"):
            inputs = dict(CONTROLS, text=["Hi."], **{control: value})
            status, body = rest(served, "POST", f"/v1/models/{name}:predict",
                                {"signature_name": "translate", "inputs": inputs})
            assert status == 400 and message in body["error"], (name, body)
            errors.append(body["error"].split(" (request id")[0])
        assert errors[0] == errors[1]
        status, body = rest(served, "POST", "/v1/models/ct2:predict",
                            {"signature_name": "translate", "inputs": dict(CONTROLS, text=["Hi."])})
        assert status == 200 and len(body["outputs"]["outputs"]) == 1
    request = predict_pb2.PredictRequest(model_spec={"name": "ct2", "signature_name": "translate"})
    for name, value in dict(CONTROLS, beam_size=0, text=["Hi."]).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=tf.string if name == "text" else (
            tf.float32 if isinstance(CONTROLS[name], float) else tf.int32)))
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "beam_size = 0 is out of range: allowed 1 to 16" in error.value.details()


def test_a_broken_ctranslate2_version_is_reported_and_the_previous_one_keeps_serving(served):
    base = served.base_dir
    broken = os.path.join(base, "ct2", "2")
    shutil.copytree(os.path.join(base, "ct2", "1"), broken)
    with open(os.path.join(broken, "model.bin"), "wb") as f:
        f.write(b"not a model")
    served.core.repository.refresh()
    status, body = rest(served, "GET", "/v1/models/ct2")
    states = {s["version"]: s for s in body["model_version_status"]}
    assert states["2"]["state"] == "END" and states["2"]["status"]["error_message"], body
    assert states["1"]["state"] == "AVAILABLE"
    status, body = rest(served, "POST", "/v1/models/ct2:predict", {"instances": ["Good morning."]})
    assert status == 200 and body["predictions"][0]["outputs"]
