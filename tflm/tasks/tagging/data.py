"""A tagging run's data: its splits (CoNLL files, or a corpus tflm derives), labels, tokenizer and batches.

`vocab/` holds `labels.txt` (the labels in id order, from the training split) and the tokenizer (the run's own,
or a pretrained encoder's, `tflm.tasks.pretrained`); a derived corpus is written once into the run's `corpus/`.
"""

import logging
import os

import tensorflow as tf

from tflm import config as config_lib
from tflm.data.classification import read_labels, write_labels
from tflm.data.tagging import align_text, label_set, read_conll
from tflm.tasks import workers
from tflm.tasks.pretrained import prepare_encoder_vocabulary, saved_encoder, saved_tokenizer

logger = logging.getLogger("tflm")

LABELS_FILE = "labels.txt"
CORPUS_DIR = "corpus"


def split_path(config, run_dir, split):
    """The CoNLL file of a split: the run's derived corpus (made on first use), or `data.<split>_file`."""
    data = config.data
    if data.derive:
        path = os.path.join(run_dir, CORPUS_DIR, f"{split}.conll")
        if not os.path.exists(path):
            _derive(config, os.path.join(run_dir, CORPUS_DIR))
        return path
    path = getattr(data, f"{split}_file")
    if not path:
        raise config_lib.ConfigError(f"No {split} split: set data.{split}_file (a CoNLL file).")
    if not os.path.exists(path):
        raise FileNotFoundError(f"data.{split}_file={path}: no such file.")
    return path


def _derive(config, directory):
    from tflm.data.punctuation import prepare_punctuation_corpus

    counts = prepare_punctuation_corpus(config.data.dataset, config.data.data_dir, directory, config.data.language)
    logger.info("Derived the punctuation and case corpus of %s into %s: %s", config.data.dataset, directory, counts)


def read_split(config, run_dir, split, max_examples=None):
    """A split as `TaggingData` (its first `max_examples` sentences)."""
    data = config.data
    scheme = data.label_scheme if data.label_scheme != "tokens" else None
    tagged = read_conll(split_path(config, run_dir, split), label_column=data.label_column,
                        word_column=data.word_column, scheme=scheme)
    return tagged.head(max_examples) if max_examples else tagged


def saved_vocabulary(run_dir):
    """`{"tokenizer", "labels", "encoder"}` of a run, or None before it has them."""
    directory = os.path.join(run_dir, "vocab")
    if not os.path.exists(os.path.join(directory, LABELS_FILE)):
        return None
    tokenizer = saved_tokenizer(directory)
    if tokenizer is None:
        return None
    return {"tokenizer": tokenizer, "labels": read_labels(os.path.join(directory, LABELS_FILE)),
            "encoder": saved_encoder(directory)}


def prepare_vocabulary(config, run_dir, train):
    """The run's tokenizer and labels: read from `run_dir/vocab`, or made (the labels from the training split;
    the tokenizer trained on its words, or a pretrained encoder's) and saved there."""
    saved = saved_vocabulary(run_dir)
    if saved is not None:
        return saved
    if not workers.is_chief():
        return workers.wait_for_chief_vocabulary(run_dir, lambda: saved_vocabulary(run_dir))
    directory = os.path.join(run_dir, "vocab")
    prepare_encoder_vocabulary(config, directory, lambda: [" ".join(words) for words in train.words])
    labels = label_set(train)
    write_labels(os.path.join(directory, LABELS_FILE), labels)
    logger.info("%d labels: %s", len(labels), ", ".join(labels))
    return saved_vocabulary(run_dir)


def special_ids(tokenizer):
    """`(cls_id, sep_id)`: a keras-hub / Hugging Face vocabulary's own `[CLS]`, `[SEP]`, or tflm's `<s>`, `</s>`."""
    return tokenizer.cls_id, tokenizer.sep_id


