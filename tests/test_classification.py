"""The classification task: labels (id 0 too), word vectors (exact rows, frozen tables, missing words), padding,
pairs, export parity, a user's encoder through the console script, and every bad-input case of the data."""

import dataclasses
import json
import logging
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tflm.cli import main
from tflm.layers import KimCNN, RecurrentSentenceEncoder, SequencePooling, TransformerSentenceEncoder
from tflm.tasks import Run, get_task
from tflm.text.word_vectors import load_vectors

PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins")
KEYWORDS = {"alpha": ["sun", "moon"], "beta": ["cat", "dog"], "gamma": ["red", "blue"]}  # alpha is class id 0
FILLER = "the a of and to in is was for on with as at by it this that from or an be are".split()
VECTORS = {"sun": [0.5, -0.25, 1.0, 0.125], "cat": [-1.5, 0.75, 0.0, 2.0], "red": [0.0, 0.0, -0.5, 0.25],
           "xylophone": [1.0, 1.0, 1.0, 1.0]}  # "moon", "dog", "blue" have no vector


def write_split(path, count, seed, pairs=False):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(count):
            label = rng.choice(sorted(KEYWORDS))
            words = rng.choices(FILLER, k=rng.randint(3, 9))
            words.insert(rng.randint(0, len(words)), rng.choice(KEYWORDS[label]))
            if pairs:  # the label is whether b names a's class
                same = rng.random() < 0.5
                other = rng.choice([k for k in KEYWORDS if k != label])
                b = " ".join(rng.choices(FILLER, k=3) + [rng.choice(KEYWORDS[label if same else other])])
                f.write(f"{' '.join(words)}\t{b}\t{'same' if same else 'different'}\n")
            else:
                f.write(f"{' '.join(words)}\t{label}\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keywords")
    for split, count, seed in (("train", 600, 1), ("valid", 90, 2), ("test", 90, 3)):
        write_split(directory / f"{split}.tsv", count, seed)
    with open(directory / "vectors.txt", "w") as f:
        for word, vector in VECTORS.items():
            f.write(word + " " + " ".join(str(v) for v in vector) + "\n")
    return directory


def files(corpus):
    return {f"{split}_file": str(corpus / f"{split}.tsv") for split in ("train", "valid", "test")}


def configure(overrides):
    task = get_task("classification")
    return task, task.config_from_dict(overrides)


def train(run_dir, corpus, model="cnn", params=None, vectors=None, steps=150, **data):
    task, config = configure({
        "data": {"dataset": None, **files(corpus), "batch_size": 32, **data},
        "vectors": vectors or {}, "model": {"type": model, "params": params or {}},
        "training": {"max_steps": steps, "epochs": None, "learning_rate": 0.01, "checkpoint_every_seconds": None}})
    task.train(config, str(run_dir), verbose=False)
    return task, config


