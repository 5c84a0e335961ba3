"""Conversion of tflm runs to CTranslate2 model directories, for fast CPU/GPU inference with
`ctranslate2.Translator` (encoder-decoders) and `ctranslate2.Generator` (GPT language models); the weights
are mapped by `tflm.engines.ctranslate2.specs` (what converts, and how).

Quantization (`int8`, `int8_float32`, `int8_float16`, `int8_bfloat16`, `int16`, `float16`, `bfloat16`,
`float32`) is applied to the weights when saving (`ModelSpec.optimize`); CTranslate2 can also convert at load
time with `compute_type=` (e.g. `ctranslate2.Translator(path, compute_type="int8")` on a float32 model).

To decode as tflm's greedy search does (tested: the same pieces, scores within 1e-4), call
`translate_batch(source_pieces, beam_size=1, min_decoding_length=0, length_penalty=0, return_end_token=True,
return_scores=True, suppress_sequences=[["<pad>"], ["<s>"]], max_decoding_length=N)`: CTranslate2 by default
forbids EOS as the first token (`min_decoding_length=1`) and divides scores by the length (`length_penalty=1`);
tflm never generates PAD or BOS; N is tflm's limit of the row, EOS included (`max_length`, or
`min(max_length, ceil(max_length_a * (source pieces + 1)) + max_length_b)`). With `length_penalty=0` a score is
the sum of the log-probabilities, EOS included, as tflm's. One difference: CTranslate2 renormalizes the softmax
over the tokens it suppresses, tflm scores with the full softmax, so a score under suppression is slightly higher
(`score_batch` on the hypothesis gives tflm's exactly). Sources longer than the run's `max_source_length - 1`
pieces are truncated by tflm, not by CTranslate2 (`max_input_length`, default 1024, counts the EOS). For a GPT:
`ctranslate2.Generator.generate_batch(prompt_pieces, include_prompt_in_result=False, max_length=new tokens,
...)` (same options; a prompt is its pieces, as tflm's `Generator` reads it).

The run's tokenizer files are written next to the model (`source.model` / `target.model`, or
`tokenizer.model` for a language model; the suffix is the tokenizer kind's) so a client can tokenize, and
`tflm_ctranslate2.json` (`tflm.engines.ctranslate2.metadata`) records the source run, checkpoint, model type,
tokenizer files and quantization, and the run's decoding options and serving limits: the engine
(`tflm.engines.ctranslate2.load_engine`) decodes such a directory strings in, strings out, as tflm does
(`tflm translate --engine ctranslate2`, `tflm serve`).

Example:
>>> path = convert_run("runs/quickstart", "ct2/quickstart", quantization="int8")
>>> translator = ctranslate2.Translator(path, device="cpu")
>>> sp = sentencepiece.SentencePieceProcessor(model_file=f"{path}/source.model")
>>> translator.translate_batch([sp.encode("I love you.", out_type=str)], beam_size=1)
"""

import dataclasses
import hashlib
import json
import os
import shutil
import uuid

from tflm.engines.ctranslate2.metadata import METADATA_FILE
from tflm.engines.ctranslate2.specs import model_spec, unsupported
from tflm.text.special_tokens import BOS_ID, EOS_ID, PAD_ID, UNK_ID

QUANTIZATIONS = (None, "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16",
                 "float32")
CACHE_DIR = "ctranslate2"  # inside a run: RUN/ctranslate2/<checkpoint>/


def convert_model(model, tokenizers, output_dir, quantization=None, force=False):
    """Converts a tflm model to a CTranslate2 model directory with its tokenizer files; returns `output_dir`.

    Args:
        model: a built tflm model with its weights.
        tokenizers: `(source, target)` tokenizers of an encoder-decoder, or a language model's tokenizer.
        output_dir: str. Replaced when it exists and `force` is True (else a `FileExistsError`).
        quantization: None (float32 weights) or one of `QUANTIZATIONS`, applied to the saved weights.
        force: bool.
    Returns:
        `output_dir`.
    """
    _check_options(output_dir, quantization, force)
    spec = model_spec(model, tokenizers)
    spec.validate()
    if quantization in ("bfloat16", "int8_bfloat16"):
        _to_bfloat16(spec)
    spec.optimize(quantization=quantization)
    if os.path.exists(output_dir):
        shutil.rmtree(output_dir)
    os.makedirs(output_dir)
    spec.save(output_dir)
    return output_dir


