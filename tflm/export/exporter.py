"""Export a trained run as a SavedModel that takes raw strings and returns strings, for TF Serving.

    saved_models/<name>/<version>/
        saved_model.pb, variables/            the graph: tokenizer, model, decoding, detokenizer
        assets/                               the vocabularies and the run's config.json
        assets.extra/tflm.json                tflm, TensorFlow, tensorflow-text versions; signatures
        assets.extra/tf_serving_warmup_requests   a few PredictRequests TF Serving replays on load

Signatures (dynamic batch size everywhere; nothing needs XLA):

- `serving_default`: `text` string `(batch,)` -> `outputs` string `(batch,)`, `scores` float32 `(batch,)`,
  with the run's decoding settings;
- `translate`: `text` plus scalar controls `beam_size`, `num_hypotheses`, `max_length`, `length_penalty`,
  `temperature`, `top_k`, `top_p`, `seed` -> `outputs` string `(batch, n)`, `scores` float32 `(batch, n)`
  (sampling when temperature > 0, else beam search when beam_size > 1, else greedy);
- `tokenize`: `text` -> `token_ids` int32 `(batch, length)` (source pieces, PAD-padded), `lengths`;
- `detokenize`: `token_ids` int32 `(batch, length)` -> `text` (target pieces; stops at EOS);
- `score`: `source`, `target` strings -> `log_prob` float32 `(batch,)`, `tokens` int32 `(batch,)`.

The version directory is written under a temporary name and renamed into place, so a TF Serving that
polls `saved_models/<name>/` never sees a half-written version.
"""

import datetime
import json
import logging
import os
import shutil
import uuid

import keras
import tensorflow as tf

from tflm.export.limits import Range, ServingLimits, batch_check, check, checked, decoding_checks

logger = logging.getLogger("tflm")

EXTRA_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
STRING = tf.string


class ExportCheckError(RuntimeError):
    """The exported SavedModel would not work in stock TF Serving (the report says why)."""


def _spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


def build_archive(translator, limits=None):
    """A `keras.export.ExportArchive` with the translator's signatures.

    The archive tracks the model's variables and the tokenizers' resources explicitly: a Keras 3 model held
    by a plain `tf.Module` loads in Python but not in the TF1 session loader that TF Serving uses.
    `limits` (`ServingLimits`) bound what one request may ask; each signature checks its inputs against
    them in the graph before decoding (`tflm.export.limits`).
    """
    limits = limits or ServingLimits()
    archive = keras.export.ExportArchive()
    archive.track(translator.model)
    archive.track(translator.source_tokenizer)
    if translator.target_tokenizer is not translator.source_tokenizer:
        archive.track(translator.target_tokenizer)

    def serving_default(text):
        text = checked({"text": text}, [batch_check("sentence", tf.size(text), limits)])["text"]
        return translator.translate_batch(text)

    def translate(text, beam_size, num_hypotheses, max_length, length_penalty, temperature, top_k, top_p, seed):
        controls = dict(text=text, beam_size=beam_size, num_hypotheses=num_hypotheses, max_length=max_length,
                        length_penalty=length_penalty, temperature=temperature, top_k=top_k, top_p=top_p,
                        seed=seed)
        checks = decoding_checks(controls, limits, "num_hypotheses", "max_length",
                                 translator.target_tokenizer.vocabulary_size)
        controls = checked(controls, [batch_check("sentence", tf.size(text), limits)] + checks)
        outputs, scores = translator.decode_with_controls(**controls)
        return {"outputs": outputs, "scores": scores}

    def score(source, target):
        return translator.score_batch(source, target)

    text = _spec([None], STRING, "text")
    scalar = lambda dtype, name: _spec([], dtype, name)  # noqa: E731
    archive.add_endpoint("serving_default", serving_default, input_signature=[text])
    archive.add_endpoint("translate", translate, input_signature=[
        text, scalar(tf.int32, "beam_size"), scalar(tf.int32, "num_hypotheses"), scalar(tf.int32, "max_length"),
        scalar(tf.float32, "length_penalty"), scalar(tf.float32, "temperature"), scalar(tf.int32, "top_k"),
        scalar(tf.float32, "top_p"), scalar(tf.int32, "seed"),
    ])
    _add_token_endpoints(archive, translator.source_tokenizer, translator.target_tokenizer)
    archive.add_endpoint("score", score, input_signature=[_spec([None], STRING, "source"),
                                                          _spec([None], STRING, "target")])
    return archive


