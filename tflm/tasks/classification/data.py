"""A classification run's data: its splits, labels, vocabulary, word vectors and batches.

`vocab/` of a run holds `labels.txt` (the labels in id order, from the training split) and the tokenizer; with
word vectors, `vectors.json` (the vectors' size and how much of the training text they cover).
"""

import json
import logging
import os

import tensorflow as tf

from tflm import config as config_lib
from tflm.data.classification import (
    class_weights,
    encode_labels,
    label_set,
    read_classification,
    read_labels,
    write_labels,
)
from tflm.data.registry import REGISTRY, dataset_info, find_dataset, split_file
from tflm.tasks import workers
from tflm.tasks.pretrained import saved_encoder
from tflm.text import load_tokenizer
from tflm.text.special_tokens import BOS_ID, EOS_ID
from tflm.text.vocab import train_tokenizer, train_words
from tflm.text.word_tokenizer import count_words
from tflm.text.word_vectors import read_vectors

logger = logging.getLogger("tflm")

LABELS_FILE, VECTORS_FILE = "labels.txt", "vectors.json"


def text_fields(data_config):
    """The text columns: `data.text_fields`, or by the registered corpus's kind."""
    if data_config.text_fields:
        return tuple(data_config.text_fields)
    if data_config.dataset and data_config.dataset in REGISTRY and \
            dataset_info(data_config.dataset).task == "sentence_pairs":
        return ("text_a", "text_b")
    return ("text",)


def split_path(data_config, split):
    explicit = getattr(data_config, f"{split}_file")
    if explicit:
        if not os.path.exists(explicit):
            raise FileNotFoundError(f"data.{split}_file={explicit}: no such file.")
        return explicit
    if data_config.dataset is None:
        raise config_lib.ConfigError(f"No {split} split: set data.{split}_file or data.dataset.")
    info = dataset_info(data_config.dataset)
    if info.task not in ("classification", "sentence_pairs"):
        raise config_lib.ConfigError(f"data.dataset={info.name!r} is a {info.task} corpus; a classification run "
                                     "reads movie-review-sentiment, sms-spam, trec-6, tatoeba-paraphrase-en or your "
                                     "own data.train_file.")
    return split_file(find_dataset(data_config.dataset, data_config.data_dir), split, "tsv")


def read_split(data_config, split, max_examples=None):
    """A split as `ClassificationData` (its first `max_examples`)."""
    data = read_classification(split_path(data_config, split), text_fields(data_config), data_config.label_field)
    return data.head(max_examples) if max_examples else data


def resolve_vectors(path, data_dir=None):
    """A vectors file: `path` itself, or the file of a registered vectors corpus (e.g. "glove-6b-50d")."""
    if path is None or os.path.isfile(path):
        return path
    if path in REGISTRY and dataset_info(path).task == "word_vectors":
        directory = find_dataset(path, data_dir)
        for name in sorted(dataset_info(path).files):
            if os.path.exists(os.path.join(directory, name)):
                return os.path.join(directory, name)
    raise FileNotFoundError(f"vectors.path={path}: no such file (nor a registered word-vectors corpus). Give a "
                            "GloVe/word2vec file, or glove-6b-50d with --data-dir or $TFLM_DATA_DIR.")


def _saved(run_dir):
    directory = os.path.join(run_dir, "vocab")
    if not os.path.exists(os.path.join(directory, LABELS_FILE)):
        return None
    encoder = saved_encoder(directory)
    tokenizer = next((load_tokenizer(os.path.join(directory, name)) for name in sorted(os.listdir(directory))
                      if name.startswith("tokenizer.")), None)
    if tokenizer is None:
        return None
    vectors = {}
    if os.path.exists(os.path.join(directory, VECTORS_FILE)):
        with open(os.path.join(directory, VECTORS_FILE)) as f:
            vectors = json.load(f)
    return {"tokenizer": tokenizer, "labels": read_labels(os.path.join(directory, LABELS_FILE)),
            "embedding_dim": vectors.get("dim"), "encoder": encoder}


def prepare_vocabulary(config, run_dir, train):
    """The run's tokenizer and labels (`{"tokenizer", "labels", "embedding_dim"}`): read from `run_dir/vocab`, or
    made from the training split and saved there."""
    saved = _saved(run_dir)
    if saved is not None:
        return saved
    if not workers.is_chief():
        return workers.wait_for_chief_vocabulary(run_dir, lambda: _saved(run_dir))
    if config.init.from_run or config.init.from_preset:
        return _initial_encoder(config, run_dir, train)
    texts = [text for field in train.texts.values() for text in field]
    vocabulary = config.vocabulary
    vectors = resolve_vectors(config.vectors.path, config.data.data_dir)
    if vocabulary.type == "word":
        tokenizer = train_words(texts, vocabulary.size, vocabulary.min_count, vectors, config.vectors.max_words)
    else:
        tokenizer = train_tokenizer(texts, vocabulary.type, vocabulary.size, seed=config.training.seed)
    directory = os.path.join(run_dir, "vocab")
    os.makedirs(directory, exist_ok=True)
    labels = label_set(train.labels)
    write_labels(os.path.join(directory, LABELS_FILE), labels)
    dim = None
    if vectors:
        dim = len(next(iter(read_vectors(vectors)))[1])
        with open(os.path.join(directory, VECTORS_FILE), "w") as f:
            json.dump({"path": vectors, "dim": dim}, f)
    workers.save_vocabulary({os.path.join(directory, "tokenizer" + tokenizer.file_suffix): tokenizer})
    logger.info("%d labels: %s", len(labels), ", ".join(labels))
    return {"tokenizer": tokenizer, "labels": labels, "embedding_dim": dim}


