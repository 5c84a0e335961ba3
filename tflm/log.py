"""Console and file logging for the `tflm` logger (used by the CLI and the recipes)."""

import logging
import os
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
