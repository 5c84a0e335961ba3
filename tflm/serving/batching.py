"""Server-side batching: concurrent requests to one signature run as one batch.

Decoding a batch of 16 sentences costs little more than decoding one, so a server that waits a few
milliseconds to gather the requests that arrive together answers many more of them per second. A single
worker thread takes the queued requests; once `max_batch_size` rows are waiting or `timeout_ms` have passed
since the oldest arrived, it sorts them by the length of their text (so a batch holds sentences of similar
length and pads little), cuts them into batches of at most `max_batch_size` rows, runs each batch and
hands every request its own rows of the outputs (an output with a length per row, as the export declares
it, padded to the request's own longest row: exactly what the request would get alone). A request whose deadline passed while it waited is
answered DEADLINE_EXCEEDED and left out of the batch, so a backlog never costs work nobody waits for.
"""

import concurrent.futures
import logging
import threading
import time

import numpy as np

from tflm.serving.errors import deadline_error

logger = logging.getLogger("tflm")


def is_batchable(input_specs):
    """Whether every input of a signature is a vector over the batch (so requests concatenate)."""
    return bool(input_specs) and all(
        spec.shape.rank == 1 and spec.shape[0] is None for spec in input_specs.values()
    )


def _rows(inputs):
    return len(next(iter(inputs.values())))


def _length(inputs):
    longest = 0
    for value in inputs.values():
        if value.dtype.kind in ("O", "S", "U"):
            longest = max(longest, max((len(v) for v in value.reshape(-1)), default=0))
    return longest


def own_rows(outputs, start, end, row_lengths):
    """Rows `start:end` of a batch's outputs, as if the request had run alone: an output with a length per row
    (`row_lengths`: output -> the output of lengths) is cut to the longest of these rows, so its padding never
    depends on the other requests that shared the batch."""
    own = {name: value[start:end] for name, value in outputs.items()}
    for name, lengths_name in row_lengths.items():
        if name in own and lengths_name in own and own[name].ndim >= 2:
            longest = int(own[lengths_name].max()) if own[lengths_name].size else 0
            own[name] = own[name][:, :longest]
    return own


class _Pending:
    def __init__(self, version, signature, inputs, deadline=None):
        self.version = version
        self.deadline = deadline
        self.signature = signature
        self.inputs = inputs
        self.rows = _rows(inputs)
        self.length = _length(inputs)
        self.future = concurrent.futures.Future()
        self.arrived = time.monotonic()

    @property
    def key(self):
        return (self.version.path, self.signature)


class Batcher:
    """Batches requests per (model version, signature).

    Args:
        max_batch_size: int. Most rows per batch.
        timeout_ms: float. Longest wait for more requests once one is queued.
    """

    def __init__(self, max_batch_size=32, timeout_ms=10.0):
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self._queue = []
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="tflm-batcher", daemon=True)
        self._thread.start()
        self.batches = 0
        self.requests = 0

    def submit(self, version, signature, inputs, deadline=None):
        """Queues a request; returns a `concurrent.futures.Future` of its outputs (name -> numpy array).

        `deadline` (a `time.monotonic()` value): if the batch has not started by then, the future fails
        with DEADLINE_EXCEEDED and the request is not run.
        """
        pending = _Pending(version, signature, inputs, deadline)
        with self._condition:
            if self._stopped:
                raise RuntimeError("the batcher is stopped")
            self._queue.append(pending)
            self._condition.notify()
        return pending.future

    def stop(self):
        with self._condition:
            self._stopped = True
            self._condition.notify()
        self._thread.join(timeout=10)
        with self._condition:  # whatever was still queued is answered, not left waiting forever
            for pending in self._queue:
                pending.future.set_exception(RuntimeError("the server stopped before the request ran"))
            self._queue = []

    def _take(self):
        """Waits for requests, then up to `timeout` for more; returns the requests of one key."""
        with self._condition:
            while not self._queue and not self._stopped:
                self._condition.wait()
            if self._stopped:
                return []
            key = self._queue[0].key
            deadline = self._queue[0].arrived + self.timeout
            while not self._stopped:
                waiting = sum(p.rows for p in self._queue if p.key == key)
                remaining = deadline - time.monotonic()
                if waiting >= self.max_batch_size or remaining <= 0:
                    break
                self._condition.wait(remaining)
            taken = [p for p in self._queue if p.key == key]
            self._queue = [p for p in self._queue if p.key != key]
            return taken

    def _work(self):
        while not self._stopped:
            now = time.monotonic()
            taken = []
            for pending in self._take():
                if pending.future.done():  # cancelled by its waiter
                    continue
                if pending.deadline is not None and now >= pending.deadline:
                    pending.future.set_exception(deadline_error())
                else:
                    taken.append(pending)
            taken.sort(key=lambda p: p.length)  # similar lengths together: less padding
            group = []
            for pending in taken:
                if group and sum(p.rows for p in group) + pending.rows > self.max_batch_size:
                    self._run(group)
                    group = []
                group.append(pending)
            if group:
                self._run(group)

    def _run(self, group):
        first = group[0]
        try:
            inputs = {name: np.concatenate([p.inputs[name] for p in group]) for name in first.inputs}
            outputs = first.version.run(first.signature, inputs)
        except Exception as error:  # noqa: BLE001  (each waiting request gets the error)
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        self.batches += 1
        self.requests += len(group)
        row_lengths = getattr(first.version, "row_lengths", lambda _: {})(first.signature)
        start = 0
        for pending in group:
            end = start + pending.rows
            if not pending.future.done():  # (a future cancelled by its waiter takes no result)
                pending.future.set_result(own_rows(outputs, start, end, row_lengths))
            start = end
