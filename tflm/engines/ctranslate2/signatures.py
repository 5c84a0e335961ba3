"""What the CTranslate2 engine's serving signatures share: their outputs' specs (as the SavedModel's), the
conversion of NumPy requests and answers, and the `tokenize`/`detokenize` signatures of tflm's predictors.

The signatures themselves are the predictors' declarations (`tflm.tasks.translation.translator.TRANSLATE`,
`tflm.tasks.summarization.summarizer.SUMMARIZE`, `tflm.tasks.language_modeling.generator.GENERATE`, their
`SERVING_DEFAULT` and `SCORE`), given the engine's functions with `dataclasses.replace`: one declaration of
the inputs, rows, length control and token limits for the SavedModel and the engine.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tflm.tasks.predictor import token_signatures


def output_specs(**shapes):
    """name -> `tf.TensorSpec` from name -> (dtype, rank): every dimension unknown, as the SavedModel's."""
    return {name: tf.TensorSpec([None] * rank, dtype) for name, (dtype, rank) in shapes.items()}


def common_outputs():
    """The outputs of `tokenize`, `detokenize` and `score`, as tflm's predictors declare them."""
    return {"tokenize": output_specs(token_ids=(tf.int32, 2), lengths=(tf.int32, 1)),
            "detokenize": output_specs(text=(tf.string, 1)),
            "score": output_specs(log_prob=(tf.float32, 1), tokens=(tf.int32, 1))}


def strings(values):
    """A NumPy array (or list) of bytes/str -> list of str."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values, dtype=object).reshape(-1)]


def string_array(rows, width=None):
    """A list of str (`width` None) or of lists of `width` str -> a NumPy object array of UTF-8 bytes."""
    texts = np.empty((len(rows),) if width is None else (len(rows), width), dtype=object)
    for index, row in enumerate(rows):
        texts[index] = row.encode("utf-8") if width is None else [t.encode("utf-8") for t in row]
    return texts


def decoded_outputs(answers, count):
    """Per row, `count` `(text, score)` pairs -> `{"outputs": bytes (rows, count), "scores": float32 (rows,
    count)}`, as the SavedModel's decoding signatures answer."""
    return {"outputs": string_array([[text for text, _ in row] for row in answers], count),
            "scores": np.array([[score for _, score in row] for row in answers], np.float32).reshape(-1, count)}


def numpy_token_signatures(tokenizer, detokenizer):
    """The SavedModel's `tokenize` and `detokenize` signatures (`tflm.tasks.predictor.token_signatures`, the
    same functions), answering with NumPy arrays as the engine's other signatures do."""

    def on_numpy(signature):
        def function(**inputs):
            tensors = {name: tf.constant(inputs[name], spec.dtype) for name, spec in signature.inputs.items()}
            return {key: np.asarray(value) for key, value in signature.function(**tensors).items()}

        return dataclasses.replace(signature, function=function)

    return [on_numpy(signature) for signature in token_signatures(tokenizer, detokenizer)]


def scalar(value):
    """A NumPy scalar (a request's control) as a Python number."""
    return np.asarray(value).item()
