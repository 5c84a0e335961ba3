"""A CTranslate2 engine for tflm: a CTranslate2 export (`tflm.export.ctranslate2.convert_run`, `tflm export
--format ctranslate2`) decoding strings in, strings out, tokenized by the run's own tokenizers (tflm's
classes, from the files saved next to the model), with the run's decoding settings.

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

How tflm's decoding maps to CTranslate2's:

- every strategy: PAD and BOS are never produced (`suppress_sequences`), EOS may come first
  (`min_decoding_length` is tflm's `min_length`, default 0), n-gram blocking is `no_repeat_ngram_size`;
- greedy: `beam_size=1`; the pieces are tflm's (tested);
- beam: `beam_size`, `num_hypotheses` and `length_penalty`. tflm's penalty is GNMT's: a finished hypothesis
  scores `log_prob / ((5 + length) / 6) ** alpha`; CTranslate2 divides by `length ** alpha` (the same
  exponent, a slightly different ranking of lengths). With `alpha > 0` the engine takes the `beam_size`
  hypotheses CTranslate2's search finishes (it collects that many anyway) and ranks them by tflm's GNMT
  score, returning the best `num_hypotheses`; which hypotheses finish is CTranslate2's search (it stops after
  `beam_size` finished ones, tflm once no alive one can win), so beam outputs can differ from tflm's;
- sample: `sampling_topk` (0: the whole vocabulary, as tflm's `top_k=0`), `sampling_topp`,
  `sampling_temperature`, `num_hypotheses` independent samples (CTranslate2 returns them best first, tflm in
  drawing order). The seed: CTranslate2 seeds each worker thread's generator at its first draw from
  `ctranslate2.set_random_seed`, which the engine calls with the run's `seed` before it loads the model: a
  process decoding the same inputs in the same order draws the same samples, but a request's `seed` cannot
  reseed it, and the samples are not tflm's (another generator);
- lengths (translation): a row's limit is tflm's, EOS included: `min(max_length, ceil(max_length_a *
  (pieces + 1)) + max_length_b)` (float32 arithmetic, as the graph's), at least 1, and at most a learned
  position table's size. CTranslate2's `max_decoding_length` is one per batch: a batch decodes to its
  largest row limit, and the rows whose outputs overran their own limit are decoded again with it, grouped
  by limit (exact for greedy decoding, which only cuts; a beam row that fits its limit keeps its result);
- lengths (language models): as tflm's `Generator`, a batch's positions are its longest prompt's plus
  `max_new_tokens` (at most the model's `max_sequence_length`), so a shorter prompt of the batch may get more
  new tokens; the prompt is forced through the decoding loop (`include_prompt_in_result=True`), so
  `min_length` and n-gram blocking count its tokens, as tflm's do; an empty prompt starts from a line break
  (character and byte-level vocabularies) or EOS;
- sources are truncated to `max_source_length - 1` pieces by the engine (CTranslate2 appends EOS); an empty
  (or blank) source line gives empty outputs with score 0 and is not decoded, as tflm's `Translator` does.

Scores are tflm's: the sum of the output's log-probabilities under the model, EOS included (the prompt
excluded), divided by GNMT's `((5 + length) / 6) ** alpha` for beam search with `alpha > 0` (length counting
EOS, and a language model's prompt tokens after its first, as tflm's). CTranslate2's own search scores
renormalize the softmax over the tokens it suppresses (PAD, BOS, and EOS before `min_length`), so with
`exact_scores=True` (the default) the returned hypotheses are scored again with CTranslate2's `score_batch`
(one teacher-forced pass, the full softmax: tflm's scores exactly); `exact_scores=False` skips that pass and
returns the search's scores (slightly higher where tokens were suppressed, converted to GNMT's normalization
for beam search). `translate` and `generate`, which return no scores, skip it unless the GNMT ranking of a
beam needs it.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import threading
import uuid

import numpy as np
import tensorflow as tf

from tflm.decoding.common import NEGATIVE, row_max_lengths
from tflm.decoding.search import DecodingOptions
from tflm.export.ctranslate2 import METADATA_FILE
from tflm.export.limits import ServingLimits, checked, signature_checks
from tflm.tasks.predictor import Signature, control_inputs, text_input, token_signatures
from tflm.text.tokenizers import BOS_ID, EOS_ID, PAD_ID, load_tokenizer

COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")
CACHE_DIR = "ctranslate2"  # inside a run: RUN/ctranslate2/<checkpoint>/
_ASCII_SPACE = " \t\n\v\f\r"  # what tf.strings.strip strips: a line of only these is empty


def _ctranslate2():
    try:
        import ctranslate2
    except ImportError as error:
        raise ImportError("The CTranslate2 engine needs the ctranslate2 package: pip install 'tflm[ctranslate2]'."
                          ) from error
    return ctranslate2


# ----------------------------------------------------------------------------------------- metadata


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


def load_engine(path, **options):
    """The engine of a CTranslate2 export: a `CTranslate2Generator` for a language model, else a
    `CTranslate2Translator` (`options` as theirs)."""
    cls = CTranslate2Generator if read_metadata(path).get("ctranslate2_class") == "Generator" else \
        CTranslate2Translator
    return cls(path, **options)


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
    from tflm.export.ctranslate2 import convert_run
    from tflm.tasks.runs import resolve_run_checkpoint
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


# ----------------------------------------------------------------------------------------- search settings


@dataclasses.dataclass(frozen=True)
class Search:
    """One decoding's strategy and settings, as CTranslate2 is asked for them.

    `count` is the number of outputs per input: 1 for greedy, `num_hypotheses` for beam and sampling."""

    strategy: str = "greedy"
    beam_size: int = 1
    count: int = 1
    length_penalty: float = 0.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_length: int = 0
    no_repeat_ngram_size: int = 0

    @classmethod
    def from_options(cls, options):
        """The search of `DecodingOptions`."""
        constraints = dict(min_length=int(options.min_length), no_repeat_ngram_size=int(options.no_repeat_ngram_size))
        if options.strategy == "sample":
            return cls("sample", 1, int(options.num_hypotheses), 0.0, float(options.temperature), int(options.top_k),
                       float(options.top_p), **constraints)
        if options.strategy == "beam":
            return cls("beam", int(options.beam_size), min(int(options.num_hypotheses), int(options.beam_size)),
                       float(options.length_penalty), **constraints)
        return cls(**constraints)

    @classmethod
    def from_controls(cls, options, beam_size, num_hypotheses, length_penalty, temperature, top_k, top_p,
                      min_length=None, no_repeat_ngram_size=None, **_ignored):
        """The search a request's controls ask for, as the exported graph chooses it (`search_by_controls`):
        sampling when `temperature > 0`, else beam search when `beam_size > 1` (the best
        `min(num_hypotheses, beam_size)`), else greedy; the constraints the request does not give are the
        options'."""
        constraints = dict(
            min_length=int(options.min_length if min_length is None else min_length),
            no_repeat_ngram_size=int(options.no_repeat_ngram_size if no_repeat_ngram_size is None
                                     else no_repeat_ngram_size))
        beam_size, count = max(int(beam_size), 1), max(int(num_hypotheses), 1)
        if float(temperature) > 0:
            return cls("sample", 1, count, 0.0, float(temperature), int(top_k), float(top_p), **constraints)
        if beam_size > 1:
            return cls("beam", beam_size, min(count, beam_size), float(length_penalty), **constraints)
        return cls(**constraints)

    @property
    def gnmt(self):
        """Whether hypotheses are ranked by tflm's GNMT-normalized score (beam search with a penalty)."""
        return self.strategy == "beam" and self.length_penalty > 0

    def ctranslate2_options(self, suppress):
        options = dict(return_end_token=True, return_scores=True, suppress_sequences=suppress,
                       no_repeat_ngram_size=self.no_repeat_ngram_size if self.no_repeat_ngram_size >= 2 else 0)
        if self.strategy == "sample":
            options.update(beam_size=1, num_hypotheses=self.count, length_penalty=0.0, sampling_topk=self.top_k,
                           sampling_topp=self.top_p, sampling_temperature=self.temperature)
        elif self.strategy == "beam":
            # with a penalty CTranslate2 finishes beam_size hypotheses anyway: all of them are ranked by GNMT's
            options.update(beam_size=self.beam_size, num_hypotheses=self.beam_size if self.gnmt else self.count,
                           length_penalty=self.length_penalty)
        else:
            options.update(beam_size=1, num_hypotheses=1, length_penalty=0.0)
        return options


