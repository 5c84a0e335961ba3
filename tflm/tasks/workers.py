"""Who writes a run directory in a multi-worker cluster, and how the other workers wait for it."""

import logging
import os

from tflm.training.strategies import worker_role

logger = logging.getLogger("tflm")


def is_chief():
    """Whether this process writes the run directory: the only process, or the chief of its cluster."""
    return worker_role()[2]


def wait_for_chief_vocabulary(run_dir, load, timeout=600.0):
    """For a worker that is not the chief: waits until `load()` finds the vocabulary the chief saves in
    `run_dir/vocab` and returns it, so that every worker tokenizes alike."""
    import time

    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        found = load()
        if found:
            logger.info("Read the chief's vocabulary from %s/vocab", run_dir)
            return found
        time.sleep(1.0)
    raise TimeoutError(f"{run_dir}/vocab: the chief wrote no vocabulary within {timeout:.0f} s. The workers of a "
                       "multi-worker run need the run directory on a shared filesystem (or train the vocabulary "
                       "first with `tflm vocab` and start from a run directory that has it).")


def save_vocabulary(tokenizers):
    """Saves `tokenizers` ({path: tokenizer}, in order), each file appearing whole (written under a
    temporary name, then renamed), so a worker waiting for them never reads half a file."""
    import shutil
    import tempfile

    for path, tokenizer in tokenizers.items():
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=".tmp-", dir=directory)
        try:
            tokenizer.save(os.path.join(scratch, os.path.basename(path)))
            os.replace(os.path.join(scratch, os.path.basename(path)), path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