def encode_sentences(tokenizer, sentences, max_length, with_words=False):
    """The model's ragged inputs for sentences (string tensor `(batch,)`, words separated by spaces): `[CLS]
    pieces [SEP]`, segment ids, padding mask and each kept word's first-piece position (`word_starts`); with
    `with_words`, also the kept `words`. The training pipeline and the exported model both use this."""
    cls_id, sep_id = special_ids(tokenizer)
    aligned = align_text(tokenizer, sentences, max_length, cls_id=cls_id, sep_id=sep_id)
    if not with_words:
        aligned.pop("words")
    return aligned


def dense(inputs):
    """The ragged inputs padded with 0 (to at least one position)."""
    def padded(value):
        value = value.to_tensor(0)
        return tf.pad(value, [[0, 0], [0, tf.maximum(1 - tf.shape(value)[1], 0)]])

    return {name: padded(value) for name, value in inputs.items()}


def encode_labels(tagged, labels, unknown="error"):
    """Label ids `[[int]]` of a split's sentences. A label the training split never had is an error naming it
    (`unknown="error"`: your own files), or -1, left out of the loss, with one warning (`"ignore"`: a derived
    corpus, whose rare labels a smaller training split may lack; evaluation still counts them)."""
    index = {label: i for i, label in enumerate(labels)}
    ids, missing = [], []
    for number, sentence in enumerate(tagged.labels):
        for label in sentence:
            if label not in index:
                if unknown == "error":
                    raise ValueError(f"{tagged.path}: sentence {number + 1} has label {label!r}, which the training "
                                     f"split does not have (its labels: {', '.join(labels)}). Add it to the training "
                                     "data or correct it.")
                missing.append(label)
        ids.append([index.get(label, -1) for label in sentence])
    if missing:
        logger.warning("%s: %d words have labels the training split lacks (%s): left out of the validation loss",
                       tagged.path, len(missing), ", ".join(sorted(set(missing))[:5]))
    return ids


def examples(config, tokenizer, tagged, labels, batch=4096):
    """`(inputs, label ids)`: ragged inputs of every sentence and its label ids, cut to the words kept."""
    parts = []
    sentences = [" ".join(words) for words in tagged.words]
    for start in range(0, len(sentences), batch):  # (tokenized in pieces: bounded memory for a large corpus)
        parts.append(encode_sentences(tokenizer, tf.constant(sentences[start:start + batch] or [""]),
                                      config.data.max_length))
        if not sentences:
            parts[-1] = {key: value[:0] for key, value in parts[-1].items()}
    inputs = {key: tf.concat([part[key] for part in parts], axis=0) for key in parts[0]}
    kept = inputs["word_starts"].row_lengths().numpy()
    ids = encode_labels(tagged, labels, "ignore" if config.data.derive else "error")
    cut = sum(len(row) - int(k) for row, k in zip(ids, kept))
    if cut:
        logger.info("%d words of %s are past data.max_length=%d pieces: not trained on", cut,
                    tagged.path or "the data", config.data.max_length)
    lengths = [min(len(row), int(k)) for row, k in zip(ids, kept)]
    flat = [i for row, length in zip(ids, lengths) for i in row[:length]]  # (flat values: fast for a large set)
    label_ids = tf.RaggedTensor.from_row_lengths(tf.constant(flat, tf.int32, shape=[len(flat)]),
                                                 tf.constant(lengths, tf.int64, shape=[len(lengths)]))
    return inputs, label_ids


def batches(inputs, label_ids, batch_size, shuffle_seed=None):
    """A dataset of `(padded inputs, labels (batch, words) padded with -1)` batches."""
    dataset = tf.data.Dataset.from_tensor_slices((inputs, label_ids))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(int(label_ids.nrows()), seed=shuffle_seed, reshuffle_each_iteration=False)

    def pad(x, y):
        x = dense(x)
        y = y.to_tensor(-1)
        words = tf.shape(x["word_starts"])[1]
        return x, tf.pad(y, [[0, 0], [0, words - tf.shape(y)[1]]], constant_values=-1)

    return dataset.ragged_batch(batch_size).map(pad).prefetch(2)