def row_limits(source_lengths, max_length, max_length_a=0.0, max_length_b=None):
    """tflm's per-row output limits (EOS included), a list of int: `tflm.decoding.row_max_lengths`, the
    graph's own function; `source_lengths` count EOS."""
    return [int(v) for v in np.asarray(row_max_lengths(tf.constant(list(source_lengths), tf.int32), max_length,
                                                       max_length_a, max_length_b))]


def gnmt_penalty(length, alpha):
    """GNMT's length penalty `((5 + length) / 6) ** alpha` (tflm's `tflm.decoding.length_penalty`)."""
    return ((5.0 + length) / 6.0) ** alpha


@dataclasses.dataclass
class _Hypothesis:
    ids: list  # output token ids, EOS included when it ended
    score: float  # CTranslate2's search score
    length: int  # tflm's length of it for the length penalty


# ----------------------------------------------------------------------------------------- engines


class _Engine:
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
                             "load_engine(path).")
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

    def _rank(self, rows, search, raw_scores=None):
        """Each row's hypotheses as (ids, tflm score), best first, `search.count` of them. `raw_scores`: the
        hypotheses' exact log-probabilities (rescored), else derived from CTranslate2's search scores."""
        ranked = []
        for index, hypotheses in enumerate(rows):
            scored = []
            for position, hypothesis in enumerate(hypotheses):
                if raw_scores is not None:
                    raw = raw_scores[index][position]
                elif search.strategy == "beam" and search.length_penalty > 0:
                    raw = hypothesis.score * max(hypothesis.length, 1) ** search.length_penalty
                else:
                    raw = hypothesis.score
                score = raw / gnmt_penalty(hypothesis.length, search.length_penalty) if search.gnmt else raw
                scored.append((hypothesis.ids, float(score)))
            if search.strategy == "beam":
                scored.sort(key=lambda item: -item[1])
            scored = scored[: search.count]
            scored += [([], float(NEGATIVE))] * (search.count - len(scored))
            ranked.append(scored)
        return ranked

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


