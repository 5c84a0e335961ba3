"""Text encoders from local keras-hub preset folders and Hugging Face Transformers folders.

    load_hub_encoder(directory)  -> (backbone, HubTokenizer)

`directory` is either
- a keras-hub preset folder (`save_to_preset` wrote it): `config.json` (with "registered_name"),
  `model.weights.h5` (or sharded `model.weights.json`), `tokenizer.json` and `assets/tokenizer/`; or
- a Hugging Face Transformers folder of an encoder keras-hub 0.32 converts (model_type "bert", "distilbert",
  "roberta", "xlm-roberta", "albert"): `config.json` (with "model_type"), `model.safetensors` (or sharded
  `model.safetensors.index.json`) and the tokenizer files the converter reads (BERT/DistilBERT: `vocab.txt`
  and `tokenizer_config.json` with "do_lower_case"; RoBERTa: `vocab.json` and `merges.txt`; ALBERT and
  XLM-RoBERTa: `spiece.model` / `sentencepiece.bpe.model`).
Both are read by keras-hub's own `Backbone.from_preset` / `Tokenizer.from_preset` (which pick the loader by
config.json), so the backbone is exactly keras-hub's. Nothing is downloaded.

A run keeps its own copy (`save_hub_encoder(backbone, tokenizer, RUN/vocab/preset)`): the backbone's
keras-hub config.json, the tokenizer (tokenizer.json, assets/tokenizer/) and, optionally, the weights, so the
run does not depend on the original folder staying there; the trained weights are in the run's checkpoints.

The encoder contract tflm's models use (`encoder_inputs`, `pooled_output`): inputs `{"token_ids",
"segment_ids", "padding_mask"}` (int32 `(batch, length)`), output a pooled `(batch, hidden)` vector: the
backbone's `pooled_output` where it has one (BERT, ALBERT), else its `[CLS]` (first) position.
"""

import json
import os

from tflm.text.hub_tokenizer import HubTokenizer

__all__ = ["HubPresetError", "HubTokenizer", "load_hub_encoder", "save_hub_encoder", "encoder_inputs",
           "pooled_output", "is_hub_folder"]

HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
KERAS_WEIGHTS = ("model.weights.h5", "model.weights.json")
# model_type -> the tokenizer files keras-hub's converter reads (any one of each tuple)
HF_TOKENIZER_FILES = {
    "bert": (("vocab.txt",), ("tokenizer_config.json",)),
    "distilbert": (("vocab.txt",), ("tokenizer_config.json",)),
    "roberta": (("vocab.json",), ("merges.txt",)),
    "xlm-roberta": (("sentencepiece.bpe.model",),),
    "albert": (("spiece.model",),),
}
FIX = ("Give a keras-hub preset folder (written by save_to_preset) or a Hugging Face folder of a BERT-family "
       "encoder: config.json, model.safetensors and its tokenizer files (BERT: vocab.txt, tokenizer_config.json).")


class HubPresetError(ValueError):
    """A folder is not a local encoder keras-hub can load; the message names the folder, what was found and
    the fix."""


def _found(directory):
    names = sorted(os.listdir(directory))
    return ", ".join(names) if names else "an empty folder"