@pytest.fixture(scope="module")
def cnn_run(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cnn") / "run"
    train(run_dir, corpus, params={"embedding_dim": 16, "filters": 8, "dropout": 0.2})
    return run_dir


def test_every_class_is_learned_class_id_0_like_the_others(cnn_run):
    run = Run.open(str(cnn_run))
    assert run.tokenizers["labels"] == ["alpha", "beta", "gamma"]  # sorted: alpha is id 0
    scores = run.evaluate("test")
    assert scores["accuracy"] >= 95.0, scores
    recalls = {label: values["recall"] for label, values in scores["per_class"].items()}
    assert recalls["alpha"] >= 90.0 and recalls["alpha"] >= min(recalls["beta"], recalls["gamma"]) - 10, recalls
    matrix = np.array(scores["confusion_matrix"]["matrix"])
    assert matrix.sum() == 90 and np.trace(matrix) == round(scores["accuracy"] * 90 / 100)
    assert os.path.exists(cnn_run / "eval" / "test.best.json") and os.path.exists(cnn_run / "eval" / "test.best.hyp")


def test_word_vectors_land_on_their_rows_a_frozen_table_stays_frozen_and_missing_words_are_reported(
        corpus, tmp_path, caplog):
    run_dir = tmp_path / "static"
    with caplog.at_level(logging.INFO, logger="tflm"):
        train(run_dir, corpus, vectors={"path": str(corpus / "vectors.txt"), "mode": "static"},
              params={"filters": 8}, steps=40)
    assert "vectors for 4 of 29 vocabulary words" in caplog.text and "training tokens; missing e.g." in caplog.text
    run = Run.open(str(run_dir))
    tokenizer = run.tokenizers["tokenizer"]
    assert "xylophone" in tokenizer.pieces  # a word of the vectors file that training never saw
    model = run.load_model("last")
    table = model.embedding.static_embeddings.numpy()
    assert model.embedding.embeddings is None and not model.embedding.static_embeddings.trainable
    for word, vector in VECTORS.items():
        np.testing.assert_array_equal(table[tokenizer.pieces.index(word)], np.float32(vector))
    # after 40 steps, the whole frozen table is still what the vectors file (and the seeded random rows) made it
    initial, coverage = load_vectors(str(corpus / "vectors.txt"), tokenizer.pieces, seed=run.config.training.seed)
    np.testing.assert_array_equal(table, initial)
    assert "moon" in coverage.missing and "sun" not in coverage.missing
    # a fine-tuned copy of the same vectors does move (the control)
    tuned_dir = tmp_path / "tuned"
    train(tuned_dir, corpus, vectors={"path": str(corpus / "vectors.txt"), "mode": "multichannel"},
          params={"filters": 8}, steps=40)
    tuned = Run.open(str(tuned_dir))
    model = tuned.load_model("last")
    assert not np.array_equal(model.embedding.embeddings.numpy(), model.embedding.static_embeddings.numpy())
    np.testing.assert_array_equal(model.embedding.static_embeddings.numpy(), initial)


@pytest.mark.parametrize("make", [lambda: KimCNN(filters=4), lambda: RecurrentSentenceEncoder(8, cell="lstm"),
                                  lambda: RecurrentSentenceEncoder(8, cell="gru"),
                                  lambda: TransformerSentenceEncoder(8, 16, 2, 1, dropout=0.0)],
                         ids=["cnn", "bilstm", "bigru", "transformer"])
def test_padding_never_changes_an_encoders_output(make):
    encoder, pooling = make(), SequencePooling("max")
    rng = np.random.default_rng(0)
    text = rng.normal(size=(1, 3, 6)).astype("float32")  # 3 tokens, shorter than some CNN filters
    longer = rng.normal(size=(1, 7, 6)).astype("float32")
    padded = np.concatenate([np.pad(text, [[0, 0], [0, 4], [0, 0]]), longer])
    mask = np.array([[True] * 3 + [False] * 4, [True] * 7])

    def encode(x, m):
        out = encoder(x, padding_mask=m)
        return pooling(out, padding_mask=m) if len(out.shape) == 3 else out

    alone, batched = encode(text, np.ones([1, 3], bool)), encode(padded, mask)[:1]
    np.testing.assert_allclose(alone, batched, atol=1e-5)
    # the control: what padding would change if it were read (embeddings left in the padded positions)
    noisy = padded.copy()
    noisy[0, 3:] = 5.0
    unmasked = encode(noisy, np.ones_like(mask))[:1]
    assert np.max(np.abs(unmasked - alone)) > 1e-3


def test_the_export_gives_the_in_memory_probabilities_and_a_classify_signature(cnn_run, tmp_path):
    from tflm.export import export_run, load
    from tflm.export.loading import saved_model_proto
    from tflm.tasks.predictor import serialize_examples

    run = Run.open(str(cnn_run))
    path = export_run(run, "keywords", base_dir=str(tmp_path), check=True, check_sentences=6)
    texts = ["the sun is red", "a dog", "", "and of the moon with a blue cat"]
    predictor = run.load_predictor("best")
    expected = predictor.predict_proba(texts)
    exported = load(path)
    answer = exported(texts)
    for row, text in enumerate(texts):
        ranked = dict(zip([c.decode() for c in answer["classes"][row]], answer["scores"][row]))
        for index, label in enumerate(predictor.labels):
            assert abs(ranked[label] - expected[row, index]) < 1e-5
        assert answer["label"][row].decode() == predictor.labels[int(np.argmax(expected[row]))]
    examples = serialize_examples({"text": texts})
    classified = exported.run("classify", inputs=examples)
    np.testing.assert_array_equal(classified["classes"], answer["classes"])
    np.testing.assert_allclose(classified["scores"], answer["scores"], atol=1e-6)
    signature = saved_model_proto(path).meta_graphs[0].signature_def["classify"]
    assert signature.method_name == "tensorflow/serving/classify" and list(signature.inputs) == ["inputs"]
    assert sorted(signature.outputs) == ["classes", "scores"]


def test_a_trained_classifier_served_answers_tflm_classify_through_rest_and_grpc(cnn_run, tmp_path):
    from tflm.export import export_run
    from tflm.serving import Server

    run = Run.open(str(cnn_run))
    export_run(run, "keywords", base_dir=str(tmp_path), check=False)
    texts = ["the sun is here", "a red one", "where is the dog"]
    expected = run.load_predictor("best").predict(texts)
    server = Server(str(tmp_path), rest_port=0, grpc_port=0, max_batch_size=8, batch_timeout_ms=5).start()
    try:
        for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
            code, output = run_cli("classify", "--server", f"127.0.0.1:{port}", "--model", "keywords", "--protocol",
                                   protocol, "--json", "-k", 3, *texts)
            assert code == 0, output
            answers = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
            assert [a["labels"] for a in answers] == [e["classes"] for e in expected]
            for answer, wanted in zip(answers, expected):
                np.testing.assert_allclose(answer["probabilities"], wanted["scores"], atol=1e-5)
    finally:
        server.stop()


@pytest.mark.parametrize("pair_mode", ["joint", "siamese"])
def test_sentence_pairs_joint_and_siamese(tmp_path, pair_mode):
    for split, count, seed in (("train", 500, 4), ("valid", 60, 5), ("test", 60, 6)):
        write_split(tmp_path / f"{split}.tsv", count, seed, pairs=True)
    task, config = train(tmp_path / "run", tmp_path, model="bigru", text_fields=["text_a", "text_b"], steps=120,
                         params={"pair_mode": pair_mode, "embedding_dim": 16, "hidden_dim": 16, "dropout": 0.1})
    run = Run.open(str(tmp_path / "run"))
    assert run.evaluate("test")["accuracy"] >= 75.0  # (chance: 50)
    answer = run.load_predictor("best").predict([{"text_a": "the sun", "text_b": "a moon"}])[0]
    assert answer["label"] in ("same", "different") and abs(sum(answer["scores"]) - 1) < 1e-5


def test_a_users_encoder_in_its_own_module_trains_through_the_console_script(corpus, tmp_path):
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([PLUGINS, os.environ.get("PYTHONPATH", "")]))

    def tflm(*args):
        return subprocess.run([sys.executable, "-m", "tflm", *map(str, args)], capture_output=True, text=True,
                              env=environment, timeout=600)

    run_dir = tmp_path / "run"
    trained = tflm("train", "--task", "classification", "--run-dir", run_dir, "--model", "mean_encoder:MeanEncoder",
                   "--max-steps", 120, "--learning-rate", 0.01, "--quiet",
                   *sum((["--set", f"data.{k}={v}"] for k, v in files(corpus).items()), []),
                   "--set", "data.dataset=null", "--set", "model.params.hidden_dim=16")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert json.loads((run_dir / "config.json").read_text())["model"]["type"] == "mean_encoder:MeanEncoder"
    answered = tflm("classify", "--run-dir", run_dir, "--json", "-k", 1, "the sun and the moon", "a dog and a cat")
    assert answered.returncode == 0, answered.stderr[-2000:]
    labels = [json.loads(line)["labels"][0] for line in answered.stdout.splitlines()]
    assert labels == ["alpha", "beta"]