def _output_specs(**shapes):
    """name -> `tf.TensorSpec` from name -> (dtype, rank): every dimension unknown, as the SavedModel's."""
    return {name: tf.TensorSpec([None] * rank, dtype) for name, (dtype, rank) in shapes.items()}


def _common_outputs():
    """The outputs of `tokenize`, `detokenize` and `score`, as tflm's predictors declare them."""
    return {"tokenize": _output_specs(token_ids=(tf.int32, 2), lengths=(tf.int32, 1)),
            "detokenize": _output_specs(text=(tf.string, 1)),
            "score": _output_specs(log_prob=(tf.float32, 1), tokens=(tf.int32, 1))}


def _strings(values):
    """A NumPy array (or list) of bytes/str -> list of str."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values, dtype=object).reshape(-1)]


def _string_array(rows, width=None):
    texts = np.empty((len(rows),) if width is None else (len(rows), width), dtype=object)
    for index, row in enumerate(rows):
        texts[index] = row.encode("utf-8") if width is None else [t.encode("utf-8") for t in row]
    return texts


def _token_signatures(tokenizer, detokenizer):
    """The SavedModel's `tokenize` and `detokenize` signatures (`tflm.tasks.predictor.token_signatures`, the
    same functions), answering with NumPy arrays as the engine's other signatures do."""

    def on_numpy(signature):
        def function(**inputs):
            tensors = {name: tf.constant(inputs[name], spec.dtype) for name, spec in signature.inputs.items()}
            return {key: np.asarray(value) for key, value in signature.function(**tensors).items()}

        return dataclasses.replace(signature, function=function)

    return [on_numpy(signature) for signature in token_signatures(tokenizer, detokenizer)]


