"""Data: the corpus registry, parallel-text, classification and SQuAD reading, BERT-style pretraining data,
question-answering windows, and tf.data pipelines."""

from tflm.data.classification import (
    ClassificationData,
    ClassificationDataError,
    UnknownLabelError,
    check_labels,
    class_weights,
    encode_labels,
    label_set,
    read_classification,
    read_classification_splits,
    read_labels,
    write_labels,
)
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
from tflm.data.pretraining import (
    SegmentPairs,
    mask_tokens,
    pack,
    pretraining_dataset,
    read_documents,
    segment_pairs,
    split_sentences,
    tokenize_documents,
    word_starts,
)
from tflm.data.qa_windows import answer_positions, context_words, decode_answers, qa_features
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
from tflm.data.squad import QAExample, SquadDataError, read_squad, write_squad
