"""TF Serving's Classify API: a classify signature exported, checked through the TF1 session loader, and answered
by `tflm serve` (REST `:classify`, gRPC `Classify`) and its clients exactly as TF Serving answers it.

The classifier is built here by hand (a hashed bag of words -> 3 classes, untrained), so this file needs no
trained run."""

import base64
import http.client
import json
import os
import shutil

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

from tflm.export import export_predictor
from tflm.export.check import check_classify, classify_problems, run_tf1_requests, signature_requests
from tflm.export.loading import saved_model_proto
from tflm.serving import Server
from tflm.serving.client import ServingClientError, classify_grpc, classify_rest
from tflm.tasks import Predictor, Signature
from tflm.tasks.predictor import CLASSIFY_METHOD, example_input, parse_example_texts, text_input

LABELS = ["negative", "neutral", "positive"]
BUCKETS = 32
TEXTS = ["What a great film!", "It was dull and far too long.", "", "ok"]
PAIRS = [{"text_a": "A man plays a guitar.", "text_b": "Someone makes music."},
         {"text_a": "A man plays a guitar.", "text_b": "The cat sleeps."}]


class TinyClassifier(Predictor):
    """Hashed bag of words of each text -> dense -> 3 classes. `serving_default` (text(s) -> label, probability,
    classes, scores) and `classify` (serialized tf.Examples -> classes and scores, best first)."""

    def __init__(self, features=("text",), seed=0):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.layers.Input((BUCKETS * len(features),)), keras.layers.Dense(len(LABELS))])
        super().__init__(model)
        self.features = tuple(features)

    def tokenizers(self):
        return {}

    def probabilities(self, texts):
        bags = [tf.reduce_sum(tf.one_hot(tf.strings.to_hash_bucket_fast(tf.strings.split(text), BUCKETS), BUCKETS),
                              axis=1) for text in texts]
        return tf.nn.softmax(self.model(tf.concat(bags, -1)))

    def ranked(self, probabilities):
        order = tf.argsort(probabilities, direction="DESCENDING", stable=True)
        return {"classes": tf.gather(tf.constant(LABELS), order),
                "scores": tf.gather(probabilities, order, batch_dims=1)}

    def serve(self, **inputs):
        probabilities = self.probabilities([inputs[name] for name in self.features])
        return {"label": tf.gather(tf.constant(LABELS), tf.argmax(probabilities, -1)),
                "probability": tf.reduce_max(probabilities, -1), **self.ranked(probabilities)}

    def classify(self, inputs):
        texts = parse_example_texts(inputs, self.features)
        return self.ranked(self.probabilities([texts[name] for name in self.features]))

    def signatures(self):
        rows = self.features if len(self.features) > 1 else self.features[0]
        return [Signature("serving_default", self.serve, text_input(*self.features), rows=rows, row_name="text"),
                Signature("classify", self.classify, example_input(), rows=("inputs",), row_name="example",
                          method_name=CLASSIFY_METHOD, example_features=self.features)]


def expected(predictor, rows):
    """Per row, [(label, probability)] best first, from the in-memory predictor."""
    outputs = predictor.serving_default(rows)
    return [[(label.decode(), float(score)) for label, score in zip(outputs["classes"][i], outputs["scores"][i])]
            for i in range(len(rows))]


