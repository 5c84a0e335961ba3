"""Data: the corpus registry, parallel-text reading and tf.data pipelines."""

from tflm.data.parallel import DropReport, ParallelCorpus, ParallelDataError, read_lines, read_parallel
from tflm.data.pipeline import (
    Batching,
    TokenizedPairs,
    num_batches,
    source_dataset,
    tokenize_pairs,
    tokenize_texts,
    translation_dataset,
)
from tflm.data.registry import (
    REGISTRY,
    DatasetInfo,
    dataset_info,
    download_dataset,
    find_dataset,
    list_datasets,
    split_file,
    verify_files,
)
