"""The server: a model repository, batching, and the REST and gRPC front ends, started together."""

import errno
import logging
import os
import signal
import socket
import threading
import time

from tflm.serving.core import ServingCore
from tflm.serving.grpc_service import grpc_server
from tflm.serving.repository import ModelRepository
from tflm.serving.rest import RestServer

logger = logging.getLogger("tflm")


class PortError(RuntimeError):
    """A port `tflm serve` cannot listen on (taken by another server, reserved, or a bad host): one line
    naming the front end, the address, the reason and the option that changes it."""

    def __init__(self, front_end, option, host, port, error):
        reason = error.strerror or str(error) if isinstance(error, OSError) else str(error)
        if getattr(error, "errno", None) == errno.EADDRINUSE or "already in use" in str(reason).lower():
            reason = "the port is already in use (another server listens there)"
            fix = f"stop that server, or pick another port: {option} {port + 1} (or {option} 0 for any free one)"
        else:
            fix = f"pick another address or port ({option}, --host)"
        super().__init__(f"cannot listen for {front_end} on {host}:{port}: {reason}; {fix}")


def check_port_free(host, port, front_end, option):
    """Raises `PortError` if nothing may listen on (host, port) now: a listening socket (any server's, a
    `SO_REUSEPORT` one included) is there. Sockets in TIME_WAIT do not count (SO_REUSEADDR)."""
    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortError(front_end, option, host, port, error) from None


class Server:
    """Serves every model under `base_dir` with TF Serving's REST (`rest_port`) and gRPC (`grpc_port`) APIs.

    Args:
        base_dir: folder of exported models (`<name>/<version>/`).
        host: address to listen on (default 127.0.0.1: this machine only).
        rest_port, grpc_port: int; 0 picks a free port, None disables that front end.
        batching, max_batch_size, batch_timeout_ms: server-side batching (see `tflm.serving.batching`).
        max_body_bytes: largest request accepted (REST body, gRPC message).
        poll_seconds: how often to look for new model versions.
        max_pending: most predictions queued or running at once; more get UNAVAILABLE / 503.
        request_timeout: seconds a prediction may take, queueing included; DEADLINE_EXCEEDED / 504 after.
        shutdown_timeout: on `stop()`, seconds that requests in flight may take to finish.
        ctranslate2_threads: CPU threads per batch of each CTranslate2 export served (default 1, which keeps
            its speed on a shared CPU; `tflm.serving.repository.CTranslate2Version`).
    Example:
    >>> server = Server("saved_models", rest_port=0, grpc_port=0).start()
    >>> server.rest_port, server.grpc_port
    """

    def __init__(self, base_dir, host="127.0.0.1", rest_port=8501, grpc_port=8500, batching=True,
                 max_batch_size=32, batch_timeout_ms=10.0, max_body_bytes=1 << 20, poll_seconds=2.0,
                 max_pending=128, request_timeout=30.0, shutdown_timeout=30.0, ctranslate2_threads=None):
        self.base_dir = base_dir
        self.host = host
        self.requested_ports = (rest_port, grpc_port)
        repository = ModelRepository(base_dir, poll_seconds, ctranslate2_threads)
        self.core = ServingCore(repository, batching, max_batch_size, batch_timeout_ms, max_pending=max_pending,
                                request_timeout=request_timeout)
        self.max_body_bytes = max_body_bytes
        self.shutdown_timeout = shutdown_timeout
        self.rest = None
        self.grpc = None
        self.rest_port = None
        self.grpc_port = None

    def start(self):
        """Binds both ports (each exclusively: `PortError` if one is taken, before any model is loaded), loads
        the models, then answers requests (connections made meanwhile wait in the listen backlog)."""
        rest_port, grpc_port = self.requested_ports
        try:
            if rest_port is not None:
                try:
                    self.rest = RestServer((self.host, rest_port), self.core, self.max_body_bytes,
                                           shutdown_timeout=self.shutdown_timeout)
                except OSError as error:
                    raise PortError("REST", "--rest-port", self.host, rest_port, error) from None
                self.rest_port = self.rest.port
            if grpc_port is not None:
                check_port_free(self.host, grpc_port, "gRPC", "--grpc-port")
                try:
                    self.grpc, self.grpc_port = grpc_server(self.core, f"{self.host}:{grpc_port}",
                                                            self.max_body_bytes, start=False)
                except RuntimeError as error:  # grpc's "Failed to bind to address"
                    raise PortError("gRPC", "--grpc-port", self.host, grpc_port, error) from None
        except PortError:
            if self.rest:
                self.rest.stop()
            raise
        self.core.repository.start()
        if self.rest:
            self.rest.start()
        if self.grpc:
            self.grpc.start()
        logger.info("Serving %s: REST on %s:%s, gRPC on %s:%s; models: %s", self.base_dir, self.host,
                    self.rest_port, self.host, self.grpc_port, ", ".join(self.core.repository.names()) or "none yet")
        return self

    def stop(self):
        """Graceful stop: new connections and requests are refused (the listeners close; a request on a
        kept-alive connection gets UNAVAILABLE / 503), requests in flight finish, for at most
        `shutdown_timeout` seconds; then everything closes."""
        started = time.monotonic()
        self.core.draining = True
        grpc_stopped = self.grpc.stop(grace=self.shutdown_timeout) if self.grpc else None
        if self.rest:
            self.rest.stop()
        left = self.core.drain(max(self.shutdown_timeout - (time.monotonic() - started), 0.0))
        if grpc_stopped is not None:
            grpc_stopped.wait(max(self.shutdown_timeout - (time.monotonic() - started), 0.0))
        if left:
            logger.warning("Stopped with %d request(s) unfinished after %.0f s (--shutdown-timeout)", left,
                           self.shutdown_timeout)
        self.core.stop()
        logger.info("Stopped in %.1f s", time.monotonic() - started)


def serve(base_dir, **options):
    """Runs a `Server` until SIGTERM or Ctrl-C, then stops it gracefully (`Server.stop`); a second signal,
    or a stop that outlasts its bound, ends the process at once."""
    server = Server(base_dir, **options).start()
    stopping = threading.Event()

    def on_signal(signum, _frame):
        if stopping.is_set():
            logger.warning("Second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        logger.info("%s: finishing the requests in flight (at most %.0f s), refusing new ones",
                    signal.Signals(signum).name, server.shutdown_timeout)
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    while not stopping.wait(1.0):
        pass
    watchdog = threading.Timer(server.shutdown_timeout + 15, lambda: os._exit(1))
    watchdog.daemon = True
    watchdog.start()
    server.stop()
    watchdog.cancel()
