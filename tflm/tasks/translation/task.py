"""The translation task: a `Task` whose runs train a `Seq2Seq` model on parallel text and are scored with
sacreBLEU (BLEU, chrF)."""

import dataclasses
import inspect
import logging
import time

from tflm.metrics.translation import corpus_scores
from tflm.models import get_model_class
from tflm.tasks import register_task
from tflm.tasks.base import Evaluation, Task
from tflm.tasks.runs import model_dtype, model_params
from tflm.tasks.translation.config import TranslationConfig
from tflm.tasks.translation.data import load_vocabularies, prepare_data, prepare_vocabularies, read_split
from tflm.tasks.translation.translator import SampleTranslations, Translator

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


@register_task
class TranslationTask(Task):
    """Translation: `tflm train` (default task), `tflm evaluate` (BLEU, chrF), `tflm translate`, export."""

    name = "translation"
    config_class = TranslationConfig
    command = "translate"
    final_metrics = ("bleu", "chrf")

    def prepare_data(self, config, run_dir):
        return prepare_data(config, run_dir)

    def prepare_vocabulary(self, config, run_dir):
        train = read_split(config.data, "train", max_pairs=config.data.max_train_pairs)
        source, target = prepare_vocabularies(config.vocabulary, run_dir, train)
        return (f"{source.kind} vocabulary of {source.vocabulary_size} pieces" if source is target else
                f"{source.kind} vocabularies of {source.vocabulary_size} and {target.vocabulary_size} pieces")

    def load_tokenizers(self, run_dir):
        tokenizers = load_vocabularies(run_dir)
        if tokenizers is None:
            raise FileNotFoundError(f"{run_dir}/vocab: no vocabulary files; was this run trained?")
        return tokenizers

    def build_model(self, config, tokenizers):
        return build_model(config, *tokenizers)

    def make_predictor(self, config, model, tokenizers, decoding=None):
        return Translator(model, *tokenizers, decoding=decoding or config.decoding,
                          max_source_length=config.data.max_source_length)

    def samples(self, config, model, data):
        return SampleTranslations.from_corpus(model, data, config, config.training.samples)

    def export_inputs(self, config, count=16):
        try:
            sentences = read_split(config.data, "valid", max_pairs=count).source
        except (FileNotFoundError, ValueError) as error:
            logger.warning("No validation sentences for the export check (%s); using built-in ones.", error)
            sentences = super().export_inputs(config, count)
        return sentences + [""]  # an empty input must give an empty output

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None):
        """Translates a split and scores it with sacreBLEU; `.hyp` holds the translations, one per line, and
        the file names say the decoding (greedy, beam4, sample)."""
        translator = self.load_predictor(run_dir, checkpoint, decoding=decoding, config=config)
        corpus = read_split(config.data, split, max_pairs=max_examples)
        translator.translate(corpus.source[: translator.decoding.batch_size])  # trace the graph before timing
        started = time.monotonic()
        hypotheses = translator.translate(corpus.source)
        seconds = time.monotonic() - started
        scores = corpus_scores(hypotheses, corpus.target)
        scores.update({
            "split": split,
            "checkpoint": checkpoint,
            "decode_seconds": round(seconds, 2),
            "sentences_per_second": round(len(hypotheses) / max(seconds, 1e-9), 1),
            "decoding": dataclasses.asdict(translator.decoding),
        })
        options = translator.decoding
        strategy = {"greedy": "greedy", "beam": f"beam{options.beam_size}", "sample": "sample"}[options.strategy]
        summary = (f"BLEU {scores['bleu']:.2f}, chrF {scores['chrf']:.2f} ({len(hypotheses)} sentences, "
                   f"{scores['sentences_per_second']:.1f} sentences/s)")
        return Evaluation(scores, setting=f".{strategy}", outputs=hypotheses, summary=summary)
