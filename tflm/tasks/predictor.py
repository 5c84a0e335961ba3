"""What a task's trained model answers with: a `Predictor` (strings in, strings out, all in the graph) and
the export `Signature`s it declares.

The exporter (`tflm.export`) builds, bounds and checks whatever signatures a predictor declares; it knows
no task. A signature says which of its inputs carry the request's rows (one or several named inputs: a text,
a text pair, integers; bounded by `max_batch_size`), which are decoding controls (bounded by `max_beam_size`,
`max_hypotheses`, `max_new_tokens`, ...), which texts are bounded in tokens (`max_input_tokens`), and which
outputs have a length per row (a padded `(batch, n)` output and the output giving each row's length). The
exporter turns that into in-graph checks; `tflm check`, the warm-up file, `Predictor.predict` (`tflm predict`)
and `tflm serve`'s batching read the same declaration.

    Signature("serving_default", self.tag, text_input("text_a", "text_b"), rows=("text_a", "text_b"),
              row_lengths={"words": "lengths", "tags": "lengths"})
"""

import contextlib
import dataclasses
from typing import Callable, Optional

import keras

import numpy as np
import tensorflow as tf

from tflm.training.checkpoints import ModelVariables

# The decoding controls a signature may take, with the dtype of each (all scalars). `min_length` and
# `no_repeat_ngram_size` are the constraints (`tflm.decoding.search`'s overrides, e.g. through
# `search_by_controls(..., min_length=..., no_repeat_ngram_size=...)`).
CONTROL_DTYPES = {"beam_size": tf.int32, "num_hypotheses": tf.int32, "max_length": tf.int32,
                  "max_new_tokens": tf.int32, "length_penalty": tf.float32, "temperature": tf.float32,
                  "top_k": tf.int32, "top_p": tf.float32, "seed": tf.int32, "min_length": tf.int32,
                  "no_repeat_ngram_size": tf.int32, "truncate": tf.bool}
# A modest request for the warm-up file: its graph is prepared before the first real request needs it.
WARMUP_CONTROLS = {"beam_size": 2, "num_hypotheses": 1, "max_length": 8, "max_new_tokens": 8, "length_penalty": 0.6,
                   "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0, "min_length": 0,
                   "no_repeat_ngram_size": 0, "truncate": False}


