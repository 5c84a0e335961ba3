"""Result records: the machine-readable twin of `docs/benchmarks.md`.

Every benchmark script and recipe writes its figures as one JSON file per run or table under
`docs/results/`, with the same fields everywhere:

    {"name": "serve-soak-tatoeba-en-es", "task": "translation", "dataset": "tatoeba-es-en",
     "model": "transformer small", "metrics": {"failed_requests": 0, "p99_seconds": 0.61, ...},
     "command": "python tools/bench/serve_soak.py ...", "commit": "b1f01f3", "machine": "...",
     "date": "2026-12-01T22:40:00+00:00"}

BLEU, ROUGE, accuracy and F1 are in percent; ratios are plain numbers.
"""

import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys

RESULTS_DIR = os.path.join("docs", "results")


def machine():
    """One line describing this machine: processor, cores, GPUs, Python and TensorFlow versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return (f"{cpu}, {os.cpu_count()} cores, {'GPUs: ' + ', '.join(gpus) if gpus else 'no GPU'}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}")


def commit():
    """The commit of the tflm code that is running (`+dirty` if its tracked files differ from it), or None
    outside a git checkout."""
    where = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no", "--", "tflm"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def write_record(name, task, dataset, model, metrics, directory=RESULTS_DIR, command=None):
    """Writes `directory/<name>.json` (name made file-safe) and returns its path.

    Args:
        name: what was measured, e.g. "serve-soak-tatoeba-en-es".
        task, dataset, model: strings ("translation", "tatoeba-es-en", "transformer small").
        metrics: a dict of numbers (percent for BLEU/ROUGE/accuracy/F1; plain numbers for ratios).
        command: the command that produced it (default: this process's command line).
    """
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"record {name!r}: metrics must be a non-empty dict, got {metrics!r}")
    record = {
        "name": name, "task": task, "dataset": dataset, "model": model,
        "metrics": {key: _plain(value) for key, value in metrics.items()},
        "command": command or " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv),
        "commit": commit(), "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") + ".json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return path


def _plain(value):
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, float):
        return round(value, 6)
    return value
