"""`tflm serve` under bad conditions (issue 32): a taken port is one line and a non-zero exit; a lone surrogate,
an integer out of its dtype's range, a boolean for a number and an empty batch are 400 INVALID_ARGUMENT naming
the input; a corrupt newer version never stops the older one serving and is retried once its folder changes;
a client gone mid-body is an INFO line. After each bad request the next one is answered."""

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tflm.serving import Server
from test_serving_bounds import GOOD, call, predict

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_taken_port_is_one_line_naming_it_and_a_nonzero_exit(tmp_path):
    """Through the console script: the REST port held by a plain listener, the gRPC port by a gRPC server
    (which sets SO_REUSEPORT, as a second `tflm serve` did before: the two shared the port)."""
    holder = socket.create_server(("127.0.0.1", 0))
    grpc_holder = grpc.server(futures.ThreadPoolExecutor(1))
    grpc_port = grpc_holder.add_insecure_port("127.0.0.1:0")
    grpc_holder.start()
    tflm = os.path.join(os.path.dirname(sys.executable), "tflm")
    env = dict(os.environ, PYTHONPATH=REPOSITORY, TF_CPP_MIN_LOG_LEVEL="2")
    cases = {"--rest-port": (["--rest-port", str(holder.getsockname()[1]), "--grpc-port", "0"],
                             holder.getsockname()[1]),
             "--grpc-port": (["--rest-port", "0", "--grpc-port", str(grpc_port)], grpc_port)}
    processes = {option: subprocess.Popen([tflm, "serve", str(tmp_path), "--poll-seconds", "0", *arguments],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for option, (arguments, _) in cases.items()}
    try:
        for option, process in processes.items():
            try:
                stdout, stderr = process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise AssertionError(f"`tflm serve {option} <taken port>` kept running") from None
            port = cases[option][1]
            errors = [line for line in (stdout + stderr).splitlines() if "Error" in line or "Traceback" in line]
            assert process.returncode == 1 and len(errors) == 1, stdout + stderr
            assert f"127.0.0.1:{port}" in errors[0] and "already in use" in errors[0] and option in errors[0], errors
    finally:
        holder.close()
        grpc_holder.stop(0)


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("reliability") / "models")
    shutil.copytree(os.path.join(exported[0], "tiny"), os.path.join(base, "tiny"))
    server = Server(base, rest_port=0, grpc_port=0, max_batch_size=8, poll_seconds=0).start()
    yield server
    server.stop()


@pytest.fixture
def log_records():
    """The tflm logger's records while a test runs (INFO and up)."""
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger("tflm")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def assert_no_server_error(records):
    bad = [r.getMessage() for r in records if r.levelno >= logging.ERROR or r.exc_info or "-> 500" in r.getMessage()]
    assert bad == []


def assert_next_request_works(server):
    status, _, body = predict(server, ["Good morning."])
    assert status == 200 and len(body["predictions"]) == 1, body


def translate(server, **controls):
    return call(server, "POST", "/v1/models/tiny:predict",
                {"signature_name": "translate", "inputs": dict(GOOD, text=["Good morning."], **controls)})


def grpc_translate(server, **tensors):
    request = predict_pb2.PredictRequest(model_spec={"name": "tiny", "signature_name": "translate"})
    for name, value in dict(GOOD, text=["Good morning."]).items():
        proto = tensors.get(name) or tf.make_tensor_proto(
            value, dtype=tf.string if name == "text" else tf.float32 if isinstance(value, float) else tf.int32)
        request.inputs[name].CopyFrom(proto)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)


@pytest.mark.parametrize("raw, where", [
    (b'{"instances": ["Good morning.", "ab\\ud800"]}', "instance 1 of 'instances'"),
    (b'{"inputs": {"text": ["Good morning.", "\\udfff"]}}', "input 'text' element [1]"),
])
def test_a_lone_surrogate_is_400_naming_the_element_without_a_traceback(served, log_records, raw, where):
    status, _, body = call(served, "POST", "/v1/models/tiny:predict", raw=raw)
    assert status == 400 and where in body["error"] and "lone surrogate" in body["error"], body
    assert_no_server_error(log_records)
    assert_next_request_works(served)


@pytest.mark.parametrize("control, value, message", [
    ("beam_size", 2 ** 31, "input 'beam_size' = 2147483648 is out of range for int32: allowed -2147483648 to "
                           "2147483647"),
    ("beam_size", 2 ** 63, "input 'beam_size' = 9223372036854775808 is out of range for int32"),
    ("beam_size", -2 ** 70, f"input 'beam_size' = {-2 ** 70} is out of range for int32"),
    ("seed", 2 ** 40, "input 'seed' = 1099511627776 is out of range for int32"),
    ("beam_size", True, "input 'beam_size' must be int32, got a boolean (true)"),
    ("temperature", False, "input 'temperature' must be float32, got a boolean (false)"),
])
def test_integers_out_of_range_and_booleans_are_400_before_any_cast(served, control, value, message):
    status, _, body = translate(served, **{control: value})
    assert status == 400 and message in body["error"], body
    status, _, body = translate(served)
    assert status == 200, body


