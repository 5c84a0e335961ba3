"""The configuration of a summarization run (saved as the run's config.json)."""

import dataclasses
from typing import Optional

from tflm import config as config_lib
from tflm.decoding.search import DecodingOptions
from tflm.models import Seq2Seq, get_model_class, preset_params
from tflm.tasks.sections import ModelConfig, TrainingConfig, validate_common
from tflm.text.vocab import VOCABULARY_TYPES


@dataclasses.dataclass
class SummarizationDataConfig:
    """Where the documents and their summaries come from, and how they are cut and batched.

    Either `dataset` (a registered summarization corpus: a folder of `{split}.source` / `{split}.target`
    files, found in `data_dir`, `$TFLM_DATA_DIR` or the cache) or explicit `train_files`/`valid_files`/
    `test_files` (`[source_path, target_path]`), or `data_dir` alone: any folder in that layout.

    Sources longer than `max_source_length` tokens are truncated (their first tokens kept; every truncation
    is counted in the log), never dropped: a long document still has a summary. Training pairs whose
    summary is longer than `max_target_length` are dropped (and counted); references are never cut.
    Batches group sources of similar length under a token budget, so a long source makes a small batch.
    """

    dataset: Optional[str] = "debian-descriptions"
    data_dir: Optional[str] = None
    train_files: Optional[list] = None
    valid_files: Optional[list] = None
    test_files: Optional[list] = None
    max_source_length: int = 128  # tokens, EOS included: longer sources are truncated (and counted)
    max_target_length: int = 48  # training summaries longer than this are dropped (and counted)
    batch_tokens: Optional[int] = 4096  # token budget per batch, on the longer (source) side
    batch_size: Optional[int] = None  # or a fixed number of examples per batch
    max_train_pairs: Optional[int] = None  # use only the first N training pairs (quick runs)


@dataclasses.dataclass
class SummarizationVocabularyConfig:
    type: str = "unigram"  # SentencePiece "unigram" or "bpe", or "wordpiece"
    size: int = 16000
    joint: bool = True  # one vocabulary for documents and summaries: copy attention copies its ids


def default_summary_decoding():
    """Beam search with repeated-trigram blocking and an absolute length limit (a summary's length does not
    grow with its document's, so the relative limit is off)."""
    return DecodingOptions(strategy="beam", beam_size=4, length_penalty=0.6, no_repeat_ngram_size=3,
                           max_length=48, max_length_a=0.0, max_length_b=0)


@dataclasses.dataclass
class SummarizationConfig:
    task: str = "summarization"
    data: SummarizationDataConfig = dataclasses.field(default_factory=SummarizationDataConfig)
    vocabulary: SummarizationVocabularyConfig = dataclasses.field(default_factory=SummarizationVocabularyConfig)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(
        type="transformer", preset="small", params={"copy_attention": True, "share_embeddings": True}))
    training: TrainingConfig = dataclasses.field(default_factory=lambda: TrainingConfig(
        learning_rate=1e-3, schedule="inverse_sqrt", warmup_steps=1000, label_smoothing=0.1))
    decoding: DecodingOptions = dataclasses.field(default_factory=default_summary_decoding)

    def validate(self):
        if self.task != "summarization":
            raise config_lib.ConfigError(f"task={self.task!r}: this is a summarization configuration.")
        if self.vocabulary.type not in VOCABULARY_TYPES:
            raise config_lib.ConfigError(
                f"vocabulary.type={self.vocabulary.type!r} must be one of {', '.join(VOCABULARY_TYPES)}.")
        if (self.data.batch_tokens is None) == (self.data.batch_size is None):
            raise config_lib.ConfigError("Set exactly one of data.batch_tokens and data.batch_size (the other to "
                                         "null).")
        if self.data.dataset is None and not self.data.train_files and not self.data.data_dir:
            raise config_lib.ConfigError("Set data.dataset (a registered corpus), data.data_dir (a folder of "
                                         "{train,valid,test}.source/.target) or data.train_files.")
        for name in ("max_source_length", "max_target_length"):
            if getattr(self.data, name) < 2:
                raise config_lib.ConfigError(f"data.{name}={getattr(self.data, name)} must be at least 2 (EOS "
                                             "included).")
        if not issubclass(get_model_class(self.model.type), Seq2Seq):
            raise config_lib.ConfigError(f"model.type={self.model.type!r} is not an encoder-decoder; use "
                                         "transformer, lstm, gru or seq2seq.")
        preset_params(self.model.type, self.model.preset)
        if self.model.params.get("copy_attention") and not self.vocabulary.joint:
            raise config_lib.ConfigError("model.params.copy_attention copies source pieces into the summary, so it "
                                         "needs one joint vocabulary: set vocabulary.joint=true.")
        validate_common(self)
        self.decoding.validate()
        return self
