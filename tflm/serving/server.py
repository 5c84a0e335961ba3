"""The server: a model repository, batching, and the REST and gRPC front ends, started together."""

import logging
import signal
import threading

from tflm.serving.core import ServingCore
from tflm.serving.grpc_service import grpc_server
from tflm.serving.repository import ModelRepository
from tflm.serving.rest import RestServer

logger = logging.getLogger("tflm")


class Server:
    """Serves every model under `base_dir` with TF Serving's REST (`rest_port`) and gRPC (`grpc_port`) APIs.

    Args:
        base_dir: folder of exported models (`<name>/<version>/`).
        host: address to listen on (default 127.0.0.1: this machine only).
        rest_port, grpc_port: int; 0 picks a free port, None disables that front end.
        batching, max_batch_size, batch_timeout_ms: server-side batching (see `tflm.serving.batching`).
        max_body_bytes: largest request accepted.
        poll_seconds: how often to look for new model versions.
    Example:
    >>> server = Server("saved_models", rest_port=0, grpc_port=0).start()
    >>> server.rest_port, server.grpc_port
    """

    def __init__(self, base_dir, host="127.0.0.1", rest_port=8501, grpc_port=8500, batching=True,
                 max_batch_size=32, batch_timeout_ms=10.0, max_body_bytes=1 << 20, poll_seconds=2.0):
        self.base_dir = base_dir
        self.host = host
        self.requested_ports = (rest_port, grpc_port)
        self.core = ServingCore(ModelRepository(base_dir, poll_seconds), batching, max_batch_size,
                                batch_timeout_ms)
        self.max_body_bytes = max_body_bytes
        self.rest = None
        self.grpc = None
        self.rest_port = None
        self.grpc_port = None

    def start(self):
        self.core.repository.start()
        rest_port, grpc_port = self.requested_ports
        if rest_port is not None:
            self.rest = RestServer((self.host, rest_port), self.core, self.max_body_bytes).start()
            self.rest_port = self.rest.server_address[1]
        if grpc_port is not None:
            self.grpc, self.grpc_port = grpc_server(self.core, f"{self.host}:{grpc_port}", self.max_body_bytes)
        logger.info("Serving %s: REST on %s:%s, gRPC on %s:%s; models: %s", self.base_dir, self.host,
                    self.rest_port, self.host, self.grpc_port, ", ".join(self.core.repository.names()) or "none yet")
        return self

    def stop(self):
        if self.rest:
            self.rest.shutdown()
            self.rest.server_close()
        if self.grpc:
            self.grpc.stop(grace=2)
        self.core.stop()


def serve(base_dir, **options):
    """Runs a `Server` until interrupted (Ctrl-C or SIGTERM)."""
    server = Server(base_dir, **options).start()
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    logger.info("Shutting down")
    server.stop()
