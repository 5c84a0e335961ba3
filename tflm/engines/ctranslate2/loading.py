"""`load_engine`: the engine of a CTranslate2 export, the class its metadata names."""

from tflm.engines.ctranslate2.generator import CTranslate2Generator
from tflm.engines.ctranslate2.metadata import read_metadata
from tflm.engines.ctranslate2.translator import CTranslate2Translator


def load_engine(path, **options):
    """The engine of a CTranslate2 export: a `CTranslate2Generator` for a language model, else a
    `CTranslate2Translator`.

    Args:
        path: str. The export's directory (holding `tflm_ctranslate2.json`).
        **options: the engines' own (`compute_type`, `decoding`, `intra_threads`, `limits`, ...).
    """
    cls = CTranslate2Generator if read_metadata(path).get("ctranslate2_class") == "Generator" else \
        CTranslate2Translator
    return cls(path, **options)
