"""TF Serving's gRPC API over a `ServingCore`, with the official protos of tensorflow-serving-api.

`PredictionService`: `Predict`, `GetModelMetadata` (and `Classify`/`Regress`, which answer as TF Serving does
for predict-only models); `ModelService`: `GetModelStatus`.
"""

import concurrent.futures
import logging

import grpc
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tflm.serving.repository import ServingError

logger = logging.getLogger("tflm")

GRPC_CODES = {code.name: code for code in grpc.StatusCode}


def _abort(context, error):
    context.abort(GRPC_CODES.get(error.code, grpc.StatusCode.INTERNAL), error.message)


def _version(model_spec):
    return model_spec.version.value if model_spec.HasField("version") else None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core):
        self.core = core

    def Predict(self, request, context):  # noqa: N802  (gRPC method names)
        try:
            spec = request.model_spec
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            loaded, outputs = self.core.predict(spec.name, _version(spec), spec.signature_name, inputs)
            wanted = set(request.output_filter) or set(outputs)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = loaded.name
            response.model_spec.version.value = loaded.version
            response.model_spec.signature_name = spec.signature_name or "serving_default"
            for name, value in outputs.items():
                if name in wanted:
                    response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response
        except ServingError as error:
            _abort(context, error)
        except Exception as error:  # noqa: BLE001
            logger.exception("gRPC Predict failed")
            _abort(context, ServingError("INTERNAL", f"{type(error).__name__}: {error}"))

    def GetModelMetadata(self, request, context):  # noqa: N802
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
            _abort(context, error)

    def Classify(self, request, context):  # noqa: N802
        _abort(context, ServingError(
            "INVALID_ARGUMENT",
            "Expected classification signature method_name to be tensorflow/serving/classify. "
            "Was: tensorflow/serving/predict"))

    def Regress(self, request, context):  # noqa: N802
        _abort(context, ServingError("INVALID_ARGUMENT", "Expected regression signature method_name to be "
                                                         "tensorflow/serving/regress. Was: tensorflow/serving/predict"))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core):
        self.core = core

    def GetModelStatus(self, request, context):  # noqa: N802
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
            _abort(context, error)


def grpc_server(core, address, max_message_bytes=1 << 20, workers=16):
    """A started gRPC server answering TF Serving's PredictionService and ModelService at `address`;
    returns `(server, port)` (the port actually bound, for an address ending in `:0`)."""
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tflm-grpc"),
        options=[("grpc.max_receive_message_length", max_message_bytes)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    port = server.add_insecure_port(address)
    if not port:
        raise OSError(f"Cannot listen on {address} for gRPC.")
    server.start()
    return server, port
