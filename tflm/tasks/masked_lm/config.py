"""The configuration of a masked-LM pretraining run (BERT-style: masked LM, optionally next-sentence prediction)."""

import dataclasses
from typing import Optional

from tflm import config as config_lib
from tflm.models.bert import BERT_PRESETS, BERT_SIZES
from tflm.tasks.sections import DataConfig, ModelConfig, TrainingConfig
from tflm.training.optimizers import OPTIMIZERS


@dataclasses.dataclass
class MaskedLMDataConfig(DataConfig):
    """Raw documents to pretrain on: a registered corpus (`wikitext-2-raw`, `shakespeare`), files or a folder
    (`train_file`, `valid_file`: a text file or a folder of them), and optionally the unlabelled training texts of
    classification corpora (`extra_datasets`, e.g. ["movie-review-sentiment"]: each text a document)."""

    dataset: Optional[str] = "wikitext-2-raw"
    train_file: Optional[str] = None
    valid_file: Optional[str] = None
    extra_datasets: list = dataclasses.field(default_factory=list)
    sequence_length: int = 128  # tokens of a packed `[CLS] a [SEP] b [SEP]`
    batch_size: Optional[int] = 32
    next_sentence: bool = True  # next-sentence prediction (False: full-sentence segments, as RoBERTa)
    whole_words: bool = False  # mask every piece of a chosen word
    mask_rate: float = 0.15
    max_predictions: int = 20  # masked positions predicted per sequence, at most
    max_valid_sequences: int = 1000


@dataclasses.dataclass
class MaskedLMVocabularyConfig:
    type: str = "wordpiece"  # "wordpiece", "unigram" or "bpe" (with `<mask>` reserved at id 4)
    size: int = 8000


@dataclasses.dataclass
class MaskedLMConfig:
    task: str = "masked_lm"
    data: MaskedLMDataConfig = dataclasses.field(default_factory=MaskedLMDataConfig)
    vocabulary: MaskedLMVocabularyConfig = dataclasses.field(default_factory=MaskedLMVocabularyConfig)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="bert", preset="small"))
    training: TrainingConfig = dataclasses.field(default_factory=lambda: TrainingConfig(
        epochs=None, learning_rate=5e-4, schedule="linear", warmup_steps=500, label_smoothing=0.0, samples=4,
        weight_decay=0.01, max_steps=10000))

    def validate(self):
        if self.task != "masked_lm":
            raise config_lib.ConfigError(f"task={self.task!r}: this is a masked-LM configuration.")
        if self.model.type != "bert":
            raise config_lib.ConfigError(f"model.type={self.model.type!r}: a masked-LM run pretrains a bert encoder.")
        if self.model.preset not in (None, *BERT_PRESETS):
            raise config_lib.ConfigError(f"model.preset={self.model.preset!r} must be one of {', '.join(BERT_PRESETS)}.")
        unknown = sorted(set(self.model.params) - set(BERT_SIZES))
        if unknown:
            raise config_lib.ConfigError(f"model.params has unknown field(s) {', '.join(unknown)}; a bert encoder takes "
                                         f"{', '.join(BERT_SIZES)}.")
        if self.vocabulary.type not in ("wordpiece", "unigram", "bpe"):
            raise config_lib.ConfigError(f"vocabulary.type={self.vocabulary.type!r}: masked-LM pretraining uses "
                                         "wordpiece, unigram or bpe (a vocabulary with a <mask> token).")
        if not 0.0 < self.data.mask_rate < 1.0:
            raise config_lib.ConfigError(f"data.mask_rate={self.data.mask_rate} must be between 0 and 1 (BERT: 0.15).")
        if self.data.sequence_length > self.sizes()["max_sequence_length"]:
            raise config_lib.ConfigError(f"data.sequence_length={self.data.sequence_length} is longer than the "
                                         f"encoder's max_sequence_length={self.sizes()['max_sequence_length']}.")
        if self.data.dataset is None and not self.data.train_file:
            raise config_lib.ConfigError("Set data.dataset (wikitext-2-raw, shakespeare) or data.train_file.")
        if self.training.optimizer not in OPTIMIZERS:
            raise config_lib.ConfigError(f"training.optimizer={self.training.optimizer!r} must be one of "
                                         f"{', '.join(OPTIMIZERS)}.")
        config_lib.parse_duration(self.training.time_budget)
        return self

    def sizes(self):
        """The encoder's sizes: its preset, then `model.params`."""
        return {**BERT_PRESETS["small"], **BERT_PRESETS.get(self.model.preset or "small", {}), **self.model.params}
