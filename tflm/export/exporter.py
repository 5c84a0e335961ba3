"""Export a trained run as a SavedModel that takes raw strings and returns strings, for TF Serving.

    saved_models/<name>/<version>/
        saved_model.pb, variables/            the graph: tokenizer, model, decoding, detokenizer
        assets/                               the vocabularies and the run's config.json
        assets.extra/tflm.json                tflm, TensorFlow, tensorflow-text versions; signatures
        assets.extra/tf_serving_warmup_requests   a few PredictRequests TF Serving replays on load

The signatures are the ones the task's predictor declares (`tflm.tasks.Predictor.signatures()`), e.g. for
translation `serving_default` (`text` -> `outputs`, `scores`), `translate` (with decoding controls),
`tokenize`, `detokenize` and `score`; dynamic batch size everywhere, nothing needs XLA. Each is bounded by
the export's `ServingLimits`, checked in the graph (`tflm.export.limits`).

The version directory is written under a temporary name and renamed into place, so a TF Serving that
polls `saved_models/<name>/` never sees a half-written version.
"""

import datetime
import inspect
import json
import logging
import os
import shutil
import uuid

import keras
import tensorflow as tf

from tflm.export.limits import ServingLimits, checked, signature_checks
from tflm.tasks.predictor import WARMUP_CONTROLS

logger = logging.getLogger("tflm")

EXTRA_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


class ExportCheckError(RuntimeError):
    """The exported SavedModel would not work in stock TF Serving (the report says why)."""


def build_archive(predictor, limits=None):
    """A `keras.export.ExportArchive` with the signatures the predictor declares (`Predictor.signatures()`).

    The archive tracks the model's variables and the tokenizers' resources explicitly: a Keras 3 model held
    by a plain `tf.Module` loads in Python but not in the TF1 session loader that TF Serving uses.
    `limits` (`ServingLimits`) bound what one request may ask: each signature checks, in the graph and
    before anything else runs, its rows (`max_batch_size`), its decoding controls (`decoding_checks`; the
    constraints `min_length` and `no_repeat_ngram_size` too, where the signature takes them) and the length in
    tokens of its `token_limited` texts, as its `Signature` declares them.
    """
    limits = limits or ServingLimits()
    archive = keras.export.ExportArchive()
    archive.track(predictor.model)
    tracked = []
    for tokenizer in predictor.tokenizers().values():
        if not any(tokenizer is other for other in tracked):
            archive.track(tokenizer)
            tracked.append(tokenizer)
    for signature in predictor.signatures():
        archive.add_endpoint(signature.name, _bounded(signature, predictor, limits),
                             input_signature=list(signature.inputs.values()))
    return archive


def _bounded(signature, predictor, limits):
    """The signature's function behind the checks its declaration asks for, with its inputs as parameters."""
    names = list(signature.inputs)

    def endpoint(*args):
        inputs = dict(zip(names, args))
        checks = signature_checks(signature, inputs, limits, lambda text: predictor.count_tokens(text))
        if checks:
            inputs = checked(inputs, checks)
        return signature.function(**inputs)

    endpoint.__name__ = signature.name
    endpoint.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
    return endpoint


def set_method_names(directory, signatures):
    """Writes each signature's TF Serving method (`Signature.method_name`, e.g. `CLASSIFY_METHOD`) into the
    SavedModel at `directory`. `tf.saved_model.save` marks every signature "tensorflow/serving/predict", and TF
    Serving's Classify API refuses a signature of any other method."""
    from tflm.export.loading import saved_model_proto

    methods = {signature.name: signature.method_name for signature in signatures if signature.method_name}
    if not methods:
        return
    saved_model = saved_model_proto(directory)
    for meta_graph in saved_model.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
        f.write(saved_model.SerializeToString())


