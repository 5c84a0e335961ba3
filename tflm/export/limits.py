"""What one request to an exported model may ask for, checked inside the exported graph.

A signature with decoding controls (`translate`, `generate`) lets every client choose its beam size, number
of hypotheses and output length; unchecked, one request with `beam_size` 100000 holds a server for minutes
and takes gigabytes, and a negative `top_p` is answered with some output instead of an error. The checks are
ops in the graph (`Assert` on each control, before any decoding runs), so stock TF Serving rejects a bad
value with INVALID_ARGUMENT (HTTP 400) exactly as `tflm serve` does, and the message names the input, the
value and the allowed range:

    assertion failed: [beam_size = 0 is out of range: allowed 1 to 16 (max_beam_size, set at export)]

The upper limits are chosen at export (`tflm export --max-beam-size ...`) and recorded in
`assets.extra/tflm.json` under "limits".
"""

import dataclasses
import math
import re
from typing import Optional

import tensorflow as tf

# The largest `no_repeat_ngram_size` a request may ask for: every step compares each position's n - 1 tokens,
# and longer n-grams hardly ever repeat in a summary or translation anyway.
MAX_NO_REPEAT_NGRAM_SIZE = 8


@dataclasses.dataclass
class ServingLimits:
    """The most one request may ask of an exported model.

    Attributes:
        max_batch_size: rows (sentences, prompts) per request, in every signature that decodes. TF Serving's
            own batching must not form larger batches (its `max_batch_size` at or under this).
        max_beam_size: the largest `beam_size`.
        max_hypotheses: the most `num_hypotheses` (samples or n-best entries) per input.
        max_new_tokens: the largest `max_length` (translation) / `max_new_tokens` (language models).
        max_input_tokens: language models: the longest prompt or scored text, in tokens (the cost of
            attention over the prompt grows with its square). Translation truncates its sources instead
            (the run's `data.max_source_length`).
    """

    max_batch_size: int = 256
    max_beam_size: int = 16
    max_hypotheses: int = 16
    max_new_tokens: int = 512
    max_input_tokens: int = 2048

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"serving limit {field.name} = {value!r}: must be a positive integer "
                                 f"(tflm export --{field.name.replace('_', '-')} N).")

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ValueError(f"unknown serving limit(s) {unknown}; known: {sorted(known)}")
        return cls(**(values or {}))

    def to_dict(self):
        return dataclasses.asdict(self)

    def within_context(self, context):
        """These limits with `max_input_tokens` and `max_new_tokens` at most what a model that attends to
        `context` positions can take (a prompt and its continuation share them); unchanged for None."""
        if not context:
            return self
        bound = max(int(context) - 1, 1)
        fitted = dataclasses.replace(self, max_input_tokens=min(self.max_input_tokens, bound),
                                     max_new_tokens=min(self.max_new_tokens, bound))
        if fitted != self:
            import logging

            logging.getLogger("tflm").info(
                "The model attends to %d tokens: max_input_tokens %d and max_new_tokens %d (a prompt and its "
                "continuation share that context; longer requests are refused by name)", context,
                fitted.max_input_tokens, fitted.max_new_tokens)
        return fitted


