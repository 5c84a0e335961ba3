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
import tempfile

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


def repository_root():
    """The checkout tflm runs from (the folder holding `tflm/` and `pyproject.toml`), else the working directory."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return root if os.path.exists(os.path.join(root, "pyproject.toml")) else os.getcwd()


def _portable_path(path, root, cwd):
    """`path` as typed from `root`, shell-quoted: relative to it when inside it or beside it (`../shared/data`),
    `$TMPDIR/...` when in the temporary folder, else absolute (`/usr/share/dict`); None when `path` is relative
    and names nothing here (an option's value, a name)."""
    absolute = os.path.normpath(os.path.join(cwd, path))
    if not os.path.isabs(path) and not os.path.exists(absolute):
        return None
    temporary = os.path.normpath(os.path.realpath(tempfile.gettempdir()))
    beside = os.path.dirname(root) not in ("", os.sep) and absolute.startswith(os.path.dirname(root) + os.sep)
    if absolute.startswith(temporary + os.sep) and not beside and not absolute.startswith(root + os.sep):
        return "$TMPDIR/" + shlex.quote(os.path.relpath(absolute, temporary))  # the shell expands the variable
    if beside or absolute == root or absolute.startswith(root + os.sep):
        return shlex.quote(os.path.relpath(absolute, root))
    return shlex.quote(absolute)


def user_command(argv=None, root=None, cwd=None):
    """A command line as a user would type it from the repository root: the interpreter as `python`, paths
    relative to the root (inside it, or beside it as `../shared/data`; a temporary folder as `$TMPDIR/...`), so
    that a record carries no machine's absolute paths.

    Args:
        argv: list of str, the interpreter and its arguments (default: this process's, `sys.orig_argv`).
        root: the repository root (default: `repository_root()`).
        cwd: the folder the command ran in (default: the working directory).
    Returns:
        str, shell-quoted.
    Example:
    >>> user_command(["/work/main/.venv/bin/python", "/work/main/recipes/translation.py", "--run-dir",
    ...               "/work/main/runs/x", "--data-dir=/work/shared/data"], root="/work/main", cwd="/tmp")
    'python recipes/translation.py --run-dir runs/x --data-dir=../shared/data'
    """
    if argv is None:
        argv = list(getattr(sys, "orig_argv", [sys.executable] + sys.argv))
    root = os.path.normpath(os.path.abspath(root or repository_root()))
    cwd = os.path.abspath(cwd or os.getcwd())
    words = ["python"]
    for argument in argv[1:]:
        option, equals, value = argument.partition("=") if argument.startswith("-") else ("", "", argument)
        if option and not equals:  # an option alone
            words.append(shlex.quote(argument))
            continue
        path = _portable_path(value, root, cwd) if value else None
        words.append(option + equals + (shlex.quote(value) if path is None else path))
    return " ".join(words)


def write_record(name, task, dataset, model, metrics, directory=RESULTS_DIR, command=None):
    """Writes `directory/<name>.json` (name made file-safe) and returns its path.

    Args:
        name: what was measured, e.g. "serve-soak-tatoeba-en-es".
        task, dataset, model: strings ("translation", "tatoeba-es-en", "transformer small").
        metrics: a dict of numbers (percent for BLEU/ROUGE/accuracy/F1; plain numbers for ratios).
        command: the command that produced it (default: this process's command line as a user would type it
            from the repository root, see `user_command`).
    """
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"record {name!r}: metrics must be a non-empty dict, got {metrics!r}")
    record = {
        "name": name, "task": task, "dataset": dataset, "model": model,
        "metrics": {key: _plain(value) for key, value in metrics.items()},
        "command": command or user_command(),
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