def _add_token_endpoints(archive, tokenizer, detokenizer):
    """`tokenize` (text -> padded ids and lengths) and `detokenize` (ids -> text) signatures."""

    def tokenize(text):
        pieces = tokenizer.tokenize(text)
        return {"token_ids": pieces.to_tensor(0), "lengths": tf.cast(pieces.row_lengths(), tf.int32)}

    def detokenize(token_ids):
        return {"text": detokenizer.detokenize(token_ids)}

    archive.add_endpoint("tokenize", tokenize, input_signature=[_spec([None], STRING, "text")])
    archive.add_endpoint("detokenize", detokenize, input_signature=[_spec([None, None], tf.int32, "token_ids")])


def build_generator_archive(generator, limits=None):
    """A `keras.export.ExportArchive` with a language model's signatures:

    - `serving_default`: `prompt` string `(batch,)` -> `outputs` string `(batch, n)` (continuations),
      `scores` float32 `(batch, n)`, with the run's generation settings;
    - `generate`: `prompt` plus scalar controls `beam_size`, `num_return_sequences`, `max_new_tokens`,
      `length_penalty`, `temperature`, `top_k`, `top_p`, `seed`;
    - `tokenize`, `detokenize`; `score`: `text` -> `log_prob`, `tokens` (the text's log-probability).

    Prompts and scored texts longer than `limits.max_input_tokens` tokens, and controls outside their
    ranges, are refused in the graph (`tflm.export.limits`).
    """
    limits = limits or ServingLimits()
    archive = keras.export.ExportArchive()
    archive.track(generator.model)
    archive.track(generator.tokenizer)

    def input_checks(name, text):
        longest = tf.reduce_max(tf.concat([generator.tokenizer.tokenize(text).row_lengths(), [0]], 0))
        return [batch_check(name, tf.size(text), limits),
                check(f"{name} length in tokens", longest,
                      Range(0, limits.max_input_tokens, why="max_input_tokens, set at export"))]

    def serving_default(prompt):
        prompt = checked({"prompt": prompt}, input_checks("prompt", prompt))["prompt"]
        return generator.generate_batch(prompt)

    def generate(prompt, beam_size, num_return_sequences, max_new_tokens, length_penalty, temperature, top_k,
                 top_p, seed):
        controls = dict(prompts=prompt, beam_size=beam_size, num_return_sequences=num_return_sequences,
                        max_new_tokens=max_new_tokens, length_penalty=length_penalty, temperature=temperature,
                        top_k=top_k, top_p=top_p, seed=seed)
        checks = decoding_checks(controls, limits, "num_return_sequences", "max_new_tokens",
                                 generator.tokenizer.vocabulary_size)
        controls = checked(controls, input_checks("prompt", prompt) + checks)
        outputs, scores = generator.generate_with_controls(**controls)
        return {"outputs": outputs, "scores": scores}

    def score(text):
        text = checked({"text": text}, input_checks("text", text))["text"]
        return generator.score_batch(text)

    scalar = lambda dtype, name: _spec([], dtype, name)  # noqa: E731
    prompt = _spec([None], STRING, "prompt")
    archive.add_endpoint("serving_default", serving_default, input_signature=[prompt])
    archive.add_endpoint("generate", generate, input_signature=[
        prompt, scalar(tf.int32, "beam_size"), scalar(tf.int32, "num_return_sequences"),
        scalar(tf.int32, "max_new_tokens"), scalar(tf.float32, "length_penalty"), scalar(tf.float32, "temperature"),
        scalar(tf.int32, "top_k"), scalar(tf.float32, "top_p"), scalar(tf.int32, "seed"),
    ])
    _add_token_endpoints(archive, generator.tokenizer, generator.tokenizer)
    archive.add_endpoint("score", score, input_signature=[_spec([None], STRING, "text")])
    return archive