@dataclasses.dataclass(frozen=True)
class Range:
    """An allowed range for a scalar control: `low <= value <= high` (`low_open`: `low < value`), or the
    single value `also` outside it (e.g. 0, "off": "allowed 0 or 2 to 8")."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    why: str = ""  # where the bound comes from, e.g. "max_beam_size, set at export"
    also: Optional[float] = None

    def describe(self):
        def number(x):
            return f"{x:g}" if isinstance(x, float) else str(x)

        if self.high == math.inf:
            text = f"{'greater than' if self.low_open else 'at least'} {number(self.low)}"
        elif self.low == -math.inf:
            text = f"at most {number(self.high)}"
        else:
            text = f"{number(self.low)} to {number(self.high)}"
            if self.low_open:
                text = f"greater than {number(self.low)} and at most {number(self.high)}"
        if self.also is not None:
            text = f"{number(self.also)} or {text}"
        return f"allowed {text}" + (f" ({self.why})" if self.why else "")

    def condition(self, value):
        value = tf.convert_to_tensor(value)
        ok = tf.ones([], tf.bool)
        if value.dtype.is_floating:
            ok = tf.reduce_all(tf.math.is_finite(value))  # NaN compares false everywhere: name it too
        if self.low != -math.inf:
            low = tf.cast(self.low, value.dtype)
            ok = tf.logical_and(ok, value > low if self.low_open else value >= low)
        if self.high != math.inf:
            ok = tf.logical_and(ok, value <= tf.cast(self.high, value.dtype))
        if self.also is not None:
            ok = tf.logical_or(ok, tf.equal(value, tf.cast(self.also, value.dtype)))
        return ok


def check(name, value, allowed):
    """An `Assert` op that fails with "`name` = value is out of range: allowed ..." unless `value` is in
    `allowed` (a `Range`)."""
    message = tf.strings.format(f"{name} = {{}} is out of range: {allowed.describe()}", value)
    op_name = "check_" + re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    return tf.debugging.Assert(allowed.condition(value), [message], name=op_name)


def require(condition, message, *values):
    """An `Assert` op failing with `message` (a format string with `{}` per value) unless `condition`."""
    return tf.debugging.Assert(condition, [tf.strings.format(message, values)])


def checked(values, checks):
    """`values` (a dict of tensors) passed through identities that run only after every op of `checks`, so
    nothing computed from them (the decoding) starts before the checks pass."""
    with tf.control_dependencies(list(checks)):
        return {name: tf.identity(value) for name, value in values.items()}


def batch_check(name, batch_size, limits):
    return check(f"the number of {name}s in the request", batch_size,
                 Range(0, limits.max_batch_size, why="max_batch_size, set at export; split the request"))


def decoding_checks(controls, limits, count_name, length_name, vocabulary_size):
    """The checks of the decoding controls common to `translate` and `generate`, and of the constraints a
    signature may also take (`constraint_checks`).

    Args:
        controls: name -> scalar tensor: `beam_size`, `count_name` (hypotheses), `length_name` (output
            tokens), `length_penalty`, `temperature`, `top_k`, `top_p`; optionally `min_length` and
            `no_repeat_ngram_size`. `seed` takes any int32. Other entries are ignored.
        limits: `ServingLimits`.
        vocabulary_size: int, the upper bound of `top_k`.
    """
    beam_size, count = controls["beam_size"], controls[count_name]
    temperature = controls["temperature"]
    checks = [
        check("beam_size", beam_size, Range(1, limits.max_beam_size, why="max_beam_size, set at export")),
        check(count_name, count, Range(1, limits.max_hypotheses, why="max_hypotheses, set at export")),
        check(length_name, controls[length_name],
              Range(1, limits.max_new_tokens, why="max_new_tokens, set at export")),
        check("length_penalty", controls["length_penalty"], Range(0.0, 10.0)),
        check("temperature", temperature, Range(0.0, 100.0, why="0 decodes without sampling")),
        check("top_k", controls["top_k"], Range(0, vocabulary_size, why="0 keeps every token")),
        check("top_p", controls["top_p"], Range(0.0, 1.0, low_open=True, why="1 keeps every token")),
    ]
    # Beam search returns at most beam_size hypotheses and greedy decoding one; asking for more is a
    # client's mistake, reported rather than answered with fewer.
    checks.append(require(tf.logical_or(temperature > 0, count <= beam_size),
                          f"{count_name} = {{}} exceeds beam_size = {{}}: without sampling (temperature 0) a "
                          f"request gets at most beam_size hypotheses (greedy decoding, beam_size 1, gets one)",
                          count, beam_size))
    return checks + constraint_checks(controls, limits, length_name)


def constraint_checks(controls, limits, length_name=None):
    """The checks of the decoding constraints among `controls` (none when it has neither):

    - `min_length`: 0 to `max_new_tokens` (the export's bound of the output length), and with `length_name`
      (the request's output-length control) at most that length;
    - `no_repeat_ngram_size`: 0 (off) or 2 to `MAX_NO_REPEAT_NGRAM_SIZE` (1 would forbid every repeated
      token; a negative or huge n is a client's mistake, reported rather than answered).
    """
    checks = []
    if "min_length" in controls:
        min_length = tf.convert_to_tensor(controls["min_length"])
        checks.append(check("min_length", min_length,
                            Range(0, limits.max_new_tokens, why="max_new_tokens, set at export")))
        if length_name and length_name in controls:
            length = controls[length_name]
            checks.append(require(min_length <= tf.cast(length, min_length.dtype),
                                  f"min_length = {{}} exceeds {length_name} = {{}}: a request's minimum output "
                                  f"length must be at most its maximum", min_length, length))
    if "no_repeat_ngram_size" in controls:
        checks.append(check("no_repeat_ngram_size", controls["no_repeat_ngram_size"],
                            Range(2, MAX_NO_REPEAT_NGRAM_SIZE, also=0, why="0 turns n-gram blocking off")))
    return checks


def signature_checks(signature, inputs, limits, count_tokens):
    """The checks a predictor's `Signature` declares, on its inputs (name -> tensor): the rows against
    `max_batch_size` (and, for several row inputs, as many rows in each), each token-limited text against `max_input_tokens` (`count_tokens(text)` -> tokens per
    row), and with a length control every decoding control's range. The exported graph and the CTranslate2
    engine run these same checks, so both refuse a request with the same message."""
    found = []
    row_inputs = signature.row_inputs
    if row_inputs:
        rows = tf.shape(inputs[row_inputs[0]], out_type=tf.int64)[0]
        found.append(batch_check(signature.row_name, rows, limits))
        for name in row_inputs[1:]:  # a text pair: as many rows in each
            other = tf.shape(inputs[name], out_type=tf.int64)[0]
            found.append(require(tf.equal(rows, other), f"{row_inputs[0]} has {{}} rows but {name} {{}}: each row "
                                                        f"of the request needs all of {', '.join(row_inputs)}",
                                 rows, other))
    for name in signature.token_limited:
        longest = tf.reduce_max(tf.concat([tf.cast(count_tokens(inputs[name]), tf.int64), [0]], 0))
        found.append(check(f"{signature.row_name} length in tokens", longest,
                           Range(0, limits.max_input_tokens, why="max_input_tokens, set at export")))
    if signature.length:
        found += decoding_checks(inputs, limits, "num_hypotheses", signature.length, signature.vocabulary_size)
    return found
