"""BERT-style pretraining data: documents, segment pairs, packing and dynamic masking.

The contract, step by step:

1. `read_documents(path_or_lines)` -> list of documents, each a list of non-empty sentences (str).
2. `tokenize_documents(documents, tokenizer)` -> the same nesting with lists of int ids.
3. `segment_pairs(documents, max_tokens, seed)` -> `SegmentPairs`: BERT's `create_instances_from_document`
   (segments A and B of whole sentences filling `max_tokens - 3`; with `next_sentence=True`, B is A's true
   continuation half the time (label 0, IsNext) and a segment of *another* document otherwise (label 1,
   NotNext): BERT's and Hugging Face's convention), or RoBERTa's FULL-SENTENCES with `next_sentence=False`.
4. `pack` (`[CLS] a [SEP] b [SEP]`) and `mask_tokens` (80% `<mask>` / 10% random / 10% kept) run in the graph,
   per batch (`tflm.data.masked_lm`).
5. `pretraining_dataset(...)` -> tf.data of `(inputs, labels)`:

   - inputs: `token_ids` int32 `(batch, sequence_length)` (masked), `segment_ids` int32 (0 for `[CLS]`, A and
     its `[SEP]`; 1 for B and its `[SEP]`), `padding_mask` bool, `mask_positions` int32 `(batch,
     max_predictions)`;
   - labels: `mask_ids` int32 `(batch, max_predictions)` (the original ids at `mask_positions`),
     `mask_weights` float32 (1.0 for a real prediction, 0.0 for padding), and with NSP only,
     `next_sentence` int32 `(batch,)` (0 IsNext, 1 random).

   tflm's ids: `[CLS]` = `<s>` (2), `[SEP]` = `</s>` (3), `[PAD]` = `<pad>` (0), `[MASK]` = `<mask>` (4 when
   the vocabulary was trained with `reserved=("<mask>",)`). Pairs and masks depend only on (seed, epoch):
   each epoch draws new pairs and new masks (dynamic masking, as RoBERTa), and a resumed run reads what an
   uninterrupted one would.
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from tflm.data.masked_lm import mask_tokens, pack, word_starts
from tflm.text.special_tokens import SEP_ID

__all__ = ["SegmentPairs", "mask_tokens", "pack", "pretraining_dataset", "read_documents", "segment_pairs",
           "split_sentences", "tokenize_documents", "word_starts"]

DOCUMENT_KINDS = ("auto", "wikitext", "blocks", "files")
_WIKITEXT_TITLE = re.compile(r"^ ?= [^=].* = ?$")  # " = Title = ", not " = = Section = = "
_WIKITEXT_HEADER = re.compile(r"^ ?(= )+.*( =)+ ?$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text):
    """Splits a paragraph after `.`, `!` or `?` followed by a capital or a digit (a heuristic: "Mr. Smith" is
    cut too; WikiText's " . " spacing is handled)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def read_documents(path_or_lines, kind="auto", sentences=True):
    """Reads documents for `segment_pairs`.

    Args:
        path_or_lines: a text file (plain or `.gz`), a folder of text files (read in name order), or a list
            of lines.
        kind: how documents are delimited:
            - `"wikitext"`: WikiText articles, each starting at a top-level header ` = Title = `; header
              lines (titles and ` = = Section = = `) are dropped.
            - `"blocks"`: blocks of lines separated by blank lines (Shakespeare's speeches, one paragraph
              per document in most plain text). In a folder: the blocks of every file.
            - `"files"`: one document per file of a folder (a single file or list: one document).
            - `"auto"`: a folder -> `"files"`; otherwise `"wikitext"` if a ` = Title = ` line is present,
              else `"blocks"`.
        sentences: bool. Cut each line into sentences (`split_sentences`); else each line is one sentence.
    Returns:
        A list of documents, each a non-empty list of non-empty sentences (str).
    """
    if kind not in DOCUMENT_KINDS:
        raise ValueError(f"kind={kind!r} is not one of {', '.join(DOCUMENT_KINDS)}.")
    if isinstance(path_or_lines, (str, os.PathLike)) and os.path.isdir(path_or_lines):
        names = sorted(n for n in os.listdir(path_or_lines) if not n.startswith("."))
        files = [_lines(os.path.join(path_or_lines, n)) for n in names
                 if os.path.isfile(os.path.join(path_or_lines, n))]
        if kind in ("auto", "files"):
            documents = [[line for line in lines if line.strip()] for lines in files]
        else:
            documents = [d for lines in files for d in _split(lines, kind)]
    else:
        lines = _lines(path_or_lines) if isinstance(path_or_lines, (str, os.PathLike)) else list(path_or_lines)
        if kind == "auto":
            kind = "wikitext" if any(_WIKITEXT_TITLE.match(line.rstrip("\n")) for line in lines) else "blocks"
        documents = [[line for line in lines if line.strip()]] if kind == "files" else _split(lines, kind)
    if sentences:
        documents = [[s for line in d for s in split_sentences(line)] for d in documents]
    else:
        documents = [[line.strip() for line in d] for d in documents]
    return [d for d in documents if d]


def _lines(path):
    from tflm.data.language_modeling import read_text_lines

    return read_text_lines(os.fspath(path))


def _split(lines, kind):
    documents, current = [], []
    for line in lines:
        line = line.rstrip("\n")
        if kind == "wikitext" and _WIKITEXT_TITLE.match(line):
            documents.append(current)
            current = []
        elif kind == "blocks" and not line.strip():
            documents.append(current)
            current = []
        elif line.strip() and not (kind == "wikitext" and _WIKITEXT_HEADER.match(line)):
            current.append(line)
    return [d for d in documents + [current] if d]


def tokenize_documents(documents, tokenizer, batch_size=2048):
    """The sentences of `documents` tokenized (in batches, in the graph): lists of lists of int ids."""
    flat = [s for d in documents for s in d]
    ids = []
    for start in range(0, len(flat), batch_size):
        ids.extend(tokenizer.tokenize(flat[start:start + batch_size]).to_list())
    out, at = [], 0
    for d in documents:
        out.append(ids[at:at + len(d)])
        at += len(d)
    return out


@dataclasses.dataclass
class SegmentPairs:
    """What `segment_pairs` makes: parallel lists, one entry per example.

    Attributes:
        segments_a: list of lists of int.
        segments_b: list of lists of int, or None (FULL-SENTENCES).
        next_sentence: int32 array (0 IsNext, 1 random), or None without NSP.
        a_documents: int array: the document each A comes from (the first one, for FULL-SENTENCES).
        b_documents: int array: the document each B comes from, or None.
    """

    segments_a: list
    segments_b: list
    next_sentence: np.ndarray
    a_documents: np.ndarray
    b_documents: np.ndarray

    def __len__(self):
        return len(self.segments_a)


def segment_pairs(documents, max_tokens, seed, next_sentence=True, short_seq_prob=0.1, separator=SEP_ID):
    """Cuts tokenized documents into pretraining examples.

    With `next_sentence=True`, BERT's `create_instances_from_document`: sentences are gathered until they
    fill a target length (`max_tokens - 3`, or with probability `short_seq_prob` a random shorter one); a
    random number of the gathered sentences form A; with probability 1/2 the rest form B (label 0, IsNext),
    otherwise B is drawn from a random *other* document (never the same one; BERT's own code only tries 10
    times) and the unused sentences go back to the pool (label 1). Where only one sentence was gathered,
    BERT always takes a random B; here an IsNext draw cuts that sentence in two instead, so the labels stay
    half and half. The pair is then trimmed to `max_tokens - 3` by dropping tokens at random from the
    front or back of the longer segment (BERT's `truncate_seq_pair`).

    With `next_sentence=False`, RoBERTa's FULL-SENTENCES: the documents (in a random order) are read as one
    stream of sentences, packed into segments of at most `max_tokens - 2` tokens (a sentence longer than
    that is cut); where a segment crosses into a new document, `separator` is put between them.

    Args:
        documents: list of documents, each a list of sentences (lists of int ids), e.g. `tokenize_documents`.
        max_tokens: int. The packed length, the special tokens included (`pack`'s `sequence_length`).
        seed: int or sequence of ints (tflm passes `(seed, epoch)`: a new epoch, new pairs).
        next_sentence: bool. Pairs with NSP labels, or FULL-SENTENCES single segments.
        short_seq_prob: float. BERT's share of shorter examples (NSP only).
        separator: int. The id between documents in FULL-SENTENCES (`[SEP]`).
    Returns:
        A `SegmentPairs`.
    """
    specials = 3 if next_sentence else 2
    if max_tokens < specials + 2:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for text beside the {specials} special tokens; use "
                         f"{specials + 2} or more (BERT uses 128 and 512).")
    documents = [[list(s) for s in d if len(s)] for d in documents]
    documents = [d for d in documents if d]
    rng = np.random.default_rng(seed)
    if not next_sentence:
        return _full_sentences(documents, max_tokens - specials, rng, separator)
    if len(documents) < 2:
        raise ValueError(f"Next-sentence prediction draws random segments from other documents, but there are "
                         f"{len(documents)} non-empty documents; give at least 2, or use next_sentence=False.")
    pairs = SegmentPairs([], [], [], [], [])
    for index in range(len(documents)):
        _document_pairs(documents, index, max_tokens - specials, short_seq_prob, rng, pairs)
    return SegmentPairs(pairs.segments_a, pairs.segments_b, np.asarray(pairs.next_sentence, np.int32),
                        np.asarray(pairs.a_documents, np.int64), np.asarray(pairs.b_documents, np.int64))


