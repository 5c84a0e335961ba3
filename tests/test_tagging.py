"""The tagging task end to end: a label per word from the first piece of each word, trained from scratch and from
a pretrained encoder, evaluated with the scores of its scheme, exported (words and labels out, a length per row),
checked through TF Serving's loader, and served with the same answers under concurrent batched requests."""

import concurrent.futures
import json
import random
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from tflm.data.punctuation import derive_corpus, restore
from tflm.data.tagging import write_conll
from tflm.tasks import Run, get_task

NAMES = ["tom", "mary", "paris", "london"]
WORDS = "is was here there big small red blue at home with the a dog cat".split()
TINY_BERT = {"num_layers": 1, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64, "max_sequence_length": 64}


def sentence(rng):
    """A line whose case and punctuation follow from its words: names and the first word capitalised, a question
    after where/what, a comma after yes/no, "ok" upper-cased."""
    first = rng.choice(["where", "what", "yes", "no", "the", "ok"])
    words = [rng.choice(NAMES if rng.random() < 0.3 else WORDS) for _ in range(rng.randint(2, 6))]
    text = [first.upper() if first == "ok" else first.capitalize()]
    if first in ("yes", "no"):
        text[0] += ","
    text += [w.capitalize() if w in NAMES else w for w in words]
    return " ".join(text) + ("?" if first in ("where", "what") else ".")


def write_corpus(directory):
    for split, count, seed in (("train", 400, 1), ("valid", 40, 2), ("test", 60, 3)):
        rng = random.Random(seed)
        data, dropped = derive_corpus([sentence(rng) for _ in range(count)])
        assert dropped == 0
        write_conll(str(directory / f"{split}.conll"), data)


def config_for(directory, **changes):
    values = {"data": {**{f"{s}_file": str(directory / f"{s}.conll") for s in ("train", "valid", "test")},
                       "scheme": "tokens", "max_length": 24, "batch_size": 16},
              "vocabulary": {"size": 200}, "model": {"type": "bert", "params": {**TINY_BERT, "dropout": 0.0}},
              "training": {"epochs": None, "max_steps": 150, "learning_rate": 3e-3, "warmup_steps": 10,
                           "checkpoint_every_seconds": None}}
    for key, value in changes.items():
        values[key] = {**values.get(key, {}), **value}
    return get_task("tagging").config_from_dict(values)


@pytest.fixture(scope="module")
def tagging_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("punct")
    write_corpus(directory)
    run_dir = directory / "run"
    get_task("tagging").train(config_for(directory), str(run_dir), verbose=False)
    return run_dir



@pytest.fixture(scope="module")
def exported(tagging_run, tmp_path_factory):
    """`(base_dir, version path)`: the run exported once, checked through TF Serving's TF1 session loader."""
    from tflm.export import export_run

    base_dir = tmp_path_factory.mktemp("export")
    path = export_run(Run.open(str(tagging_run)), "punct", base_dir=str(base_dir), check=True, check_sentences=4)
    return base_dir, path

def test_a_tagger_learns_the_punctuation_and_case_of_its_words(tagging_run):
    scores = Run.open(str(tagging_run)).evaluate("test")
    assert scores["scheme"] == "tokens" and scores["untagged_words"] == 0
    assert scores["f1"] > 80 and scores["accuracy"] > 90, scores  # (the labels follow from the words)
    assert {"C", "C.", "C,", "U"} <= set(scores["per_label"])
    assert set(scores["families"]) == {"case", "punctuation"}
    # the predictions, written as the labels of each test sentence, rebuild most of the text
    run = Run.open(str(tagging_run))
    predicted = open(str(tagging_run / "eval" / "test.best.hyp")).read().splitlines()
    from tflm.data.tagging import read_conll

    test = read_conll(str(tagging_run.parent / "test.conll"))
    rebuilt = [restore(words, labels.split()) for words, labels in zip(test.words, predicted)]
    truth = [restore(words, labels) for words, labels in zip(test.words, test.labels)]
    assert sum(a == b for a, b in zip(rebuilt, truth)) >= 0.7 * len(truth)
    assert run.tokenizers["labels"] == sorted(run.tokenizers["labels"])


