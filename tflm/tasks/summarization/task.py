"""The summarization task: a `Task` whose runs train an encoder-decoder (optionally with copy attention and
a coverage loss) on documents and their summaries, decode with beam search, repeated-trigram blocking and
length limits, and are scored with ROUGE-1/2/L (F1, stemmed, bootstrap confidence intervals) next to the
lead and first-words baselines."""

import dataclasses
import logging
import time

from tflm.metrics.rouge import baseline_summaries, corpus_rouge
from tflm.tasks import register_task
from tflm.tasks.base import Evaluation
from tflm.tasks.summarization.config import SummarizationConfig
from tflm.tasks.summarization.data import prepare_data, read_split
from tflm.tasks.summarization.summarizer import Summarizer
from tflm.tasks.translation.data import prepare_vocabularies
from tflm.tasks.translation.task import TranslationTask
from tflm.tasks.translation.translator import SampleTranslations

logger = logging.getLogger("tflm")


def decoding_setting(options, configured):
    """The part of an evaluation's file name that says how it decoded: `.beam4` (the strategy), then each
    constraint that differs from the run's configuration, e.g. `.beam4.ngram0.lp1.0.min3.max24`."""
    setting = "." + {"greedy": "greedy", "beam": f"beam{options.beam_size}", "sample": "sample"}[options.strategy]
    for field, short in (("no_repeat_ngram_size", "ngram"), ("length_penalty", "lp"), ("min_length", "min"),
                         ("max_length", "max")):
        if getattr(options, field) != getattr(configured, field):
            setting += f".{short}{getattr(options, field)}"
    return setting


@register_task
class SummarizationTask(TranslationTask):
    """Summarization: `tflm train --task summarization`, `tflm evaluate` (ROUGE; `--baseline lead-1` or
    `first-10` scores a baseline on the same split by the same code), `tflm summarize`, export."""

    name = "summarization"
    config_class = SummarizationConfig
    command = "summarize"
    evaluation_options = ("baseline",)
    final_metrics = ("rouge1", "rouge2", "rougeL")

    def prepare_data(self, config, run_dir):
        return prepare_data(config, run_dir)

    def prepare_vocabulary(self, config, run_dir):
        train = read_split(config.data, "train", max_pairs=config.data.max_train_pairs)
        source, _ = prepare_vocabularies(config.vocabulary, run_dir, train)
        return f"{source.kind} vocabulary of {source.vocabulary_size} pieces"

    def make_predictor(self, config, model, tokenizers, decoding=None):
        return Summarizer(model, *tokenizers, decoding=decoding or config.decoding,
                          max_source_length=config.data.max_source_length)

    def samples(self, config, model, data):
        return SampleTranslations.from_corpus(model, data, config, config.training.samples,
                                              predictor_class=Summarizer, tag="sample_summaries",
                                              header="| document | reference | summary |")

    def export_inputs(self, config, count=16):
        try:
            documents = read_split(config.data, "valid", max_pairs=count).source
        except (FileNotFoundError, ValueError) as error:
            logger.warning("No validation documents for the export check (%s); using built-in ones.", error)
            documents = ["GNU Hello prints a friendly greeting. It serves as an example of GNU coding standards.",
                         "This package contains the development files of the library."]
        return documents + [""]  # an empty input must give an empty output

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None, baseline=None):
        """Summarizes a split (or, with `baseline`, takes its lead sentences or first words) and scores it with
        ROUGE; `.hyp` holds the summaries, one per line, and the file names say the decoding or baseline."""
        corpus = read_split(config.data, split, max_pairs=max_examples)
        scores = {"split": split}
        if baseline:
            started = time.monotonic()
            summaries = baseline_summaries(corpus.source, baseline)
            seconds = time.monotonic() - started
            setting, scores["baseline"] = f".{baseline}", baseline
        else:
            summarizer = self.load_predictor(run_dir, checkpoint, decoding=decoding, config=config)
            summarizer.summarize(corpus.source[: summarizer.decoding.batch_size])  # trace before timing
            started = time.monotonic()
            summaries = summarizer.summarize(corpus.source)
            seconds = time.monotonic() - started
            options = summarizer.decoding
            setting = decoding_setting(options, config.decoding)
            scores.update(checkpoint=checkpoint, decoding=dataclasses.asdict(options))
        scores.update(corpus_rouge(summaries, corpus.target))
        scores.update(seconds=round(seconds, 2), documents_per_second=round(len(summaries) / max(seconds, 1e-9), 1),
                      mean_summary_words=round(sum(len(s.split()) for s in summaries) / max(len(summaries), 1), 2))
        summary = (f"ROUGE-1 {scores['rouge1']:.2f}, ROUGE-2 {scores['rouge2']:.2f}, ROUGE-L {scores['rougeL']:.2f} "
                   f"({len(summaries)} documents{', ' + baseline if baseline else ''}, "
                   f"{scores['documents_per_second']:.1f} documents/s)")
        return Evaluation(scores, setting=setting, outputs=summaries, summary=summary)
