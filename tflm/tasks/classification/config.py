"""The configuration of a classification run (one text, or a sentence pair, to one label)."""

import dataclasses
from typing import Optional

from tflm import config as config_lib
from tflm.data.classification import FORMATS
from tflm.layers.pretrained_embedding import EMBEDDING_MODES
from tflm.models.classifier import PAIR_MODES, EncoderNotFoundError, encoder_arguments
from tflm.tasks.pretrained import InitConfig, validate_init
from tflm.tasks.sections import DataConfig, ModelConfig, TrainingConfig
from tflm.training.optimizers import OPTIMIZERS

VOCABULARY_TYPES = ("word", "unigram", "bpe", "wordpiece", "character", "byte_bpe")
# model.params the classifier itself takes; the others go to the encoder's constructor
CLASSIFIER_PARAMS = ("embedding_dim", "pooling", "pair_mode", "dropout", "hidden_units")


@dataclasses.dataclass
class ClassificationDataConfig(DataConfig):
    """Where the labelled texts are and how they are read.

    `dataset` is a registered corpus (`tflm data list`: movie-review-sentiment, sms-spam, trec-6,
    tatoeba-paraphrase-en) or None for your own files (`train_file`, `valid_file`, `test_file`: TSV, CSV or JSON
    Lines, see `tflm.data.read_classification`). `text_fields` names the text columns: `["text"]`, or
    `["text_a", "text_b"]` for sentence pairs (the default for a registered sentence-pair corpus).
    """

    dataset: Optional[str] = "trec-6"
    train_file: Optional[str] = None
    valid_file: Optional[str] = None
    test_file: Optional[str] = None
    text_fields: Optional[list] = None  # default ["text"] (["text_a", "text_b"] for a sentence-pair corpus)
    label_field: str = "label"
    max_length: int = 128  # tokens of a text the model reads (longer texts are cut, in training and serving alike)
    batch_size: Optional[int] = 50
    class_weights: bool = False  # weigh each class by its inverse frequency (imbalanced sets, e.g. sms-spam)
    positive_label: Optional[str] = None  # e.g. "spam": evaluation also reports this class's F1


@dataclasses.dataclass
class ClassificationVocabularyConfig:
    type: str = "word"  # "word" (lower-cased words, as GloVe's vocabulary) or a subword kind
    size: Optional[int] = 30000  # the most training words (or pieces) kept
    min_count: int = 1  # "word": words seen fewer times in training are <unk> (unless the vectors have them)


@dataclasses.dataclass
class VectorsConfig:
    """Pretrained word vectors for the embedding table (a "word" vocabulary)."""

    path: Optional[str] = None  # a GloVe/word2vec file (.txt, .gz, .bz2, word2vec .bin) or a registered name
    mode: str = "non_static"  # "static" (frozen), "non_static" (fine-tuned) or "multichannel" (both)
    max_words: Optional[int] = 20000  # words of the vectors file added to the training words (null: all)


@dataclasses.dataclass
class ClassificationConfig:
    task: str = "classification"
    data: ClassificationDataConfig = dataclasses.field(default_factory=ClassificationDataConfig)
    vocabulary: ClassificationVocabularyConfig = dataclasses.field(default_factory=ClassificationVocabularyConfig)
    vectors: VectorsConfig = dataclasses.field(default_factory=VectorsConfig)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="cnn"))
    training: TrainingConfig = dataclasses.field(
        default_factory=lambda: TrainingConfig(epochs=10, label_smoothing=0.0, samples=0, log_every_steps=100))
    init: InitConfig = dataclasses.field(default_factory=InitConfig)

    def validate(self):
        if self.task != "classification":
            raise config_lib.ConfigError(f"task={self.task!r}: this is a classification configuration.")
        data = self.data
        if data.dataset is None and not data.train_file:
            raise config_lib.ConfigError("Set data.dataset (a registered corpus, `tflm data list`) or data.train_file "
                                         "(a TSV, CSV or JSON Lines file of labelled texts).")
        for split in ("train", "valid", "test"):
            path = getattr(data, f"{split}_file")
            if path and not any(path.removesuffix(".gz").endswith(ext) for ext in FORMATS):
                raise config_lib.ConfigError(f"data.{split}_file={path!r}: the name must end in "
                                             f"{', '.join(FORMATS)} (optionally .gz), which says its format.")
        if data.text_fields is not None and not 1 <= len(data.text_fields) <= 2:
            raise config_lib.ConfigError(f"data.text_fields={data.text_fields}: give one text field (a text) or two "
                                         '(a sentence pair), e.g. ["text_a", "text_b"].')
        if data.max_length < 1:
            raise config_lib.ConfigError(f"data.max_length={data.max_length} must be at least 1 token.")
        if self.vocabulary.type not in VOCABULARY_TYPES:
            raise config_lib.ConfigError(f"vocabulary.type={self.vocabulary.type!r} must be one of "
                                         f"{', '.join(VOCABULARY_TYPES)}.")
        if self.vectors.mode not in EMBEDDING_MODES:
            raise config_lib.ConfigError(f"vectors.mode={self.vectors.mode!r} must be one of "
                                         f"{', '.join(EMBEDDING_MODES)}.")
        if self.vectors.path and self.vocabulary.type != "word":
            raise config_lib.ConfigError(f"vectors.path is set but vocabulary.type={self.vocabulary.type!r}: word "
                                         "vectors need a word vocabulary (vocabulary.type=word).")
        if self.vectors.mode != "non_static" and not self.vectors.path:
            raise config_lib.ConfigError(f"vectors.mode={self.vectors.mode!r} needs vectors.path (a frozen table "
                                         "of random vectors would learn nothing).")
        validate_init(self)
        pair_mode = self.model.params.get("pair_mode")
        if pair_mode not in (None, *PAIR_MODES):
            raise config_lib.ConfigError(f"model.params.pair_mode={pair_mode!r} must be one of "
                                         f"{', '.join(PAIR_MODES)}.")
        try:
            accepted = encoder_arguments(self.model.type)
        except EncoderNotFoundError as error:
            raise config_lib.ConfigError(str(error)) from None
        unknown = [name for name in self.model.params
                   if name not in CLASSIFIER_PARAMS + ("encoder_dropout",) and name not in accepted]
        if unknown:
            raise config_lib.ConfigError(f"model.params has unknown field(s) {', '.join(unknown)} for model type "
                                         f"{self.model.type!r}; known: {', '.join(CLASSIFIER_PARAMS + tuple(accepted))}.")
        if self.training.optimizer not in OPTIMIZERS:
            raise config_lib.ConfigError(f"training.optimizer={self.training.optimizer!r} must be one of "
                                         f"{', '.join(OPTIMIZERS)}.")
        config_lib.parse_duration(self.training.time_budget)
        return self