def test_grpc_int64_protos_are_range_checked_and_bools_refused(served):
    for name, proto, message in [
        ("beam_size", tf.make_tensor_proto(2 ** 31, dtype=tf.int64), "'beam_size' = 2147483648 is out of range"),
        ("seed", tf.make_tensor_proto(2 ** 40, dtype=tf.int64), "'seed' = 1099511627776 is out of range for int32"),
        ("beam_size", tf.make_tensor_proto(True), "'beam_size' must be int32, got a boolean (true)"),
    ]:
        with pytest.raises(grpc.RpcError) as error:
            grpc_translate(served, **{name: proto})
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.value.details()
        outputs = grpc_translate(served, seed=tf.make_tensor_proto(7, dtype=tf.int64)).outputs["outputs"]
        assert tf.make_ndarray(outputs).shape == (1, 2)


def test_an_empty_batch_says_the_same_in_every_form(served):
    messages = []
    for payload in ({"instances": []}, {"inputs": {"text": []}}, {"inputs": []}):
        status, _, body = call(served, "POST", "/v1/models/tiny:predict", payload)
        assert status == 400, body
        messages.append(body["error"].split(" (request id")[0])
    request = predict_pb2.PredictRequest(model_spec={"name": "tiny"})
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.zeros([0], dtype=object), dtype=tf.string))
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    messages.append(error.value.details().split(" (request id")[0])
    assert len(set(messages)) == 1 and messages[0].startswith("empty batch"), messages
    assert_next_request_works(served)


def test_a_client_gone_mid_body_is_an_info_line_not_a_500(served, log_records):
    with socket.create_connection(("127.0.0.1", served.rest_port), timeout=10) as client:
        client.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                       b"\r\nContent-Length: 1000\r\n\r\n{\"instances\": [\"Good")
        time.sleep(0.2)
    ends = time.monotonic() + 10
    while not any("disconnected" in r.getMessage() for r in log_records) and time.monotonic() < ends:
        time.sleep(0.05)
    gone = [r for r in log_records if "disconnected before sending its whole body" in r.getMessage()]
    assert [r.levelno for r in gone] == [logging.INFO], [r.getMessage() for r in log_records]
    assert_no_server_error(log_records)
    assert_next_request_works(served)


def _states(server):
    status, _, body = call(server, "GET", "/v1/models/tiny")
    assert status == 200, body
    return {s["version"]: (s["state"], s["status"]["error_message"]) for s in body["model_version_status"]}


def test_a_corrupt_newer_version_is_reported_the_older_serves_and_a_fixed_copy_is_retried(exported, tmp_path):
    base = str(tmp_path / "models")
    good = os.path.join(exported[0], "tiny", "1")
    shutil.copytree(good, os.path.join(base, "tiny", "1"))
    os.makedirs(os.path.join(base, "tiny", "2"))
    with open(os.path.join(base, "tiny", "2", "saved_model.pb"), "wb") as f:
        f.write(b"not a SavedModel")
    server = Server(base, rest_port=0, grpc_port=0, poll_seconds=0.2).start()
    try:
        states = _states(server)
        assert states["1"] == ("AVAILABLE", "") and states["2"][0] == "END" and states["2"][1], states
        status, _, body = predict(server, ["Good morning."])
        assert status == 200, body
        assert grpc_version(server) == 1

        time.sleep(0.5)  # polls see the same corrupt folder: not tried again
        assert _states(server)["2"] == states["2"]

        staging = os.path.join(base, ".staging")  # a good copy replaces the corrupt folder, same number
        shutil.copytree(good, staging)
        shutil.rmtree(os.path.join(base, "tiny", "2"))
        os.rename(staging, os.path.join(base, "tiny", "2"))
        ends = time.monotonic() + 60
        while _states(server)["2"][0] != "AVAILABLE" and time.monotonic() < ends:
            time.sleep(0.2)
        assert _states(server) == {"2": ("AVAILABLE", ""), "1": ("END", "")}
        assert grpc_version(server) == 2
    finally:
        server.stop()


def grpc_version(server):
    request = predict_pb2.PredictRequest(model_spec={"name": "tiny"})
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["Good morning."]))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60) \
            .model_spec.version.value

