"""The translation task: a `Seq2SeqTask` whose runs train a `Seq2Seq` model on parallel text and are scored
with sacreBLEU (BLEU, chrF)."""

from tflm.metrics.translation import corpus_scores
from tflm.tasks import register_task
from tflm.tasks.seq2seq.data import prepare_vocabularies
from tflm.tasks.seq2seq.task import Seq2SeqTask, build_model  # noqa: F401  (build_model: tflm.translation's API)
from tflm.tasks.translation.config import TranslationConfig
from tflm.tasks.translation.data import prepare_data, read_split
from tflm.tasks.translation.translator import Translator


@register_task
class TranslationTask(Seq2SeqTask):
    """Translation: `tflm train` (default task), `tflm evaluate` (BLEU, chrF), `tflm translate`, export."""

    name = "translation"
    config_class = TranslationConfig
    command = "translate"
    final_metrics = ("bleu", "chrf")
    predictor_class = Translator

    def prepare_data(self, config, run_dir):
        return prepare_data(config, run_dir)

    def prepare_vocabulary(self, config, run_dir):
        train = read_split(config.data, "train", max_pairs=config.data.max_train_pairs)
        source, target = prepare_vocabularies(config.vocabulary, run_dir, train)
        return (f"{source.kind} vocabulary of {source.vocabulary_size} pieces" if source is target else
                f"{source.kind} vocabularies of {source.vocabulary_size} and {target.vocabulary_size} pieces")

    def read_split(self, data_config, split, max_pairs=None):
        return read_split(data_config, split, max_pairs=max_pairs)

    def score(self, outputs, references):
        return corpus_scores(outputs, references)

    def score_summary(self, scores):
        return f"BLEU {scores['bleu']:.2f}, chrF {scores['chrf']:.2f}"
