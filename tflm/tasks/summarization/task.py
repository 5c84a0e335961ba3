"""The summarization task: a `Seq2SeqTask` whose runs train an encoder-decoder (optionally with copy attention and
a coverage loss) on documents and their summaries, decode with beam search, repeated-trigram blocking and
length limits, and are scored with ROUGE-1/2/L (F1, stemmed, bootstrap confidence intervals) next to the
lead and first-words baselines."""

import time

from tflm.metrics.rouge import baseline_summaries, corpus_rouge
from tflm.tasks import register_task
from tflm.tasks.seq2seq.data import prepare_vocabularies
from tflm.tasks.seq2seq.task import Seq2SeqTask, strategy_setting
from tflm.tasks.summarization.config import SummarizationConfig
from tflm.tasks.summarization.data import prepare_data, read_split
from tflm.tasks.summarization.summarizer import Summarizer


def decoding_setting(options, configured):
    """The part of an evaluation's file name that says how it decoded: `.beam4` (the strategy), then each
    constraint that differs from the run's configuration, e.g. `.beam4.ngram0.lp1.0.min3.max24`."""
    setting = strategy_setting(options)
    for field, short in (("no_repeat_ngram_size", "ngram"), ("length_penalty", "lp"), ("min_length", "min"),
                         ("max_length", "max")):
        if getattr(options, field) != getattr(configured, field):
            setting += f".{short}{getattr(options, field)}"
    return setting


@register_task
class SummarizationTask(Seq2SeqTask):
    """Summarization: `tflm train --task summarization`, `tflm evaluate` (ROUGE; `--baseline lead-1` or
    `first-10` scores a baseline on the same split by the same code), `tflm summarize`, export."""

    name = "summarization"
    config_class = SummarizationConfig
    command = "summarize"
    evaluation_options = ("baseline",)
    final_metrics = ("rouge1", "rouge2", "rougeL")
    predictor_class = Summarizer
    rows, seconds_key = "documents", "seconds"
    samples_tag, samples_header = "sample_summaries", "| document | reference | summary |"
    builtin_export_inputs = (
        "GNU Hello prints a friendly greeting. It serves as an example of GNU coding standards.",
        "This package contains the development files of the library.")

    def prepare_data(self, config, run_dir):
        return prepare_data(config, run_dir)

    def prepare_vocabulary(self, config, run_dir):
        train = read_split(config.data, "train", max_pairs=config.data.max_train_pairs)
        source, _ = prepare_vocabularies(config.vocabulary, run_dir, train)
        return f"{source.kind} vocabulary of {source.vocabulary_size} pieces"

    def read_split(self, data_config, split, max_pairs=None):
        return read_split(data_config, split, max_pairs=max_pairs)

    def score(self, outputs, references):
        return {**corpus_rouge(outputs, references),
                "mean_summary_words": round(sum(len(s.split()) for s in outputs) / max(len(outputs), 1), 2)}

    def score_summary(self, scores):
        return f"ROUGE-1 {scores['rouge1']:.2f}, ROUGE-2 {scores['rouge2']:.2f}, ROUGE-L {scores['rougeL']:.2f}"

    def setting(self, options, config):
        return decoding_setting(options, config.decoding)

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None, baseline=None):
        """Summarizes a split (or, with `baseline`, takes its lead sentences or first words) and scores it with
        ROUGE; `.hyp` holds the summaries, one per line, and the file names say the decoding or baseline."""
        if not baseline:
            return super().evaluate_split(run_dir, config, split, checkpoint, max_examples, decoding)
        corpus = read_split(config.data, split, max_pairs=max_examples)
        started = time.monotonic()
        summaries = baseline_summaries(corpus.source, baseline)
        return self.scored(split, corpus, summaries, time.monotonic() - started, f".{baseline}",
                           {"baseline": baseline}, note=f", {baseline}")
