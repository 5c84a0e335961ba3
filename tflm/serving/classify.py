"""TF Serving's Classify API in `tflm serve`: REST `:classify` and gRPC `Classify`, on a signature whose method is
"tensorflow/serving/classify" (`tflm.tasks.predictor.CLASSIFY_METHOD`; a classification task exports `classify`).

    POST /v1/models/NAME[/versions/V]:classify
    {"signature_name": "classify", "context": {"text_a": "..."}, "examples": [{"text": "..."}, ...]}
    -> {"results": [[["positive", 0.71], ["neutral", 0.2], ["negative", 0.09]], ...]}

As in TF Serving (`json_tensor.cc`, `classifier.cc`): each example is a JSON object of features (a string is a
`bytes_list`, an integer or boolean an `int64_list`, a number with a fraction or exponent a `float_list`,
`{"b64": ...}` binary bytes, a list several values of one kind); the optional "context" holds features shared
by every example, merged into each (an example's own feature wins: the serialized context and example are
concatenated, as TF Serving does for `example_list_with_context`). The signature takes one input, `inputs`
(the serialized `tf.Example`s), and gives `classes` (string) and/or `scores` (float), each `[batch, k]`; one
result per example lists `[label, score]` for each of the k entries (a signature without `classes` gives the
label "" and one without `scores` the score 0, as TF Serving does). No `signature_name` means
`serving_default`, which is refused unless its method is classify, with TF Serving's message and a hint naming
the model's classify signatures.

A request runs through the same admission, deadline and batching as Predict (`ServingCore.submit_classify`).
For an export that records its signature's `example_features` (tflm.json), every example is checked before it
is queued: a feature the signature needs that is missing, not one string or not UTF-8 text is INVALID_ARGUMENT
naming the example and the feature, and never fails the other requests batched with it.
"""

import base64
import math

import numpy as np

from tflm.export.check import CLASSES, SCORES, classify_problems
from tflm.serving.errors import ServingError, empty_batch_error
from tflm.tasks.predictor import CLASSIFY_METHOD, EXAMPLES_INPUT

REST_HINT = 'give "signature_name": "{}"'  # how a client names a signature, in the hint of a refusal
GRPC_HINT = 'set model_spec.signature_name = "{}"'


def _example_class():
    from tensorflow.core.example import example_pb2

    return example_pb2.Example


