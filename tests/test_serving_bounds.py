"""Every request is bounded: decoding controls checked in the exported graph (through `tflm serve` and the TF1
session loader stock TF Serving uses), deadlines, a bound on queued work, 413/405 with error bodies, request
ids, graceful shutdown on SIGTERM, and `tflm.export.load`."""

import concurrent.futures
import http.client
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tflm.export.check import run_tf1_requests
from tflm.serving import Server
from tflm.serving.repository import LoadedVersion

RUN = LoadedVersion.run  # the real one, before any test wraps it

GOOD = {"beam_size": 2, "num_hypotheses": 2, "max_length": 12, "length_penalty": 0.6, "temperature": 0.0,
        "top_k": 0, "top_p": 1.0, "seed": 0}
VOCABULARY = 300  # the `trained_run` fixture's vocabulary size: the largest top_k

# (control, value, what the message must say); the export's default limits: 16 beams, 16 hypotheses,
# 512 tokens, 256 sentences.
BAD_CONTROLS = [
    ("beam_size", 0, "beam_size = 0 is out of range: allowed 1 to 16 (max_beam_size, set at export)"),
    ("beam_size", -3, "beam_size = -3 is out of range: allowed 1 to 16"),
    ("beam_size", 100000, "beam_size = 100000 is out of range: allowed 1 to 16"),
    ("num_hypotheses", 0, "num_hypotheses = 0 is out of range: allowed 1 to 16"),
    ("num_hypotheses", 3, "num_hypotheses = 3 exceeds beam_size = 2"),
    ("max_length", -1, "max_length = -1 is out of range: allowed 1 to 512 (max_new_tokens, set at export)"),
    ("max_length", 513, "max_length = 513 is out of range: allowed 1 to 512"),
    ("top_p", 2.0, "top_p = 2 is out of range: allowed greater than 0 and at most 1"),
    ("top_p", 0.0, "top_p = 0 is out of range: allowed greater than 0 and at most 1"),
    ("top_p", math.nan, "top_p = nan is out of range"),
    ("top_k", -5, f"top_k = -5 is out of range: allowed 0 to {VOCABULARY}"),
    ("top_k", VOCABULARY + 1, f"top_k = {VOCABULARY + 1} is out of range: allowed 0 to {VOCABULARY}"),
    ("temperature", -1.0, "temperature = -1 is out of range: allowed 0 to 100"),
    ("temperature", math.inf, "temperature = inf is out of range"),
    ("length_penalty", -0.5, "length_penalty = -0.5 is out of range: allowed 0 to 10"),
]


def translate_inputs(control=None, value=None, text=("Good morning.",)):
    inputs = dict(GOOD, text=list(text))
    if control:
        inputs[control] = value
    return inputs


def test_out_of_range_controls_are_refused_by_the_graph_through_the_tf1_loader(exported):
    """As stock TF Serving runs the export: each bad control is an error naming it, its value and its range;
    good requests in the same session still work."""
    _, path = exported
    requests = [{"signature": "translate", "inputs": translate_inputs(c, v)} for c, v, _ in BAD_CONTROLS]
    requests.append({"signature": "translate", "inputs": translate_inputs(text=["a"] * 257)})
    requests.append({"signature": "serving_default", "inputs": {"text": ["a"] * 257}})
    requests.append({"signature": "translate", "inputs": translate_inputs()})
    result, error = run_tf1_requests(path, requests, keep_going=True)
    assert error is None, error
    answers = result["results"]
    for (control, value, message), answer in zip(BAD_CONTROLS, answers):
        assert "InvalidArgumentError" in answer.get("error", "") and message in answer["error"], (control, answer)
    for answer in answers[len(BAD_CONTROLS): -1]:
        assert "the number of sentences in the request = 257 is out of range: allowed 0 to 256" in answer["error"]
    assert np.asarray(answers[-1]["outputs"]).shape == (1, 2)


def _slow_when_asked(original):
    """`LoadedVersion.run` that first sleeps `SLOW_SECONDS` when a text input contains "SLOW": a request
    that takes long, whatever the model."""

    def run(self, signature_name, inputs):
        texts = [t for name in ("text", "prompt") for t in np.asarray(inputs.get(name, [])).reshape(-1)]
        if any(b"SLOW" in t for t in texts):
            run.slow_calls.append(len(texts))
            time.sleep(run.seconds)
        run.calls.append(texts)
        return original(self, signature_name, inputs)

    run.seconds, run.calls, run.slow_calls = 3.0, [], []
    return run


