"""The models a server serves: every `<base_dir>/<name>/<version>/` SavedModel or CTranslate2 export (a
version holding `tflm_ctranslate2.json`, from `tflm export --format ctranslate2`), reloaded as versions appear.

A CTranslate2 version answers behind the same REST and gRPC API as a SavedModel of the same run: the same
signature names, inputs, outputs, dtypes and shapes (`tflm.engines.ctranslate2`), the export's limits
checked by the same checks with the same messages (INVALID_ARGUMENT), and metadata listing its signatures.

Like TF Serving's default version policy, the newest version of each model serves requests that name no
version: the newest one that loads. A poller thread scans the directory; a new version is loaded (and answers
its warm-up requests) before it is swapped in, so requests never see a half-loaded model; a version that fails
to load is reported in its status (state END, with its error) and the next older one serves instead (the one
serving already, or at start the newest that loads). A failed version is tried again when its folder changes
(a file added, removed, replaced or rewritten), so a corrupt version copied over with a good one becomes
AVAILABLE without a restart or a new version number. Versions older than the serving one are unloaded once
the new one is available.
"""

import ctypes
import gc
import logging
import os
import re
import threading
import time
import weakref

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tensorflow-text ops that exported tokenizers use)

from tflm.engines.ctranslate2.metadata import METADATA_FILE
from tflm.export.loading import export_info, saved_model_proto
from tflm.serving.errors import ServingError

logger = logging.getLogger("tflm")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class LoadedVersion:
    """One loaded SavedModel version: its signatures as concrete functions, and their input/output specs."""

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        self.path = path
        self.saved_model = tf.saved_model.load(path)
        self.signatures = dict(self.saved_model.signatures)
        self.signature_defs = dict(saved_model_proto(path).meta_graphs[0].signature_def)
        self.info = export_info(path)

    def signature(self, signature_name):
        signature_name = signature_name or "serving_default"
        if signature_name not in self.signatures:
            raise ServingError("INVALID_ARGUMENT", f"Serving signature name: \"{signature_name}\" not found in "
                                                   f"signature def; available: {sorted(self.signatures)}")
        return self.signatures[signature_name]

    def input_specs(self, signature_name):
        return self.signature(signature_name).structured_input_signature[1]

    def row_lengths(self, signature_name):
        """{output: the output of each row's length} that the export declares for a signature (tflm.json)."""
        declared = self.info.get("signature_rows", {}).get(signature_name or "serving_default", {})
        return declared.get("row_lengths", {})

    def run(self, signature_name, inputs):
        """Runs a signature on numpy inputs (name -> array); returns name -> numpy array."""
        function = self.signature(signature_name)
        outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: np.asarray(value) for name, value in outputs.items()}

    def warm_up(self):
        """Replays `assets.extra/tf_serving_warmup_requests`, as TF Serving does before serving a version."""
        path = os.path.join(self.path, "assets.extra", "tf_serving_warmup_requests")
        if not os.path.exists(path):
            return 0
        from tensorflow_serving.apis import prediction_log_pb2

        count = 0
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            self.run(request.model_spec.signature_name, inputs)
            count += 1
        return count


DEFAULT_CTRANSLATE2_THREADS = 1  # per batch: more collapse when the CPU is shared (docs/benchmarks.md)


