"""What the REST and gRPC front ends share: the repository, batching, limits and input validation."""

import numpy as np
import tensorflow as tf

from tflm.serving.batching import Batcher, is_batchable
from tflm.serving.repository import ModelRepository, ServingError


class ServingCore:
    """Runs predictions for both front ends.

    Args:
        repository: a started `ModelRepository`.
        batching: bool. Batch concurrent requests to batchable signatures (all inputs `(batch,)`).
        max_batch_size: int. Most rows per request (larger requests are refused) and per batch.
        batch_timeout_ms: float. How long a batch waits for more requests.
    """

    def __init__(self, repository, batching=True, max_batch_size=32, batch_timeout_ms=10.0):
        self.repository = repository
        self.max_batch_size = max_batch_size
        self.batcher = Batcher(max_batch_size, batch_timeout_ms) if batching else None

    def predict(self, name, version, signature_name, inputs):
        """Validates `inputs` (name -> numpy array) against the signature and runs it; name -> numpy array."""
        loaded = self.repository.get(name, version)
        specs = loaded.input_specs(signature_name)
        inputs = validate_inputs(specs, inputs, self.max_batch_size)
        if self.batcher is not None and is_batchable(specs):
            return loaded, self.batcher.run(loaded, signature_name or "serving_default", inputs)
        try:
            return loaded, loaded.run(signature_name, inputs)
        except tf.errors.InvalidArgumentError as error:
            raise ServingError("INVALID_ARGUMENT", error.message) from error

    def stop(self):
        if self.batcher is not None:
            self.batcher.stop()
        self.repository.stop()


def validate_inputs(specs, inputs, max_batch_size):
    """Checks names, dtypes and shapes against the signature's input specs; converts to their dtypes."""
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
        raise ServingError("INVALID_ARGUMENT", f"input(s) {unknown} are not in the signature; its inputs are "
                                               f"{sorted(specs)}")
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ServingError("INVALID_ARGUMENT", f"missing input(s) {missing}; the signature needs {sorted(specs)}")
    converted, batch = {}, None
    for name, spec in specs.items():
        value = np.asarray(inputs[name], dtype=object) if spec.dtype == tf.string else np.asarray(inputs[name])
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
            kind = np.dtype(spec.dtype.as_numpy_dtype).kind
            if value.dtype.kind not in ("i", "u", "f", "b") or (kind in ("i", "u") and value.dtype.kind == "f"):
                raise ServingError("INVALID_ARGUMENT", f"input {name!r} must be {spec.dtype.name}, got values of "
                                                       f"type {value.dtype}")
            value = value.astype(spec.dtype.as_numpy_dtype)
        if spec.shape.rank is not None and value.ndim != spec.shape.rank:
            raise ServingError("INVALID_ARGUMENT", f"input {name!r} has shape {list(value.shape)}, but the "
                                                   f"signature expects rank {spec.shape.rank} ({spec.shape})")
        if spec.shape.rank:
            rows = value.shape[0]
            if batch is not None and rows != batch:
                raise ServingError("INVALID_ARGUMENT", f"inputs have different batch sizes ({batch} and {rows})")
            batch = rows
        converted[name] = value
    if batch is not None and batch > max_batch_size:
        raise ServingError("INVALID_ARGUMENT", f"batch of {batch} rows exceeds this server's maximum of "
                                               f"{max_batch_size} (--max-batch-size); split the request")
    if batch == 0:
        raise ServingError("INVALID_ARGUMENT", "empty batch: send at least one instance")
    return converted


__all__ = ["ServingCore", "ServingError", "ModelRepository", "validate_inputs"]
