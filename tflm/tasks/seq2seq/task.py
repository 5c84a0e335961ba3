"""`Seq2SeqTask`: what the encoder-decoder tasks (translation, summarization) do alike, written once.

A subclass supplies only what differs:

    class TranslationTask(Seq2SeqTask):
        name, config_class, command = "translation", TranslationConfig, "translate"
        predictor_class = Translator             # make_predictor builds it
        rows = "sentences"                       # what a split's rows are (logs, `<rows>_per_second`)
        samples_tag, samples_header = "sample_translations", "| source | reference | translation |"

        def prepare_data(self, config, run_dir): # -> TaskData (seq2seq.data.seq2seq_task_data)
        def read_split(self, data_config, split, max_pairs=None):  # -> ParallelCorpus
        def score(self, outputs, references):    # -> {"bleu": ..., "chrf": ...}
        def score_summary(self, scores):         # -> "BLEU 30.12, chrF 55.01"

The rest is here: the (source, target) tokenizers of `run_dir/vocab`, the model of `config.model`, the
predictor, sample outputs after each epoch (`SampleOutputs`), the export's check inputs (validation sources,
and an empty one) and the timed evaluation: decode a split (the graph traced on a first batch, untimed),
time it, score it.
"""

import dataclasses
import inspect
import logging
import time

from tflm.models import get_model_class
from tflm.tasks.base import Evaluation, Task
from tflm.tasks.sections import model_dtype, model_params
from tflm.tasks.seq2seq.data import load_vocabularies
from tflm.tasks.seq2seq.samples import SampleOutputs

logger = logging.getLogger("tflm")


def build_model(config, source_tokenizer, target_tokenizer):
    """The model of `config.model`, sized for the tokenizers' vocabularies, built."""
    cls = get_model_class(config.model.type)
    accepted = inspect.signature(cls.__init__).parameters
    params = model_params(config.model, accepted, ("self", "kwargs", "source_vocabulary_size",
                                                   "target_vocabulary_size"))
    if "share_embeddings" in accepted:
        params.setdefault("share_embeddings", source_tokenizer is target_tokenizer)
    dtype = model_dtype(config.training.mixed_precision)
    model = cls(source_tokenizer.vocabulary_size, target_tokenizer.vocabulary_size, dtype=dtype, **params)
    model.build()
    return model


def decode_timed(predictor, sources):
    """`(outputs, seconds)`: `sources` decoded by a `Translator` (or subclass); its graph is traced on a first
    batch before the clock starts."""
    predictor.translate(sources[: predictor.decoding.batch_size])
    started = time.monotonic()
    outputs = predictor.translate(sources)
    return outputs, time.monotonic() - started


def strategy_setting(options):
    """The decoding part of an evaluation's file name: `.greedy`, `.beam4` or `.sample`."""
    return "." + {"greedy": "greedy", "beam": f"beam{options.beam_size}", "sample": "sample"}[options.strategy]


class Seq2SeqTask(Task):
    """The hooks an encoder-decoder task shares (see the module docstring). Its configuration has `data`
    (with `max_source_length`), `model`, `training` and `decoding` sections."""

    predictor_class = None  # a `Translator` subclass (or Translator itself)
    rows = "sentences"  # what the rows of a split are, for the log and `<rows>_per_second`
    seconds_key = "decode_seconds"  # the evaluation's key for the decoding time
    samples_tag, samples_header = "sample_translations", "| source | reference | translation |"
    builtin_export_inputs = ("Hello.", "Where is the station?")  # when the run has no validation split

    # ------------------------------------------------------------------ what a subclass supplies

    def read_split(self, data_config, split, max_pairs=None):
        """One split of the configured data as a `ParallelCorpus`."""
        raise NotImplementedError

    def score(self, outputs, references):
        """The metrics of `outputs` (list of str) against `references`: a JSON-able dict."""
        raise NotImplementedError

    def score_summary(self, scores):
        """The metrics of `score` in a few words, e.g. "BLEU 30.12, chrF 55.01"."""
        raise NotImplementedError

    def setting(self, options, config):
        """The part of an evaluation's file name that says how it decoded (default: `strategy_setting`)."""
        return strategy_setting(options)

    # ------------------------------------------------------------------ the shared hooks

    def load_tokenizers(self, run_dir):
        tokenizers = load_vocabularies(run_dir)
        if tokenizers is None:
            raise FileNotFoundError(f"{run_dir}/vocab: no vocabulary files; was this run trained?")
        return tokenizers

    def build_model(self, config, tokenizers):
        return build_model(config, *tokenizers)

    def make_predictor(self, config, model, tokenizers, decoding=None):
        return self.predictor_class(model, *tokenizers, decoding=decoding or config.decoding,
                                    max_source_length=config.data.max_source_length)

    def samples(self, config, model, data):
        """`config.training.samples` validation pairs decoded after each epoch (`SampleOutputs`)."""
        predictor = self.make_predictor(config, model, (data.source_tokenizer, data.target_tokenizer))
        return SampleOutputs.from_corpus(predictor, data.valid_corpus, config.training.samples,
                                         tag=self.samples_tag, header=self.samples_header)

    def export_inputs(self, config, count=16):
        try:
            sources = self.read_split(config.data, "valid", max_pairs=count).source
        except (FileNotFoundError, ValueError) as error:
            logger.warning("No validation %s for the export check (%s); using built-in ones.", self.rows, error)
            sources = list(self.builtin_export_inputs)
        return sources + [""]  # an empty input must give an empty output

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None):
        """Decodes a split with the run's predictor, times it and scores it (`score`); `.hyp` holds the
        outputs, one per line, and the file names say the decoding (`setting`)."""
        predictor = self.load_predictor(run_dir, checkpoint, decoding=decoding, config=config)
        corpus = self.read_split(config.data, split, max_pairs=max_examples)
        outputs, seconds = decode_timed(predictor, corpus.source)
        options = predictor.decoding
        return self.scored(split, corpus, outputs, seconds, self.setting(options, config),
                           {"checkpoint": checkpoint, "decoding": dataclasses.asdict(options)})

    def scored(self, split, corpus, outputs, seconds, setting, details, note=""):
        """The `Evaluation` of `outputs` for `corpus`: `split`, `details`, the scores, the time and the rows
        per second; `note` is added to the summary line's counts."""
        scores = {"split": split, **details, **self.score(outputs, corpus.target)}
        scores[self.seconds_key] = round(seconds, 2)
        scores[f"{self.rows}_per_second"] = round(len(outputs) / max(seconds, 1e-9), 1)
        summary = (f"{self.score_summary(scores)} ({len(outputs)} {self.rows}{note}, "
                   f"{scores[f'{self.rows}_per_second']:.1f} {self.rows}/s)")
        return Evaluation(scores, setting=setting, outputs=outputs, summary=summary)
