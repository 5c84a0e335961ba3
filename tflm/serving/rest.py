"""TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest) over a `ServingCore`.

    GET  /v1/models/{name}[/versions/{version}]                 model status
    GET  /v1/models/{name}[/versions/{version}]/metadata        signature defs
    POST /v1/models/{name}[/versions/{version}]:predict          {"instances": [...]} or {"inputs": ...}
    POST /v1/models/{name}[/versions/{version}]:classify|regress  (TF Serving's error: predict-only models)

Errors are `{"error": "..."}` with TF Serving's HTTP status codes. Request bodies over `max_body_bytes`
are refused with 413 before they are read.
"""

import base64
import http.server
import json
import logging
import re
import threading

import numpy as np
from google.protobuf import json_format

from tflm.serving.repository import ServingError

logger = logging.getLogger("tflm")

ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<method>predict|classify|regress))?/?$")


def decode_value(value, where):
    """JSON value -> Python value: strings to UTF-8 bytes, {"b64": ...} to bytes, lists recursively."""
    if isinstance(value, list):
        return [decode_value(v, where) for v in value]
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (ValueError, TypeError):
                raise ServingError("INVALID_ARGUMENT", f"{where}: invalid base64 in {{\"b64\": ...}}") from None
        raise ServingError("INVALID_ARGUMENT", f"{where}: unexpected JSON object {json.dumps(value)[:100]}")
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def encode_value(value, name):
    """numpy value -> JSON value, as TF Serving writes it (strings as text, `*_bytes` outputs as base64)."""
    if isinstance(value, np.ndarray):
        return [encode_value(v, name) for v in value] if value.ndim else encode_value(value.item(), name)
    if isinstance(value, bytes):
        if not name.endswith("_bytes"):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_request(body):
    """The JSON object of a predict request body."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {error}") from None
    if not isinstance(request, dict):
        raise ServingError("INVALID_ARGUMENT", "The request must be a JSON object with 'instances' or 'inputs'.")
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


class RestHandler(http.server.BaseHTTPRequestHandler):
    server_version = "tflm-serve"
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may take to send its request

    def log_message(self, format, *args):  # noqa: A002  (BaseHTTPRequestHandler's signature)
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, status, payload):
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, error):
        self._send(error.http_status, {"error": error.message})

    def _route(self):
        match = ROUTE.match(self.path.split("?", 1)[0])
        if not match:
            raise ServingError("NOT_FOUND", f"Malformed request: {self.command} {self.path}")
        if match.group("label"):
            raise ServingError("UNIMPLEMENTED", "Version labels are not supported by tflm serve; use versions")
        return match

    def do_GET(self):  # noqa: N802  (http.server's naming)
        try:
            match = self._route()
            if match.group("method"):
                raise ServingError("NOT_FOUND", f"Malformed request: GET {self.path}")
            core = self.server.core
            name, version = match.group("name"), match.group("version")
            if match.group("metadata"):
                self._send(200, metadata_response(core.repository.get(name, version)))
            else:
                self._send(200, status_response(core.repository.statuses(name, version)))
        except ServingError as error:
            self._error(error)

    def do_POST(self):  # noqa: N802
        try:
            match = self._route()
            length = self.headers.get("Content-Length")
            if length is None:
                self.close_connection = True
                raise ServingError("INVALID_ARGUMENT", "Content-Length is required")
            length = int(length)
            if length > self.server.max_body_bytes:
                self.close_connection = True  # the body is not read
                self._send(413, {"error": f"Request body of {length} bytes exceeds the limit of "
                                          f"{self.server.max_body_bytes} bytes (--max-body-bytes)"})
                return
            body = self.rfile.read(length)
            method = match.group("method")
            if method is None or match.group("metadata"):
                raise ServingError("NOT_FOUND", f"Malformed request: POST {self.path}")
            core = self.server.core
            name, version = match.group("name"), match.group("version")
            loaded = core.repository.get(name, version)
            if method in ("classify", "regress"):
                kind = "classification" if method == "classify" else "regression"
                raise ServingError("INVALID_ARGUMENT", f"Expected {kind} signature method_name to be "
                                                       f"tensorflow/serving/{method}. Was: tensorflow/serving/predict")
            request = load_request(body)
            signature = request.get("signature_name")
            inputs, row_format = parse_predict(request, sorted(loaded.input_specs(signature)))
            _, outputs = core.predict(name, version, signature, inputs)
            self._send(200, format_predict(outputs, row_format))
        except ServingError as error:
            self._error(error)
        except Exception as error:  # noqa: BLE001  (never let one request take the server down)
            logger.exception("Request failed")
            self._error(ServingError("INTERNAL", f"{type(error).__name__}: {error}"))


class RestServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: with dozens of clients connecting at once, further
    # connections wait for SYN retries (seconds) or fail. The kernel caps this at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, address, core, max_body_bytes=1 << 20):
        super().__init__(address, RestHandler)
        self.core = core
        self.max_body_bytes = max_body_bytes

    def start(self):
        thread = threading.Thread(target=self.serve_forever, name="tflm-rest", daemon=True)
        thread.start()
        return self