@pytest.fixture(scope="module")
def bounded(exported, tmp_path_factory):
    """A server with a 1.5-second deadline and room for 2 pending predictions, whose model sleeps 3 s on "SLOW"."""
    base = str(tmp_path_factory.mktemp("bounded") / "models")
    shutil.copytree(os.path.join(exported[0], "tiny"), os.path.join(base, "tiny"))
    patch = pytest.MonkeyPatch()
    slow = _slow_when_asked(RUN)
    patch.setattr(LoadedVersion, "run", slow)
    server = Server(base, rest_port=0, grpc_port=0, max_batch_size=8, batch_timeout_ms=5, max_body_bytes=4096,
                    poll_seconds=0, max_pending=2, request_timeout=1.5, shutdown_timeout=5).start()
    server.slow = slow
    yield server
    server.stop()
    patch.undo()


def call(server, method, path, payload=None, raw=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, dict(response.getheaders()), data


def predict(server, sentences, **headers):
    return call(server, "POST", "/v1/models/tiny:predict", {"instances": list(sentences)}, headers=headers)


def wait_for(condition, seconds, what):
    """Polls `condition()` until it is true; fails with `what()` (the state waited on) after `seconds`."""
    ends = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > ends:
            pytest.fail(f"waited {seconds} s for {what()}")
        time.sleep(0.01)


def test_wait_for_fails_after_its_deadline_and_says_what_it_waited_for():
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="waited 0.1 s for 3 pending predictions; 1 are"):
        wait_for(lambda: False, 0.1, lambda: "3 pending predictions; 1 are")
    assert time.monotonic() - started < 2
    wait_for(lambda: True, 0.1, lambda: "nothing")


def wait_idle(server, seconds=30):
    wait_for(lambda: server.core.pending == 0, seconds,
             lambda: f"the server to finish its pending predictions; {server.core.pending} still pending")


@pytest.mark.parametrize("control, value, message", BAD_CONTROLS[::2])
def test_out_of_range_controls_get_400_from_tflm_serve(bounded, control, value, message):
    status, _, body = call(bounded, "POST", "/v1/models/tiny:predict",
                           {"signature_name": "translate", "inputs": translate_inputs(control, value)})
    assert status == 400 and message in body["error"] and "node" not in body["error"], body
    status, _, body = call(bounded, "POST", "/v1/models/tiny:predict",
                           {"signature_name": "translate", "inputs": translate_inputs()})
    assert status == 200 and np.asarray(body["outputs"]["outputs"]).shape == (1, 2)


def test_out_of_range_control_over_grpc_is_invalid_argument(bounded):
    request = predict_pb2.PredictRequest(model_spec={"name": "tiny", "signature_name": "translate"})
    for name, value in translate_inputs("beam_size", 17).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=tf.string if name == "text" else (
            tf.float32 if isinstance(GOOD[name], float) else tf.int32)))
    with grpc.insecure_channel(f"127.0.0.1:{bounded.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "beam_size = 17 is out of range: allowed 1 to 16" in error.value.details()


def test_a_request_past_its_deadline_gets_504_and_queued_work_past_it_never_runs(bounded):
    slow = bounded.slow
    slow.calls.clear()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(predict, bounded, ["SLOW Good morning."])
        time.sleep(0.3)  # the slow batch is running; this one waits behind it, past its deadline
        second = pool.submit(predict, bounded, ["Waits behind it."])
        for answer in (first.result(), second.result()):
            status, headers, body = answer
            assert status == 504 and "deadline" in body["error"], answer
            assert f"request id {headers['X-Request-Id']}" in body["error"]
    wait_idle(bounded)
    assert [b"Waits behind it." in texts for texts in slow.calls] == [False]  # dropped, never run
    status, _, body = predict(bounded, ["Good morning."])
    assert status == 200 and len(body["predictions"]) == 1


def test_grpc_deadlines_the_clients_and_the_servers(bounded):
    request = predict_pb2.PredictRequest(model_spec={"name": "tiny"})
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["SLOW Good morning."]))
    with grpc.insecure_channel(f"127.0.0.1:{bounded.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for client_timeout in (0.3, 30):  # the client's deadline, then the server's --request-timeout (1.5 s)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as error:
                stub.Predict(request, timeout=client_timeout)
            assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < min(client_timeout, 1.5) + 0.8
            wait_idle(bounded)
        assert "--request-timeout" in error.value.details() and "request id" in error.value.details()
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(["Good morning."]))
        assert tf.make_ndarray(stub.Predict(request, timeout=30).outputs["outputs"]).shape == (1,)


