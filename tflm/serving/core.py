"""What the REST and gRPC front ends share: the repository, batching, limits, deadlines and input validation,
for Predict and for Classify (`submit_classify`: serialized tf.Examples into a classify signature's `inputs`).

Every prediction is bounded three ways:

- **admission**: at most `max_pending` predictions are queued or running at once; one more is refused at
  once with UNAVAILABLE (HTTP 503 with `Retry-After`), so a burst never grows memory without bound. A slot
  is freed when the work really ends, not when its client gave up.
- **deadline**: a request waits at most `request_timeout` seconds (or less, if a gRPC client's own
  deadline is sooner) and is answered DEADLINE_EXCEEDED (HTTP 504). Work whose deadline passed before it
  started is never run; a graph already running cannot be interrupted, but the exported graph bounds
  its cost (`tflm.export.limits`).
- **shutdown**: `drain()` refuses new predictions (UNAVAILABLE) and waits for those admitted to end.
"""

import concurrent.futures
import logging
import re
import secrets
import threading
import time

import numpy as np
import tensorflow as tf

from tflm.export.loading import with_input_aliases
from tflm.tasks.predictor import EXAMPLES_INPUT
from tflm.serving.batching import Batcher, is_batchable
from tflm.serving.classify import REST_HINT, classify_signature, example_batch
from tflm.serving.errors import ServingError, deadline_error, empty_batch_error, serving_error

logger = logging.getLogger("tflm")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id(proposed=None):
    """The id of a request: the client's own (`X-Request-Id` / `x-request-id` metadata) when it is a short
    token, else a new random one."""
    if proposed and REQUEST_ID.match(proposed):
        return proposed
    return secrets.token_hex(8)