def _check_options(output_dir, quantization, force):
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} must be one of {', '.join(map(str, QUANTIZATIONS))}.")
    if os.path.exists(output_dir) and not force:
        raise FileExistsError(f"{output_dir} exists; pass force=True to replace it.")


def _to_bfloat16(spec):
    """Casts the spec's float32 weights to bfloat16 with ml_dtypes (a dependency of Keras and TensorFlow), since
    CTranslate2's own cast needs PyTorch. Arrays of dtype `bfloat16` serialize as CTranslate2's bfloat16, and
    `optimize` leaves them (bfloat16) or quantizes them (int8_bfloat16)."""
    import ml_dtypes
    from ctranslate2.specs.model_spec import NumpyVariable

    for variable in spec.variables().values():
        if isinstance(variable, NumpyVariable) and not variable.is_scalar() and variable.dtype == "float32":
            variable.array = variable.array.astype(ml_dtypes.bfloat16)


def _save_tokenizers(model, tokenizers, output_dir):
    from tflm.models.language_model import LanguageModel

    if isinstance(model, LanguageModel):
        tokenizer = tokenizers[0] if isinstance(tokenizers, (tuple, list)) else tokenizers
        named = {"tokenizer": tokenizer}
    else:
        named = dict(zip(("source", "target"), tokenizers))
    files = {}
    for name, tokenizer in named.items():
        filename = name + tokenizer.file_suffix
        tokenizer.save(os.path.join(output_dir, filename))
        files[name] = filename
    return files


