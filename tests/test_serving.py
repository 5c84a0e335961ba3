"""`tflm serve`: TF Serving's REST and gRPC APIs, errors, hot swapping of versions, batching."""

import base64
import http.client
import json
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tflm.cli import main
from tflm.serving import Server
from tflm.tasks import translation

SENTENCES = ["Good morning.", "Where is the station?", "I love you."]


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("serve") / "models")
    shutil.copytree(os.path.join(exported[0], "tiny"), os.path.join(base, "tiny"))
    running = Server(base, rest_port=0, grpc_port=0, max_batch_size=8, batch_timeout_ms=20, max_body_bytes=4096,
                     poll_seconds=0.2).start()
    yield running
    running.stop()


def request(server, method, path, payload=None, raw=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=120)
    body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


def predict(server, sentences, version=None):
    path = "/v1/models/tiny" + (f"/versions/{version}" if version else "") + ":predict"
    return request(server, "POST", path, {"instances": sentences})


def test_rest_and_grpc_give_the_models_answers(server, trained_run):
    expected = translation.Translator.from_run_dir(trained_run).translate(SENTENCES)
    status, body = request(server, "GET", "/v1/models/tiny")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = request(server, "GET", "/v1/models/tiny/versions/1/metadata")
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert status == 200 and signature["inputs"]["text"]["dtype"] == "DT_STRING"
    status, body = predict(server, SENTENCES)
    assert status == 200 and [p["outputs"] for p in body["predictions"]] == expected
    status, body = request(server, "POST", "/v1/models/tiny/versions/1:predict", {"inputs": {"text": SENTENCES}})
    assert status == 200 and body["outputs"]["outputs"] == expected
    controls = {"beam_size": 2, "num_hypotheses": 2, "max_length": 12, "length_penalty": 0.6, "temperature": 0.0,
                "top_k": 0, "top_p": 1.0, "seed": 0}
    status, body = request(server, "POST", "/v1/models/tiny:predict",
                           {"signature_name": "translate", "inputs": dict(controls, text=SENTENCES[:1])})
    assert status == 200 and np.asarray(body["outputs"]["outputs"]).shape == (1, 2)

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        grpc_request = predict_pb2.PredictRequest()
        grpc_request.model_spec.name = "tiny"
        grpc_request.inputs["text"].CopyFrom(tf.make_tensor_proto(SENTENCES))
        response = stub.Predict(grpc_request, timeout=120)
        assert [t.decode() for t in tf.make_ndarray(response.outputs["outputs"])] == expected
        assert response.model_spec.version.value == 1
        metadata = stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec={"name": "tiny"}, metadata_field=["signature_def"]), timeout=30)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        metadata.metadata["signature_def"].Unpack(signatures)
        assert {"serving_default", "translate", "score"} <= set(signatures.signature_def)
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "tiny"}), timeout=30)
        assert status.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(predict_pb2.PredictRequest(model_spec={"name": "nope"}), timeout=30)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("case, status, message", [
    (dict(raw=b'{"instances": ["a"'), 400, "JSON Parse error"),
    (dict(payload={"instances": [{"txt": "a"}]}), 400, "does not have named input: txt"),
    (dict(payload={"instances": [7]}), 400, "expected a string"),
    (dict(payload={"instances": [{"b64": base64.b64encode(b"\xff\xfe").decode()}]}), 400, "not valid UTF-8"),
    (dict(payload={"instances": ["x" * 5000]}), 413, "exceeds the limit of 4096 bytes"),
    (dict(payload={"instances": ["a"] * 9}), 400, "exceeds this server's maximum of 8"),
    (dict(payload={"inputs": {"text": ["a"]}, "instances": ["a"]}), 400, "exactly one of"),
    (dict(path="/v1/models/tiny:classify", payload={"instances": ["a"]}), 400, "tensorflow/serving/classify"),
    (dict(path="/v1/models/..%2Fescape:predict", payload={"instances": ["a"]}), 400, "Invalid model name"),
    (dict(path="/v1/models/other:predict", payload={"instances": ["a"]}), 404, "Servable not found"),
])
def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(server, case, status, message):
    answer = request(server, "POST", case.get("path", "/v1/models/tiny:predict"), case.get("payload"),
                     case.get("raw"))
    assert answer[0] == status and message in answer[1]["error"], answer
    good_status, good = predict(server, ["", "Good morning."])
    assert good_status == 200 and good["predictions"][0]["outputs"] == ""