def _read_config(directory):
    path = os.path.join(directory, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except json.JSONDecodeError as error:
        raise HubPresetError(f"{path}: not valid JSON ({error}). {FIX}") from None
    if not isinstance(config, dict):
        raise HubPresetError(f"{path}: a JSON {type(config).__name__}, not an object. {FIX}")
    return config


def is_hub_folder(directory):
    """Whether `directory` looks like a keras-hub preset or Hugging Face folder (a config.json with
    "registered_name" or "model_type"); it may still fail to load (`load_hub_encoder` says why)."""
    if not os.path.isfile(os.path.join(directory, "config.json")):
        return False
    try:
        config = _read_config(directory)
    except HubPresetError:
        return False
    return "registered_name" in config or "model_type" in config


def _check_folder(directory):
    """The folder's config.json, after checking the folder has one that keras-hub can tell the format of."""
    if not os.path.isdir(directory):
        raise HubPresetError(f"{directory}: no such folder. {FIX}")
    if not os.path.isfile(os.path.join(directory, "config.json")):
        raise HubPresetError(f"{directory}: no config.json (found {_found(directory)}). {FIX}")
    config = _read_config(directory)
    if "registered_name" not in config and "model_type" not in config:
        raise HubPresetError(f"{directory}/config.json has neither \"registered_name\" (keras-hub) nor "
                             f"\"model_type\" (Hugging Face); keys: {sorted(config)[:8]}. {FIX}")
    return config


def _check_files(directory, config, load_weights):
    """Checks the weights and tokenizer files keras-hub will read are there."""
    if "registered_name" in config:
        if load_weights and not any(os.path.exists(os.path.join(directory, name)) for name in KERAS_WEIGHTS):
            raise HubPresetError(f"{directory}: a keras-hub preset without weights (no {' or '.join(KERAS_WEIGHTS)};"
                                 f" found {_found(directory)}). Save the backbone with backbone.save_to_preset.")
        if not os.path.exists(os.path.join(directory, "tokenizer.json")):
            raise HubPresetError(f"{directory}: a keras-hub preset without tokenizer.json (found "
                                 f"{_found(directory)}). Save the tokenizer too: tokenizer.save_to_preset(folder).")
        return
    if load_weights and not any(os.path.exists(os.path.join(directory, name)) for name in HF_WEIGHTS):
        other = [name for name in os.listdir(directory) if name.endswith((".bin", ".h5", ".msgpack", ".ckpt.index"))]
        hint = f" ({', '.join(sorted(other))} is not read: convert it to safetensors)" if other else ""
        raise HubPresetError(f"{directory}: no model.safetensors (nor model.safetensors.index.json){hint}; found "
                             f"{_found(directory)}. Save the model with save_pretrained(folder, "
                             "safe_serialization=True).")
    for choices in HF_TOKENIZER_FILES.get(config["model_type"], ()):
        if not any(os.path.exists(os.path.join(directory, name)) for name in choices):
            raise HubPresetError(f"{directory}: a {config['model_type']} folder without {' or '.join(choices)} "
                                 f"(found {_found(directory)}), which keras-hub reads for its tokenizer. Save the "
                                 "tokenizer into the folder too (tokenizer.save_pretrained(folder)).")
    if config["model_type"] in ("bert", "distilbert"):  # keras-hub's converter reads do_lower_case, with no default
        with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as f:
            if "do_lower_case" not in json.load(f):
                raise HubPresetError(f"{directory}/tokenizer_config.json has no \"do_lower_case\", which keras-hub "
                                     "reads to build the tokenizer. Add \"do_lower_case\": true (uncased models) "
                                     "or false (cased).")


def _keras_hub_version():
    import keras_hub

    return keras_hub.__version__


def _encoder_backbone_classes():
    """The keras-hub backbone classes that keras-hub itself pairs with a `TextClassifier` (its text encoders)."""
    import keras_hub
    from keras_hub.src.utils.preset_utils import list_subclasses

    return {task.backbone_cls for task in list_subclasses(keras_hub.models.TextClassifier)
            if getattr(task, "backbone_cls", None) is not None}


def _check_encoder(directory, backbone_cls):
    if backbone_cls in _encoder_backbone_classes():
        return
    import keras_hub
    from keras_hub.src.utils.preset_utils import list_subclasses

    causal = any(getattr(task, "backbone_cls", None) is backbone_cls
                 for task in list_subclasses(keras_hub.models.CausalLM))
    what = "a decoder (keras-hub pairs it with a CausalLM)" if causal else "not a text encoder keras-hub " \
        "pairs with a TextClassifier"
    raise HubPresetError(f"{directory}: keras-hub loads it as {backbone_cls.__name__}, {what}; tflm needs a "
                         "BERT-family encoder (BERT, DistilBERT, RoBERTa, XLM-RoBERTa, ALBERT, DeBERTa-v3...).")


def load_hub_encoder(directory, load_weights=True):
    """Loads a local keras-hub or Hugging Face encoder folder with keras-hub.

    Args:
        directory: the folder (see the module docstring for what it holds).
        load_weights: False builds the backbone with its initial weights (the run restores its checkpoint).
    Returns:
        `(backbone, tokenizer)`: the `keras_hub.models.Backbone` (as `Backbone.from_preset(directory)` gives
        it) and the folder's tokenizer as a `HubTokenizer`.
    Raises:
        HubPresetError: the folder is missing, is neither format, is a model family keras-hub cannot convert
            or not an encoder, or lacks a file keras-hub reads; the message says which and the fix.
    """
    import keras_hub
    from keras_hub.src.utils.preset_utils import get_preset_loader

    directory = os.path.abspath(os.path.expanduser(str(directory)))
    config = _check_folder(directory)
    try:
        backbone_cls = get_preset_loader(directory).check_backbone_class()
    except (ValueError, TypeError, KeyError) as error:  # a model_type with no converter, an unknown class
        raise HubPresetError(f"{directory}/config.json: keras-hub {_keras_hub_version()} cannot load it "
                             f"({type(error).__name__}: {_first_line(error)}). {FIX}") from None
    _check_encoder(directory, backbone_cls)
    _check_files(directory, config, load_weights)
    try:
        backbone = keras_hub.models.Backbone.from_preset(directory, load_weights=load_weights)
    except (ImportError, OSError, KeyError, ValueError, TypeError) as error:
        raise HubPresetError(f"{directory}: keras-hub could not build the {backbone_cls.__name__} "
                             f"({type(error).__name__}: {_first_line(error)}); found {_found(directory)}. "
                             "Check config.json and the weights file match.") from None
    try:
        tokenizer = keras_hub.models.Tokenizer.from_preset(directory)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise HubPresetError(f"{directory}: keras-hub could not load the tokenizer ({type(error).__name__}: "
                             f"{_first_line(error)}); found {_found(directory)}. Save the model's tokenizer "
                             "files into the folder.") from None
    if getattr(tokenizer, "vocabulary_size", lambda: 0)() > backbone.vocabulary_size:
        raise HubPresetError(f"{directory}: the tokenizer has {tokenizer.vocabulary_size()} pieces but the "
                             f"backbone only {backbone.vocabulary_size} embeddings; the files are of different "
                             "models.")
    return backbone, HubTokenizer(tokenizer)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def save_hub_encoder(backbone, tokenizer, directory, weights=False):
    """Writes a keras-hub preset folder that `load_hub_encoder(directory, load_weights=weights)` reads back:
    the backbone's config.json and metadata.json, the tokenizer (tokenizer.json, assets/tokenizer/) and, with
    `weights`, model.weights.h5. A run keeps it as `RUN/vocab/preset/`.

    Args:
        backbone: a keras-hub Backbone.
        tokenizer: a `HubTokenizer` (or a keras-hub tokenizer).
        directory: the folder to write (made if missing).
        weights: also save the backbone's weights (its size on disk: ~440 MB for BERT base).
    Returns:
        `directory`.
    """
    import keras

    hub_tokenizer = tokenizer.hub if isinstance(tokenizer, HubTokenizer) else tokenizer
    os.makedirs(directory, exist_ok=True)
    if weights:
        backbone.save_to_preset(directory)
    else:  # what keras-hub's preset saver writes, less the weights
        config = keras.saving.serialize_keras_object(backbone)
        for key in ("compile_config", "build_config"):
            config.pop(key, None)
        with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=4)
        metadata = {"keras_version": keras.version(), "keras_hub_version": _keras_hub_version(),
                    "parameter_count": backbone.count_params()}
        with open(os.path.join(directory, "metadata.json"), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=4)
    hub_tokenizer.save_to_preset(directory)
    return directory


