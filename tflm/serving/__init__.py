"""`tflm serve`: TF Serving's REST and gRPC APIs over a directory of exported models."""

from tflm.serving.batching import Batcher, is_batchable
from tflm.serving.core import ServingCore, validate_inputs
from tflm.serving.errors import ServingError
from tflm.serving.repository import LoadedVersion, ModelRepository
from tflm.serving.server import Server, serve