def _document_pairs(documents, index, max_num_tokens, short_seq_prob, rng, pairs):
    document = documents[index]
    target = int(rng.integers(2, max_num_tokens + 1)) if rng.random() < short_seq_prob else max_num_tokens
    chunk, length, i = [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            a = [t for s in chunk[:a_end] for t in s]
            random_next = rng.random() < 0.5
            if not random_next and len(chunk) == 1:
                if len(a) < 2:
                    random_next = True
                else:
                    cut = int(rng.integers(1, len(a)))
                    a, b = a[:cut], a[cut:]
            if random_next:
                other = int(rng.integers(len(documents) - 1))
                other += other >= index  # any document but this one
                source = documents[other]
                b, start = [], int(rng.integers(len(source)))
                for sentence in source[start:]:
                    b.extend(sentence)
                    if len(b) >= target - len(a):
                        break
                i -= len(chunk) - a_end  # the unused sentences go back
            elif len(chunk) >= 2:
                b = [t for s in chunk[a_end:] for t in s]
            _truncate_pair(a, b, max_num_tokens, rng)
            pairs.segments_a.append(a)
            pairs.segments_b.append(b)
            pairs.next_sentence.append(int(random_next))
            pairs.a_documents.append(index)
            pairs.b_documents.append(other if random_next else index)
            chunk, length = [], 0
            target = int(rng.integers(2, max_num_tokens + 1)) if rng.random() < short_seq_prob else max_num_tokens
        i += 1


def _truncate_pair(a, b, max_num_tokens, rng):
    while len(a) + len(b) > max_num_tokens:
        longer = a if len(a) > len(b) else b
        del longer[0 if rng.random() < 0.5 else -1]


def _full_sentences(documents, max_num_tokens, rng, separator):
    segments, firsts, current, first = [], [], [], None
    for index in rng.permutation(len(documents)):
        boundary = bool(current)  # a separator goes before this document's first piece, if it fits
        for sentence in documents[index]:
            for start in range(0, len(sentence), max_num_tokens):  # an overlong sentence is cut
                piece = sentence[start:start + max_num_tokens]
                if current and len(current) + boundary + len(piece) > max_num_tokens:
                    segments.append(current)
                    firsts.append(first)
                    current, boundary = [], False
                if not current:
                    first = int(index)
                current.extend(([separator] if boundary else []) + piece)
                boundary = False
    if current:
        segments.append(current)
        firsts.append(first)
    return SegmentPairs(segments, None, None, np.asarray(firsts, np.int64), None)


def pretraining_dataset(documents, tokenizer, sequence_length, batch_size, epoch=0, seed=0, next_sentence=True,
                        whole_words=False, rate=0.15, max_predictions=20, short_seq_prob=0.1, shuffle=True):
    """One epoch of BERT-style pretraining batches (the contract is in the module docstring).

    Args:
        documents: tokenized documents (`tokenize_documents`).
        tokenizer: the `tflm.text.Tokenizer` of the ids; its vocabulary must hold `<mask>` (train it with
            `reserved=("<mask>",)`).
        sequence_length: int. The packed length (BERT: 128, then 512).
        batch_size: int.
        epoch, seed: int. The pairs, their order and the masks depend only on these.
        next_sentence: bool. Segment pairs with NSP labels, or FULL-SENTENCES without.
        whole_words: bool. Whole-word masking (`word_starts`), else piece-level.
        rate, max_predictions: see `mask_tokens`.
        short_seq_prob: see `segment_pairs`.
        shuffle: bool. Shuffle the examples (by seed and epoch).
    Returns:
        A `tf.data.Dataset` of `(inputs, labels)` dicts; the last batch may be smaller.
    """
    mask_id = tokenizer.mask_id
    if mask_id is None:
        raise ValueError("The tokenizer's vocabulary has no '<mask>' piece, which masked-LM pretraining needs; "
                         "train the vocabulary with reserved=('<mask>',) (e.g. train_tokenizer(..., "
                         "reserved=('<mask>',))).")
    pairs = segment_pairs(documents, sequence_length, [seed, epoch], next_sentence, short_seq_prob,
                          separator=tokenizer.sep_id)
    if not len(pairs):
        raise ValueError("The documents gave no pretraining examples; give more text.")
    order = np.random.default_rng([seed, epoch, 1]).permutation(len(pairs)) if shuffle else np.arange(len(pairs))

    def ragged(segments):  # (from flat values: tf.ragged.constant takes minutes for WikiText-2's 30,000 pairs)
        rows = [segments[i] for i in order]
        lengths = np.array([len(row) for row in rows], np.int64)
        values = np.fromiter((t for row in rows for t in row), np.int32, count=int(lengths.sum()))
        return tf.RaggedTensor.from_row_lengths(values, lengths)

    columns = {"a": ragged(pairs.segments_a)}
    if next_sentence:
        columns["b"] = ragged(pairs.segments_b)
        columns["next_sentence"] = tf.constant(pairs.next_sentence[order], tf.int32)
    unselectable = [tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id]

    def make_batch(index, batch):
        packed = pack(batch["a"], batch.get("b"), tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                      sequence_length)
        starts = word_starts(tokenizer, packed["token_ids"]) if whole_words else None
        batch_seed = tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + epoch, index])
        masked = mask_tokens(packed["token_ids"], tokenizer.vocabulary_size, mask_id, unselectable, rate,
                             max_predictions, whole_words=starts, seed=batch_seed)
        inputs = {"token_ids": masked["token_ids"], "segment_ids": packed["segment_ids"],
                  "padding_mask": packed["padding_mask"], "mask_positions": masked["mask_positions"]}
        labels = {"mask_ids": masked["mask_ids"], "mask_weights": masked["mask_weights"]}
        if next_sentence:
            labels["next_sentence"] = batch["next_sentence"]
        return inputs, labels

    dataset = tf.data.Dataset.from_tensor_slices(columns).batch(batch_size).enumerate()
    return dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE)