def _json_type(value):
    """rapidjson's name of a JSON value's type, as TF Serving's messages give it."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _add_value(feature, name, value, where):
    """Adds one JSON value to `feature` (a `tf.train.Feature`) as TF Serving's `AddValueToFeature` does."""
    def kind_error():
        kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}[feature.WhichOneof("kind")]
        return ServingError("INVALID_ARGUMENT", f"{where}: Unexpected element type in feature: {name} expecting "
                                                f"type: {kind} (every value of a feature must be of one kind)")

    def check_kind(kind):
        if feature.WhichOneof("kind") not in (None, kind):
            raise kind_error()

    if value is None or isinstance(value, list) or (isinstance(value, dict) and set(value) != {"b64"}):
        raise ServingError("INVALID_ARGUMENT", f"{where}: Feature: {name} has element with unexpected JSON type: "
                                               f"{_json_type(value)} (give a string, a number, {{\"b64\": ...}} or "
                                               "a list of one of these)")
    if isinstance(value, bool):
        check_kind("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict):
        check_kind("bytes_list")
        try:
            feature.bytes_list.value.append(base64.b64decode(value["b64"], validate=True))
        except (ValueError, TypeError):
            raise ServingError("INVALID_ARGUMENT", f"{where}: feature {name}: Unable to base64 decode") from None
    elif isinstance(value, str):
        check_kind("bytes_list")
        try:
            feature.bytes_list.value.append(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ServingError("INVALID_ARGUMENT", f"{where}: feature {name}: the string {ascii(value[:40])} is "
                                                   "not Unicode text; send UTF-8 text, or bytes as {\"b64\": ...}") \
                from None
    elif isinstance(value, float):
        check_kind("float_list")
        if math.isfinite(value) and abs(value) > float(np.finfo(np.float32).max):
            raise ServingError("INVALID_ARGUMENT", f"{where}: Cannot convert JSON value: {value!r} to float without "
                                                   f"loss of precision (feature {name})")
        feature.float_list.value.append(value)
    else:
        check_kind("int64_list")
        if not -(1 << 63) <= value < (1 << 63):
            raise ServingError("INVALID_ARGUMENT", f"{where}: Feature: {name} has element {value} outside int64. "
                                                   "Only int64 is supported.")
        feature.int64_list.value.append(value)


def example_from_json(value, where):
    """A JSON object of features -> `tf.train.Example` (TF Serving's `MakeExampleFromJsonObject`); errors are
    INVALID_ARGUMENT naming `where` ("example 3", "context") and the feature."""
    if not isinstance(value, dict):
        raise ServingError("INVALID_ARGUMENT", f"{where}: Example must be JSON object but got JSON "
                                               f"{_json_type(value)} (give each example as an object of features, "
                                               'e.g. {"text": "..."})')
    example = _example_class()()
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_value(feature, name, item, where)
    return example


def parse_classify_request(request, loaded=None):
    """A REST classify request (its JSON object) -> (signature name or None, [tf.train.Example], context Example
    or None), with TF Serving's messages for a malformed one. With `loaded` (the model version), the signature is
    checked first (`classify_signature`): a request to a predict signature is told so before anything else."""
    if not isinstance(request, dict):
        raise ServingError("INVALID_ARGUMENT", "The request must be a JSON object with 'examples' (and optionally "
                                               "'signature_name' and 'context').")
    signature = request.get("signature_name")
    if signature is not None and not isinstance(signature, str):
        raise ServingError("INVALID_ARGUMENT", f"JSON Value: {str(signature)[:100]} not formatted correctly. "
                                               "'signature_name' key must be a string value.")
    if loaded is not None:
        classify_signature(loaded, signature)
    context = example_from_json(request["context"], "context") if "context" in request else None
    if "examples" not in request:
        raise ServingError("INVALID_ARGUMENT", "When method is classify, key 'examples' is expected and was not "
                                               "found")
    examples = request["examples"]
    if not isinstance(examples, list):
        raise ServingError("INVALID_ARGUMENT", "Expecting 'examples' value to be an list/array")
    if not examples:
        raise ServingError("INVALID_ARGUMENT", "'examples' value is an empty array")
    return signature, [example_from_json(value, f"example {i}") for i, value in enumerate(examples)], context


def examples_of_input(proto):
    """A gRPC request's `Input` -> ([tf.train.Example], context Example or None)."""
    kind = proto.WhichOneof("kind")
    if kind == "example_list":
        return list(proto.example_list.examples), None
    if kind == "example_list_with_context":
        return list(proto.example_list_with_context.examples), proto.example_list_with_context.context
    return [], None


def classify_signature(loaded, signature_name, hint=REST_HINT):
    """The name of the classify signature a request asks for (default `serving_default`), checked as TF
    Serving checks it (`GetClassificationSignatureDef`, `PreProcessClassification`). A signature of another
    method is refused with TF Serving's message and, as `hint` says how, the model's classify signatures."""
    name = signature_name or "serving_default"
    definitions = loaded.signature_defs
    own = sorted(key for key, value in definitions.items() if value.method_name == CLASSIFY_METHOD)
    advice = ("; this model's classify signature(s): " + ", ".join(own) + f" ({hint.format(own[0])})" if own
              else "; this model has no classify signature: use :predict (gRPC Predict) instead")
    if name not in definitions:
        raise ServingError("INVALID_ARGUMENT", f"No signature was found with the name: {name}{advice}")
    definition = definitions[name]
    if definition.method_name != CLASSIFY_METHOD:
        raise ServingError("INVALID_ARGUMENT", f"Expected classification signature method_name to be "
                                               f"{CLASSIFY_METHOD}. Was: {definition.method_name}{advice}")
    problems = classify_problems(definition)
    if problems:
        raise ServingError("FAILED_PRECONDITION", f"signature {name!r} cannot serve Classify: {problems[0]}")
    return name


def example_batch(loaded, signature_name, examples, context, max_batch_size):
    """The `inputs` of a classify signature: each example serialized after the context (TF Serving's merge),
    as a numpy object vector. Checks the count (none, or more than `max_batch_size`, is INVALID_ARGUMENT) and,
    where tflm.json declares the signature's `example_features`, that each merged example has every one as a
    single UTF-8 string: otherwise INVALID_ARGUMENT naming the example and the feature."""
    if not examples:
        raise empty_batch_error()
    if len(examples) > max_batch_size:
        raise ServingError("INVALID_ARGUMENT", f"batch of {len(examples)} examples exceeds this server's maximum "
                                               f"of {max_batch_size} (--max-batch-size); split the request")
    prefix = context.SerializeToString() if context is not None else b""
    serialized = [prefix + example.SerializeToString() for example in examples]
    declared = (loaded.info or {}).get("signature_rows", {}).get(signature_name, {})
    needed = declared.get("example_features", ())
    if needed:
        parse = _example_class().FromString
        for index, blob in enumerate(serialized):
            features = parse(blob).features.feature
            for name in needed:
                problem = _feature_problem(features[name] if name in features else None)
                if problem:
                    shared = ' or in "context"' if len(examples) > 1 else ""
                    raise ServingError("INVALID_ARGUMENT", f"example {index}: feature {name!r} {problem}; signature "
                                                           f"{signature_name!r} needs {', '.join(needed)}, each one "
                                                           f"string, in every example{shared}")
    batch = np.empty(len(serialized), dtype=object)
    batch[:] = serialized
    return batch


def _feature_problem(feature):
    if feature is None:
        return "is missing"
    kind = feature.WhichOneof("kind")
    if kind is None:
        return "is empty"
    if kind != "bytes_list":
        return f"is an {kind} ({list(getattr(feature, kind).value)[:5]}), not a string"
    values = feature.bytes_list.value
    if len(values) != 1:
        return f"has {len(values)} strings"
    try:
        values[0].decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8 text"
    return None


def classifications(outputs):
    """A classify signature's outputs (name -> numpy array) -> one list of (label, score) per example, checked
    as TF Serving checks them (rank 2, as many rows in each, as many classes in each)."""
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    if classes is None and scores is None:
        raise ServingError("INVALID_ARGUMENT", f"the classify signature gave neither {CLASSES!r} nor {SCORES!r}")
    shapes = {name: value.shape for name, value in ((CLASSES, classes), (SCORES, scores)) if value is not None}
    if any(len(shape) != 2 for shape in shapes.values()) or len({shape for shape in shapes.values()}) != 1:
        raise ServingError("INVALID_ARGUMENT", f"Expected Tensor shape: [batch_size num_classes] for {CLASSES!r} and "
                                       f"{SCORES!r}, but got {shapes}")
    rows, count = next(iter(shapes.values()))
    results = []
    for row in range(rows):
        labels = ["" if classes is None else _label(classes[row, j]) for j in range(count)]
        values = [0.0 if scores is None else float(str(np.float32(scores[row, j]))) for j in range(count)]
        results.append(list(zip(labels, values)))
    return results


def _label(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def classify_json(outputs):
    """TF Serving's REST answer (`MakeJsonFromClassificationResult`): {"results": [[[label, score], ...], ...]}
    (scores written as float32 values, shortest first: 0.2, not 0.20000000298023224)."""
    return {"results": [[[label, score] for label, score in result] for result in classifications(outputs)]}


def fill_classification_result(result, outputs):
    """Fills a gRPC `ClassificationResult` from a classify signature's outputs."""
    for classes in classifications(outputs):
        entry = result.classifications.add()
        for label, score in classes:
            entry.classes.add(label=label, score=score)
