"""What the encoder-decoder tasks share: `Seq2SeqTask` (translation and summarization supply only what
differs), their data helpers (vocabularies, batched `TaskData`) and `SampleOutputs`. Not a task of its own."""

from tflm.tasks.seq2seq.data import (
    explicit_split_files,
    load_vocabularies,
    prepare_vocabularies,
    seq2seq_task_data,
    vocabulary_paths,
)
from tflm.tasks.seq2seq.samples import SampleOutputs
from tflm.tasks.seq2seq.task import Seq2SeqTask, build_model, decode_timed, strategy_setting

__all__ = ["SampleOutputs", "Seq2SeqTask", "build_model", "decode_timed", "explicit_split_files", "load_vocabularies",
           "prepare_vocabularies", "seq2seq_task_data", "strategy_setting", "vocabulary_paths"]