@dataclasses.dataclass
class Signature:
    """One exported signature of a predictor.

    Attributes:
        name: the signature's name (`serving_default` first).
        function: keyword inputs (tensors) -> dict of output tensors (None in a declaration that an engine
            fills with its own function: `dataclasses.replace(SIGNATURE, function=...)`).
        inputs: input name -> `tf.TensorSpec` (in order).
        rows: the input `(batch,)` whose size is the request's number of rows (`max_batch_size`), or a tuple
            of such inputs (a text pair: `("text_a", "text_b")`), which must have as many rows each.
        row_name: what one row is, in error messages ("sentence", "prompt", "text").
        length: the control that bounds the output length (`max_length` or `max_new_tokens`), if any:
            with it, every control of `CONTROL_DTYPES` the signature takes is range-checked.
        token_limited: string inputs whose length in tokens is bounded by `max_input_tokens`.
        vocabulary_size: the upper bound of `top_k`.
        warmup: whether the export's warm-up file runs this signature once (with `WARMUP_CONTROLS`).
        row_lengths: output name -> the output holding each row's length along its axis 1 (e.g.
            `{"tags": "lengths"}`): that output is padded to the longest row of the batch, and a served request
            gets it padded to its own longest row, whatever else shared the batch; `predict` gives each row
            exactly its own entries.
        method_name: TF Serving's method of the signature: None for Predict, or `CLASSIFY_METHOD` for one that
            answers TF Serving's Classify API (REST `:classify`, gRPC `Classify`): it takes one input,
            `inputs`, a batch of serialized `tf.Example`s, and gives `classes` (string) and/or `scores`
            (float), each `(batch, classes)`. The exporter writes the method into the SavedModel.
        example_features: for a signature taking serialized `tf.Example`s (`inputs`): the features a row
            gives (e.g. `("text",)` or `("text_a", "text_b")`, each one string); `columns` then makes the
            examples from rows given as for `serving_default` (a str, or a dict naming the features).
    """

    name: str
    function: Callable
    inputs: dict
    rows: Optional[str] = None
    row_name: str = "input"
    length: Optional[str] = None
    token_limited: tuple = ()
    vocabulary_size: Optional[int] = None
    warmup: bool = False
    row_lengths: dict = dataclasses.field(default_factory=dict)
    method_name: Optional[str] = None
    example_features: tuple = ()

    @property
    def row_inputs(self):
        """The inputs that hold one entry per row (a tuple, possibly empty)."""
        if not self.rows:
            return ()
        return (self.rows,) if isinstance(self.rows, str) else tuple(self.rows)

    def columns(self, rows):
        """The inputs of this signature for `rows`, a list with one entry per row: a str (for a signature with
        one row input) or a dict naming each row input (`{"text_a": ..., "text_b": ...}`). Returns
        {input name: list}; a row that misses an input is an error naming the row and the input. For a signature
        of `example_features`, the rows name those features, and the column is the serialized examples."""
        if self.example_features:
            examples = dataclasses.replace(self, inputs=text_input(*self.example_features), example_features=(),
                                           rows=self.example_features).columns(rows)
            return {EXAMPLES_INPUT: serialize_examples(examples)}
        names = self.row_inputs or (next(iter(self.inputs)),)
        columns = {name: [] for name in names}
        for index, row in enumerate(rows):
            if isinstance(row, dict):
                missing = [name for name in names if name not in row]
                unknown = sorted(set(row) - set(names))
                if missing or unknown:
                    raise ValueError(f"row {index}: {self.name} takes {', '.join(names)}"
                                     + (f"; missing {', '.join(missing)}" if missing else "")
                                     + (f"; unknown {', '.join(unknown)}" if unknown else "")
                                     + ' (give each row as a JSON object, e.g. {"' + '": "...", "'.join(names)
                                     + '": "..."})')
                for name in names:
                    columns[name].append(row[name])
            elif len(names) == 1:
                columns[names[0]].append(row)
            else:
                raise ValueError(f"row {index}: {self.name} takes {', '.join(names)}; give each row as a JSON "
                                 f"object naming them, not {type(row).__name__} {row!r}")
        return columns

    def tensors(self, columns):
        """{name: tensor} of `columns` ({name: list}) in the dtypes the signature takes."""
        return {name: tf.constant(values, dtype=self.inputs[name].dtype) if len(values) else
                tf.zeros([0], self.inputs[name].dtype) for name, values in columns.items()}


CLASSIFY_METHOD = "tensorflow/serving/classify"  # TF Serving's method names (a SignatureDef's method_name)
PREDICT_METHOD = "tensorflow/serving/predict"
EXAMPLES_INPUT = "inputs"  # the input of serialized tf.Examples that TF Serving's Classify and Regress fill


def serialize_examples(columns):
    """Serialized `tf.train.Example`s, one per row of `columns` ({feature name: list of str}), each feature a
    `bytes_list` of one UTF-8 string (as TF Serving's REST API makes `{"text": "..."}` into an example)."""
    names = list(columns)
    count = len(columns[names[0]]) if names else 0
    examples = []
    for index in range(count):
        features = {name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[_utf8(columns[name][index])]))
                    for name in names}
        examples.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return examples


def _utf8(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def example_input():
    """The Classify (and Regress) API's input: serialized `tf.Example`s `(batch,)`, named `inputs`."""
    return {EXAMPLES_INPUT: tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)}


def parse_example_texts(serialized, features):
    """{feature: string `(batch,)`} of serialized `tf.Example`s, each feature one string (in the graph; a
    missing feature is TensorFlow's error naming it)."""
    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in features}
    return tf.io.parse_example(serialized, spec)


def text_input(*names):
    """String inputs `(batch,)` named `names` (a text, or a text pair: `text_input("text_a", "text_b")`)."""
    return {name: tf.TensorSpec([None], tf.string, name=name) for name in names}


def integer_input(*names):
    """int32 inputs `(batch,)` named `names` (one integer per row, e.g. a position)."""
    return {name: tf.TensorSpec([None], tf.int32, name=name) for name in names}


def control_inputs(*names):
    return {name: tf.TensorSpec([], CONTROL_DTYPES[name], name=name) for name in names}


