"""TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest) over a `ServingCore`.

    GET  /v1/models/{name}[/versions/{version}]                 model status
    GET  /v1/models/{name}[/versions/{version}]/metadata        signature defs
    POST /v1/models/{name}[/versions/{version}]:predict          {"instances": [...]} or {"inputs": ...}
    POST /v1/models/{name}[/versions/{version}]:classify         {"examples": [{...}], "context": {...}} (classify.py)
    POST /v1/models/{name}[/versions/{version}]:regress          (TF Serving's error: no regression signatures)

Errors are `{"error": "..."}` with TF Serving's HTTP status codes (the message ends with the request's id,
which is also the `X-Request-Id` header of every response and appears in every log line about it):
400 bad input (including decoding controls outside the export's limits), 404 unknown model, version or path,
405 (with `Allow`) a wrong method, 408 a body that did not arrive in time, 413 a body over `max_body_bytes`
(answered before the body is read), 503 (with `Retry-After`) a full server or one shutting down, 504 a
request past its deadline.

The server is aiohttp's (asyncio: keep-alive, a slow or stalled client costs no thread). A prediction is queued
from the event loop (`ServingCore.submit`) and awaited there: the batcher's thread (or a worker, for signatures
that are not batched) runs TensorFlow; large bodies are parsed in a small thread pool.
"""

import asyncio
import concurrent.futures
import json
import logging
import re
import socket
import threading
import time
import urllib.parse

from aiohttp import web
from google.protobuf import json_format

from tflm.serving.classify import classify_json, parse_classify_request
from tflm.serving.core import request_id as make_request_id
from tflm.serving.errors import ServingError, deadline_error, empty_batch_error, serving_error
from tflm.serving.json_values import decode_value, encode_value  # noqa: F401  (also this module's API)

logger = logging.getLogger("tflm")

ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<method>predict|classify|regress))?/?$")


def load_request(body, keys="'instances' or 'inputs'"):
    """The JSON object of a request body (`keys`: what a predict request must hold, for the error message)."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {error}") from None
    if not isinstance(request, dict):
        raise ServingError("INVALID_ARGUMENT", f"The request must be a JSON object with {keys}.")
    return request


def parse_predict(request, input_names):
    """A predict request -> (name -> value, row format?)."""
    if ("instances" in request) == ("inputs" in request):
        raise ServingError("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key" if "instances" not in request
                           else "Request must specify exactly one of 'inputs' or 'instances'")
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise ServingError("INVALID_ARGUMENT", "'instances' must be a list")
        if not instances:
            raise empty_batch_error()
        columns = {}
        for index, instance in enumerate(instances):
            where = f"instance {index} of 'instances'"
            if isinstance(instance, dict) and not set(instance) == {"b64"}:
                for name, value in instance.items():
                    if name not in input_names:
                        raise ServingError("INVALID_ARGUMENT", f"Failed to process element: {index} key: {name} "
                                                               f"of 'instances' list. JSON object: does not have "
                                                               f"named input: {name}")
                    columns.setdefault(name, []).append(decode_value(value, where))
            elif len(input_names) == 1:
                columns.setdefault(input_names[0], []).append(decode_value(instance, where))
            else:
                raise ServingError("INVALID_ARGUMENT", f"{where}: the signature has inputs {input_names}; each "
                                                       "instance must be an object naming them")
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ServingError("INVALID_ARGUMENT", "every instance must name the same inputs")
        return columns, True
    inputs = request["inputs"]
    if isinstance(inputs, dict) and not set(inputs) == {"b64"}:
        return {name: decode_value(value, f"input {name!r}") for name, value in inputs.items()}, False
    if len(input_names) != 1:
        raise ServingError("INVALID_ARGUMENT", f"'inputs' must be an object naming the inputs {input_names}")
    return {input_names[0]: decode_value(inputs, "'inputs'")}, False


def format_predict(outputs, row_format):
    if row_format:
        names = sorted(outputs)
        rows = len(next(iter(outputs.values()))) if outputs else 0
        if len(names) == 1:
            return {"predictions": [encode_value(outputs[names[0]][i], names[0]) for i in range(rows)]}
        return {"predictions": [{n: encode_value(outputs[n][i], n) for n in names} for i in range(rows)]}
    if len(outputs) == 1:
        name = next(iter(outputs))
        return {"outputs": encode_value(outputs[name], name)}
    return {"outputs": {name: encode_value(value, name) for name, value in outputs.items()}}


def status_response(statuses):
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}} for s in statuses
    ]}


def metadata_response(loaded):
    defs = {name: json_format.MessageToDict(definition, preserving_proto_field_name=True)
            for name, definition in sorted(loaded.signature_defs.items()) if not name.startswith("__")}
    return {"model_spec": {"name": loaded.name, "signature_name": "", "version": str(loaded.version)},
            "metadata": {"signature_def": {"signature_def": defs}}}


def _json_bytes(payload):
    """JSON as UTF-8; text that cannot be UTF-8 (a lone surrogate quoted from a request) is \\u-escaped."""
    try:
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload).encode("ascii")


class HttpError(Exception):
    """An HTTP-level refusal that has no TF Serving error code (405, 408, 413)."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ClientDisconnected(Exception):
    """The client closed its connection before sending the whole body: nobody to answer (logged at INFO)."""


