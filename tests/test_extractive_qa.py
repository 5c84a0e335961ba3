"""The extractive-QA task end to end on a SQuAD v2.0-format fixture: long contexts read in windows, answers that
are the context's own characters (non-ASCII included), "no answer", SQuAD's exact match and F1, the export giving
the in-memory answers through TF Serving's loader, the same answers under concurrent batched requests, and
`tflm answer` from a run and from a server."""

import concurrent.futures
import json
import random

import pytest
from click.testing import CliRunner

from tflm.cli import main
from tflm.data.squad import QAExample, write_squad
from tflm.tasks import Run, get_task

FILLER = "the a of and to in was for on with as at by it this that from or an be are old new".split()
KEYS = ["Zürich", "café", "Paris", "blue", "river", "seven", "tower", "Oslo"]
TINY_BERT = {"num_layers": 1, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64, "max_sequence_length": 64}


def example(rng, index):
    """A context of filler with "the key is X ." somewhere (or no key at all: unanswerable)."""
    words = rng.choices(FILLER, k=rng.randint(10, 40))
    answerable = rng.random() < 0.8
    key = rng.choice(KEYS)
    if answerable:
        at = rng.randint(0, len(words))
        words[at:at] = ["the", "key", "is", key, "."]
    context = " ".join(words)
    answers = [{"text": key, "answer_start": context.index(f"key is {key}") + 7}] if answerable else []
    return QAExample(id=f"q{index}", title="keys", question="what is the key ?", context=context, answers=answers,
                     is_impossible=not answerable)


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("qa")
    for split, count, seed in (("train", 300, 1), ("valid", 30, 2), ("test", 40, 3)):
        rng = random.Random(seed)
        write_squad(str(directory / f"{split}.json"), [example(rng, i) for i in range(count)])
    config = get_task("extractive_qa").config_from_dict({
        "data": {**{f"{s}_file": str(directory / f"{s}.json") for s in ("train", "valid", "test")},
                 "max_length": 32, "doc_stride": 8, "max_question_length": 8, "max_answer_length": 4,
                 "batch_size": 16},
        "vocabulary": {"size": 150}, "model": {"type": "bert", "params": {**TINY_BERT, "dropout": 0.0}},
        "training": {"epochs": None, "max_steps": 250, "learning_rate": 3e-3, "warmup_steps": 10,
                     "checkpoint_every_seconds": None}})
    run_dir = directory / "run"
    get_task("extractive_qa").train(config, str(run_dir), verbose=False)
    return run_dir



@pytest.fixture(scope="module")
def exported(qa_run, tmp_path_factory):
    """`(base_dir, version path)`: the run exported once, checked through TF Serving's TF1 session loader."""
    from tflm.export import export_run

    base_dir = tmp_path_factory.mktemp("export")
    path = export_run(Run.open(str(qa_run)), "qa", base_dir=str(base_dir), check=True, check_sentences=4)
    return base_dir, path

def test_a_span_extractor_finds_answers_and_says_when_there_is_none(qa_run):
    run = Run.open(str(qa_run))
    assert run.tokenizers["no_answer"] is True  # (the training set has unanswerable questions: SQuAD v2.0)
    scores = run.evaluate("test")
    assert scores["total"] == 40 and {"has_answer_f1", "no_answer_exact_match"} <= set(scores)
    assert scores["exact_match"] > 60 and scores["f1"] >= scores["exact_match"], scores
    answers = run.load_predictor("best").predict([
        {"question": "what is the key ?", "context": "it was old and the key is Zürich . the a of and to in for on "
                                                      "with as at by it this that from or an be are"},
        {"question": "what is the key ?", "context": ""}])
    found = answers[0]
    context = "it was old and the key is Zürich . the a of and to in for on with as at by it this that from or an be are"
    if found["answer"]:  # the answer is the context's own characters at its offsets
        assert context[found["start"]:found["end"]] == found["answer"]
    assert answers[1]["answer"] == "" and answers[1]["start"] == -1


def test_the_export_gives_the_in_memory_answers_and_passes_the_tf1_loader(qa_run, exported):
    from tflm.export import load

    run = Run.open(str(qa_run))
    path = exported[1]
    rows = [{"question": e.question, "context": e.context} for e in
            [example(random.Random(9), i) for i in range(5)]]
    expected = run.load_predictor("best").predict(rows)
    served = load(path).run("serving_default", question=[r["question"] for r in rows],
                              context=[r["context"] for r in rows])
    for index, wanted in enumerate(expected):
        assert served["answer"][index].decode() == wanted["answer"]
        assert int(served["start"][index]) == wanted["start"] and int(served["end"][index]) == wanted["end"]
        assert abs(float(served["score"][index]) - wanted["score"]) < 1e-3


def test_served_answers_are_the_same_under_concurrent_batched_requests(qa_run, exported):
    from tflm.serving import Server

    run = Run.open(str(qa_run))
    tmp_path = exported[0]
    rng = random.Random(11)
    rows = [{"question": e.question, "context": e.context} for e in [example(rng, i) for i in range(6)]]
    expected = run.load_predictor("best").predict(rows)
    server = Server(str(tmp_path), rest_port=0, grpc_port=0, max_batch_size=8, batch_timeout_ms=20).start()
    try:
        from tflm.serving.client import predict_rest

        requests = [rows[i:i + 2] for i in range(len(rows))] * 2
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda part: predict_rest(f"127.0.0.1:{server.rest_port}", "qa", part), requests))
        assert server.core.batcher.batches < len(requests)
        for part, predictions in zip(requests, answers):
            for row, prediction in zip(part, predictions):
                wanted = expected[rows.index(row)]
                assert (prediction["answer"], prediction["start"], prediction["end"]) == \
                    (wanted["answer"], wanted["start"], wanted["end"])
        # tflm answer asks the server (gRPC) and the run alike
        question, context = rows[0]["question"], rows[0]["context"]
        for where in (["--server", f"127.0.0.1:{server.grpc_port}", "--model", "qa", "--protocol", "grpc"],
                      ["--run-dir", str(qa_run)]):
            result = CliRunner().invoke(main, ["answer", *where, "--json", "-q", question, "-c", context])
            assert result.exit_code == 0, result.output
            line = json.loads(result.output.strip().splitlines()[-1])
            assert (line["answer"], line["start"], line["end"]) == (expected[0]["answer"], expected[0]["start"],
                                                                    expected[0]["end"])
    finally:
        server.stop()


def test_bad_qa_input_is_one_clear_error(tmp_path):
    from tflm.config import ConfigError

    with pytest.raises(ConfigError, match="doc_stride"):
        get_task("extractive_qa").config_from_dict({"data": {"train_file": "x.json", "max_length": 32,
                                                             "max_question_length": 8, "doc_stride": 40}})
    with pytest.raises(ConfigError, match="model.type='bilstm'"):
        get_task("extractive_qa").config_from_dict({"data": {"train_file": "x.json"}, "model": {"type": "bilstm"}})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [{
        "context": "the key is blue .", "qas": [{"id": "q1", "question": "what ?", "is_impossible": False,
                                                 "answers": [{"text": "blue", "answer_start": 3}]}]}]}]}))
    result = CliRunner().invoke(main, ["train", "--task", "extractive_qa", "--run-dir", str(tmp_path / "run"),
                                       "--set", f"data.train_file={bad}", "--set", f"data.valid_file={bad}"])
    assert result.exit_code != 0 and "q1" in result.output and "bad.json" in result.output, result.output