def next_version(model_dir):
    """1 + the largest numeric version directory in `model_dir` (1 for a new model)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(name) for name in os.listdir(model_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def export_predictor(predictor, base_dir, name, run_dir=None, checkpoint=None, warmup_inputs=(), version=None,
                     check_inputs=None, limits=None, task=None, config_values=None):
    """Writes `predictor` as version `version` (default: the next one) of `base_dir/name`; returns its path.

    With `check_inputs` (inputs of `serving_default`), the export is checked (`tflm.export.check`) before it
    is moved into place, with the in-memory predictor as the reference; a failed check raises
    `ExportCheckError` and leaves no version. `limits` (`ServingLimits`, default: its defaults) bound every
    request, checked in the graph. `task` (its name) is recorded in tflm.json; `config_values` (the run's
    configuration, as config.json holds it) is saved as `assets/config.json`.
    """
    limits = (limits or ServingLimits()).within_context(predictor.context_length())
    if not name or os.sep in name or name.startswith(".") or (os.altsep and os.altsep in name):
        raise ValueError(f"Model name {name!r} must be a plain directory name (no path separators, no leading '.').")
    model_dir = os.path.join(base_dir, name)
    version = version or next_version(model_dir)
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} already exists; versions are never overwritten. Export a new version.")
    os.makedirs(base_dir, exist_ok=True)
    temporary = os.path.join(base_dir, f".{name}.{version}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        build_archive(predictor, limits).write_out(temporary, verbose=False)
        set_method_names(temporary, predictor.signatures())
        _write_assets(temporary, predictor, config_values)
        _write_extra(temporary, name, predictor, run_dir, checkpoint, list(warmup_inputs), limits, task)
        if check_inputs is not None:
            from tflm.export.check import check_saved_model

            report = check_saved_model(temporary, check_inputs, predictor=predictor)
            logger.info(report.summary().replace(temporary, f"{name}/{version}"))
            if not report.ok:
                raise ExportCheckError(report.summary().replace(temporary, final))
        os.makedirs(model_dir, exist_ok=True)
        os.rename(temporary, final)  # atomic on one filesystem: the version appears whole or not at all
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
    logger.info("Exported %s", final)
    return final


def export_translator(translator, base_dir, name, run_dir=None, checkpoint=None, warmup_sentences=(),
                      version=None, check_sentences=None, limits=None):
    """`export_predictor` under its earlier name and argument names."""
    return export_predictor(translator, base_dir, name, run_dir=run_dir, checkpoint=checkpoint,
                            warmup_inputs=warmup_sentences, version=version, check_inputs=check_sentences,
                            limits=limits)


def _write_assets(directory, predictor, config_values):
    assets = os.path.join(directory, "assets")
    os.makedirs(assets, exist_ok=True)
    for name, tokenizer in predictor.tokenizers().items():
        tokenizer.save(os.path.join(assets, name + tokenizer.file_suffix))
    if config_values is not None:
        with open(os.path.join(assets, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config_values, f, indent=2)


def versions():
    import importlib.metadata

    def version_of(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {package: version_of(package) for package in
            ("tflm", "tensorflow", "tensorflow-text", "keras", "keras-hub")}


def _write_extra(directory, name, predictor, run_dir, checkpoint, warmup_inputs, limits, task):
    extra = os.path.join(directory, EXTRA_DIR)
    os.makedirs(extra, exist_ok=True)
    signatures = predictor.signatures()
    info = {
        "versions": versions(),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_dir": os.path.abspath(run_dir) if run_dir else None,
        "task": task,
        "checkpoint": checkpoint,
        "model": type(predictor.model).__name__,
        "limits": applicable_limits(limits, signatures),
        "signatures": [signature.name for signature in signatures],
        # what `tflm serve` reads of each signature's declaration: its row inputs and per-row lengths
        "signature_rows": {signature.name: {"rows": list(signature.row_inputs),
                                            "row_lengths": dict(signature.row_lengths),
                                            **({"method": signature.method_name} if signature.method_name else {}),
                                            **({"example_features": list(signature.example_features)}
                                               if signature.example_features else {})}
                           for signature in signatures},
    }
    if predictor.context_info() is not None:  # what the model attends to (a language model's context)
        info["context"] = predictor.context_info()
    if predictor.decoding is not None:  # (a task that does not decode has no decoding settings to record)
        info["decoding"] = _plain(predictor.decoding)
    with open(os.path.join(extra, "tflm.json"), "w") as f:
        json.dump(info, f, indent=1)
    if warmup_inputs:
        write_warmup_requests(os.path.join(extra, WARMUP_FILE), name, warmup_inputs, signatures)


def applicable_limits(limits, signatures):
    """The limits of `limits` that some signature is bounded by: the rows always, the decoding limits where a
    signature decodes, `max_input_tokens` where a signature counts tokens."""
    values = {"max_batch_size": limits.max_batch_size}
    if any(signature.length for signature in signatures):
        values.update(max_beam_size=limits.max_beam_size, max_hypotheses=limits.max_hypotheses,
                      max_new_tokens=limits.max_new_tokens)
    if any(signature.token_limited for signature in signatures):
        values["max_input_tokens"] = limits.max_input_tokens
    return values


def _plain(options):
    import dataclasses

    if options is None:
        return None
    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options)


def write_warmup_requests(path, name, inputs, signatures):
    """TF Serving's warm-up file: a TFRecord of `PredictionLog`s, replayed when a version loads.

    `serving_default` (the first of `signatures`) on the first input and on all of them, and each signature
    marked `warmup` on the first input with modest controls (`WARMUP_CONTROLS`), so that its first real
    request does not pay for preparing its graph (a second or more). `inputs` are rows of `serving_default`
    (str, or dicts naming its row inputs).
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    default = signatures[0]
    requests = [(default, default.columns(batch)) for batch in (inputs[:1], inputs)]
    for signature in signatures[1:]:
        if signature.warmup:
            values = {key: WARMUP_CONTROLS[key] for key in signature.inputs if key in WARMUP_CONTROLS}
            requests.append((signature, {**signature.columns(inputs[:1]), **values}))
    with tf.io.TFRecordWriter(path) as writer:
        for signature, values in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name,
                                                                                signature_name=signature.name))
            for key, value in values.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype=signature.inputs[key].dtype))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def write_models_config(base_dir, container_base="/models"):
    """Writes `base_dir/models.config`: TF Serving's model_config_list with every SavedModel model under
    `base_dir` (CTranslate2 exports, which only `tflm serve` serves, are left out).

    `container_base` is where `base_dir` is mounted for the server (the official Docker image's `/models`).
    """
    def saved_model_versions(name):  # (a CTranslate2 export has no saved_model.pb: stock TF Serving cannot load it)
        folder = os.path.join(base_dir, name)
        return [v for v in os.listdir(folder) if v.isdigit() and os.path.exists(os.path.join(folder, v,
                                                                                           "saved_model.pb"))]

    names = sorted(n for n in os.listdir(base_dir)
                   if not n.startswith(".") and os.path.isdir(os.path.join(base_dir, n)) and saved_model_versions(n))
    lines = ["model_config_list {"]
    for name in names:
        lines += ["  config {", f'    name: "{name}"', f'    base_path: "{container_base}/{name}"',
                  '    model_platform: "tensorflow"', "  }"]
    lines.append("}")
    path = os.path.join(base_dir, "models.config")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def export_run(run, name, base_dir="saved_models", checkpoint="best", average=0, check=True, check_sentences=16,
               decoding=None, limits=None):
    """Exports a trained run (of any task) as the next version of `base_dir/name` and updates models.config.

    Args:
        run: a `tflm.tasks.Run` (read once by the caller), or a run directory.
        name: the model's name under `base_dir` (TF Serving's model name).
        checkpoint: "best", "last", "averaged" or a checkpoint path.
        average: int. If > 0, first average the run's last `average` checkpoints and export that.
        check: bool. Check servability (ops, TF1 loader, every signature's parity with the in-memory predictor
            on the task's `export_inputs`: validation sentences, fixed prompts, ...) before the version
            appears; a failed check leaves no version.
        check_sentences: int. How many inputs the check uses (and four as warm-up requests).
        decoding: optional `DecodingOptions` for `serving_default` (default: the run's).
        limits: optional `ServingLimits`: the most one request may ask (checked in the graph).
    Returns:
        The path of the new version.
    """
    from tflm.tasks import Run

    run = run if isinstance(run, Run) else Run.open(run)
    if average:
        run.average(average)
        checkpoint = "averaged"
    predictor = run.load_predictor(checkpoint, decoding=decoding)
    inputs = run.export_inputs(check_sentences)
    path = export_predictor(predictor, base_dir, name, run_dir=run.run_dir, checkpoint=str(checkpoint),
                            warmup_inputs=inputs[:4], check_inputs=inputs if check else None, limits=limits,
                            task=run.task.name, config_values=run.config_values())
    write_models_config(base_dir)
    return path
