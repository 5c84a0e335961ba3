"""Summarization runs: documents and summaries in `{split}.source` / `{split}.target` files, an encoder-decoder
(Transformer or LSTM-attention, optionally with copy attention and a coverage loss), beam search with
repeated-trigram blocking and length limits, ROUGE-1/2/L with bootstrap confidence intervals and the lead /
first-words baselines.

    config = SummarizationConfig()                      # debian-descriptions, Transformer small with copy
    get_task("summarization").train(config, run_dir)
    scores = get_task("summarization").evaluate(run_dir, split="test")
    Summarizer.from_run_dir(run_dir).summarize(["A long description ..."])
"""

from tflm.tasks.runs import count_parameters
from tflm.tasks.sections import ModelConfig, TrainingConfig  # the sections every task shares
from tflm.tasks.summarization.config import (
    SummarizationConfig,
    SummarizationDataConfig,
    SummarizationVocabularyConfig,
    default_summary_decoding,
)
from tflm.tasks.summarization.data import prepare_data, read_split, split_files, tokenize_documents
from tflm.tasks.summarization.summarizer import Summarizer
from tflm.tasks.summarization.task import SummarizationTask, decoding_setting

__all__ = ["ModelConfig", "SummarizationConfig", "SummarizationDataConfig", "SummarizationTask",
           "SummarizationVocabularyConfig", "Summarizer", "TrainingConfig", "count_parameters",
           "decoding_setting", "default_summary_decoding", "prepare_data", "read_split", "split_files",
           "tokenize_documents"]
