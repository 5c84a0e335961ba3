"""The CTranslate2 engine: tflm runs converted to CTranslate2 models (`convert_run`, `tflm export --format
ctranslate2`), decoded strings in, strings out as tflm decodes them, and served with the SavedModel's
signatures (`tflm serve`).

    path = convert_run("runs/quickstart", "saved_models/ct2/1", quantization="int8")
    translator = load_engine(path)                          # a CTranslate2Translator
    translator.translate(["I love you."])                  # ['Te quiero.']
    translator.translate_n_best(["I love you."])           # [[('Te quiero.', -1.23), ...]]
    generator = load_engine("saved_models/gpt/1")          # a CTranslate2Generator
    generator.generate(["ROMEO:"])                          # [['\\nBut, soft! ...']]
    translator.run("translate", {"text": ..., "beam_size": 4, ...})   # a signature, as tflm serve runs it

`convert_run_cached(run_dir, checkpoint)` converts a run once into `RUN/ctranslate2/<checkpoint>/` (what
`tflm translate --engine ctranslate2` decodes with).

Modules: `specs` (tflm's weights as CTranslate2's), `convert` (a run to a model directory), `metadata` (the
export's `tflm_ctranslate2.json`), `search` (tflm's decoding as CTranslate2's), `engine` (what the engines
share: the model, signatures, checks), `translator` and `generator` (the engines), `signatures` (their
outputs and NumPy conversions), `loading` (`load_engine`).
"""

from tflm.engines.ctranslate2.convert import CACHE_DIR, QUANTIZATIONS, convert_model, convert_run, convert_run_cached
from tflm.engines.ctranslate2.engine import COMPUTE_TYPES, Engine
from tflm.engines.ctranslate2.generator import CTranslate2Generator
from tflm.engines.ctranslate2.loading import load_engine
from tflm.engines.ctranslate2.metadata import (
    METADATA_FILE,
    decoding_from_metadata,
    is_ctranslate2_export,
    read_metadata,
)
from tflm.engines.ctranslate2.search import Search, row_limits
from tflm.engines.ctranslate2.specs import model_spec, sinusoidal_table
from tflm.engines.ctranslate2.translator import CTranslate2Translator

__all__ = ["CACHE_DIR", "COMPUTE_TYPES", "CTranslate2Generator", "CTranslate2Translator", "Engine", "METADATA_FILE",
           "QUANTIZATIONS", "Search", "convert_model", "convert_run", "convert_run_cached", "decoding_from_metadata",
           "is_ctranslate2_export", "load_engine", "model_spec", "read_metadata", "row_limits", "sinusoidal_table"]
