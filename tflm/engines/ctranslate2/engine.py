"""What a CTranslate2 engine of tflm is: a CTranslate2 export (`tflm.engines.ctranslate2.convert_run`, `tflm
export --format ctranslate2`) decoding strings in, strings out, tokenized by the run's own tokenizers (tflm's
classes, from the files saved next to the model), with the run's decoding settings, and answering the
SavedModel's serving signatures with the SavedModel's checks. `Engine` is what `CTranslate2Translator`
(`tflm.engines.ctranslate2.translator`) and `CTranslate2Generator` (`...generator`) share.

    translator = CTranslate2Translator("saved_models/ct2/1", compute_type="int8")
    translator.translate(["I love you."])                  # ['Te quiero.']
    translator.translate_n_best(["I love you."])           # [[('Te quiero.', -1.23), ...]]
    generator = CTranslate2Generator("saved_models/gpt/1")
    generator.generate(["ROMEO:"])                          # [['\\nBut, soft! ...']]
    translator.run("translate", {"text": ..., "beam_size": 4, ...})   # a signature, as tflm serve runs it

`load_engine(path)` picks the class from the export's `tflm_ctranslate2.json`; `convert_run_cached(run_dir,
checkpoint)` converts a run once into `RUN/ctranslate2/<checkpoint>/` (what `tflm translate --engine
ctranslate2` decodes with).

Defaults come from the export's metadata: its `decoding` (`DecodingOptions`; exports without it use the
defaults of the task: `DecodingOptions()`, or `generation_defaults()` for a language model),
`max_source_length`, and the `limits` a request may ask (`ServingLimits`). The models run on the CPU with
`compute_type` (CTranslate2's: default, auto, int8, int8_float32, int16, float32, bfloat16, ...), one
translation at a time (`inter_threads=1`; the models are thread-safe, concurrent calls queue) over
`intra_threads` threads (default: every CPU).

How the engine decodes (tflm's decoding options as CTranslate2's, lengths, scores): `tflm.engines.ctranslate2.search`.
"""

import os
import threading

import numpy as np
import tensorflow as tf

from tflm.engines.ctranslate2.metadata import decoding_from_metadata, read_metadata
from tflm.export.limits import ServingLimits, checked, signature_checks
from tflm.text.tokenizers import load_tokenizer

COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")


def _ctranslate2():
    try:
        import ctranslate2
    except ImportError as error:
        raise ImportError("The CTranslate2 engine needs the ctranslate2 package: pip install 'tflm[ctranslate2]'."
                          ) from error
    return ctranslate2