def test_a_full_server_answers_503_with_retry_after_and_recovers(bounded):
    bounded.slow.seconds, bounded.core.request_timeout = 0.8, 30.0  # these two are answered 200
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = [pool.submit(predict, bounded, [f"SLOW {i}"]) for i in range(2)]
            wait_for(lambda: bounded.core.pending >= 2, 10,
                     lambda: f"the 2 slow predictions to be pending; {bounded.core.pending} are")
            refused = [predict(bounded, ["Good morning."]) for _ in range(3)]
            request = predict_pb2.PredictRequest(model_spec={"name": "tiny"})
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(["Good morning."]))
            with grpc.insecure_channel(f"127.0.0.1:{bounded.grpc_port}") as channel:
                with pytest.raises(grpc.RpcError) as error:
                    prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
            assert [answer.result()[0] for answer in running] == [200, 200]
    finally:
        bounded.slow.seconds, bounded.core.request_timeout = 3.0, 1.5
    for status, headers, body in refused:
        assert status == 503 and headers["Retry-After"] == "1" and "at capacity" in body["error"], body
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE and "--max-pending 2" in error.value.details()
    wait_idle(bounded)
    assert predict(bounded, ["Good morning."])[0] == 200


@pytest.mark.parametrize("method, path, payload, status, allow, message", [
    ("POST", "/v1/models/tiny:predict", {"instances": ["x" * 5000]}, 413, None, "exceeds the limit of 4096 bytes"),
    ("POST", "/v1/models/tiny:predict", {"instances": ["x" * 2_000_000]}, 413, None, "exceeds the limit"),
    ("DELETE", "/v1/models/tiny", None, 405, "GET", "Method DELETE is not allowed"),
    ("PUT", "/v1/models/tiny:predict", {"instances": ["a"]}, 405, "POST", "Method PUT is not allowed"),
    ("GET", "/v1/models/tiny/versions/1:predict", None, 405, "POST", "use POST"),
    ("PATCH", "/somewhere/else", None, 404, None, "Malformed request"),
])
def test_oversized_bodies_and_wrong_methods_get_error_bodies(bounded, method, path, payload, status, allow, message):
    answer = call(bounded, method, path, payload)
    assert answer[0] == status and message in answer[2]["error"], answer[:1] + answer[2:]
    assert answer[1].get("Allow") == allow
    assert predict(bounded, ["Good morning."])[0] == 200


def test_oversized_body_on_a_kept_alive_connection_is_answered_and_the_connection_still_works(bounded):
    connection = http.client.HTTPConnection("127.0.0.1", bounded.rest_port, timeout=60)
    try:
        for payload, status in (({"instances": ["x" * 100_000]}, 413), ({"instances": ["Good morning."]}, 200)):
            connection.request("POST", "/v1/models/tiny:predict", body=json.dumps(payload).encode())
            response = connection.getresponse()
            assert response.status == status and json.loads(response.read())
    finally:
        connection.close()


def test_request_ids_are_echoed_in_headers_errors_and_log_lines(bounded):
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("tflm")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        status, headers, body = predict(bounded, [7], **{"X-Request-Id": "client-id-42"})
        ok_status, ok_headers, _ = predict(bounded, ["Good morning."])
        metadata = (("x-request-id", "grpc-id-7"),)
        request = predict_pb2.PredictRequest(model_spec={"name": "missing"})
        with grpc.insecure_channel(f"127.0.0.1:{bounded.grpc_port}") as channel:
            with pytest.raises(grpc.RpcError) as error:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30,
                                                                                  metadata=metadata)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert status == 400 and headers["X-Request-Id"] == "client-id-42" and "(request id client-id-42)" in body["error"]
    assert ok_status == 200 and len(ok_headers["X-Request-Id"]) == 16 and ok_headers["X-Request-Id"] != "client-id-42"
    assert error.value.code() == grpc.StatusCode.NOT_FOUND and "(request id grpc-id-7)" in error.value.details()
    assert dict(error.value.trailing_metadata())["x-request-id"] == "grpc-id-7"
    lines = [record.getMessage() for record in records]
    assert any("[client-id-42]" in line and "-> 400" in line for line in lines)
    assert any(f"[{ok_headers['X-Request-Id']}]" in line and "-> 200" in line for line in lines)
    assert any("[grpc-id-7]" in line and "NOT_FOUND" in line for line in lines)