def assert_results(results, wanted):
    assert len(results) == len(wanted)
    for got, want in zip(results, wanted):
        assert [label for label, _ in got] == [label for label, _ in want]
        np.testing.assert_allclose([score for _, score in got], [score for _, score in want], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(base_dir, {name: (predictor, version path)}): `sentiment` exported and checked (`check_saved_model`: its
    classify signature too, through the TF1 loader; a failed check would raise here), `pairs` (text_a, text_b)
    exported unchecked (the check is `sentiment`'s), and `foreign`, `pairs` without its tflm.json."""
    base = str(tmp_path_factory.mktemp("classify") / "models")
    single, pair = TinyClassifier(), TinyClassifier(("text_a", "text_b"), seed=1)
    models = {"sentiment": (single, export_predictor(single, base, "sentiment", check_inputs=TEXTS)),
              "pairs": (pair, export_predictor(pair, base, "pairs"))}
    # `foreign`: the pair model without tflm.json, as a classify SavedModel made elsewhere
    shutil.copytree(models["pairs"][1], os.path.join(base, "foreign", "1"))
    os.remove(os.path.join(base, "foreign", "1", "assets.extra", "tflm.json"))
    return base, models


@pytest.fixture(scope="module")
def server(models):
    running = Server(models[0], rest_port=0, grpc_port=0, max_batch_size=8, batch_timeout_ms=5,
                     poll_seconds=0).start()
    yield running
    running.stop()


def post(server, path, payload):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    connection.request("POST", path, body=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    status, body = response.status, json.loads(response.read())
    connection.close()
    return status, body


def stub(server):
    return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))


def test_export_writes_a_classify_signature_that_the_tf1_loader_answers(models):
    predictor, path = models[1]["sentiment"]
    definition = saved_model_proto(path).meta_graphs[0].signature_def["classify"]
    assert definition.method_name == CLASSIFY_METHOD and check_classify(path) == []
    requests = {request["signature"]: request for request in signature_requests(path, TEXTS)}
    examples = requests["classify"]["inputs"]["inputs"]
    assert len(examples) == 4 and set(examples[0]) == {"b64"}
    parsed = tf.train.Example.FromString(base64.b64decode(examples[1]["b64"]))
    assert parsed.features.feature["text"].bytes_list.value == [TEXTS[1].encode()]
    result, error = run_tf1_requests(path, [requests["classify"]])
    assert error is None, error
    answer = result["results"][0]
    assert sorted(answer) == ["classes", "scores"] and np.shape(answer["scores"]) == (4, 3)
    assert_results([list(zip(c, s)) for c, s in zip(answer["classes"], answer["scores"])], expected(predictor, TEXTS))


def test_the_check_reports_a_classify_signature_tf_serving_would_refuse(models, tmp_path):
    _, path = models[1]["sentiment"]
    saved_model = saved_model_proto(path)
    definition = saved_model.meta_graphs[0].signature_def["classify"]
    assert classify_problems(definition) == []
    definition.outputs["label"].CopyFrom(definition.outputs["classes"])
    definition.inputs["text"].CopyFrom(definition.inputs["inputs"])
    (tmp_path / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    problems = check_classify(str(tmp_path))  # (what check_saved_model reports, with the other checks)
    assert any("signature 'classify'" in p and "exactly one input, 'inputs'" in p for p in problems), problems
    assert any("'classes' and/or 'scores' and nothing else" in p and "label" in p for p in problems), problems


def test_rest_classify_answers_tf_servings_json(server, models):
    predictor = models[1]["sentiment"][0]
    status, body = post(server, "/v1/models/sentiment:classify",
                        {"signature_name": "classify", "examples": [{"text": text} for text in TEXTS]})
    assert status == 200 and list(body) == ["results"], body
    assert all(len(result) == 3 and all(len(pair) == 2 and isinstance(pair[0], str) for pair in result)
               for result in body["results"])
    assert_results(body["results"], expected(predictor, TEXTS))
    assert_results(classify_rest(f"127.0.0.1:{server.rest_port}", "sentiment", TEXTS[:2], version=1),
                   expected(predictor, TEXTS[:2]))


def test_grpc_classify_with_the_official_protos(server, models):
    predictor = models[1]["sentiment"][0]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "sentiment"
    request.model_spec.signature_name = "classify"
    for text in TEXTS:
        request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(text.encode())
    response = stub(server).Classify(request, timeout=60)
    assert isinstance(response, classification_pb2.ClassificationResponse)
    assert (response.model_spec.name, response.model_spec.version.value, response.model_spec.signature_name) == (
        "sentiment", 1, "classify")
    results = [[(c.label, c.score) for c in entry.classes] for entry in response.result.classifications]
    assert_results(results, expected(predictor, TEXTS))
    assert_results(classify_grpc(f"127.0.0.1:{server.grpc_port}", "sentiment", TEXTS), expected(predictor, TEXTS))


def test_example_list_with_context_merges_the_context(server, models):
    predictor = models[1]["pairs"][0]
    request = classification_pb2.ClassificationRequest(model_spec={"name": "pairs", "signature_name": "classify"})
    request.input.example_list_with_context.context.features.feature["text_a"].bytes_list.value.append(
        PAIRS[0]["text_a"].encode())
    for pair in PAIRS:
        example = request.input.example_list_with_context.examples.add()
        example.features.feature["text_b"].bytes_list.value.append(pair["text_b"].encode())
    response = stub(server).Classify(request, timeout=60)
    results = [[(c.label, c.score) for c in entry.classes] for entry in response.result.classifications]
    assert_results(results, expected(predictor, PAIRS))
    # an example's own feature wins over the context's (TF Serving concatenates context and example)
    own = classify_grpc(f"127.0.0.1:{server.grpc_port}", "pairs", [PAIRS[1]], context={"text_a": "ignored"})
    assert_results(own, expected(predictor, PAIRS[1:]))


def test_rest_pair_classifier_with_context(server, models):
    predictor = models[1]["pairs"][0]
    status, body = post(server, "/v1/models/pairs/versions/1:classify",
                        {"signature_name": "classify", "context": {"text_a": PAIRS[0]["text_a"]},
                         "examples": [{"text_b": pair["text_b"]} for pair in PAIRS]})
    assert status == 200, body
    assert_results(body["results"], expected(predictor, PAIRS))  # (without the context, text_a would be missing)


def test_the_default_signature_is_refused_as_tf_serving_does_with_a_hint(server):
    status, body = post(server, "/v1/models/sentiment:classify", {"examples": [{"text": "Great."}]})
    assert status == 400
    assert ("Expected classification signature method_name to be tensorflow/serving/classify. Was: "
            "tensorflow/serving/predict") in body["error"]
    assert 'give "signature_name": "classify"' in body["error"]
    with pytest.raises(grpc.RpcError) as error:
        stub(server).Classify(classification_pb2.ClassificationRequest(model_spec={"name": "sentiment"}), timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'model_spec.signature_name = "classify"' in error.value.details()
    status, body = post(server, "/v1/models/sentiment:classify",
                        {"signature_name": "classify", "examples": [{"text": "Great."}]})
    assert status == 200 and len(body["results"]) == 1
    status, body = post(server, "/v1/models/sentiment:regress", {"examples": [{"text": "Great."}]})
    assert status == 400 and "tensorflow/serving/regress" in body["error"]


@pytest.mark.parametrize("payload, message", [
    ({"examples": [{"text": "a"}, {"txt": "b"}]}, "example 1: feature 'text' is missing"),
    ({"examples": [{"text": 5}]}, "example 0: feature 'text' is an int64_list"),
    ({"examples": [{"text": ["a", "b"]}]}, "example 0: feature 'text' has 2 strings"),
    ({"examples": [{"text": None}]}, "example 0: Feature: text has element with unexpected JSON type: Null"),
    ({"examples": [{"text": ["a", 1]}]}, "Unexpected element type in feature: text expecting type: bytes"),
    ({"examples": ["just text"]}, "example 0: Example must be JSON object but got JSON String"),
    ({"examples": {"text": "a"}}, "Expecting 'examples' value to be an list/array"),
    ({"examples": []}, "'examples' value is an empty array"),
    ({"instances": [{"text": "a"}]}, "key 'examples' is expected"),
    ({"examples": [{"text": "a"}] * 9}, "exceeds this server's maximum of 8"),
])
def test_bad_examples_are_clear_errors_and_the_next_request_works(server, payload, message):
    status, body = post(server, "/v1/models/sentiment:classify", dict(payload, signature_name="classify"))
    assert status == 400 and message in body["error"], body
    status, body = post(server, "/v1/models/sentiment:classify",
                        {"signature_name": "classify", "examples": [{"text": "fine"}]})
    assert status == 200 and len(body["results"][0]) == 3


def test_a_missing_feature_through_grpc_and_the_client_errors(server):
    request = classification_pb2.ClassificationRequest(model_spec={"name": "pairs", "signature_name": "classify"})
    request.input.example_list.examples.add().features.feature["text_a"].bytes_list.value.append(b"only a")
    with pytest.raises(grpc.RpcError) as error:
        stub(server).Classify(request, timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "example 0: feature 'text_b' is missing" in error.value.details()
    with pytest.raises(ServingClientError, match="feature 'text_b' is missing"):
        classify_rest(f"127.0.0.1:{server.rest_port}", "pairs", [{"text_a": "only a"}])
    with pytest.raises(ServingClientError, match="INVALID_ARGUMENT"):
        classify_grpc(f"127.0.0.1:{server.grpc_port}", "pairs", [{"text_a": "only a"}])


def test_a_model_without_tflm_json_names_the_missing_feature_from_the_graph(server, models):
    status, body = post(server, "/v1/models/foreign:classify",
                        {"signature_name": "classify", "examples": [{"text_a": "only a"}]})
    assert status == 400, body
    assert "Feature: text_b (data type: string) is required" in body["error"] and '"context"' in body["error"]
    assert "Detected at node" not in body["error"]
    status, body = post(server, "/v1/models/foreign:classify",
                        {"signature_name": "classify", "examples": PAIRS})
    assert status == 200
    assert_results(body["results"], expected(models[1]["pairs"][0], PAIRS))
