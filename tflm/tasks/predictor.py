"""What a task's trained model answers with: a `Predictor` (strings in, strings out, all in the graph) and
the export `Signature`s it declares.

The exporter (`tflm.export`) builds, bounds and checks whatever signatures a predictor declares; it knows
no task. A signature says which of its inputs carries the request's rows (bounded by `max_batch_size`),
which are decoding controls (bounded by `max_beam_size`, `max_hypotheses`, `max_new_tokens`, ...) and which
texts are bounded in tokens (`max_input_tokens`); the exporter turns that into in-graph checks.
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
                  "no_repeat_ngram_size": tf.int32}
# A modest request for the warm-up file: its graph is prepared before the first real request needs it.
WARMUP_CONTROLS = {"beam_size": 2, "num_hypotheses": 1, "max_length": 8, "max_new_tokens": 8, "length_penalty": 0.6,
                   "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0, "min_length": 0,
                   "no_repeat_ngram_size": 0}


@dataclasses.dataclass
class Signature:
    """One exported signature of a predictor.

    Attributes:
        name: the signature's name (`serving_default` first).
        function: keyword inputs (tensors) -> dict of output tensors.
        inputs: input name -> `tf.TensorSpec` (in order).
        rows: the string input `(batch,)` whose size is the request's number of rows (`max_batch_size`).
        row_name: what one row is, in error messages ("sentence", "prompt", "text").
        length: the control that bounds the output length (`max_length` or `max_new_tokens`), if any:
            with it, every control of `CONTROL_DTYPES` the signature takes is range-checked.
        token_limited: string inputs whose length in tokens is bounded by `max_input_tokens`.
        vocabulary_size: the upper bound of `top_k`.
        warmup: whether the export's warm-up file runs this signature once (with `WARMUP_CONTROLS`).
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


def text_input(name):
    return {name: tf.TensorSpec([None], tf.string, name=name)}


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

    def count_tokens(self, text):
        """int `(batch,)`: the tokens of each text, for the `max_input_tokens` limit."""
        tokenizer = next(iter(self.tokenizers().values()))
        return tokenizer.tokenize(text).row_lengths()

    def serving_default(self, inputs):
        """Runs `serving_default` (unbounded) on a list of str; returns its outputs as NumPy arrays."""
        signature = self.signatures()[0]
        name = signature.rows or next(iter(signature.inputs))
        outputs = signature.function(**{name: tf.constant(list(inputs), dtype=tf.string)})
        return {key: np.asarray(value) for key, value in outputs.items()}

    def predict(self, inputs):
        """A list of str -> one JSON-able answer per input (`tflm predict`): `serving_default`'s outputs."""
        outputs = self.serving_default(inputs)
        return [{key: _plain(value[index]) for key, value in outputs.items()} for index in range(len(inputs))]

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

    return [Signature("tokenize", tokenize, text_input("text")),
            Signature("detokenize", detokenize, {"token_ids": tf.TensorSpec([None, None], tf.int32, name="token_ids")})]