def _scalar(value):
    return np.asarray(value).item()


class CTranslate2Translator(_Engine):
    """A CTranslate2 encoder-decoder export (translation or summarization): sentences in, sentences out.

    Args:
        path: the export's directory (the one holding `tflm_ctranslate2.json`).
        compute_type: CTranslate2's compute type ("default": the saved weights' type; "int8" quantizes a
            float32 model as it loads; see `COMPUTE_TYPES`).
        decoding: `DecodingOptions` (default: the run's, recorded in the export).
        device: "cpu" (or "cuda", "auto" where CTranslate2 has them).
        intra_threads: CPU threads per translation (default: `os.cpu_count()`).
        inter_threads: translations running at once (default 1; concurrent calls queue).
        exact_scores: bool. Score the outputs again with the full softmax (tflm's scores exactly); see the
            module docstring.
        limits: `ServingLimits` for `run` (default: the export's).
    Example:
    >>> translator = CTranslate2Translator("saved_models/ct2/1")
    >>> translator.translate(["I love you."])
    ['Te quiero.']
    """

    ctranslate2_class = "Translator"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        self.source_tokenizer = self._tokenizer("source")
        self.target_tokenizer = self._tokenizer("target")
        self.max_source_length = int(self.metadata.get("max_source_length") or 256)
        self.max_target_positions = self.metadata.get("max_target_positions")
        target_pieces = self._target_pieces = self.target_tokenizer.pieces
        self._source_pieces = self.source_tokenizer.pieces
        self._target_ids = {piece: index for index, piece in enumerate(target_pieces)}
        self._suppress = [[target_pieces[PAD_ID]], [target_pieces[BOS_ID]]]
        self._eos = target_pieces[EOS_ID]

    # ------------------------------------------------------------------ decoding

    def _cap(self, max_length=None):
        """The largest output of any row: the options' `max_length`, a request's, and a learned table's size."""
        cap = int(self.decoding.max_length)
        if max_length is not None:
            cap = min(cap, int(max_length))
        if self.max_target_positions:
            cap = min(cap, int(self.max_target_positions))
        return max(cap, 1)

    def decode(self, sentences, search=None, max_length=None, want_scores=True):
        """Decodes a list of str as one batch; returns, per sentence, `search.count` `(text, score)` pairs,
        best first (an empty or blank sentence: empty texts with score 0).

        Args:
            sentences: list of str.
            search: a `Search` (default: the engine's decoding options').
            max_length: optional int, a request's limit on output tokens (EOS included), below the options'.
            want_scores: bool. Whether the scores are used (else an exact rescoring may be skipped).
        """
        search = search or Search.from_options(self.decoding)
        answers = [[("", 0.0)] * search.count for _ in sentences]
        rows = [i for i, sentence in enumerate(sentences) if sentence.strip(_ASCII_SPACE)]
        if not rows:
            return answers
        source_ids = [ids[: max(self.max_source_length - 1, 0)]
                      for ids in self._token_ids(self.source_tokenizer, [sentences[i] for i in rows])]
        sources = [[self._source_pieces[i] for i in ids] for ids in source_ids]
        options = self.decoding
        limits = row_limits([len(ids) + 1 for ids in source_ids], self._cap(max_length), options.max_length_a,
                            options.max_length_b)
        hypotheses = self._search(sources, limits, search)
        raw = self._exact_scores(sources, hypotheses) if self._rescore(search, want_scores) else None
        ranked = self._rank(hypotheses, search, raw)
        texts = self._texts(self.target_tokenizer, [ids for row in ranked for ids, _ in row])
        for position, index in enumerate(rows):
            row = ranked[position]
            answers[index] = [(texts[position * search.count + k], score) for k, (_, score) in enumerate(row)]
        return answers

    def _search(self, sources, limits, search):
        """CTranslate2's hypotheses of each source within its own length limit (see the module docstring)."""
        results = [None] * len(sources)

        def run(indices, limit):
            options = search.ctranslate2_options(self._suppress)
            decoded = self.model.translate_batch([sources[i] for i in indices], max_decoding_length=limit,
                                                 min_decoding_length=min(search.min_length, limit),
                                                 max_input_length=0, **options)
            for i, result in zip(indices, decoded):
                results[i] = [_Hypothesis([self._target_ids[p] for p in pieces], float(score), len(pieces))
                              for pieces, score in zip(result.hypotheses, result.scores)]

        everything = list(range(len(sources)))
        run(everything, max(limits))
        over = [i for i in everything if any(len(h.ids) > limits[i] for h in results[i])]
        for limit in sorted({limits[i] for i in over}):
            run([i for i in over if limits[i] == limit], limit)
        return results

    def _exact_scores(self, sources, hypotheses):
        """The log-probability of each hypothesis under the model (full softmax, EOS included when it ended)."""
        flat_sources, targets, ended = [], [], []
        for source, row in zip(sources, hypotheses):
            for hypothesis in row:
                ids = hypothesis.ids
                ends = bool(ids) and ids[-1] == EOS_ID
                flat_sources.append(source)
                targets.append([self._target_pieces[i] for i in (ids[:-1] if ends else ids)])
                ended.append(ends)
        scored = self.model.score_batch(flat_sources, targets, max_input_length=0) if targets else []
        flat = [float(sum(r.log_probs if ends else r.log_probs[:-1])) for r, ends in zip(scored, ended)]
        raw, start = [], 0
        for row in hypotheses:
            raw.append(flat[start: start + len(row)])
            start += len(row)
        return raw

    def _batches(self, sentences, batch_size):
        batch_size = batch_size or self.decoding.batch_size
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        for start in range(0, len(order), batch_size):
            yield order[start: start + batch_size]

    def translate(self, sentences, batch_size=None):
        """Translates a list of str (any size, in batches of `batch_size` sentences of similar length,
        default the options' `batch_size`) to a list of str, in order."""
        outputs = [None] * len(sentences)
        for chunk in self._batches(sentences, batch_size):
            for i, hypotheses in zip(chunk, self.decode([sentences[i] for i in chunk], want_scores=False)):
                outputs[i] = hypotheses[0][0]
        return outputs

    def translate_n_best(self, sentences, batch_size=None):
        """Translates a list of str to, per sentence, a list of `(translation, score)`, best first."""
        outputs = [None] * len(sentences)
        for chunk in self._batches(sentences, batch_size):
            for i, hypotheses in zip(chunk, self.decode([sentences[i] for i in chunk])):
                outputs[i] = hypotheses
        return outputs

    summarize = translate

    def predict(self, inputs):
        return self.translate(list(inputs))

    def score(self, sources, targets):
        """The model's log-probability of each target given its source (EOS included), and its token count,
        as tflm's `Translator.score_batch`: `{"log_prob": float32 (batch,), "tokens": int32 (batch,)}`."""
        sources, targets = list(sources), list(targets)
        if not sources:
            return {"log_prob": np.zeros((0,), np.float32), "tokens": np.zeros((0,), np.int32)}
        source_ids = [ids[: max(self.max_source_length - 1, 0)]
                      for ids in self._token_ids(self.source_tokenizer, sources)]
        limit = (int(self.max_target_positions) if self.max_target_positions else 100_000) - 1
        target_ids = [ids[:limit] for ids in self._token_ids(self.target_tokenizer, targets)]
        scored = self.model.score_batch([[self._source_pieces[i] for i in ids] for ids in source_ids],
                                        [[self._target_pieces[i] for i in ids] for ids in target_ids],
                                        max_input_length=0)
        return {"log_prob": np.array([sum(r.log_probs) for r in scored], np.float32),
                "tokens": np.array([len(ids) + 1 for ids in target_ids], np.int32)}

    # ------------------------------------------------------------------ serving

    def _count_tokens(self, text):
        return self.source_tokenizer.tokenize(text).row_lengths()

    def _make_signatures(self):
        summarization = self.task == "summarization"
        if summarization:
            from tflm.tasks.summarization.summarizer import SUMMARY_CONTROLS as controls
        else:
            from tflm.tasks.translation.translator import CONTROLS as controls
        name = "summarize" if summarization else "translate"
        rows = dict(rows="text", row_name="document" if summarization else "sentence")
        self._outputs = {"serving_default": _output_specs(outputs=(tf.string, 1), scores=(tf.float32, 1)),
                         name: _output_specs(outputs=(tf.string, 2), scores=(tf.float32, 2)), **_common_outputs()}
        return [
            Signature("serving_default", self._serving_default, text_input("text"), **rows),
            Signature(name, self._decode_signature, {**text_input("text"), **control_inputs(*controls)},
                      length="max_length", vocabulary_size=self.target_tokenizer.vocabulary_size, warmup=True,
                      **rows),
            *_token_signatures(self.source_tokenizer, self.target_tokenizer),
            Signature("score", lambda source, target: self.score(_strings(source), _strings(target)),
                      {**text_input("source"), **text_input("target")}),
        ]

    def _serving_default(self, text):
        answers = self.decode(_strings(text))
        return {"outputs": _string_array([row[0][0] for row in answers]),
                "scores": np.array([row[0][1] for row in answers], np.float32)}

    def _decode_signature(self, text, max_length, **controls):
        controls = {key: _scalar(value) for key, value in controls.items()}
        search = Search.from_controls(self.decoding, **controls)
        answers = self.decode(_strings(text), search, max_length=_scalar(max_length))
        return {"outputs": _string_array([[t for t, _ in row] for row in answers], search.count),
                "scores": np.array([[s for _, s in row] for row in answers], np.float32).reshape(-1, search.count)}