def test_a_new_version_is_swapped_in_under_load_without_failures(server):
    base = server.core.repository.base_dir
    failures, served_versions, stop = [], set(), threading.Event()

    def client():
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                grpc_request = predict_pb2.PredictRequest(model_spec={"name": "tiny"})
                grpc_request.inputs["text"].CopyFrom(tf.make_tensor_proto(SENTENCES[:2]))
                try:
                    served_versions.add(stub.Predict(grpc_request, timeout=120).model_spec.version.value)
                except grpc.RpcError as error:
                    failures.append(error.code())
            for _ in range(2):
                status, _ = predict(server, SENTENCES[:1])
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    staging = os.path.join(base, ".staging")
    shutil.copytree(os.path.join(base, "tiny", "1"), staging)
    os.rename(staging, os.path.join(base, "tiny", "2"))  # appears whole, as `tflm export` makes it appear
    deadline = time.monotonic() + 120
    while 2 not in served_versions and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == [] and served_versions == {1, 2}
    states = {s["version"]: s["state"] for s in request(server, "GET", "/v1/models/tiny")[1]["model_version_status"]}
    assert states == {"2": "AVAILABLE", "1": "END"}

    # a broken version is reported, and version 2 keeps serving
    broken = os.path.join(base, ".broken")
    os.makedirs(broken)
    with open(os.path.join(broken, "saved_model.pb"), "wb") as f:
        f.write(b"not a SavedModel")
    os.rename(broken, os.path.join(base, "tiny", "3"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = request(server, "GET", "/v1/models/tiny/versions/3")
        if statuses[0] == 200 and statuses[1]["model_version_status"][0]["state"] == "END":
            break
        time.sleep(0.2)
    assert statuses[1]["model_version_status"][0]["status"]["error_message"]
    status, body = predict(server, SENTENCES[:1])
    assert status == 200 and request(server, "GET", "/v1/models/tiny/versions/2")[1][
        "model_version_status"][0]["state"] == "AVAILABLE"


def test_concurrent_requests_are_batched(server):
    batcher = server.core.batcher
    batches, requests = batcher.batches, batcher.requests
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append((s, predict(server, [s])))) for s in SENTENCES * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(status == 200 for _, (status, _) in results)
    assert batcher.requests - requests == 9 and batcher.batches - batches < 9
    by_sentence = {}
    for sentence, (_, body) in results:
        by_sentence.setdefault(sentence, set()).add(body["predictions"][0]["outputs"])
    assert all(len(outputs) == 1 for outputs in by_sentence.values())  # batching never changes an answer


def test_many_clients_connecting_at_once_are_all_answered(server):
    # Connections made while the server is busy wait in its listen backlog; none may be refused or stall.
    from tflm.serving.rest import RestServer

    rest = RestServer(("127.0.0.1", 0), server.core)
    port = rest.server_address[1]
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=2) for _ in range(48)]
    try:
        for connection in connections:  # nothing accepts yet: every connection must fit in the backlog
            connection.connect()
        rest.start()
        for connection in connections:
            connection.request("GET", "/v1/models/tiny")
        assert all(connection.getresponse().status == 200 for connection in connections)
    finally:
        for connection in connections:
            connection.close()
        rest.stop()


def test_translate_command_as_a_client(server, trained_run):
    expected = translation.Translator.from_run_dir(trained_run).translate(SENTENCES[:2])
    for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
        result = CliRunner().invoke(main, ["translate", "--server", f"127.0.0.1:{port}", "--model", "tiny",
                                           "--protocol", protocol, *SENTENCES[:2], ""])
        assert result.exit_code == 0, result.output
        assert result.output.split("\n") == expected + ["", ""]  # the served translations, line for line