def _archive_of(exportable, limits):
    builder = build_archive if hasattr(exportable, "translate_batch") else build_generator_archive
    return builder(exportable, limits)


def next_version(model_dir):
    """1 + the largest numeric version directory in `model_dir` (1 for a new model)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(name) for name in os.listdir(model_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def export_translator(translator, base_dir, name, run_dir=None, checkpoint=None, warmup_sentences=(),
                      version=None, check_sentences=None, limits=None):
    """Writes `translator` as version `version` (default: the next one) of `base_dir/name`; returns its path.

    With `check_sentences`, the export is checked (`tflm.export.check`) before it is moved into place, with
    the in-memory translator as the reference; a failed check raises `ExportCheckError` and leaves no version.
    `limits` (`ServingLimits`, default: its defaults) bound every request, checked in the graph.
    """
    limits = limits or ServingLimits()
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
        _archive_of(translator, limits).write_out(temporary, verbose=False)
        _write_assets(temporary, translator, run_dir)
        _write_extra(temporary, name, translator, run_dir, checkpoint, warmup_sentences, limits)
        if check_sentences is not None:
            from tflm.export.check import check_saved_model

            report = check_saved_model(temporary, check_sentences, translator=translator)
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


def _write_assets(directory, exportable, run_dir):
    assets = os.path.join(directory, "assets")
    os.makedirs(assets, exist_ok=True)
    if hasattr(exportable, "source_tokenizer"):
        tokenizers = (("source", exportable.source_tokenizer), ("target", exportable.target_tokenizer))
    else:
        tokenizers = (("tokenizer", exportable.tokenizer),)
    for name, tokenizer in tokenizers:
        tokenizer.save(os.path.join(assets, name + tokenizer.file_suffix))
    if run_dir and os.path.exists(os.path.join(run_dir, "config.json")):
        shutil.copy(os.path.join(run_dir, "config.json"), os.path.join(assets, "config.json"))


def versions():
    import importlib.metadata

    def version_of(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {package: version_of(package) for package in
            ("tflm", "tensorflow", "tensorflow-text", "keras", "keras-hub")}


def _write_extra(directory, name, translator, run_dir, checkpoint, warmup_sentences, limits):
    extra = os.path.join(directory, EXTRA_DIR)
    os.makedirs(extra, exist_ok=True)
    info = {
        "versions": versions(),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_dir": os.path.abspath(run_dir) if run_dir else None,
        "checkpoint": checkpoint,
        "model": type(translator.model).__name__,
        "decoding": _plain(translator.decoding),
        "limits": limits.to_dict(),
        "signatures": (["serving_default", "translate", "tokenize", "detokenize", "score"]
                       if hasattr(translator, "translate_batch") else
                       ["serving_default", "generate", "tokenize", "detokenize", "score"]),
    }
    with open(os.path.join(extra, "tflm.json"), "w") as f:
        json.dump(info, f, indent=1)
    if warmup_sentences:
        translation = hasattr(translator, "translate_batch")
        write_warmup_requests(os.path.join(extra, WARMUP_FILE), name, list(warmup_sentences),
                              "text" if translation else "prompt", "translate" if translation else "generate")


def _plain(options):
    import dataclasses

    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options)


def write_warmup_requests(path, name, sentences, input_name="text", controls_signature=None):
    """TF Serving's warm-up file: a TFRecord of `PredictionLog`s, replayed when a version loads.

    `serving_default` on the first sentence and on all of them; with `controls_signature` (`"translate"`
    or `"generate"`), also that signature on the first sentence with modest controls, so that its first
    real request does not pay for preparing its graph (a second or more).
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    requests = [("serving_default", {input_name: batch}) for batch in (sentences[:1], sentences)]
    if controls_signature:
        count, length = (("num_hypotheses", "max_length") if controls_signature == "translate" else
                         ("num_return_sequences", "max_new_tokens"))
        requests.append((controls_signature, {input_name: sentences[:1], "beam_size": 2, count: 1, length: 8,
                                              "length_penalty": 0.6, "temperature": 0.0, "top_k": 0, "top_p": 1.0,
                                              "seed": 0}))
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
            for key, value in inputs.items():
                dtype = tf.string if isinstance(value, list) else tf.float32 if isinstance(value, float) else tf.int32
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def write_models_config(base_dir, container_base="/models"):
    """Writes `base_dir/models.config`: TF Serving's model_config_list with every model under `base_dir`.

    `container_base` is where `base_dir` is mounted for the server (the official Docker image's `/models`).
    """
    names = sorted(n for n in os.listdir(base_dir)
                   if not n.startswith(".") and os.path.isdir(os.path.join(base_dir, n))
                   and any(v.isdigit() for v in os.listdir(os.path.join(base_dir, n))))
    lines = ["model_config_list {"]
    for name in names:
        lines += ["  config {", f'    name: "{name}"', f'    base_path: "{container_base}/{name}"',
                  '    model_platform: "tensorflow"', "  }"]
    lines.append("}")
    path = os.path.join(base_dir, "models.config")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def export_run(run_dir, name, base_dir="saved_models", checkpoint="best", average=0, check=True,
               check_sentences=16, decoding=None, limits=None):
    """Exports a trained run (translation or language model) as the next version of `base_dir/name` and
    updates models.config.

    Args:
        run_dir: the run directory.
        name: the model's name under `base_dir` (TF Serving's model name).
        checkpoint: "best", "last", "averaged" or a checkpoint path.
        average: int. If > 0, first average the run's last `average` checkpoints and export that.
        check: bool. Check servability (ops, TF1 loader, parity on validation sentences or fixed prompts)
            before the version appears; a failed check leaves no version.
        check_sentences: int. Validation sentences used by the check (and four as warm-up requests).
        decoding: optional `DecodingOptions` for `serving_default` (default: the run's).
        limits: optional `ServingLimits`: the most one request may ask (checked in the graph).
    Returns:
        The path of the new version.
    """
    from tflm.export.check import DEFAULT_SENTENCES
    from tflm.tasks import language_modeling, translation
    from tflm.tasks.runs import task_name

    task = task_name(run_dir)
    if average:
        (language_modeling if task == "language_modeling" else translation).average_run_checkpoints(run_dir, average)
        checkpoint = "averaged"
    if task == "language_modeling":
        exportable = language_modeling.Generator.from_run_dir(run_dir, checkpoint, decoding=decoding)
        sentences = list(language_modeling.SAMPLE_PROMPTS)
    else:
        exportable = translation.Translator.from_run_dir(run_dir, checkpoint, decoding=decoding)
        try:
            config = translation.load_run_config(run_dir)
            sentences = translation.read_split(config.data, "valid", max_pairs=check_sentences).source
        except (FileNotFoundError, ValueError) as error:
            logger.warning("No validation sentences for the export check (%s); using built-in ones.", error)
            sentences = list(DEFAULT_SENTENCES)
        sentences = sentences + [""]  # an empty input must give an empty output
    path = export_translator(exportable, base_dir, name, run_dir=run_dir, checkpoint=str(checkpoint),
                             warmup_sentences=sentences[:4], check_sentences=sentences if check else None,
                             limits=limits)
    write_models_config(base_dir)
    return path
