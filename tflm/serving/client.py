"""A client of any TF Serving (tflm serve or the real one): REST or gRPC, `serving_default` or `translate`."""

import json
import urllib.error
import urllib.request

import numpy as np


class ServingClientError(RuntimeError):
    """The server answered with an error, or could not be reached."""


def translate_rest(address, model, sentences, version=None, timeout=60.0):
    """Translations of `sentences` from `http://address/v1/models/model[/versions/v]:predict`."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    body = json.dumps({"instances": list(sentences)}).encode("utf-8")
    request = urllib.request.Request(f"http://{address}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            predictions = json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as error:
        raise ServingClientError(f"{address}: HTTP {error.code}: {error.read().decode('utf-8', 'replace')}") from None
    except urllib.error.URLError as error:
        raise ServingClientError(f"{address}: cannot reach the server ({error.reason}).") from None
    return [p["outputs"] if isinstance(p, dict) else p for p in predictions]


def translate_grpc(address, model, sentences, version=None, timeout=60.0):
    """Translations of `sentences` from the gRPC PredictionService at `address`."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    if version:
        request.model_spec.version.value = int(version)
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(list(sentences), dtype=tf.string))
    with grpc.insecure_channel(address) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ServingClientError(f"{address}: {error.code().name}: {error.details()}") from None
    return [t.decode("utf-8") for t in np.asarray(tf.make_ndarray(response.outputs["outputs"])).reshape(-1)]
