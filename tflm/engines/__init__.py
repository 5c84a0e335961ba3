"""Inference engines beside the SavedModel one (`tflm.export`): a run's model run by another runtime, strings
in and strings out as tflm's predictors, answering their serving signatures (`tflm serve`).

- `tflm.engines.ctranslate2`: CTranslate2 (Transformer encoder-decoders and GPT language models, on CPU or
  GPU, quantized or not).
"""

from tflm.engines.ctranslate2 import (
    CTranslate2Generator,
    CTranslate2Translator,
    convert_run,
    convert_run_cached,
    is_ctranslate2_export,
    load_engine,
)

__all__ = ["CTranslate2Generator", "CTranslate2Translator", "convert_run", "convert_run_cached",
           "is_ctranslate2_export", "load_engine"]