def test_stop_lets_requests_in_flight_finish_and_refuses_new_ones(exported, tmp_path, monkeypatch):
    base = str(tmp_path / "models")
    shutil.copytree(os.path.join(exported[0], "tiny"), os.path.join(base, "tiny"))
    slow = _slow_when_asked(RUN)
    slow.seconds = 1.5
    monkeypatch.setattr(LoadedVersion, "run", slow)
    server = Server(base, rest_port=0, grpc_port=0, poll_seconds=0, max_batch_size=8, shutdown_timeout=10).start()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        in_flight = [pool.submit(predict, server, [f"SLOW {i}"]) for i in range(3)]
        try:
            wait_for(lambda: server.core.pending >= 3 and slow.slow_calls, 30,
                     lambda: f"3 pending predictions, one of them running: {server.core.pending} pending, "
                             f"{len(slow.slow_calls)} slow call(s) started")
        except BaseException:
            server.stop()
            raise
        started = time.monotonic()
        stopping = pool.submit(server.stop)
        time.sleep(0.2)
        with pytest.raises(ConnectionRefusedError):
            predict(server, ["Good morning."])
        assert [f.result()[0] for f in in_flight] == [200, 200, 200]
        stopping.result()
    assert time.monotonic() - started < 5


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVE_SLOWLY = textwrap.dedent("""
    import sys, time
    import numpy as np
    from tflm.log import setup_logging
    from tflm.serving import repository, serve

    original = repository.LoadedVersion.run
    def run(self, signature, inputs):  # "SLOW" requests take 2 s, so that SIGTERM finds them in flight
        if any(b"SLOW" in t for t in np.asarray(inputs.get("text", [])).reshape(-1)):
            time.sleep(2.0)
        return original(self, signature, inputs)
    repository.LoadedVersion.run = run
    setup_logging()
    serve(sys.argv[1], rest_port=int(sys.argv[2]), grpc_port=int(sys.argv[3]), poll_seconds=0, batching=False,
          shutdown_timeout=15)
""")


def test_sigterm_under_load_loses_no_request_in_flight_and_a_restart_serves_again(exported, tmp_path):
    script = tmp_path / "serve_slowly.py"
    script.write_text(SERVE_SLOWLY)
    ports = _free_port(), _free_port()
    command = [sys.executable, str(script), exported[0], str(ports[0]), str(ports[1])]
    server = type("Address", (), {"rest_port": ports[0]})

    def start():
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ends = time.monotonic() + 120
        while time.monotonic() < ends:
            try:
                if call(server, "GET", "/v1/models/tiny")[0] == 200:
                    return process
            except OSError:
                time.sleep(0.2)
        process.kill()
        raise AssertionError(process.communicate()[0])

    def grpc_predict():
        request = predict_pb2.PredictRequest(model_spec={"name": "tiny"})
        request.inputs["text"].CopyFrom(tf.make_tensor_proto(["SLOW over gRPC"]))
        with grpc.insecure_channel(f"127.0.0.1:{ports[1]}") as channel:
            return tf.make_ndarray(prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                request, timeout=60).outputs["outputs"]).shape

    process = start()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        in_flight = [pool.submit(predict, server, [f"SLOW {i}", "Good morning."]) for i in range(5)]
        in_flight_grpc = [pool.submit(grpc_predict) for _ in range(2)]
        time.sleep(1.0)  # all sent and being decoded
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(ConnectionRefusedError):
            predict(server, ["Good morning."])
        answers = [f.result() for f in in_flight]
        assert [a[0] for a in answers] == [200] * 5 and all(len(a[2]["predictions"]) == 2 for a in answers)
        assert [f.result() for f in in_flight_grpc] == [(1,), (1,)]
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert time.monotonic() - signalled < 15, output
    assert "SIGTERM: finishing the requests in flight" in output and "Stopped in" in output

    process = start()
    try:
        assert predict(server, ["Good morning."])[0] == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_load_registers_the_tokenizer_ops_that_a_plain_saved_model_load_lacks(exported):
    """In a fresh process: `tf.saved_model.load` fails without `import tensorflow_text`, `tflm.export.load`
    works and answers as the signature does."""
    _, path = exported
    program = textwrap.dedent(f"""
        import json, tensorflow as tf
        try:
            tf.saved_model.load({path!r})
            plain = "loaded"
        except Exception as error:
            plain = str(error)
        import tflm.export
        model = tflm.export.load({path!r})
        outputs = model(["Good morning.", ""])["outputs"]
        beams = model.run("translate", text=["Good morning."], beam_size=2, num_hypotheses=2, max_length=10,
                          length_penalty=0.6, temperature=0.0, top_k=0, top_p=1.0, seed=0)["outputs"]
        print(json.dumps({{"plain": plain, "outputs": [o.decode() for o in outputs], "beams": list(beams.shape),
                          "limits": model.limits.to_dict()}}))
    """)
    finished = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert "Op type not registered 'Sentencepiece" in result["plain"]
    expected = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(["Good morning.", ""]))
    assert result["outputs"] == [t.decode() for t in np.asarray(expected["outputs"])]
    assert result["beams"] == [1, 2] and result["limits"]["max_beam_size"] == 16