def run_cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.mark.parametrize("case", ["unseen_label", "malformed_line", "empty_file", "unknown_encoder"])
def test_each_bad_input_gives_one_clear_line_and_the_next_command_works(corpus, tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid", "test"):
        (data / f"{split}.tsv").write_text((corpus / f"{split}.tsv").read_text())
    model = "cnn"
    if case == "unseen_label":
        (data / "valid.tsv").write_text((corpus / "valid.tsv").read_text() + "the sun\tdelta\n")
        expected = ["valid.tsv:91", "'delta'", "never occurs in the training data"]
    elif case == "malformed_line":
        lines = (corpus / "train.tsv").read_text().splitlines()
        lines[6] = "a line without its label"
        (data / "train.tsv").write_text("\n".join(lines) + "\n")
        expected = ["train.tsv:7"]
    elif case == "empty_file":
        (data / "train.tsv").write_text("")
        expected = ["train.tsv", "empty"]
    else:
        model = "no_such_module:Encoder"
        expected = ["no_such_module", "PYTHONPATH"]
    arguments = ["train", "--task", "classification", "--run-dir", tmp_path / "run", "--max-steps", 5,
                 "--set", "data.dataset=null", "--set", f"data.train_file={data / 'train.tsv'}",
                 "--set", f"data.valid_file={data / 'valid.tsv'}", "--set", "model.params.filters=4"]
    code, output = run_cli(*arguments, "--model", model)
    assert code != 0 and "Traceback" not in output, output
    message = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(message) == 1 and all(part in message[0] for part in expected), output
    for split in ("train", "valid"):  # fixed, the same command trains
        (data / f"{split}.tsv").write_text((corpus / f"{split}.tsv").read_text())
    code, output = run_cli(*arguments, "--model", "cnn")
    assert code == 0, output