LOG_LEVELS = ((500, logging.WARNING), (400, logging.INFO), (0, logging.DEBUG))
SMALL_BODY = 64 << 10  # bytes: bodies up to this size are parsed on the event loop


class RestServer:
    """TF Serving's REST API on `address` (host, port; port 0 picks a free one), over a `ServingCore`.

    The socket listens from construction (connections wait in a backlog of 1,024 until `start()`).

    Args:
        address: (host, port).
        core: the `ServingCore`.
        max_body_bytes: int. Largest request body; larger ones get 413 before they are read.
        body_timeout: float. Seconds a client may take to send its body (408 after).
        keepalive_timeout: float. Seconds an idle keep-alive connection stays open.
        shutdown_timeout: float. On `stop()`, how long requests in flight may take to finish.
    """

    def __init__(self, address, core, max_body_bytes=1 << 20, body_timeout=30.0, keepalive_timeout=75.0,
                 shutdown_timeout=30.0):
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # socketserver's and asyncio's default backlogs (5, 100) make dozens of clients connecting at once
        # wait for SYN retries (seconds) or fail; the kernel caps this at net.core.somaxconn.
        self.socket = socket.create_server((host, port), family=family, backlog=1024)
        self.server_address = self.socket.getsockname()
        self.core = core
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.keepalive_timeout = keepalive_timeout
        self.shutdown_timeout = shutdown_timeout
        # Predictions wait on the event loop, not in threads; a few threads parse large bodies. Handlers beyond
        # this many (admitted predictions and the bodies being read) are refused before their body is read.
        self.max_active = core.max_pending + 16
        self.executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="tflm-rest")
        self._active = 0
        self._loop = None
        self._thread = None
        self._runner = None

    @property
    def port(self):
        return self.server_address[1]

    def start(self):
        """Serves in a background thread (its own asyncio event loop); returns self."""
        started = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start())
            except BaseException as error:  # noqa: BLE001  (reported to start()'s caller)
                started.set_exception(error)
                return
            started.set_result(None)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="tflm-rest", daemon=True)
        self._thread.start()
        started.result(timeout=60)
        return self

    async def _start(self):
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     keepalive_timeout=self.keepalive_timeout, shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        await web.SockSite(self._runner, self.socket, backlog=1024).start()

    def stop(self):
        """Stops listening, closes idle connections, lets requests in flight finish (at most
        `shutdown_timeout` seconds), then closes everything."""
        if self._loop is None:
            self.socket.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(self.shutdown_timeout + 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self.executor.shutdown(wait=False, cancel_futures=True)
            self._loop = None

    # ------------------------------------------------------------------ requests

    async def _handle(self, request):
        rid = make_request_id(request.headers.get("X-Request-Id"))
        started = time.monotonic()
        headers = {}
        try:
            status, payload = await self._dispatch(request, rid)
        except ServingError as error:
            status, payload = error.http_status, {"error": f"{error.message} (request id {rid})"}
            if error.code == "UNAVAILABLE":
                headers["Retry-After"] = "1"
        except HttpError as error:
            status, payload = error.status, {"error": f"{error.message} (request id {rid})"}
            headers.update(error.headers)
        except ClientDisconnected as gone:  # the client's doing, not the server's: no 500, no traceback
            logger.info("[%s] %s %s: %s in %.0f ms; nothing to answer", rid, request.method, request.raw_path, gone,
                        (time.monotonic() - started) * 1000)
            return web.Response(status=400, headers={"X-Request-Id": rid, "Connection": "close"})
        except Exception as error:  # noqa: BLE001  (never let one request take the server down)
            logger.exception("[%s] %s %s failed", rid, request.method, request.raw_path)
            status, payload = 500, {"error": f"INTERNAL: {type(error).__name__}: {error} (request id {rid})"}
        body = payload if isinstance(payload, bytes) else _json_bytes(payload)
        response = web.Response(body=body, status=status, content_type="application/json", headers=headers)
        response.headers["X-Request-Id"] = rid
        response.headers["Server"] = "tflm-serve"
        if self.core.draining:
            response.force_close()  # a client on a kept-alive connection reconnects elsewhere
        level = next(level for floor, level in LOG_LEVELS if status >= floor)
        error = f": {payload['error']}" if isinstance(payload, dict) and "error" in payload else ""
        logger.log(level, "[%s] %s %s -> %d in %.0f ms%s", rid, request.method, request.raw_path, status,
                   (time.monotonic() - started) * 1000,
                   error.encode("utf-8", "backslashreplace").decode("utf-8"))  # a log line always encodes
        return response

    async def _dispatch(self, request, rid):
        path = request.raw_path.split("?", 1)[0]
        match = ROUTE.match(path)
        if not match:
            raise ServingError("NOT_FOUND", f"Malformed request: {request.method} {path}")
        if match.group("label"):
            raise ServingError("UNIMPLEMENTED", "Version labels are not supported by tflm serve; use versions")
        method = match.group("method")
        allowed = "POST" if method else "GET"
        if request.method != allowed:
            raise HttpError(405, f"Method {request.method} is not allowed on {path}; use {allowed}",
                            {"Allow": allowed})
        name, version = urllib.parse.unquote(match.group("name")), match.group("version")
        if not method:
            if match.group("metadata"):
                return 200, metadata_response(self.core.repository.get(name, version))
            return 200, status_response(self.core.repository.statuses(name, version))
        self.core.refuse_if_full()  # before the body is read
        if self._active >= self.max_active:
            raise ServingError("UNAVAILABLE", f"the server is at capacity: {self._active} requests are being read "
                                              "or answered; retry shortly")
        deadline = self.core.deadline()
        self._active += 1
        try:
            body = await self._read_body(request)
            if len(body) > SMALL_BODY:  # parsing a large body would hold up the event loop: a thread does it
                parsed = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._parse_predict, name, version, method, body)
            else:
                parsed = self._parse_predict(name, version, method, body)
            signature, inputs, row_format = parsed
            # Queued without a thread of its own: the event loop waits for the batcher's (or a worker's) future,
            # without cancelling it at the deadline (the work frees its slot when it ends).
            if method == "classify":
                _, _, future = self.core.submit_classify(name, version, signature, *inputs, deadline)
            else:
                _, future = self.core.submit(name, version, signature, inputs, deadline)
            waiting = asyncio.wrap_future(future)
            done, _ = await asyncio.wait({waiting}, timeout=max(deadline - time.monotonic(), 0.0))
            if not done:
                waiting.add_done_callback(lambda f: f.cancelled() or f.exception())  # consumed, never logged
                raise deadline_error()
            try:
                outputs = waiting.result()
            except Exception as error:  # noqa: BLE001  (mapped to TF Serving's codes)
                raise serving_error(error) from None
            answer = classify_json(outputs) if method == "classify" else format_predict(outputs, row_format)
            return 200, _json_bytes(answer)
        finally:
            self._active -= 1

    async def _read_body(self, request):
        limit = self.max_body_bytes
        too_large = HttpError(413, f"Request body of {request.content_length or 'more than ' + str(limit)} bytes "
                                   f"exceeds the limit of {limit} bytes (--max-body-bytes)")
        if request.content_length is not None and request.content_length > limit:
            raise too_large  # answered without reading the body (aiohttp drains it before reusing the connection)
        try:
            return await asyncio.wait_for(request.read(), self.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        except asyncio.TimeoutError:
            raise HttpError(408, f"the request body did not arrive within {self.body_timeout:g} s") from None
        except ConnectionError:
            expected = request.content_length
            raise ClientDisconnected("the client disconnected before sending its whole body" + (
                f" ({expected} bytes announced)" if expected is not None else "")) from None

    def _parse_predict(self, name, version, method, body):
        """The request's (signature name, inputs, row format?); for classify, inputs are (examples, context)."""
        loaded = self.core.repository.get(name, version)
        if method == "regress":
            raise ServingError("INVALID_ARGUMENT", "Expected regression signature method_name to be "
                                                   "tensorflow/serving/regress. Was: tensorflow/serving/predict")
        if method == "classify":
            signature, examples, context = parse_classify_request(load_request(body, "'examples'"), loaded)
            return signature, (examples, context), None
        request = load_request(body)
        signature = request.get("signature_name")
        inputs, row_format = parse_predict(request, sorted(loaded.input_specs(signature)))
        return signature, inputs, row_format
