"""The configuration of a translation run (saved as the run's config.json)."""

import dataclasses
from typing import Optional

from tflm import config as config_lib
from tflm.decoding.search import DecodingOptions
from tflm.models import Seq2Seq, get_model_class, preset_params
from tflm.tasks.sections import ModelConfig, TrainingConfig, validate_common
from tflm.text.vocab import VOCABULARY_TYPES


@dataclasses.dataclass
class DataConfig:
    """Where the parallel text comes from and how it is batched.

    Either `dataset` (a registry name, found in `data_dir`, `$TFLM_DATA_DIR`, the cache, or downloaded) or
    explicit `train_files`/`valid_files`/`test_files` (`[source_path, target_path]`).
    """

    dataset: Optional[str] = "tatoeba-es-en-sample"
    data_dir: Optional[str] = None
    source_language: str = "en"
    target_language: str = "es"
    train_files: Optional[list] = None
    valid_files: Optional[list] = None
    test_files: Optional[list] = None
    max_source_length: int = 100  # tokens, EOS included; longer training pairs are dropped (and counted)
    max_target_length: int = 100
    batch_tokens: Optional[int] = 4096  # token budget per batch (per step, over all replicas)
    batch_size: Optional[int] = None  # or a fixed number of sentences per batch
    max_train_pairs: Optional[int] = None  # use only the first N training pairs (quick runs)


@dataclasses.dataclass
class VocabularyConfig:
    type: str = "unigram"  # "unigram" or "bpe" (SentencePiece), or "wordpiece"
    size: int = 8000
    joint: bool = True  # one vocabulary for both languages (needed to share embeddings)


DecodingConfig = DecodingOptions  # the decoding section of a run's configuration


@dataclasses.dataclass
class TranslationConfig:
    task: str = "translation"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    vocabulary: VocabularyConfig = dataclasses.field(default_factory=VocabularyConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    decoding: DecodingOptions = dataclasses.field(default_factory=DecodingOptions)

    def validate(self):
        if self.task != "translation":
            raise config_lib.ConfigError(f"task={self.task!r}: this is a translation configuration.")
        if self.vocabulary.type not in VOCABULARY_TYPES:
            raise config_lib.ConfigError(
                f"vocabulary.type={self.vocabulary.type!r} must be one of {', '.join(VOCABULARY_TYPES)}."
            )
        if (self.data.batch_tokens is None) == (self.data.batch_size is None):
            raise config_lib.ConfigError(
                "Set exactly one of data.batch_tokens and data.batch_size (the other to null)."
            )
        if self.data.dataset is None and not self.data.train_files:
            raise config_lib.ConfigError("Set data.dataset (a registered corpus) or data.train_files.")
        if not issubclass(get_model_class(self.model.type), Seq2Seq):
            raise config_lib.ConfigError(f"model.type={self.model.type!r} is not a translation model; use "
                                         "transformer or lstm.")
        preset_params(self.model.type, self.model.preset)
        validate_common(self)
        self.decoding.validate()
        return self
