"""A CTranslate2 export's `tflm_ctranslate2.json`: what the engine needs besides CTranslate2's own files (the
task, the tokenizer files, the run's decoding options, the serving limits, the length limits), written last by
`tflm.engines.ctranslate2.convert_run` so that a directory holding it is complete."""

import dataclasses
import json
import os

from tflm.decoding.search import DecodingOptions

METADATA_FILE = "tflm_ctranslate2.json"


def is_ctranslate2_export(path):
    """Whether `path` is a complete CTranslate2 export (its `tflm_ctranslate2.json` is written last)."""
    return os.path.isfile(os.path.join(path, METADATA_FILE))


def read_metadata(path):
    """The export's `tflm_ctranslate2.json`; a `FileNotFoundError` naming what `path` should be."""
    file = os.path.join(path, METADATA_FILE)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{path}: no {METADATA_FILE}; give a CTranslate2 export (tflm export RUN --format "
                                "ctranslate2 writes BASE_DIR/NAME/<version>/).")
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def decoding_from_metadata(metadata):
    """The export's recorded `DecodingOptions`; the task's defaults for an export that predates them."""
    from tflm import config as config_lib

    if metadata.get("ctranslate2_class") == "Generator":
        from tflm.tasks.language_modeling.config import generation_defaults

        default = generation_defaults()
    else:
        default = DecodingOptions()
    values = metadata.get("decoding")
    if not values:
        return default
    known = {field.name for field in dataclasses.fields(DecodingOptions)}
    values = {key: value for key, value in values.items() if key in known and value is not None}
    return config_lib.from_dict(DecodingOptions, values, f"{METADATA_FILE} decoding").validate()