class CTranslate2Generator(_Engine):
    """A CTranslate2 GPT export: prompts in, continuations out (the arguments are `CTranslate2Translator`'s).

    Example:
    >>> generator = CTranslate2Generator("saved_models/gpt/1", decoding=DecodingOptions(strategy="greedy"))
    >>> generator.generate(["ROMEO:"])
    """

    ctranslate2_class = "Generator"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        self.tokenizer = self._tokenizer("tokenizer")
        self._pieces = self.tokenizer.pieces
        separator = self.metadata.get("separator")
        if separator:
            self.separator = int(separator["id"])
        else:  # an export that predates the field: tflm's Generator's rule
            from tflm.data.language_modeling import keeps_newlines

            self.separator = int(self._token_ids(self.tokenizer, ["\n"])[0][0]) if keeps_newlines(self.tokenizer) \
                else EOS_ID
        self.max_sequence_length = self.metadata.get("max_sequence_length")
        self._suppress = [[self._pieces[PAD_ID]], [self._pieces[BOS_ID]]]

    def decode(self, prompts, search=None, max_new_tokens=None, want_scores=True):
        """Continues a list of prompts as one batch; returns, per prompt, `search.count` `(continuation,
        score)` pairs, best first (`max_new_tokens`: default the options' `max_length`)."""
        search = search or Search.from_options(self.decoding)
        new_tokens = int(self.decoding.max_length if max_new_tokens is None else max_new_tokens)
        starts = [ids or [self.separator] for ids in self._token_ids(self.tokenizer, list(prompts))]
        answers = [[("", 0.0)] * search.count for _ in starts]
        if not starts:
            return answers
        forced = [len(ids) - 1 for ids in starts]
        positions = max(forced) + new_tokens
        if self.max_sequence_length:
            positions = min(positions, int(self.max_sequence_length))
        rows = [i for i in range(len(starts)) if forced[i] < positions]  # the others are all prompt
        if not rows:
            return answers
        options = search.ctranslate2_options(self._suppress)
        decoded = self.model.generate_batch([[self._pieces[t] for t in starts[i]] for i in rows],
                                            max_length=positions, min_length=min(search.min_length, positions),
                                            include_prompt_in_result=True, **options)
        hypotheses = []
        for i, result in zip(rows, decoded):
            prompt = len(starts[i])
            hypotheses.append([_Hypothesis(list(ids[prompt:]), float(score), len(ids) - 1)
                               for ids, score in zip(result.sequences_ids, result.scores)])
        raw = None
        if self._rescore(search, want_scores):
            flat = [[self._pieces[t] for t in starts[i] + h.ids] for i, row in zip(rows, hypotheses) for h in row]
            scored = iter(self.model.score_batch(flat, max_input_length=0))
            raw = [[float(sum(next(scored).log_probs[len(starts[i]) - 1:])) for _ in row]
                   for i, row in zip(rows, hypotheses)]
        ranked = self._rank(hypotheses, search, raw)
        texts = self._texts(self.tokenizer, [ids for row in ranked for ids, _ in row])
        for position, index in enumerate(rows):
            answers[index] = [(texts[position * search.count + k], score)
                              for k, (_, score) in enumerate(ranked[position])]
        return answers

    def generate(self, prompts):
        """Generates for a list of prompts (one batch, as tflm's `Generator.generate`); returns, per prompt,
        the list of continuations (str)."""
        return [[text for text, _ in row] for row in self.decode(list(prompts), want_scores=False)]

    def predict(self, inputs):
        return self.generate(list(inputs))

    def score(self, texts):
        """The model's log-probability of each text (its tokens after the separator) and its token count, as
        tflm's `Generator.score_batch`: `{"log_prob": float32 (batch,), "tokens": int32 (batch,)}`."""
        rows = self._token_ids(self.tokenizer, list(texts))
        log_probs = np.zeros((len(rows),), np.float32)
        scored = [i for i, ids in enumerate(rows) if ids]
        if scored:
            results = self.model.score_batch([[self._pieces[t] for t in [self.separator] + rows[i]] for i in scored],
                                             max_input_length=0)
            for i, result in zip(scored, results):
                log_probs[i] = sum(result.log_probs)
        return {"log_prob": log_probs, "tokens": np.array([len(ids) for ids in rows], np.int32)}

    # ------------------------------------------------------------------ serving

    def _count_tokens(self, text):
        return self.tokenizer.tokenize(text).row_lengths()

    def _make_signatures(self):
        from tflm.tasks.language_modeling.generator import CONTROLS

        prompt = dict(rows="prompt", row_name="prompt", token_limited=("prompt",))
        matrix = _output_specs(outputs=(tf.string, 2), scores=(tf.float32, 2))
        self._outputs = {"serving_default": matrix, "generate": dict(matrix), **_common_outputs()}
        return [
            Signature("serving_default", self._serving_default, text_input("prompt"), **prompt),
            Signature("generate", self._generate_signature, {**text_input("prompt"), **control_inputs(*CONTROLS)},
                      length="max_new_tokens", vocabulary_size=self.tokenizer.vocabulary_size, warmup=True, **prompt),
            *_token_signatures(self.tokenizer, self.tokenizer),
            Signature("score", lambda text: self.score(_strings(text)), text_input("text"), rows="text",
                      row_name="text", token_limited=("text",)),
        ]

    def _outputs_of(self, answers, count):
        return {"outputs": _string_array([[t for t, _ in row] for row in answers], count),
                "scores": np.array([[s for _, s in row] for row in answers], np.float32).reshape(-1, count)}

    def _serving_default(self, prompt):
        search = Search.from_options(self.decoding)
        return self._outputs_of(self.decode(_strings(prompt), search), search.count)

    def _generate_signature(self, prompt, max_new_tokens, **controls):
        controls = {key: _scalar(value) for key, value in controls.items()}
        search = Search.from_controls(self.decoding, **controls)
        return self._outputs_of(self.decode(_strings(prompt), search, max_new_tokens=_scalar(max_new_tokens)),
                                search.count)


__all__ = ["CTranslate2Generator", "CTranslate2Translator", "Search", "convert_run_cached", "decoding_from_metadata",
           "is_ctranslate2_export", "load_engine", "read_metadata", "row_limits"]