def test_a_word_split_into_many_pieces_gets_one_label(tagging_run):
    tagger = Run.open(str(tagging_run)).load_predictor("best")
    candidates = ["smallbluedogcat", "bigredhomethere", "wherewasthecat"]  # unseen words of known parts
    pieces = {word: len(tagger.tokenizer.tokenize(tf.constant([word]))[0]) for word in candidates}
    long_word = max(pieces, key=pieces.get)
    assert pieces[long_word] > 3, pieces
    answer = tagger.predict([f"where is {long_word} tom", "", "ok"])
    assert answer[0]["words"] == ["where", "is", long_word, "tom"] and len(answer[0]["labels"]) == 4
    assert answer[1] == {"words": [], "labels": [], "scores": [], "lengths": 0}
    assert answer[2]["words"] == ["ok"] and len(answer[2]["labels"]) == 1
    # words past max_length pieces (24, [CLS] and [SEP] included) are not tagged, and the length says so
    many = " ".join(["dog"] * 40)
    assert tagger.predict([many])[0]["lengths"] == 22


def test_the_export_gives_the_in_memory_tags_and_passes_the_tf1_loader(tagging_run, exported):
    from tflm.export import load

    run = Run.open(str(tagging_run))
    path = exported[1]
    sentences = ["where is tom", "yes mary is at home with the dog", "", "ok " + " ".join(["cat"] * 30)]
    expected = run.load_predictor("best").predict(sentences)
    answer = load(path)(sentences)
    for row, wanted in enumerate(expected):
        length = int(answer["lengths"][row])
        assert length == wanted["lengths"]
        assert [w.decode() for w in answer["words"][row][:length]] == wanted["words"]
        assert [t.decode() for t in answer["labels"][row][:length]] == wanted["labels"]
        np.testing.assert_allclose(answer["scores"][row][:length], wanted["scores"], atol=1e-5)


def test_served_tags_are_the_same_under_concurrent_batched_requests(tagging_run, exported):
    from tflm.serving import Server

    run = Run.open(str(tagging_run))
    tmp_path = exported[0]
    sentences = ["where is tom", "no the cat is big", "ok", "what was here with mary at london", "the dog"]
    expected = run.load_predictor("best").predict(sentences)
    server = Server(str(tmp_path), rest_port=0, grpc_port=0, max_batch_size=8, batch_timeout_ms=20).start()
    try:
        def ask(rows):
            body = json.dumps({"instances": rows}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/punct:predict", body,
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["predictions"]

        requests = [sentences[i:i + 2] for i in range(len(sentences))] * 3
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(ask, requests))
        assert server.core.batcher.batches < len(requests)  # (requests were batched together)
        for rows, predictions in zip(requests, answers):
            for text, prediction in zip(rows, predictions):
                wanted = expected[sentences.index(text)]
                length = prediction["lengths"]  # (a request's rows are padded to its own longest row)
                assert prediction["labels"][:length] == wanted["labels"]
                assert prediction["words"][:length] == wanted["words"]
                assert set(prediction["labels"][length:]) <= {""}
        # tflm tag asks the server (gRPC) and the run alike; --restore rebuilds the text from the labels
        from click.testing import CliRunner

        from tflm.cli import main

        for where in (["--server", f"127.0.0.1:{server.grpc_port}", "--model", "punct", "--protocol", "grpc"],
                      ["--run-dir", str(tagging_run)]):
            result = CliRunner().invoke(main, ["tag", *where, "--json", *sentences[:2]])
            assert result.exit_code == 0, result.output
            lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
            assert [line["labels"] for line in lines] == [e["labels"] for e in expected[:2]]
        result = CliRunner().invoke(main, ["tag", "--run-dir", str(tagging_run), "--restore", sentences[0]])
        assert result.output.strip().splitlines()[-1] == restore(expected[0]["words"], expected[0]["labels"])
    finally:
        server.stop()