def _one_each(value, like):
    """A ragged `(batch, 1)` of `value`, with the row splits of `like`."""
    lengths = tf.ones_like(like.row_lengths())
    return tf.RaggedTensor.from_row_lengths(tf.fill(tf.shape(lengths), tf.constant(value, tf.int32)), lengths)


def special_ids(tokenizer):
    """`(cls_id, sep_id)` of a tokenizer: its own (a keras-hub or Hugging Face vocabulary's `[CLS]`, `[SEP]`), or
    tflm's `<s>` and `</s>`."""
    return getattr(tokenizer, "cls_id", BOS_ID), getattr(tokenizer, "sep_id", EOS_ID)


def _initial_encoder(config, run_dir, train):
    """The vocabulary of a run that starts from another encoder (`tflm.tasks.pretrained`), and its labels."""
    from tflm.tasks.pretrained import prepare_initial_encoder

    directory = os.path.join(run_dir, "vocab")
    encoder = prepare_initial_encoder(config.init, directory)
    write_labels(os.path.join(directory, LABELS_FILE), label_set(train.labels))
    saved = _saved(run_dir)
    logger.info("%d labels: %s; the encoder and its tokenizer come from %s", len(saved["labels"]),
                ", ".join(saved["labels"]), encoder["source"])
    return saved


def encode_texts(tokenizer, texts, pair_mode, max_length, backbone=False):
    """The model's inputs for texts (in the graph; training and the exported model both use this).

    Args:
        tokenizer: the run's tokenizer.
        texts: list of string tensors `(batch,)`: one (a text) or two (a pair's).
        pair_mode: None, "joint" (`a </s> b` and segment ids) or "siamese" (each text alone).
        max_length: int. The tokens kept of each text.
        backbone: bool. For an encoder that reads token ids itself (BERT): `[CLS] a [SEP] (b [SEP])` with segment
            ids and a padding mask (1 on every real position), the tokenizer's own `[CLS]` and `[SEP]`.
    Returns:
        A dict of ragged int32 `(batch, None)`: `token_ids` (and `segment_ids`), or `token_ids_a`, `token_ids_b`;
        with `backbone`, `token_ids`, `segment_ids` and `padding_mask`.
    """
    ids = [tf.cast(tokenizer.tokenize(text)[:, :max_length], tf.int32) for text in texts]
    if backbone:
        cls_id, sep_id = special_ids(tokenizer)
        parts, segments = [_one_each(cls_id, ids[0]), ids[0], _one_each(sep_id, ids[0])], []
        if len(ids) == 2:
            parts += [ids[1], _one_each(sep_id, ids[1])]
        for index, part in enumerate(parts):
            segments.append(tf.zeros_like(part) if index < 3 else tf.ones_like(part))
        token_ids = tf.concat(parts, axis=1)
        return {"token_ids": token_ids, "segment_ids": tf.concat(segments, axis=1),
                "padding_mask": tf.ones_like(token_ids)}
    if len(ids) == 1:
        return {"token_ids": ids[0]}
    a, b = ids
    if pair_mode == "siamese":
        return {"token_ids_a": a, "token_ids_b": b}
    separator = tf.RaggedTensor.from_row_lengths(tf.fill([tf.shape(a.row_lengths())[0]], EOS_ID),
                                                 tf.ones_like(a.row_lengths()))
    segments = tf.concat([tf.zeros_like(a), tf.zeros_like(separator), tf.ones_like(b)], axis=1)
    return {"token_ids": tf.concat([a, separator, b], axis=1), "segment_ids": segments}


def dense(inputs):
    """The ragged inputs of `encode_texts` padded with 0 (to at least one position)."""
    def padded(value):
        value = value.to_tensor(0)
        return tf.pad(value, [[0, 0], [0, tf.maximum(1 - tf.shape(value)[1], 0)]])

    return {name: padded(value) for name, value in inputs.items()}


def example_inputs(config, tokenizer, data):
    """The encoded inputs of a `ClassificationData` (ragged, one row per example)."""
    from tflm.models.classifier import reads_token_ids

    pair_mode = config.model.params.get("pair_mode", "joint")
    columns = [tf.constant(data.texts[field]) for field in data.text_fields]
    return encode_texts(tokenizer, columns, pair_mode, config.data.max_length, reads_token_ids(config.model.type))


def batches(inputs, labels, batch_size, shuffle_seed=None):
    """A dataset of `(padded inputs, labels)` batches (shuffled with `shuffle_seed`, if given)."""
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=False)
    return dataset.ragged_batch(batch_size).map(lambda x, y: (dense(x), y)).prefetch(2)


def class_weight_vector(config, train, labels):
    """The per-class loss weights (`data.class_weights`), or None."""
    if not config.data.class_weights:
        return None
    weights = class_weights(train.labels, labels)
    logger.info("Class weights: %s", ", ".join(f"{labels[i]} {w:.2f}" for i, w in weights.items()))
    return [weights[i] for i in range(len(labels))]


def training_corpus(config, run_dir):
    """`(train, valid, vocabulary)`: the splits (valid's labels checked against train's) and the vocabulary."""
    train = read_split(config.data, "train", config.data.max_examples)
    valid = read_split(config.data, "valid")
    vocabulary = prepare_vocabulary(config, run_dir, train)
    encode_labels(valid, vocabulary["labels"])  # (a label training never saw is an error naming its line)
    return train, valid, vocabulary


def word_counts(train):
    return count_words(text for field in train.texts.values() for text in field)