class CTranslate2Version:
    """One loaded CTranslate2 export: its engine (`tflm.engines.ctranslate2`) behind `LoadedVersion`'s
    interface (`signature`, `input_specs`, `run`, `warm_up`, `signature_defs`, `info`).

    Each batch runs on `threads` CPU threads (default 1: with every CPU, one busy core stalls every batch;
    `tools/bench/serve_reliability.py`: x0.25 the requests/s idle, x0.04 with a busy core), and up to `cpu_count // threads` batches
    run at once (`inter_threads`; the batcher runs one at a time, `--no-batching` up to the core's workers)."""

    def __init__(self, name, version, path, threads=None):
        from tflm.engines.ctranslate2 import load_engine  # loaded with the first CTranslate2 version

        self.name = name
        self.version = version
        self.path = path
        threads = threads or DEFAULT_CTRANSLATE2_THREADS
        self.engine = load_engine(path, intra_threads=threads, inter_threads=max(1, (os.cpu_count() or 1) // threads))
        self.signature_defs = self.engine.signature_defs()
        self.info = dict(self.engine.metadata, engine="ctranslate2", limits=self.engine.limits.to_dict(),
                         signatures=[signature.name for signature in self.engine.signatures()])

    def signature(self, signature_name):
        try:
            return self.engine.signature(signature_name)
        except KeyError as error:
            raise ServingError("INVALID_ARGUMENT", error.args[0]) from None

    def input_specs(self, signature_name):
        self.signature(signature_name)
        return self.engine.input_specs(signature_name)

    def run(self, signature_name, inputs):
        """Runs a signature on numpy inputs (name -> array); returns name -> numpy array. A request outside
        the export's limits raises the engine's `tf.errors.InvalidArgumentError` with the SavedModel's
        message, as a SavedModel's signature does (`tflm.serving.errors.serving_error` answers both)."""
        self.signature(signature_name)
        return self.engine.run(signature_name, inputs)

    def warm_up(self):
        """Decodes a short input through each decoding signature once; returns how many requests ran."""
        return self.engine.warm_up()


def load_version(name, version, path, ctranslate2_threads=None):
    """The loaded version at `path`: a `CTranslate2Version` for a CTranslate2 export, else a `LoadedVersion`."""
    if not os.path.exists(os.path.join(path, "saved_model.pb")) and os.path.exists(os.path.join(path, METADATA_FILE)):
        return CTranslate2Version(name, version, path, ctranslate2_threads)
    return LoadedVersion(name, version, path)


def folder_signature(path, max_files=10_000):
    """What changes when a version's folder is replaced or rewritten: each file's relative path, size,
    modification and change times and inode (a copy made with `cp -p` or `shutil.copytree` keeps the
    modification times, never the change times or inodes). At most `max_files` files are looked at."""
    entries = []
    for root, folders, files in os.walk(path):
        folders.sort()
        for file in sorted(files):
            try:
                info = os.stat(os.path.join(root, file))
            except OSError:
                continue
            entries.append((os.path.relpath(os.path.join(root, file), path), info.st_size, info.st_mtime_ns,
                            info.st_ctime_ns, info.st_ino))
            if len(entries) >= max_files:
                return tuple(entries)
    return tuple(entries)


def _release_freed_memory():
    """Returns the C heap's free pages to the system where the C library can (glibc's `malloc_trim`)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class VersionStatus:
    """A version's state as TF Serving reports it: START, LOADING, AVAILABLE, UNLOADING, END, with an error."""

    def __init__(self, version, state, error_code="OK", error_message=""):
        self.version = version
        self.state = state
        self.error_code = error_code
        self.error_message = error_message


class ModelRepository:
    """Loads and serves the models under `base_dir`; thread-safe.

    Args:
        base_dir: the folder of models (`<name>/<version>/saved_model.pb`, or `<name>/<version>/` of a
            CTranslate2 export with its `tflm_ctranslate2.json`).
        poll_seconds: how often to look for new versions (0: only when `refresh()` is called).
        ctranslate2_threads: CPU threads per batch of each CTranslate2 model (default 1; see `CTranslate2Version`).
    """

    def __init__(self, base_dir, poll_seconds=2.0, ctranslate2_threads=None):
        self.base_dir = os.path.abspath(base_dir)
        if not os.path.isdir(self.base_dir):
            raise FileNotFoundError(f"{base_dir}: no such directory of models (export one with `tflm export`).")
        self.poll_seconds = poll_seconds
        self.ctranslate2_threads = ctranslate2_threads
        self._lock = threading.Lock()
        self._serving = {}  # name -> {version: LoadedVersion}
        self._statuses = {}  # name -> {version: VersionStatus}
        self._failed = {}  # (name, version) -> its folder's signature when it failed: retried once it changes
        self._retired = []  # (weak reference, when) of unloaded versions: their graphs are freed by `_collect`
        self._stop = threading.Event()
        self._thread = None

    # ------------------------------------------------------------------ lookup

    def model_dir(self, name):
        """The directory of model `name`, refusing names that could reach outside `base_dir`."""
        if not NAME_PATTERN.match(name or "") or name in (".", ".."):
            raise ServingError("INVALID_ARGUMENT", f"Invalid model name {name!r}: use letters, digits, '.', '_', '-'.")
        path = os.path.realpath(os.path.join(self.base_dir, name))
        if os.path.dirname(path) != os.path.realpath(self.base_dir):
            raise ServingError("INVALID_ARGUMENT", f"Invalid model name {name!r}.")
        return path

    def get(self, name, version=None):
        """The `LoadedVersion` serving `name` (its newest available version, or `version`)."""
        self.model_dir(name)
        with self._lock:
            versions = self._serving.get(name)
            if not versions:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})"
                                   if version is None else f"Servable not found for request: Specific({name}, "
                                                           f"{version})")
            if version is None:
                return versions[max(versions)]
            if int(version) not in versions:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
            return versions[int(version)]

    def statuses(self, name, version=None):
        self.model_dir(name)
        with self._lock:
            statuses = dict(self._statuses.get(name, {}))
        if not statuses:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        if version is not None:
            if int(version) not in statuses:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
            return [statuses[int(version)]]
        return [statuses[v] for v in sorted(statuses, reverse=True)]

    def names(self):
        with self._lock:
            return sorted(self._serving)

    # ------------------------------------------------------------------ loading

    def _on_disk(self):
        found = {}
        for name in os.listdir(self.base_dir):
            directory = os.path.join(self.base_dir, name)
            if name.startswith(".") or not NAME_PATTERN.match(name) or not os.path.isdir(directory):
                continue
            versions = [int(v) for v in os.listdir(directory) if v.isdigit() and any(
                os.path.exists(os.path.join(directory, v, marker)) for marker in ("saved_model.pb", METADATA_FILE))]
            if versions:
                found[name] = versions
        return found

    def _set_status(self, name, version, state, code="OK", message=""):
        with self._lock:
            self._statuses.setdefault(name, {})[version] = VersionStatus(version, state, code, message)

    def refresh(self):
        """For every model, loads the newest version that loads, if it is newer than the one serving (a version
        that failed is skipped until its folder changes); unloads superseded versions."""
        for name, versions in self._on_disk().items():
            with self._lock:
                serving = max(self._serving.get(name, {}), default=0)
            for version in sorted(versions, reverse=True):
                if version <= serving:
                    break
                path = os.path.join(self.base_dir, name, str(version))
                signature = folder_signature(path)
                if self._failed.get((name, version)) == signature:
                    continue  # failed as it is now: the next older version
                if self._load(name, version, path, signature):
                    break
        self._collect()

    def _collect(self, grace_seconds=60.0):
        """Frees the memory of unloaded versions once the requests still using them have ended (or after
        `grace_seconds`): their TensorFlow graphs, functions and tokenizers sit in reference cycles that
        only the cyclic garbage collector frees (loading one export 8 times in a row: +53 MiB without it, +2 MiB
        with it); then glibc is asked to hand freed heap pages back (`malloc_trim`). Under load the server's memory
        grows over the first ~15 swaps and then stays flat (25 swaps measured, docs/benchmarks.md)."""
        if self._retired and (all(ref() is None for ref, _ in self._retired)
                              or time.monotonic() - self._retired[0][1] > grace_seconds):
            self._retired = []
            gc.collect()
            _release_freed_memory()

    def _load(self, name, version, path, signature):
        """Loads and warms up one version and swaps it in; returns whether it loaded."""
        self._set_status(name, version, "LOADING")
        started = time.monotonic()
        try:
            loaded = load_version(name, version, path, self.ctranslate2_threads)
            warmups = loaded.warm_up()
        except Exception as error:  # noqa: BLE001  (any load failure: report it, keep the old version)
            self._failed[name, version] = signature
            message = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:500]}"
            self._set_status(name, version, "END", "UNKNOWN", message)
            logger.error("Model %s version %d failed to load and is not served (tried again when %s changes): %s",
                         name, version, path, message)
            return False
        self._failed.pop((name, version), None)
        with self._lock:
            old = self._serving.get(name, {})
            self._serving[name] = {version: loaded}
            self._statuses.setdefault(name, {})[version] = VersionStatus(version, "AVAILABLE")
            for superseded in old:
                self._statuses[name][superseded] = VersionStatus(superseded, "END")
        self._retired += [(weakref.ref(superseded), time.monotonic()) for superseded in old.values()]
        logger.info("Serving %s version %d (loaded in %.1fs, %d warm-up requests)%s", name, version,
                    time.monotonic() - started, warmups, f"; unloaded version(s) {sorted(old)}" if old else "")
        if loaded.info and "limits" not in loaded.info:
            logger.warning("%s version %d was exported before tflm checked decoding controls in the graph: "
                           "its signatures accept any beam size or length. Export it again with this tflm.",
                           name, version)
        return True

    def start(self):
        """Loads what is there now, then keeps polling in a background thread."""
        self.refresh()
        if self.poll_seconds:
            self._thread = threading.Thread(target=self._poll, name="tflm-model-poller", daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001  (the poller must survive anything on disk)
                logger.exception("Scanning %s failed", self.base_dir)

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