class Engine:
    """What the translator and the generator share: the export, its tokenizers, the CTranslate2 model, the
    serving signatures and their checks."""

    ctranslate2_class = None

    def __init__(self, path, compute_type="default", decoding=None, device="cpu", intra_threads=None,
                 inter_threads=1, exact_scores=True, limits=None):
        ctranslate2 = _ctranslate2()
        self.path = os.path.abspath(path)
        self.metadata = read_metadata(path)
        found = self.metadata.get("ctranslate2_class")
        if found != self.ctranslate2_class:
            raise ValueError(f"{path} is a CTranslate2 {found} export, not a {self.ctranslate2_class}; use "
                             "tflm.engines.ctranslate2.load_engine(path).")
        self.task = self.metadata.get("task")
        self.decoding = (decoding or decoding_from_metadata(self.metadata)).validate()
        self.limits = limits or ServingLimits.from_dict(self.metadata.get("limits") or {})
        self.exact_scores = exact_scores
        self.compute_type = compute_type
        self.intra_threads = (os.cpu_count() or 1) if intra_threads is None else int(intra_threads)
        if self.decoding.strategy == "sample" and hasattr(ctranslate2, "set_random_seed"):
            ctranslate2.set_random_seed(int(self.decoding.seed) % (1 << 32))  # read by the workers' first draw
        model_class = getattr(ctranslate2, self.ctranslate2_class)
        self.model = model_class(self.path, device=device, compute_type=compute_type, inter_threads=inter_threads,
                                 intra_threads=self.intra_threads)
        self._signatures = None
        self._checkers = {}
        self._lock = threading.Lock()

    def _tokenizer(self, role):
        return load_tokenizer(os.path.join(self.path, self.metadata["tokenizer_files"][role]))

    @staticmethod
    def _token_ids(tokenizer, texts):
        if not len(texts):
            return []
        return tokenizer.tokenize(tf.constant(list(texts), dtype=tf.string)).to_list()

    @staticmethod
    def _texts(tokenizer, rows):
        """Token id lists -> str (tflm's detokenization: up to EOS, without PAD and BOS)."""
        if not rows:
            return []
        text = tokenizer.detokenize(tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1))
        return [t.decode("utf-8") for t in np.asarray(text)]

    def _rescore(self, search, want_scores):
        return self.exact_scores and (want_scores or search.gnmt)

    # ------------------------------------------------------------------ serving

    def signatures(self):
        """The serving signatures (`tflm.tasks.Signature`s whose `function` takes NumPy inputs), the same names,
        inputs and outputs as the SavedModel export's, `serving_default` first."""
        if self._signatures is None:
            self._signatures = {signature.name: signature for signature in self._make_signatures()}
        return list(self._signatures.values())

    def signature(self, name):
        self.signatures()
        name = name or "serving_default"
        if name not in self._signatures:
            raise KeyError(f"Serving signature name: \"{name}\" not found in signature def; available: "
                           f"{sorted(self._signatures)}")
        return self._signatures[name]

    def input_specs(self, signature_name=None):
        """name -> `tf.TensorSpec` of a signature's inputs."""
        return dict(self.signature(signature_name).inputs)

    def output_specs(self, signature_name=None):
        return dict(self._outputs[self.signature(signature_name).name])

    def signature_defs(self):
        """name -> `SignatureDef` proto (for the metadata endpoints), as a SavedModel's."""
        from tensorflow.core.protobuf import meta_graph_pb2

        definitions = {}
        for signature in self.signatures():
            definition = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
            for kind, specs in (("inputs", signature.inputs), ("outputs", self._outputs[signature.name])):
                for index, (key, spec) in enumerate(specs.items()):
                    info = getattr(definition, kind)[key]
                    info.name = (f"{signature.name}_{key}:0" if kind == "inputs"
                                 else f"ctranslate2_{signature.name}:{index}")
                    info.dtype = spec.dtype.as_datatype_enum
                    info.tensor_shape.CopyFrom(spec.shape.as_proto())
            definitions[signature.name] = definition
        return definitions

    def check(self, signature_name, inputs):
        """The SavedModel's own in-graph checks of a request (`tflm.export.limits`: its rows, its decoding
        controls, its prompts' length in tokens), in a `tf.function`: a `tf.errors.InvalidArgumentError`
        with the export's message ("beam_size = 0 is out of range: allowed 1 to 16 (max_beam_size, set at
        export)") for a request outside them."""
        signature = self.signature(signature_name)
        if not (signature.rows or signature.length or signature.token_limited):
            return
        with self._lock:
            checker = self._checkers.get(signature.name)
            if checker is None:
                checker = self._checkers[signature.name] = self._checker(signature)
        checker(*[tf.constant(inputs[name], dtype=spec.dtype) for name, spec in signature.inputs.items()])

    def _checker(self, signature):
        limits, names = self.limits, list(signature.inputs)

        def checks(*args):
            found = signature_checks(signature, dict(zip(names, args)), limits, self._count_tokens)
            return checked({"ok": tf.constant(True)}, found)

        return tf.function(checks, input_signature=list(signature.inputs.values()))

    def run(self, signature_name, inputs):
        """Runs a serving signature on NumPy inputs (name -> array, strings as bytes or str); returns name ->
        NumPy array, as the SavedModel's signature does. A request outside the export's limits raises the
        checks' `tf.errors.InvalidArgumentError` (tflm serve answers INVALID_ARGUMENT)."""
        signature = self.signature(signature_name)
        missing = sorted(set(signature.inputs) - set(inputs))
        if missing:
            raise ValueError(f"missing input(s) {missing}; the signature needs {sorted(signature.inputs)}")
        self.check(signature.name, inputs)
        return signature.function(**{name: inputs[name] for name in signature.inputs})

    def warm_up(self):
        """Decodes a short input through every decoding signature once (as a SavedModel's warm-up requests
        do); returns how many requests ran."""
        from tflm.tasks.predictor import WARMUP_CONTROLS

        count = 0
        for signature in self.signatures():
            if signature.name == "serving_default" or signature.warmup:
                values = {key: WARMUP_CONTROLS[key] for key in signature.inputs if key in WARMUP_CONTROLS}
                self.run(signature.name, {signature.rows: np.array([b"Hello."], dtype=object), **values})
                count += 1
        return count

    def _count_tokens(self, text):
        raise NotImplementedError

    def _make_signatures(self):
        raise NotImplementedError