def encoder_inputs(backbone, token_ids, segment_ids, padding_mask):
    """The backbone's input dict from tflm's three encoder inputs: `segment_ids` is dropped for a backbone
    that takes none (DistilBERT, RoBERTa, DeBERTa-v3); ids are cast to int32.

    Args:
        backbone: a keras-hub text Backbone.
        token_ids, segment_ids, padding_mask: int `(batch, length)`.
    Returns:
        A dict keyed by the backbone's input names.
    """
    import keras

    given = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
    names = list(backbone.input) if isinstance(backbone.input, dict) else ["token_ids", "padding_mask"]
    unknown = [name for name in names if name not in given]
    if unknown:
        raise ValueError(f"{type(backbone).__name__} takes inputs {names}; tflm gives token_ids, segment_ids "
                         f"and padding_mask, not {unknown}.")
    return {name: keras.ops.cast(given[name], "int32") for name in names}


def pooled_output(backbone, outputs):
    """The pooled `(batch, hidden)` vector of a backbone's outputs: its "pooled_output" where it has one
    (BERT, ALBERT), else the first (`[CLS]`) position of its sequence output.

    Args:
        backbone: the keras-hub Backbone (for its error message).
        outputs: what `backbone(inputs)` returned: a dict or a `(batch, length, hidden)` tensor.
    Returns:
        A float `(batch, hidden)` tensor.
    """
    if isinstance(outputs, dict):
        if "pooled_output" in outputs:
            return outputs["pooled_output"]
        if "sequence_output" not in outputs:
            raise ValueError(f"{type(backbone).__name__} gives {sorted(outputs)}, neither pooled_output nor "
                             "sequence_output.")
        outputs = outputs["sequence_output"]
    return outputs[:, 0, :]
