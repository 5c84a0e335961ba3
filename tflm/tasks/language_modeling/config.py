"""The configuration of a language-modelling run (saved as the run's config.json)."""

import dataclasses
from typing import Optional

from tflm import config as config_lib
from tflm.decoding.search import DecodingOptions
from tflm.models import LanguageModel, get_model_class
from tflm.tasks.sections import ModelConfig, TrainingConfig, validate_common
from tflm.text.vocab import VOCABULARY_TYPES


@dataclasses.dataclass
class LMDataConfig:
    dataset: Optional[str] = "shakespeare"  # a registered corpus with {train,valid,test}.txt
    data_dir: Optional[str] = None
    train_file: Optional[str] = None  # or explicit files
    valid_file: Optional[str] = None
    test_file: Optional[str] = None
    sequence_length: int = 256  # tokens per training window (or segment, for Transformer-XL)
    stride: Optional[int] = None  # between training windows (default: sequence_length, no overlap)
    random_offsets: bool = True  # shift each epoch's windows (or segments) by a random offset: new cuts each epoch
    segments_per_chunk: Optional[int] = None  # Transformer-XL: shuffled chunks of this many segments (None: streams)
    batch_size: int = 32
    eval_stride: Optional[int] = None  # evaluation windows (default sequence_length // 2: context for every token)
    max_train_tokens: Optional[int] = None  # use only the first N training tokens (quick runs)
    max_valid_tokens: Optional[int] = 100_000  # validation loss after each epoch on at most this many tokens


@dataclasses.dataclass
class LMVocabularyConfig:
    type: str = "character"  # "character", "byte_bpe", "unigram", "bpe" or "wordpiece"
    size: int = 8000  # ignored for "character"


def generation_defaults():
    """Language models sample by default (top-k 40, 200 new tokens)."""
    return DecodingOptions(strategy="sample", top_k=40, max_length=200, max_length_a=0.0, batch_size=16)


@dataclasses.dataclass
class LanguageModelConfig:
    task: str = "language_modeling"
    data: LMDataConfig = dataclasses.field(default_factory=LMDataConfig)
    vocabulary: LMVocabularyConfig = dataclasses.field(default_factory=LMVocabularyConfig)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="gpt"))
    training: TrainingConfig = dataclasses.field(default_factory=lambda: TrainingConfig(label_smoothing=0.0))
    decoding: DecodingOptions = dataclasses.field(default_factory=generation_defaults)

    def validate(self):
        if self.task != "language_modeling":
            raise config_lib.ConfigError(f"task={self.task!r}: this is a language-modelling configuration.")
        if self.vocabulary.type not in VOCABULARY_TYPES:
            raise config_lib.ConfigError(
                f"vocabulary.type={self.vocabulary.type!r} must be one of {', '.join(VOCABULARY_TYPES)}.")
        if self.data.dataset is None and not self.data.train_file:
            raise config_lib.ConfigError("Set data.dataset (a registered corpus) or data.train_file.")
        if not issubclass(get_model_class(self.model.type), LanguageModel):
            raise config_lib.ConfigError(f"model.type={self.model.type!r} is not a language model; use gpt or "
                                         "transformer_xl.")
        validate_common(self)
        self.decoding.validate()
        return self
