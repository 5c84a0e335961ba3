"""The errors of `tflm serve`, with TF Serving's codes: `ServingError`, and the conversions to it of a
deadline passed and of a signature's own failure (the in-graph checks' INVALID_ARGUMENT). A leaf module:
every other module of `tflm.serving` imports it, it imports none of them."""

import re

import tensorflow as tf


class ServingError(Exception):
    """An error with a TF Serving error code (`INVALID_ARGUMENT`, `NOT_FOUND`, ...).

    Args:
        code: str. TF Serving's code name, e.g. "INVALID_ARGUMENT" (its HTTP status: `http_status`).
        message: str. What was wrong, and how to fix it.
    """

    HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "FAILED_PRECONDITION": 400, "UNAVAILABLE": 503,
                   "RESOURCE_EXHAUSTED": 429, "UNIMPLEMENTED": 501, "INTERNAL": 500, "OUT_OF_RANGE": 400,
                   "DEADLINE_EXCEEDED": 504}

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return self.HTTP_STATUS.get(self.code, 500)


def deadline_error():
    """DEADLINE_EXCEEDED: a request not answered before its deadline."""
    return ServingError("DEADLINE_EXCEEDED", "the request did not finish before its deadline (the server's "
                                             "--request-timeout or the client's own); the server keeps serving")


def empty_batch_error():
    """INVALID_ARGUMENT: a request with no rows (`"instances": []`, or inputs of 0 rows), in every form."""
    return ServingError("INVALID_ARGUMENT", "empty batch: the request has no rows (an empty 'instances' list or "
                                            "inputs of 0 rows); send at least one instance")


def serving_error(error):
    """A prediction's failure as a `ServingError` (the graph's own checks: INVALID_ARGUMENT, their message):
    the one place a signature's `tf.errors.InvalidArgumentError` (a SavedModel's, or the CTranslate2 engine's
    same checks) becomes INVALID_ARGUMENT. Other errors are returned as they are."""
    if isinstance(error, ServingError):
        return error
    if isinstance(error, tf.errors.InvalidArgumentError):
        return ServingError("INVALID_ARGUMENT", graph_error_message(error.message))
    return error


def graph_error_message(message):
    """The useful part of a TensorFlow error raised by a signature: the failed check's own message for the
    in-graph checks of `tflm.export.limits`, without the graph's node names or the traceback of where the op was
    defined (e.g. `tf.io.parse_example`'s "Feature: text (data type: string) is required but could not be found.",
    for an example without a feature a classify signature needs)."""
    found = re.search(r"assertion failed: \[(.*?)\]\s*(?:\n|$)", message, re.DOTALL)
    if found:
        return found.group(1).replace("\\'", "'")
    found = re.search(r"Summarized data: b(['\"])(.*)\1\s*$", message, re.DOTALL)  # the same check, run eagerly
    if found:
        return found.group(2).replace("\\'", "'")
    lines = [line for line in message.splitlines() if line.strip() and "{{node" not in line
             and not line.startswith(("Graph execution error", "Detected at node", "  File ", "<stack traces"))]
    if lines and re.match(r"(Name: \S*, )?Feature: \S+ \(data type: \w+\) is required", lines[0].strip()):
        # a serialized tf.Example without a feature the signature parses (TF Serving's Classify API)
        return lines[0].strip() + ' Give it in every example (or in the request\'s "context").'
    return lines[0].strip() if lines else message