class Predictor(tf.Module):
    """A trained model with its tokenizers and settings, as a task answers with it and export saves it.

    A subclass sets `model` (its variables are tracked explicitly, see `ModelVariables`) and implements
    `tokenizers()` and `signatures()`; `predict` (Python strings in and out, for `tflm predict`) runs
    `serving_default` by default.
    """

    def __init__(self, model, decoding=None):
        super().__init__()
        self.model = model
        self.model_variables = ModelVariables(model)
        self.decoding = decoding

    @contextlib.contextmanager
    def compute_weights(self):
        """A scope in which a mixed-precision model reads its matrices (variables of rank >= 2: kernels and
        embedding tables) already cast to its compute dtype, cast once where the scope is entered.

        Keras casts a float32 variable to the compute dtype (bfloat16) at every read, and inside a decoding
        `tf.while_loop` that is at every step: for a 3+3-layer Transformer the casts were a quarter of a beam
        search's time (TensorFlow profiler), the 8k x 256 output embedding among them. Norm scales and biases
        stay float32. Outside mixed precision this is no scope at all; the results are the same either way
        (a cast is a cast). Only for inference: writes to variables inside it would not reach them.
        """
        compute = self.model.dtype_policy.compute_dtype
        casts = [(v, compute) for v in self.model.weights if len(v.shape) >= 2 and v.dtype != compute]
        if not casts:
            yield
            return
        scope = keras.StatelessScope()
        # set after construction: the constructor would convert each value back to its variable's dtype
        scope.state_mapping.update({id(v): keras.ops.cast(v.value, dtype) for v, dtype in casts})
        with scope:
            yield

    def tokenizers(self):
        """{asset name: tokenizer}: saved with the export (the same tokenizer under two names is saved twice)."""
        raise NotImplementedError

    def signatures(self):
        """The `Signature`s to export, `serving_default` first."""
        raise NotImplementedError

    def context_length(self):
        """The most positions the model attends to (a language model's prompt and continuation together), or
        None where nothing bounds them: the export's token limits never exceed it."""
        return None

    def context_info(self):
        """What an export records of the model's context (tflm.json's "context"), or None."""
        return None

    def count_tokens(self, text):
        """int `(batch,)`: the tokens of each text, for the `max_input_tokens` limit."""
        tokenizer = next(iter(self.tokenizers().values()))
        return tokenizer.tokenize(text).row_lengths()

    def serving_default(self, inputs):
        """Runs `serving_default` (unbounded) on a list of rows (str, or dicts naming several inputs); returns
        its outputs as NumPy arrays."""
        signature = self.signatures()[0]
        outputs = signature.function(**signature.tensors(signature.columns(list(inputs))))
        return {key: np.asarray(value) for key, value in outputs.items()}

    def predict(self, inputs):
        """A list of rows (str, or dicts such as `{"text_a": ..., "text_b": ...}`) -> one JSON-able answer per
        row (`tflm predict`): `serving_default`'s outputs, an output with a length per row (`row_lengths`)
        cut to that row's own length."""
        inputs = list(inputs)
        outputs = self.serving_default(inputs)
        row_lengths = self.signatures()[0].row_lengths
        answers = []
        for index in range(len(inputs)):
            answer = {}
            for key, value in outputs.items():
                row = value[index]
                if key in row_lengths:
                    row = row[:int(outputs[row_lengths[key]][index])]
                answer[key] = _plain(row)
            answers.append(answer)
        return answers

    def attention(self, sentence):
        raise ValueError(f"{type(self).__name__} has no cross-attention to draw (only translation models have).")


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def token_signatures(tokenizer, detokenizer):
    """`tokenize` (text -> PAD-padded `token_ids` int32 `(batch, length)` and `lengths`) and `detokenize`
    (`token_ids` -> `text`, stopping at EOS) signatures."""

    def tokenize(text):
        pieces = tokenizer.tokenize(text)
        return {"token_ids": pieces.to_tensor(0), "lengths": tf.cast(pieces.row_lengths(), tf.int32)}

    def detokenize(token_ids):
        return {"text": detokenizer.detokenize(token_ids)}

    return [Signature("tokenize", tokenize, text_input("text"), row_lengths={"token_ids": "lengths"}),
            Signature("detokenize", detokenize, {"token_ids": tf.TensorSpec([None, None], tf.int32, name="token_ids")})]
