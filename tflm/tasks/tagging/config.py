"""The configuration of a tagging run (a label per word)."""

import dataclasses
import os
from typing import Optional

from tflm import config as config_lib
from tflm.tasks.pretrained import InitConfig, validate_init
from tflm.tasks.sections import DataConfig, ModelConfig, TrainingConfig
from tflm.training.optimizers import OPTIMIZERS

SCHEMES = ("bio", "bioes", "tokens")
DERIVED = ("punctuation",)
VOCABULARY_TYPES = ("wordpiece", "unigram", "bpe", "character", "byte_bpe")
TAGGER_PARAMS = ("dropout", "embedding_dim")  # model.params the tagger takes; the others go to the encoder


@dataclasses.dataclass
class TaggingDataConfig(DataConfig):
    """Where the tagged words are.

    Your own CoNLL files (`train_file`, `valid_file`, `test_file`: a word per line, whitespace-separated columns,
    a blank line between sentences; `word_column` and `label_column` say which columns, negative from the end),
    or a corpus derived by tflm: `derive: punctuation` with `dataset` a registered text corpus (`tatoeba-es-en`'s
    `language` side, `wikitext-2-raw`, ...) gives the words lower-cased and without punctuation, each labelled
    with its case and the punctuation after it (`tflm.data.punctuation`), in the source's own splits.

    `scheme`: "bio" or "bioes" (entities: seqeval's entity-level precision/recall/F1) or "tokens" (every word's
    label is scored on its own; the default of a derived corpus).
    """

    dataset: Optional[str] = None
    derive: Optional[str] = None
    language: str = "en"
    train_file: Optional[str] = None
    valid_file: Optional[str] = None
    test_file: Optional[str] = None
    word_column: int = 0
    label_column: int = -1
    scheme: Optional[str] = None  # default: "tokens" for a derived corpus, else "bio"
    max_length: int = 128  # pieces of a sentence the model reads, [CLS] and [SEP] included (words after: untagged)
    batch_size: Optional[int] = 32

    @property
    def label_scheme(self):
        return self.scheme or ("tokens" if self.derive else "bio")


@dataclasses.dataclass
class TaggingVocabularyConfig:
    type: str = "wordpiece"
    size: Optional[int] = 8000


@dataclasses.dataclass
class TaggingConfig:
    task: str = "tagging"
    data: TaggingDataConfig = dataclasses.field(default_factory=TaggingDataConfig)
    vocabulary: TaggingVocabularyConfig = dataclasses.field(default_factory=TaggingVocabularyConfig)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="bert", preset="small"))
    training: TrainingConfig = dataclasses.field(default_factory=lambda: TrainingConfig(
        epochs=3, learning_rate=1e-4, schedule="linear", warmup_steps=100, label_smoothing=0.0, samples=0,
        log_every_steps=100))
    init: InitConfig = dataclasses.field(default_factory=InitConfig)

    def validate(self):
        if self.task != "tagging":
            raise config_lib.ConfigError(f"task={self.task!r}: this is a tagging configuration.")
        data = self.data
        if data.derive is not None and data.derive not in DERIVED:
            raise config_lib.ConfigError(f"data.derive={data.derive!r}: tflm derives {', '.join(DERIVED)} "
                                         "(or leave it out and give CoNLL files).")
        if data.derive and not data.dataset:
            raise config_lib.ConfigError("data.derive=punctuation needs data.dataset, the text corpus to derive it "
                                         "from (e.g. tatoeba-es-en or wikitext-2-raw).")
        if not data.derive and not data.train_file:
            raise config_lib.ConfigError("Set data.train_file (CoNLL: a word and its label per line), or "
                                         "data.derive=punctuation with data.dataset.")
        for split in ("train", "valid", "test"):
            path = getattr(data, f"{split}_file")
            if path and data.derive:
                raise config_lib.ConfigError(f"data.{split}_file and data.derive both set: a run reads your files or "
                                             "a derived corpus.")
        if data.label_scheme not in SCHEMES:
            raise config_lib.ConfigError(f"data.scheme={data.scheme!r} must be one of {', '.join(SCHEMES)}.")
        if data.max_length < 3:
            raise config_lib.ConfigError(f"data.max_length={data.max_length} must leave room for [CLS], a word "
                                         "and [SEP] (at least 3).")
        if self.vocabulary.type not in VOCABULARY_TYPES:
            raise config_lib.ConfigError(f"vocabulary.type={self.vocabulary.type!r} must be one of "
                                         f"{', '.join(VOCABULARY_TYPES)}.")
        for field, path in (("from_run", self.init.from_run), ("from_preset", self.init.from_preset)):
            if path and not os.path.isdir(path):
                raise config_lib.ConfigError(f"init.{field}={path!r}: no such folder.")
        validate_init(self)
        from tflm.models.classifier import EncoderNotFoundError, resolve_encoder

        try:
            encoder = resolve_encoder(self.model.type)[0]
        except EncoderNotFoundError as error:
            raise config_lib.ConfigError(str(error).replace("classification encoder", "tagging encoder")) from None
        if getattr(encoder, "pools", False):
            raise config_lib.ConfigError(f"model.type={self.model.type!r} gives one vector per text; a tagger needs a "
                                         "state per token: use bert, gpt, bilstm, bigru or transformer.")
        if self.training.optimizer not in OPTIMIZERS:
            raise config_lib.ConfigError(f"training.optimizer={self.training.optimizer!r} must be one of "
                                         f"{', '.join(OPTIMIZERS)}.")
        config_lib.parse_duration(self.training.time_budget)
        return self