class ServingCore:
    """Runs predictions for both front ends.

    Args:
        repository: a started `ModelRepository`.
        batching: bool. Batch concurrent requests to batchable signatures (all inputs `(batch,)`).
        max_batch_size: int. Most rows per request (larger requests are refused) and per batch.
        batch_timeout_ms: float. How long a batch waits for more requests.
        max_pending: int. Most predictions queued or running at once; more are refused (UNAVAILABLE).
        request_timeout: float. Seconds a prediction may take, queueing included (DEADLINE_EXCEEDED after).
        workers: int. Threads running signatures that are not batched (the batcher has its own).
    """

    def __init__(self, repository, batching=True, max_batch_size=32, batch_timeout_ms=10.0, max_pending=128,
                 request_timeout=30.0, workers=4):
        if max_pending < 1 or request_timeout <= 0 or workers < 1:
            raise ValueError(f"max_pending ({max_pending}) and workers ({workers}) must be at least 1 and "
                             f"request_timeout ({request_timeout}) positive.")
        self.repository = repository
        self.max_batch_size = max_batch_size
        self.max_pending = max_pending
        self.request_timeout = request_timeout
        self.batcher = Batcher(max_batch_size, batch_timeout_ms) if batching else None
        self.executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="tflm-run")
        self._pending = 0
        self._idle = threading.Condition()
        self.draining = False

    @property
    def pending(self):
        """Predictions admitted and not yet ended."""
        return self._pending

    def refuse_if_full(self):
        """Raises UNAVAILABLE if the server is shutting down or at capacity (a front end asks before it
        reads a request's body; `submit` asks again when it admits it)."""
        if self.draining:
            raise ServingError("UNAVAILABLE", "the server is shutting down and accepts no new requests; "
                                              "retry (another replica, or this one once restarted)")
        if self._pending >= self.max_pending:
            raise ServingError("UNAVAILABLE", f"the server is at capacity: {self._pending} requests are "
                                              f"queued or running (--max-pending {self.max_pending}); retry shortly")

    def _admit(self):
        with self._idle:
            self.refuse_if_full()
            self._pending += 1

    def _release(self, _future=None):
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def deadline(self, client_seconds=None):
        """The monotonic time by which a request must be answered: `request_timeout` from now, or the
        client's own remaining time if that is sooner."""
        seconds = self.request_timeout if client_seconds is None else min(self.request_timeout, client_seconds)
        return time.monotonic() + max(seconds, 0.0)

    def submit(self, name, version, signature_name, inputs, deadline):
        """Validates `inputs` (name -> numpy array) and queues the prediction without waiting for it;
        returns (loaded version, `concurrent.futures.Future` of name -> numpy array). Raises `ServingError`
        (bad input, full or stopping server). Never blocks: the REST front end calls it from its event loop."""
        loaded = self.repository.get(name, version)
        specs = loaded.input_specs(signature_name)
        inputs = validate_inputs(specs, inputs, self.max_batch_size)
        return loaded, self._queue(loaded, signature_name, specs, inputs, deadline)

    def submit_classify(self, name, version, signature_name, examples, context, deadline, hint=REST_HINT):
        """TF Serving's Classify: checks that the signature (default `serving_default`) is a classify one and
        the examples (`tf.train.Example`s, each merged with `context`, an Example or None) have the features it
        needs, and queues it as `submit` queues a prediction (same admission, batching and deadline); returns
        (loaded version, signature name, future of its outputs, `classes` and/or `scores`). `hint` says how the
        client names a signature (in the refusal of one that is not classify)."""
        loaded = self.repository.get(name, version)
        signature_name = classify_signature(loaded, signature_name, hint)
        inputs = {EXAMPLES_INPUT: example_batch(loaded, signature_name, examples, context, self.max_batch_size)}
        return loaded, signature_name, self._queue(loaded, signature_name, loaded.input_specs(signature_name), inputs,
                                                   deadline)

    def _queue(self, loaded, signature_name, specs, inputs, deadline):
        """Admits validated inputs and queues them (the batcher, or a worker); returns the future."""
        self._admit()
        try:
            if self.batcher is not None and is_batchable(specs):
                future = self.batcher.submit(loaded, signature_name or "serving_default", inputs, deadline)
            else:
                future = self.executor.submit(_run_before, deadline, loaded, signature_name, inputs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        return future

    def predict(self, name, version, signature_name, inputs, deadline=None):
        """`submit`, then waits for the outputs until `deadline` (a `time.monotonic()` value; default
        `request_timeout` from now); returns (loaded version, name -> numpy array). Raises `ServingError`."""
        deadline = self.deadline() if deadline is None else deadline
        loaded, future = self.submit(name, version, signature_name, inputs, deadline)
        return loaded, self.wait(future, deadline)

    def classify(self, name, version, signature_name, examples, context=None, deadline=None, hint=REST_HINT):
        """`submit_classify`, then waits as `predict` does; returns (loaded version, signature name, outputs)."""
        deadline = self.deadline() if deadline is None else deadline
        loaded, signature_name, future = self.submit_classify(name, version, signature_name, examples, context,
                                                              deadline, hint)
        return loaded, signature_name, self.wait(future, deadline)

    @staticmethod
    def wait(future, deadline):
        """The outputs of a queued future, or `ServingError` (DEADLINE_EXCEEDED at `deadline`)."""
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except concurrent.futures.TimeoutError:
            raise deadline_error() from None
        except BaseException as error:
            raise serving_error(error) from None

    def drain(self, timeout):
        """Refuses new predictions and waits up to `timeout` seconds for the admitted ones to end; returns
        how many had not ended by then."""
        ends = time.monotonic() + timeout
        with self._idle:
            self.draining = True
            while self._pending and time.monotonic() < ends:
                self._idle.wait(ends - time.monotonic())
            return self._pending

    def stop(self):
        if self.batcher is not None:
            self.batcher.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.repository.stop()


def _run_before(deadline, loaded, signature_name, inputs):
    if time.monotonic() >= deadline:
        raise deadline_error()  # waited too long in the queue: do not spend the work
    return loaded.run(signature_name, inputs)


def validate_inputs(specs, inputs, max_batch_size):
    """Checks names, dtypes and shapes against the signature's input specs; converts to their dtypes.
    Earlier input names (`INPUT_ALIASES`, e.g. `num_return_sequences`) are accepted for their new ones."""
    inputs = with_input_aliases(inputs, specs)
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
        raise ServingError("INVALID_ARGUMENT", f"input(s) {unknown} are not in the signature; its inputs are "
                                               f"{sorted(specs)}")
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ServingError("INVALID_ARGUMENT", f"missing input(s) {missing}; the signature needs {sorted(specs)}")
    converted, batch, first = {}, None, None
    for name, spec in specs.items():
        try:
            value = np.asarray(inputs[name], dtype=object) if spec.dtype == tf.string else np.asarray(inputs[name])
        except ValueError:  # rows of different lengths
            raise ServingError("INVALID_ARGUMENT", f"input {name!r} is not a rectangular array: its rows have "
                                                   "different lengths") from None
        if spec.dtype == tf.string:
            for index, item in enumerate(value.reshape(-1)):
                if isinstance(item, str):
                    continue
                if not isinstance(item, bytes):
                    raise ServingError("INVALID_ARGUMENT", f"input {name!r}: element {index} is "
                                                           f"{type(item).__name__}, expected a string")
                try:
                    item.decode("utf-8")
                except UnicodeDecodeError:
                    raise ServingError("INVALID_ARGUMENT", f"input {name!r}: element {index} is not valid "
                                                           "UTF-8 text") from None
            value = np.vectorize(lambda s: s.encode("utf-8") if isinstance(s, str) else s, otypes=[object])(value) \
                if value.size else value.astype(object)
        else:
            value = _numeric(name, inputs[name], value, np.dtype(spec.dtype.as_numpy_dtype))
        if spec.shape.rank is not None and value.ndim != spec.shape.rank:
            raise ServingError("INVALID_ARGUMENT", f"input {name!r} has shape {list(value.shape)}, but the "
                                                   f"signature expects rank {spec.shape.rank} ({spec.shape})")
        if spec.shape.rank:
            rows = value.shape[0]
            if batch is not None and rows != batch:
                raise ServingError("INVALID_ARGUMENT", f"inputs have different batch sizes: {first!r} has {batch} "
                                                       f"rows, {name!r} {rows}; each row needs every input")
            batch, first = rows, (first if batch is not None else name)
        converted[name] = value
    if batch is not None and batch > max_batch_size:
        raise ServingError("INVALID_ARGUMENT", f"batch of {batch} rows exceeds this server's maximum of "
                                               f"{max_batch_size} (--max-batch-size); split the request")
    if batch == 0:
        raise empty_batch_error()
    return converted


def _leaves(value):
    """The scalars of a nested list (a JSON array), in order."""
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _numeric(name, raw, value, dtype):
    """`value` (`np.asarray(raw)`) as `dtype`, checked BEFORE the cast: no booleans for a number (JSON `true`
    is not 1), no fractions for an integer, and every integer within the dtype's range (a cast would wrap
    2**31 to -2147483648 and 2**63 to 0). `raw` is a JSON value (nested lists) or a numpy array (gRPC)."""
    if dtype.kind == "b":
        if value.dtype.kind != "b":
            raise ServingError("INVALID_ARGUMENT", f"input {name!r} must be bool (true/false), got values of type "
                                                   f"{value.dtype}")
        return value
    leaves = list(_leaves(raw)) if not isinstance(raw, np.ndarray) else raw.reshape(-1) if raw.dtype.kind == "O" \
        else []
    found = next((leaf for leaf in leaves if isinstance(leaf, (bool, np.bool_))), None)
    if found is not None or value.dtype.kind == "b":
        shown = str(found if found is not None else value.reshape(-1)[0]).lower()
        raise ServingError("INVALID_ARGUMENT", f"input {name!r} must be {dtype.name}, got a boolean ({shown}); "
                                               "send a number")
    kinds = ("i", "u") if dtype.kind in ("i", "u") else ("i", "u", "f")
    if value.dtype.kind == "O" and len(leaves) and all(isinstance(leaf, int) for leaf in leaves):
        numbers = leaves  # integers beyond int64/uint64: numpy keeps them as Python ints
    elif value.dtype.kind in kinds:
        numbers = value.reshape(-1)
    else:
        raise ServingError("INVALID_ARGUMENT", f"input {name!r} must be {dtype.name}, got values of type "
                                               f"{value.dtype}" + ("; send whole numbers" if value.dtype.kind == "f"
                                                                   else ""))
    if len(numbers):
        limits = np.iinfo(dtype) if dtype.kind in ("i", "u") else np.finfo(dtype)
        if isinstance(numbers, np.ndarray):
            finite = numbers[np.isfinite(numbers)] if numbers.dtype.kind == "f" else numbers
            low, high = (finite.min(), finite.max()) if finite.size else (0, 0)
        else:
            low, high = min(numbers), max(numbers)
        bad = low if low < limits.min else high if high > limits.max else None
        if bad is not None:
            shown = (bad, limits.min, limits.max) if dtype.kind in ("i", "u") else (
                f"{float(bad):g}", f"{float(limits.min):g}", f"{float(limits.max):g}")
            raise ServingError("INVALID_ARGUMENT", f"input {name!r} = {shown[0]} is out of range for {dtype.name}: "
                                                   f"allowed {shown[1]} to {shown[2]}")
    return np.asarray(numbers if value.dtype.kind == "O" else value).reshape(value.shape).astype(dtype)

__all__ = ["ServingCore", "validate_inputs", "request_id"]
