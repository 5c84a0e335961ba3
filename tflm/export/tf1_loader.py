"""Runs a SavedModel signature the way stock TensorFlow Serving does, and prints the outputs as JSON.

TF Serving loads SavedModels with the TF1 session loader (`tf.compat.v1.saved_model.loader.load` in a
`Session`), with tensorflow-text's op libraries linked in but without any Python package. This script
does the same: it loads only tensorflow-text's `*.so` op libraries (never `import tensorflow_text`) and
imports nothing from tflm, so a model that needs Python-side registration fails here as it would there.

    python tflm/export/tf1_loader.py SAVED_MODEL --requests '[{"signature": "serving_default",
                                                             "inputs": {"text": ["Hello."]}}]' [--warmup]

A string input may hold `{"b64": "..."}` entries (binary bytes such as serialized tf.Examples, for a classify
signature's `inputs`). Prints `{"results": [outputs of each request], "warmup_requests": N}` (`--warmup` replays
assets.extra/tf_serving_warmup_requests first), or `{"error": ...}` with exit status 1. With `--keep-going`,
a request that fails gives `{"error": "<type>: <message>"}` as its result and the others still run (the
model must load).

Run as a script (in a fresh process), not imported.
"""

import argparse
import base64
import glob
import importlib.util
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def load_text_op_libraries():
    """Loads every tensorflow-text op library (the ops TF Serving links in); returns their paths."""
    spec = importlib.util.find_spec("tensorflow_text")
    if spec is None:
        return []
    root = list(spec.submodule_search_locations)[0]
    libraries = sorted(glob.glob(os.path.join(root, "python", "**", "_*.so"), recursive=True))
    for library in libraries:
        tf.load_op_library(library)
    return libraries


def _binary(value):
    """JSON input -> value: `{"b64": ...}` entries decoded to bytes, lists recursively."""
    if isinstance(value, list):
        return [_binary(item) for item in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def _jsonable(value):
    value = np.asarray(value)
    if value.dtype.kind in ("O", "S"):
        return np.vectorize(lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b,
                            otypes=[object])(value).tolist()
    return value.tolist()


class TF1Model:
    """A SavedModel loaded into a TF1 session, as TF Serving loads it."""

    def __init__(self, path):
        self.path = path
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)

    def run(self, signature, inputs):
        """Runs `signature` on `inputs` (name -> list); returns name -> list."""
        signature = signature or "serving_default"
        if signature not in self.meta_graph.signature_def:
            raise KeyError(f"{self.path} has no signature {signature!r}; it has "
                           f"{sorted(self.meta_graph.signature_def)}.")
        signature_def = self.meta_graph.signature_def[signature]
        missing = set(signature_def.inputs) - set(inputs)
        if missing:
            raise KeyError(f"signature {signature!r} needs the inputs {sorted(missing)} as well.")
        feed = {}
        for name, value in inputs.items():
            info = signature_def.inputs[name]
            dtype = tf.dtypes.as_dtype(info.dtype)
            feed[self.graph.get_tensor_by_name(info.name)] = np.asarray(
                _binary(value), dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
        fetches = {name: self.graph.get_tensor_by_name(info.name) for name, info in signature_def.outputs.items()}
        return {name: _jsonable(value) for name, value in self.session.run(fetches, feed).items()}

    def replay_warmup(self):
        """Replays the warm-up requests the way TF Serving does on load; returns how many ran."""
        from tensorflow_serving.apis import prediction_log_pb2

        warmup = os.path.join(self.path, "assets.extra", "tf_serving_warmup_requests")
        if not os.path.exists(warmup):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(warmup).as_numpy_iterator():
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            self.run(request.model_spec.signature_name, inputs)
            count += 1
        return count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("saved_model")
    parser.add_argument("--requests", default="[]", help="JSON list of {signature, inputs}")
    parser.add_argument("--warmup", action="store_true")
    parser.add_argument("--keep-going", action="store_true", help="a failed request's result is its error")
    args = parser.parse_args()
    load_text_op_libraries()

    def run(model, request):
        try:
            return model.run(request.get("signature"), request["inputs"])
        except Exception as error:  # noqa: BLE001  (--keep-going: the error is this request's result)
            if not args.keep_going:
                raise
            return {"error": f"{type(error).__name__}: {str(error)[:2000]}"}

    try:
        model = TF1Model(args.saved_model)
        result = {"warmup_requests": model.replay_warmup() if args.warmup else 0}
        result["results"] = [run(model, r) for r in json.loads(args.requests)]
    except Exception as error:  # noqa: BLE001  (report any load or run failure to the parent process)
        print(json.dumps({"error": f"{type(error).__name__}: {str(error)[:2000]}"}))
        sys.exit(1)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
