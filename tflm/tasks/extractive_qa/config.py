"""The configuration of an extractive question-answering run (SQuAD v1.1 / v2.0)."""

import dataclasses
from typing import Optional

from tflm import config as config_lib
from tflm.tasks.pretrained import InitConfig, validate_init
from tflm.tasks.sections import DataConfig, ModelConfig, TrainingConfig
from tflm.training.optimizers import OPTIMIZERS

VOCABULARY_TYPES = ("wordpiece", "unigram", "bpe", "byte_bpe")


@dataclasses.dataclass
class QADataConfig(DataConfig):
    """SQuAD-format JSON files (v1.1, or v2.0 with unanswerable questions), and how questions and contexts are
    packed: `[CLS] question [SEP] window [SEP]` in at most `max_length` pieces, a long context read in windows
    `doc_stride` pieces apart (every piece of it is in a window), the question cut to `max_question_length`.
    An answer is at most `max_answer_length` pieces. `no_answer` (default: whether the training set has
    unanswerable questions, as SQuAD v2.0) lets the model answer "" when the [CLS] score beats the best span's
    by more than `null_threshold`."""

    train_file: Optional[str] = None
    valid_file: Optional[str] = None
    test_file: Optional[str] = None
    max_length: int = 384
    doc_stride: int = 128
    max_question_length: int = 64
    max_answer_length: int = 30
    no_answer: Optional[bool] = None
    null_threshold: float = 0.0
    batch_size: Optional[int] = 16


@dataclasses.dataclass
class QAVocabularyConfig:
    type: str = "wordpiece"
    size: Optional[int] = 8000


@dataclasses.dataclass
class QAConfig:
    task: str = "extractive_qa"
    data: QADataConfig = dataclasses.field(default_factory=QADataConfig)
    vocabulary: QAVocabularyConfig = dataclasses.field(default_factory=QAVocabularyConfig)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="bert", preset="small"))
    training: TrainingConfig = dataclasses.field(default_factory=lambda: TrainingConfig(
        epochs=2, learning_rate=1e-4, schedule="linear", warmup_steps=100, label_smoothing=0.0, samples=0,
        log_every_steps=100))
    init: InitConfig = dataclasses.field(default_factory=InitConfig)

    def validate(self):
        if self.task != "extractive_qa":
            raise config_lib.ConfigError(f"task={self.task!r}: this is an extractive_qa configuration.")
        data = self.data
        if not data.train_file:
            raise config_lib.ConfigError("Set data.train_file (and data.valid_file): SQuAD-format JSON "
                                         "(v1.1 or v2.0).")
        if data.max_question_length < 1 or data.max_length < data.max_question_length + 4:
            raise config_lib.ConfigError(
                f"data.max_length={data.max_length} must hold [CLS], the question (max_question_length="
                f"{data.max_question_length}), [SEP], at least one context piece and [SEP].")
        window = data.max_length - data.max_question_length - 3
        if not 1 <= data.doc_stride <= window:
            raise config_lib.ConfigError(f"data.doc_stride={data.doc_stride} must be between 1 and the window "
                                         f"({window} context pieces: max_length - max_question_length - 3), so "
                                         "that consecutive windows overlap or touch.")
        if data.max_answer_length < 1:
            raise config_lib.ConfigError(f"data.max_answer_length={data.max_answer_length} must be at least 1.")
        if self.vocabulary.type not in VOCABULARY_TYPES:
            raise config_lib.ConfigError(f"vocabulary.type={self.vocabulary.type!r} must be one of "
                                         f"{', '.join(VOCABULARY_TYPES)}.")
        if self.model.type not in ("bert", "gpt"):
            raise config_lib.ConfigError(f"model.type={self.model.type!r}: extractive QA reads the question and the "
                                         "context together: use bert (or gpt, or --init-from / --init-from-preset).")
        validate_init(self)
        if self.training.optimizer not in OPTIMIZERS:
            raise config_lib.ConfigError(f"training.optimizer={self.training.optimizer!r} must be one of "
                                         f"{', '.join(OPTIMIZERS)}.")
        config_lib.parse_duration(self.training.time_budget)
        return self
