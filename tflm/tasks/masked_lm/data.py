"""A masked-LM run's data: documents of its corpus (and of classification corpora), its WordPiece or
SentencePiece vocabulary with `<mask>`, and the pretraining batches of `tflm.data.pretraining`."""

import logging
import os

from tflm import config as config_lib
from tflm.data.classification import read_classification
from tflm.data.pretraining import pretraining_dataset, read_documents, tokenize_documents
from tflm.data.registry import dataset_info, find_dataset, split_file
from tflm.tasks import workers
from tflm.tasks.base import TaskData
from tflm.text import load_tokenizer as load_tokenizer_file
from tflm.text.special_tokens import MASK_TOKEN
from tflm.text.vocab import train_tokenizer

logger = logging.getLogger("tflm")


def documents(config, split):
    """The documents (lists of sentences) of a split: the corpus's, and for training the texts of
    `data.extra_datasets` (each text a document). Without a valid file of its own, validation is the last 5% of
    the training documents (and training the rest)."""
    data = config.data
    explicit = {"train": data.train_file, "valid": data.valid_file, "test": data.valid_file}[split]
    if data.train_file:
        if explicit is None:  # (no validation text: the last 5% of the training documents)
            every = read_documents(data.train_file)
            cut = max(1, len(every) // 20)
            return every[-cut:] if split != "train" else every[:-cut]
        docs = read_documents(explicit)
    else:
        info = dataset_info(data.dataset)
        if info.task != "language_modeling":
            raise config_lib.ConfigError(f"data.dataset={data.dataset!r} is a {info.task} corpus; pretrain on raw "
                                         "text (wikitext-2-raw, shakespeare) or data.train_file.")
        docs = read_documents(split_file(find_dataset(data.dataset, data.data_dir), split, "txt"))
    if split == "train":
        for name in data.extra_datasets:
            path = split_file(find_dataset(name, data.data_dir), "train", "tsv")
            fields = ("text_a", "text_b") if dataset_info(name).task == "sentence_pairs" else ("text",)
            texts = read_classification(path, fields).texts
            docs += [[text] for field in fields for text in texts[field]]
    return docs


def _saved(run_dir):
    directory = os.path.join(run_dir, "vocab")
    if not os.path.isdir(directory):
        return None
    names = [name for name in sorted(os.listdir(directory)) if name.startswith("tokenizer.")]
    return load_tokenizer_file(os.path.join(directory, names[0])) if names else None


def load_tokenizer(run_dir):
    tokenizer = _saved(run_dir)
    if tokenizer is None:
        raise FileNotFoundError(f"{run_dir}/vocab: no tokenizer; was this run trained?")
    return tokenizer


def prepare_vocabulary(config, run_dir, train_documents):
    """The run's tokenizer (with `<mask>` at id 4): read from `run_dir/vocab`, or trained on the training text."""
    saved = _saved(run_dir)
    if saved is not None:
        return saved
    if not workers.is_chief():
        return workers.wait_for_chief_vocabulary(run_dir, lambda: _saved(run_dir))
    sentences = [sentence for document in train_documents for sentence in document]
    tokenizer = train_tokenizer(sentences, config.vocabulary.type, config.vocabulary.size, seed=config.training.seed,
                                reserved=(MASK_TOKEN,))
    workers.save_vocabulary({os.path.join(run_dir, "vocab", "tokenizer" + tokenizer.file_suffix): tokenizer})
    return tokenizer


def _dataset(config, tokenizer, ids, epoch, seed, shuffle=True):
    data = config.data
    return pretraining_dataset(ids, tokenizer, data.sequence_length, data.batch_size, epoch=epoch, seed=seed,
                               next_sentence=data.next_sentence, whole_words=data.whole_words, rate=data.mask_rate,
                               max_predictions=data.max_predictions, shuffle=shuffle)


def prepare_data(config, run_dir):
    train_documents = documents(config, "train")
    tokenizer = prepare_vocabulary(config, run_dir, train_documents)
    train_ids = tokenize_documents(train_documents, tokenizer)
    valid_ids = tokenize_documents(documents(config, "valid"), tokenizer)
    tokens = sum(len(sentence) for document in train_ids for sentence in document)
    batch = config.data.batch_size
    valid = _dataset(config, tokenizer, valid_ids, 0, 1234, shuffle=False).take(
        max(1, config.data.max_valid_sequences // batch)).cache()
    steps = max(1, tokens // (batch * (config.data.sequence_length - 3)))  # (about: segments are cut at sentences)
    return TaskData(tokenizer, lambda epoch: _dataset(config, tokenizer, train_ids, epoch, config.training.seed),
                    steps, valid, batch_units=batch,
                    summary=f"{len(train_ids)} training documents, {tokens:,} tokens, {len(valid_ids)} validation "
                            "documents")


def evaluation_dataset(config, tokenizer, split, max_examples=None):
    """A split's pretraining sequences with fixed pairs and masks (seed 1234, in order)."""
    ids = tokenize_documents(documents(config, split), tokenizer)
    dataset = _dataset(config, tokenizer, ids, 0, 1234, shuffle=False)
    return dataset.take(-(-max_examples // config.data.batch_size)) if max_examples else dataset
