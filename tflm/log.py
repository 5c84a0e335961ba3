"""Console and file logging for the `tflm` logger (used by the CLI and the recipes)."""

import io
import logging
import os
import re
import sys

logger = logging.getLogger("tflm")


def setup_logging(log_file=None, verbose=True):
    """Logs tflm's messages to stderr (INFO, or WARNING when not `verbose`) and, if given, to `log_file`."""
    logger.setLevel(logging.INFO)
    logger.propagate = False
    console = next((h for h in logger.handlers if getattr(h, "_tflm_console", False)), None)
    if console is None:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        console._tflm_console = True
        logger.addHandler(console)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    if log_file:
        path = os.path.abspath(log_file)
        if not any(getattr(h, "baseFilename", None) == path for h in logger.handlers):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
    return logger


# TensorFlow's C++ log lines (absl and the older TF format) and absl's preamble. TF 2.21 writes them straight to
# file descriptor 2, and TF_CPP_MIN_LOG_LEVEL no longer silences them (tensorflow/tensorflow#100442).
_NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./+-]+:\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] [\w./+-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)")


def hide_native_logs():
    """Drops TensorFlow's C++ log lines from this process's stderr; everything else still reaches it.

    Python's `sys.stderr` is moved to a copy of the original descriptor (tflm's log, click's errors, Python
    warnings and tracebacks go there unchanged); descriptor 2, where native code writes, becomes a pipe read
    by a thread that forwards every line but the C++ log lines. At exit the pipe is drained. Called by the
    `tflm` console script before TensorFlow is imported (not by `import tflm`: a library must not take over
    its host's stderr); `tflm --verbose` or `TFLM_VERBOSE=1` skips it.
    """
    import atexit
    import threading

    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr.flush()
    sys.stderr = io.TextIOWrapper(io.FileIO(original, "w", closefd=False), line_buffering=True,
                                  encoding=sys.stderr.encoding, errors="backslashreplace")

    def forward():
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not _NATIVE_LOG_LINE.match(line):
                    os.write(original, line)

    thread = threading.Thread(target=forward, name="tflm-native-logs", daemon=True)
    thread.start()

    def drain():
        os.dup2(original, 2)  # closes the pipe's last write end: the thread sees the end and finishes
        thread.join(timeout=2.0)

    atexit.register(drain)


def quiet_unless_verbose(verbose=False):
    """Hides TensorFlow's C++ log lines (`hide_native_logs`) unless `verbose` or `TFLM_VERBOSE=1`: what the `tflm`
    console script does, for scripts (the recipes) to call before TensorFlow is imported. Returns whether it did.
    """
    if verbose or os.environ.get("TFLM_VERBOSE"):
        return False
    hide_native_logs()
    return True
