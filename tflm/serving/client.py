"""A client of any TF Serving (tflm serve or the real one): REST or gRPC, `serving_default` or `translate`, and
TF Serving's Classify API (`classify_rest`, `classify_grpc`: per example, its (label, score) pairs).

    classify_rest("localhost:8501", "sentiment", ["Great film.", {"text": "Dull."}])
    # -> [[("positive", 0.91), ("neutral", 0.06), ("negative", 0.03)], [...]]
"""

import json
import urllib.error
import urllib.request

import numpy as np


class ServingClientError(RuntimeError):
    """The server answered with an error, or could not be reached."""


def _post(address, path, payload, timeout):
    """POSTs JSON to `http://address/path`; the answer's JSON, or `ServingClientError` saying what went wrong."""
    request = urllib.request.Request(f"http://{address}{path}", data=json.dumps(payload).encode("utf-8"),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise ServingClientError(f"{address}: HTTP {error.code}: {error.read().decode('utf-8', 'replace')}") from None
    except urllib.error.URLError as error:
        raise ServingClientError(f"{address}: cannot reach the server ({error.reason}).") from None


def translate_rest(address, model, sentences, version=None, timeout=60.0):
    """Translations of `sentences` from `http://address/v1/models/model[/versions/v]:predict`."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    predictions = _post(address, path, {"instances": list(sentences)}, timeout)["predictions"]
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


def _example_features(example):
    """An example as the Classify API takes it: a dict of features, or a str for {"text": str}."""
    if isinstance(example, str):
        return {"text": example}
    if not isinstance(example, dict):
        raise ValueError(f"an example must be a str or a dict of features, not {type(example).__name__} {example!r}")
    return example


def classify_rest(address, model, examples, signature_name="classify", version=None, timeout=60.0, context=None):
    """TF Serving's REST Classify: `POST http://address/v1/models/model[/versions/v]:classify`.

    Args:
        examples: one entry per example: a dict of features (`{"text_a": ..., "text_b": ...}`; values str, int,
            float, `{"b64": ...}` or lists of these), or a str (the feature "text").
        signature_name: the model's classify signature.
        context: optional features shared by every example (TF Serving's "context").
    Returns:
        Per example, its list of (label, score), as the signature orders them (a classification export: best
        first). Raises `ServingClientError` on an error answer or an unreachable server.
    """
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":classify"
    payload = {"signature_name": signature_name, "examples": [_example_features(e) for e in examples]}
    if context is not None:
        payload["context"] = context
    results = _post(address, path, payload, timeout)["results"]
    return [[(label, float(score)) for label, score in result] for result in results]


def make_example(features):
    """A `tf.train.Example` of a dict of features, as TF Serving's REST API makes one: str -> bytes_list (UTF-8),
    bytes or {"b64": ...} -> bytes_list, int/bool -> int64_list, float -> float_list; a list gives several values."""
    import base64

    import tensorflow as tf

    example = tf.train.Example()
    for name, value in features.items():
        feature = example.features.feature[name]
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, dict) and set(item) == {"b64"}:
                item = base64.b64decode(item["b64"])
            if isinstance(item, (str, bytes)):
                feature.bytes_list.value.append(item.encode("utf-8") if isinstance(item, str) else item)
            elif isinstance(item, (bool, int, np.integer)):
                feature.int64_list.value.append(int(item))
            elif isinstance(item, (float, np.floating)):
                feature.float_list.value.append(float(item))
            else:
                raise ValueError(f"feature {name!r}: {type(item).__name__} {item!r} is not a str, bytes, int or float")
    return example


def classify_grpc(address, model, examples, signature_name="classify", version=None, timeout=60.0, context=None):
    """TF Serving's gRPC Classify at `address` (`PredictionService.Classify`); arguments and result as
    `classify_rest` (with `context`, the request's input is `example_list_with_context`)."""
    import grpc
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version:
        request.model_spec.version.value = int(version)
    made = [make_example(_example_features(e)) for e in examples]
    if context is not None:
        request.input.example_list_with_context.context.CopyFrom(make_example(context))
        request.input.example_list_with_context.examples.extend(made)
    else:
        request.input.example_list.examples.extend(made)
    with grpc.insecure_channel(address) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ServingClientError(f"{address}: {error.code().name}: {error.details()}") from None
    return [[(c.label, float(str(np.float32(c.score)))) for c in classification.classes]  # (as REST writes scores)
            for classification in response.result.classifications]


def predict_rest(address, model, rows, signature_name="serving_default", version=None, timeout=60.0):
    """TF Serving's REST Predict (row format): `rows` are str (a signature of one input) or dicts naming the
    inputs (`{"question": ..., "context": ...}`); returns one dict of outputs per row (a signature of one output:
    `{"outputs": value}`)."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    payload = {"signature_name": signature_name, "instances": list(rows)}
    predictions = _post(address, path, payload, timeout)["predictions"]
    return [p if isinstance(p, dict) else {"outputs": p} for p in predictions]


def predict_grpc(address, model, columns, signature_name="serving_default", version=None, timeout=60.0):
    """TF Serving's gRPC Predict: `columns` is `{input name: list of str}`; returns one dict of outputs per row
    (NumPy values; strings decoded)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version:
        request.model_spec.version.value = int(version)
    for name, values in columns.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(list(values), dtype=tf.string))
    with grpc.insecure_channel(address) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ServingClientError(f"{address}: {error.code().name}: {error.details()}") from None
    outputs = {name: np.asarray(tf.make_ndarray(tensor)) for name, tensor in response.outputs.items()}
    count = len(next(iter(columns.values()))) if columns else 0
    from tflm.tasks.predictor import _plain

    return [{name: _plain(value[index]) for name, value in outputs.items()} for index in range(count)]
