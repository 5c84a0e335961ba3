"""TF Serving's gRPC API over a `ServingCore`, with the official protos of tensorflow-serving-api.

`PredictionService`: `Predict`, `Classify` (on a classify signature: `tflm.serving.classify`), `GetModelMetadata`
(and `Regress`, which answers as TF Serving does for a model without regression signatures); `ModelService`:
`GetModelStatus`.

A `Predict` or `Classify` gets the sooner of the client's deadline and the server's `--request-timeout`
(DEADLINE_EXCEEDED after); a full server answers UNAVAILABLE. Every call has a request id (the client's
`x-request-id` metadata, or a new one), sent back as trailing metadata and named in its error message and log
lines.
"""

import concurrent.futures
import logging
import time

import grpc
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tflm.serving.classify import GRPC_HINT, examples_of_input, fill_classification_result
from tflm.serving.core import request_id as make_request_id
from tflm.serving.errors import ServingError

logger = logging.getLogger("tflm")

GRPC_CODES = {code.name: code for code in grpc.StatusCode}


def _request_id(context):
    proposed = dict(context.invocation_metadata()).get("x-request-id")
    rid = make_request_id(proposed if isinstance(proposed, str) else None)
    context.set_trailing_metadata((("x-request-id", rid),))
    return rid


def _abort(context, error, rid="-"):
    code = GRPC_CODES.get(error.code, grpc.StatusCode.INTERNAL)
    level = logging.WARNING if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE,
                                        grpc.StatusCode.DEADLINE_EXCEEDED) else logging.INFO
    logger.log(level, "[%s] gRPC -> %s: %s", rid, code.name, error.message)
    context.abort(code, f"{error.message} (request id {rid})")


def _version(model_spec):
    return model_spec.version.value if model_spec.HasField("version") else None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core):
        self.core = core

    def Predict(self, request, context):  # noqa: N802  (gRPC method names)
        rid = _request_id(context)
        started = time.monotonic()
        try:
            spec = request.model_spec
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            deadline = self.core.deadline(context.time_remaining())
            loaded, outputs = self.core.predict(spec.name, _version(spec), spec.signature_name, inputs,
                                                deadline=deadline)
            wanted = set(request.output_filter) or set(outputs)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = loaded.name
            response.model_spec.version.value = loaded.version
            response.model_spec.signature_name = spec.signature_name or "serving_default"
            for name, value in outputs.items():
                if name in wanted:
                    response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            logger.debug("[%s] gRPC Predict %s -> OK in %.0f ms", rid, spec.name, (time.monotonic() - started) * 1000)
            return response
        except ServingError as error:
            _abort(context, error, rid)
        except Exception as error:  # noqa: BLE001
            logger.exception("[%s] gRPC Predict failed", rid)
            _abort(context, ServingError("INTERNAL", f"{type(error).__name__}: {error}"), rid)

    def GetModelMetadata(self, request, context):  # noqa: N802
        rid = _request_id(context)
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingError("INVALID_ARGUMENT", "Metadata field signature_def is the only one supported")
            loaded = self.core.repository.get(request.model_spec.name, _version(request.model_spec))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = loaded.name
            response.model_spec.version.value = loaded.version
            signatures = get_model_metadata_pb2.SignatureDefMap()
            for name, definition in loaded.signature_defs.items():
                if not name.startswith("__"):
                    signatures.signature_def[name].CopyFrom(definition)
            packed = any_pb2.Any()
            packed.Pack(signatures)
            response.metadata["signature_def"].CopyFrom(packed)
            return response
        except ServingError as error:
            _abort(context, error, rid)

    def Classify(self, request, context):  # noqa: N802
        """TF Serving's Classify: `input.example_list` (or `example_list_with_context`) through a classify
        signature (`tflm.serving.classify`), batched and bounded as `Predict` is."""
        rid = _request_id(context)
        started = time.monotonic()
        try:
            spec = request.model_spec
            examples, shared = examples_of_input(request.input)
            deadline = self.core.deadline(context.time_remaining())
            loaded, signature_name, outputs = self.core.classify(spec.name, _version(spec), spec.signature_name,
                                                                 examples, shared, deadline, GRPC_HINT)
            response = classification_pb2.ClassificationResponse()
            response.model_spec.name = loaded.name
            response.model_spec.version.value = loaded.version
            response.model_spec.signature_name = signature_name
            fill_classification_result(response.result, outputs)
            logger.debug("[%s] gRPC Classify %s -> OK in %.0f ms", rid, spec.name, (time.monotonic() - started) * 1000)
            return response
        except ServingError as error:
            _abort(context, error, rid)
        except Exception as error:  # noqa: BLE001
            logger.exception("[%s] gRPC Classify failed", rid)
            _abort(context, ServingError("INTERNAL", f"{type(error).__name__}: {error}"), rid)

    def Regress(self, request, context):  # noqa: N802
        _abort(context, ServingError("INVALID_ARGUMENT", "Expected regression signature method_name to be "
                                                         "tensorflow/serving/regress. Was: tensorflow/serving/predict"),
               _request_id(context))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core):
        self.core = core

    def GetModelStatus(self, request, context):  # noqa: N802
        rid = _request_id(context)
        try:
            statuses = self.core.repository.statuses(request.model_spec.name, _version(request.model_spec))
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in statuses:
                entry = response.model_version_status.add()
                entry.version = status.version
                entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
                entry.status.error_code = GRPC_CODES.get(status.error_code, grpc.StatusCode.UNKNOWN).value[0]
                entry.status.error_message = status.error_message
            return response
        except ServingError as error:
            _abort(context, error, rid)


def grpc_server(core, address, max_message_bytes=1 << 20, workers=None, start=True):
    """A gRPC server answering TF Serving's PredictionService and ModelService at `address`, bound
    exclusively (no `SO_REUSEPORT`: a second server on the same port fails instead of sharing it) and
    started unless `start=False`; returns `(server, port)` (the port actually bound, for an address ending
    in `:0`). Raises RuntimeError if the address cannot be bound.

    One thread per call in progress (`workers`, default: the core's `max_pending` plus a few for metadata
    and refusals); calls beyond twice that are refused by gRPC itself (RESOURCE_EXHAUSTED), never queued
    without bound.
    """
    workers = workers or core.max_pending + 8
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tflm-grpc"),
        options=[("grpc.max_receive_message_length", max_message_bytes), ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=2 * workers,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    port = server.add_insecure_port(address)
    if not port:
        raise RuntimeError(f"Failed to bind to address {address}")
    if start:
        server.start()
    return server, port
