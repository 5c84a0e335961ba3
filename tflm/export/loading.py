"""Loading an export in Python: `tflm.export.load(path)`.

An export's tokenizers are tensorflow-text ops (`SentencepieceOp`, `WordpieceTokenizeWithOffsets`, ...),
registered with TensorFlow only when `tensorflow_text` is imported. `tf.saved_model.load` of an export in a
process that has not imported it fails with "Op type not registered 'SentencepieceOp'". Either import it
first:

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    translate = tf.saved_model.load("saved_models/en-es/1").signatures["serving_default"]
    translate(text=tf.constant(["I love you."]))["outputs"]

or use `load`, which does that and converts Python values to the signatures' dtypes:

    model = tflm.export.load("saved_models/en-es/1")
    model(["I love you."])["outputs"]                       # serving_default
    model.run("translate", text=["I love you."], beam_size=4, num_hypotheses=2, max_length=64,
              length_penalty=0.6, temperature=0.0, top_k=0, top_p=1.0, seed=0)
"""

import json
import os

import numpy as np
import tensorflow as tf

# Earlier names of signature inputs: a request that uses one (for an export whose signature has the new name,
# and not the old) is answered as if it had used the new one, by `ExportedModel.run` and `tflm serve`.
INPUT_ALIASES = {"num_return_sequences": "num_hypotheses", "n_best": "num_hypotheses"}
# Controls added after the signature they belong to, and their value when a request leaves them out (so that
# requests written before keep working with `tflm serve` and `load(...).run`; stock TF Serving needs every input).
OPTIONAL_INPUTS = {"truncate": False}


def with_input_aliases(inputs, names):
    """`inputs` with each alias in `INPUT_ALIASES` renamed when the signature (`names`) takes the new name, and
    each `OPTIONAL_INPUTS` the signature takes but the request leaves out at its default."""
    renamed = dict(inputs)
    for old, new in INPUT_ALIASES.items():
        if old in renamed and old not in names and new in names and new not in renamed:
            renamed[new] = renamed.pop(old)
    for name, default in OPTIONAL_INPUTS.items():
        if name in names and name not in renamed:
            renamed[name] = default
    return renamed


def saved_model_proto(path):
    """The `SavedModel` protocol buffer of the version directory `path` (its graphs and signature defs)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    return saved_model


def export_info(path):
    """tflm's `assets.extra/tflm.json` of an export ({} for a SavedModel made elsewhere)."""
    try:
        with open(os.path.join(path, "assets.extra", "tflm.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class ExportedModel:
    """A loaded export: its signatures, its `tflm.json` (`info`) and its request limits (`limits`).

    Attributes:
        path: the version directory.
        signatures: name -> concrete function (as `tf.saved_model.load(path).signatures`).
        info: the export's `assets.extra/tflm.json` ({} for a SavedModel made elsewhere).
        limits: the `ServingLimits` recorded at export, or None for older exports.
    """

    def __init__(self, path):
        import tensorflow_text  # noqa: F401  (registers the tensorflow-text ops the tokenizers use)

        from tflm.export.limits import ServingLimits

        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"{path}: no saved_model.pb; give a version directory, e.g. saved_models/NAME/1.")
        self.path = path
        self._saved_model = tf.saved_model.load(path)  # kept: the signatures use its variables
        self.signatures = dict(self._saved_model.signatures)
        self.info = export_info(path)
        self.limits = ServingLimits.from_dict(self.info["limits"]) if "limits" in self.info else None

    def run(self, signature="serving_default", **inputs):
        """Runs a signature on Python or numpy values (converted to its input dtypes); returns name ->
        numpy array (strings as bytes)."""
        if signature not in self.signatures:
            raise KeyError(f"{self.path} has no signature {signature!r}; it has {sorted(self.signatures)}.")
        function = self.signatures[signature]
        specs = function.structured_input_signature[1]
        inputs = with_input_aliases(inputs, specs)
        unknown, missing = sorted(set(inputs) - set(specs)), sorted(set(specs) - set(inputs))
        if unknown or missing:
            problems = (f"; unknown: {unknown}" if unknown else "") + (f"; missing: {missing}" if missing else "")
            raise KeyError(f"signature {signature!r} takes {sorted(specs)}{problems}")
        tensors = {name: tf.constant(value, dtype=specs[name].dtype) for name, value in inputs.items()}
        return {name: np.asarray(value) for name, value in function(**tensors).items()}

    def __call__(self, texts):
        """`serving_default` on a list of strings (its one string input)."""
        (name,) = self.signatures["serving_default"].structured_input_signature[1]
        return self.run("serving_default", **{name: list(texts)})


def load(path):
    """Loads the export at `path` (a version directory) with the tokenizer ops registered; an `ExportedModel`."""
    return ExportedModel(path)