def test_bio_entities_from_a_pretrained_encoder_in_any_label_column(tmp_path):
    """A BIO run reading the label from the middle column, fine-tuned from a keras-hub folder (the encoder's
    weights exactly), scored at the entity level."""
    import keras_hub

    from tflm.models.hub import load_hub_encoder

    rng = random.Random(5)
    for split, count in (("train", 200), ("valid", 30), ("test", 30)):
        with open(tmp_path / f"{split}.conll", "w") as f:
            for _ in range(count):
                for word in [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]:
                    if word in ("tom", "mary") or rng.random() < 0.2:
                        f.write("tom NNP B-PER x\nsmith NNP I-PER x\n")
                    f.write(f"{word} NN O x\n")
                f.write("\n")
    preset = tmp_path / "preset"
    backbone = keras_hub.models.BertBackbone(60, 1, 2, 16, 32, max_sequence_length=32)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS) | {"tom", "smith", "nn"}),
                  "##s", "##m"]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
    backbone.save_to_preset(str(preset))
    tokenizer.save_to_preset(str(preset))
    task = get_task("tagging")
    config = config_for(tmp_path, data={"scheme": "bio", "label_column": 2}, model={"params": {"dropout": 0.0}},
                        init={"from_preset": str(preset)}, training={"max_steps": 60})
    from tflm.tasks import runs

    run_dir = str(tmp_path / "run")
    config = runs.start_run(config, run_dir)
    data = task.prepare_data(config, run_dir)
    trainer = task.build_trainer(config, run_dir, data, verbose=False)
    task.training_data(config, data, trainer.model)
    source = load_hub_encoder(str(preset))[0].get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(source, trainer.model.encoder.backbone.get_weights()))
    trainer.fit(data.train_dataset, max_steps=60, valid_data=data.valid, steps_per_epoch=data.steps_per_epoch)
    scores = task.evaluate(run_dir, "test")
    assert scores["scheme"] == "bio" and set(scores["per_label"]) == {"PER"}
    assert scores["f1"] > 80, scores


def test_bad_tagging_input_is_one_clear_error(tmp_path):
    write_corpus(tmp_path)
    with open(tmp_path / "valid.conll", "a") as f:
        f.write("\nzebra Q!\n")  # a label training never saw
    with pytest.raises(ValueError, match=r"valid\.conll.*'Q!'.*training split"):
        get_task("tagging").train(config_for(tmp_path, training={"max_steps": 1}), str(tmp_path / "run"),
                                  verbose=False)
    from tflm.config import ConfigError

    with pytest.raises(ConfigError, match="data.derive"):
        config_for(tmp_path, data={"derive": "nouns", "dataset": "tatoeba-es-en"})
    with pytest.raises(ConfigError, match="model.type='cnn' gives one vector per text"):
        config_for(tmp_path, model={"type": "cnn", "params": {}})
    assert Run.open(str(tmp_path / "run")).task.name == "tagging"  # (the failed run is still there to fix)


@pytest.mark.parametrize("encoder", ["bilstm", "transformer", "gpt"])
def test_any_encoder_with_a_state_per_token_tags_from_each_words_first_piece(encoder):
    from tflm.models.token_models import TokenTagger

    params = {"bilstm": {"hidden_dim": 8}, "transformer": {"num_layers": 1, "num_heads": 2, "hidden_dim": 16},
              "gpt": {"hidden_dim": 16, "intermediate_dim": 32, "num_heads": 2, "num_layers": 1}}[encoder]
    extra = {} if encoder == "gpt" else {"embedding_dim": 16}
    model = TokenTagger(30, 5, encoder=encoder, encoder_params=params, dropout=0.0, **extra)
    inputs = {"token_ids": np.array([[2, 7, 8, 9, 10, 3, 0]]), "segment_ids": np.zeros([1, 7], "int32"),
              "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 0]]), "word_starts": np.array([[1, 4, 5]])}
    logits = np.asarray(model(inputs))
    assert logits.shape == (1, 3, 5)
    states = np.asarray(model.states(inputs))
    np.testing.assert_allclose(logits[0], np.asarray(model.labels(states[0, [1, 4, 5]])), atol=1e-5)