def convert_run(run_dir, output_dir, checkpoint="best", quantization=None, force=False, decoding=None, limits=None):
    """Converts a trained run's checkpoint to a CTranslate2 model directory; returns its path.

    The directory holds CTranslate2's `model.bin`, `config.json` and vocabularies, the run's tokenizer files
    (`source.model`/`target.model` for translation, `tokenizer.model` for a language model; the suffix is the
    tokenizer kind's) and `tflm_ctranslate2.json` (the source run, checkpoint, model type, tokenizer files,
    quantization and how to load it), written last and atomically: a directory holding it is complete.

    The metadata also records what the engine needs to decode as the run does: the run's
    `decoding` options (`DecodingOptions` fields), the serving `limits` (`ServingLimits`, the defaults unless
    given), the resolved `checkpoint_path`; for an encoder-decoder `max_source_length` and
    `max_target_positions` (a learned position table's size, else null); for a language model
    `max_new_tokens` (the run's `decoding.max_length`), `max_sequence_length` (the model's positions) and
    `separator` (`{"id", "piece"}`: the token an empty prompt starts from, a line break or EOS, as tflm's
    `Generator.encode_prompt`).

    Args:
        run_dir: a run directory, or a `tflm.tasks.Run` already read. A trained tflm run.
        output_dir: str.
        checkpoint: `"best"`, `"last"`, `"averaged"` or a checkpoint path.
        quantization: None or one of `QUANTIZATIONS` (weights quantized at save); a float32 model can also be
            quantized when loaded, with CTranslate2's `compute_type=`.
        force: bool. Replace an existing `output_dir` (else a `FileExistsError`).
        decoding: optional `DecodingOptions` to record (default: the run's configured decoding).
        limits: optional `ServingLimits` to record for serving (default: `ServingLimits()`).
    Raises:
        ValueError: for a model CTranslate2 cannot run (LSTM/GRU encoder-decoders, Transformer-XL, copy
            attention, ...), naming its type and what converts.
    """
    from tflm.export.limits import ServingLimits
    from tflm.models.language_model import LanguageModel
    from tflm.tasks.language_modeling.context import context_length
    from tflm.tasks import Run
    from tflm.training.checkpoints import resolve_checkpoint, resolve_run_checkpoint

    _check_options(output_dir, quantization, force)
    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)  # (config.json read once)
    task, config, run_dir = run.task, run.config, run.run_dir
    model_type = config.model.type
    if model_type in ("lstm", "gru", "transformer_xl"):  # refused before the checkpoint is read
        raise unsupported(model_type, "CTranslate2 has no recurrent encoder-decoders and no Transformer-XL "
                                       "(relative attention with memory)")
    checkpoint_path = resolve_checkpoint(resolve_run_checkpoint(run_dir, checkpoint))
    tokenizers = run.tokenizers
    model = task.load_model(run_dir, checkpoint_path, config, tokenizers)
    convert_model(model, tokenizers, output_dir, quantization=quantization, force=force)
    files = _save_tokenizers(model, tokenizers, output_dir)
    decoding = decoding if decoding is not None else task.decoding(config)
    language_model = isinstance(model, LanguageModel)
    metadata = {
        "source_run": os.path.abspath(run_dir),
        "checkpoint": checkpoint,
        "checkpoint_path": os.path.abspath(checkpoint_path),
        "task": task.name,
        "model_type": model_type,
        "ctranslate2_class": "Generator" if language_model else "Translator",
        "tokenizer_kind": (tokenizers[0] if isinstance(tokenizers, (tuple, list)) else tokenizers).kind,
        "tokenizer_files": files,
        "quantization": quantization,
        "special_tokens": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
        "decoding": dataclasses.asdict(decoding) if decoding is not None else None,
        "limits": (limits or ServingLimits()).within_context(
            context_length(model) if language_model else None).to_dict(),
    }
    predictor = task.make_predictor(config, model, tokenizers, decoding)
    if language_model:
        tokenizer = predictor.tokenizer
        metadata["max_new_tokens"] = int(predictor.decoding.max_length)
        metadata["max_sequence_length"] = context_length(model)  # the context: None where positions do not bound it
        metadata["separator"] = {"id": int(predictor.separator), "piece": tokenizer.pieces[predictor.separator]}
    else:
        metadata["source_eos_added_by_ctranslate2"] = True
        metadata["max_source_length"] = getattr(config.data, "max_source_length", None)
        positions = predictor.max_target_positions()
        metadata["max_target_positions"] = positions if positions < 100_000 else None
    temporary = os.path.join(output_dir, f".{METADATA_FILE}.tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
        f.write("\n")
    os.replace(temporary, os.path.join(output_dir, METADATA_FILE))  # last, whole: the directory is complete
    return output_dir


def _checkpoint_files(prefix):
    directory = os.path.dirname(prefix) or "."
    base = os.path.basename(prefix)
    return [os.path.join(directory, name) for name in os.listdir(directory)
            if name == base + ".index" or name.startswith(base + ".data-")]


def convert_run_cached(run_dir, checkpoint="best"):
    """The CTranslate2 model of a run's checkpoint, converted once into `RUN/ctranslate2/<checkpoint>/` (a
    checkpoint path gets a name from its hash), and again when the checkpoint it resolves to changed (a new
    best one) or its files are newer than the conversion. Returns the directory; a `ValueError` (naming the
    model type) for a model CTranslate2 cannot run."""
    from tflm.training.checkpoints import resolve_run_checkpoint
    from tflm.training.checkpoints import resolve_checkpoint

    checkpoint = checkpoint or "best"
    if checkpoint in ("best", "last", "averaged"):
        name = checkpoint
    else:
        name = "checkpoint-" + hashlib.sha1(os.path.abspath(checkpoint).encode()).hexdigest()[:12]
    cache = os.path.join(run_dir, CACHE_DIR, name)
    metadata_file = os.path.join(cache, METADATA_FILE)
    if os.path.isfile(metadata_file):
        try:
            prefix = os.path.abspath(resolve_checkpoint(resolve_run_checkpoint(run_dir, checkpoint)))
            with open(metadata_file, encoding="utf-8") as f:
                converted = json.load(f)
            newest = max((os.path.getmtime(p) for p in _checkpoint_files(prefix)), default=0.0)
            if converted.get("checkpoint_path") == prefix and newest <= os.path.getmtime(metadata_file):
                return cache
        except (OSError, ValueError):
            pass  # converted again below (a missing checkpoint is reported by the conversion)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    temporary = os.path.join(os.path.dirname(cache), f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        convert_run(run_dir, temporary, checkpoint=checkpoint)
        if os.path.exists(cache):
            shutil.rmtree(cache)
        os.rename(temporary, cache)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
    return cache
