"""Training vocabularies from text: SentencePiece (unigram, BPE), WordPiece, byte-level BPE, characters and words.

The trainers are the libraries' own: the `sentencepiece` trainer, and keras-hub's
`compute_word_piece_vocabulary` (tensorflow-text's WordPiece learner). tflm only fixes the special ids and,
for WordPiece, feeds the reversible pre-tokens of `pretokenize_words` so the vocabulary matches the runtime
tokenizer.
"""

import io
import json
import logging

import tensorflow as tf

from tflm.text.byte_bpe_tokenizer import ByteLevelBPETokenizer
from tflm.text.character_tokenizer import CharacterTokenizer
from tflm.text.sentencepiece_tokenizer import SentencePieceTokenizer
from tflm.text.special_tokens import SPECIAL_TOKENS, check_reserved
from tflm.text.word_tokenizer import WordTokenizer, count_words
from tflm.text.word_vectors import vector_file_words
from tflm.text.wordpiece_tokenizer import WordPieceTokenizer, pretokenize_words

logger = logging.getLogger("tflm")

VOCABULARY_TYPES = ("unigram", "bpe", "wordpiece", "byte_bpe", "character")


def train_sentencepiece(texts, vocabulary_size, model_type="unigram", character_coverage=0.9999,
                        max_sentences=2_000_000, seed=0, reserved=()):
    """Trains a SentencePiece model with tflm's fixed special ids.

    Args:
        texts: iterable of str, one sentence each.
        vocabulary_size: int. Upper bound: on little text the model may be smaller (logged).
        model_type: `"unigram"` or `"bpe"`.
        character_coverage: float. Fraction of characters covered by the alphabet; the rest map to `<unk>`.
        max_sentences: int. At most this many sentences (sampled) are used.
        seed: int. Seed of SentencePiece's sampling.
        reserved: tuple of str. Extra pieces given ids 4, 5, ... right after the special tokens, e.g.
            `("<mask>",)` for BERT-style pretraining. They are SentencePiece *control* symbols (as `<s>` and
            `</s>` are), not `user_defined_symbols`: those would also be cut out of any text that contains
            them, so a user's literal "<mask>" would become the mask token; control symbols are never
            produced from text. Default: none (the vocabularies of earlier tflm versions).
    Returns:
        A `SentencePieceTokenizer`.
    """
    import sentencepiece

    if model_type not in ("unigram", "bpe"):
        raise ValueError(f"model_type={model_type!r}: SentencePiece models are 'unigram' or 'bpe'.")
    reserved = check_reserved(reserved)
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("Cannot train a vocabulary on no text: every given sentence is empty.")
    extra = {"control_symbols": list(reserved)} if reserved else {}
    sentencepiece.set_random_generator_seed(seed)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type=model_type,
        character_coverage=character_coverage,
        input_sentence_size=max_sentences,
        shuffle_input_sentence=True,
        hard_vocab_limit=False,
        pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        pad_piece=SPECIAL_TOKENS[0], unk_piece=SPECIAL_TOKENS[1],
        bos_piece=SPECIAL_TOKENS[2], eos_piece=SPECIAL_TOKENS[3],
        num_threads=2,
        minloglevel=2,
        **extra,
    )
    tokenizer = SentencePieceTokenizer(model.getvalue())
    _log_size(tokenizer, vocabulary_size, model_type)
    return tokenizer


def train_wordpiece(texts, vocabulary_size, reserved=()):
    """Trains a WordPiece vocabulary over tflm's reversible pre-tokens.

    Args:
        texts: iterable of str.
        vocabulary_size: int. Upper bound on the number of pieces, special and reserved tokens included.
        reserved: tuple of str. Extra pieces given ids 4, 5, ... right after the special tokens, e.g.
            `("<mask>",)`. Text never produces them: the pre-tokenizer splits punctuation such as `<` off, so
            no pre-token is ever `<mask>`. Default: none (the vocabularies of earlier tflm versions).
    Returns:
        A `WordPieceTokenizer`.
    """
    import keras_hub

    reserved = check_reserved(reserved)
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("Cannot train a vocabulary on no text: every given sentence is empty.")
    words = tf.data.Dataset.from_tensor_slices(texts).batch(4096).map(pretokenize_words)
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        words, vocabulary_size, split=False, reserved_tokens=list(SPECIAL_TOKENS) + list(reserved)
    )
    tokenizer = WordPieceTokenizer(vocabulary)
    _log_size(tokenizer, vocabulary_size, "wordpiece")
    return tokenizer


def train_characters(texts, max_characters=None):
    """A `CharacterTokenizer` over the characters of `texts` (the most frequent `max_characters`, if given)."""
    import collections

    counts = collections.Counter()
    for text in texts:
        counts.update(text)
    characters = [c for c, _ in counts.most_common(max_characters)]
    tokenizer = CharacterTokenizer(sorted(characters))
    logger.info("character vocabulary has %d pieces.", tokenizer.vocabulary_size)
    return tokenizer


def train_byte_level_bpe(texts, vocabulary_size):
    """Trains a byte-level BPE vocabulary (GPT-2's scheme) with the `tokenizers` library's trainer."""
    import tokenizers

    if vocabulary_size < 300:
        raise ValueError(f"A byte-level BPE vocabulary holds the 256 bytes and the special tokens before any merge; "
                         f"vocabulary_size={vocabulary_size} is too small (use 300 or more).")
    trainer = tokenizers.ByteLevelBPETokenizer()
    trainer.train_from_iterator(list(texts), vocab_size=vocabulary_size, min_frequency=2,
                                special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    model = json.loads(trainer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    tokenizer = ByteLevelBPETokenizer(model["vocab"], merges)
    _log_size(tokenizer, vocabulary_size, "byte-level BPE")
    return tokenizer


def train_words(texts, max_size=None, min_count=1, vectors_path=None, max_vector_words=None):
    """A `WordTokenizer` over the words of `texts`, optionally with the words of a vectors file.

    1. The words of `texts` (`split_words`: lower-cased, GloVe-style) seen at least `min_count` times, most
       frequent first (ties alphabetical), at most `max_size` of them.
    2. With `vectors_path`, the file's first `max_vector_words` words (GloVe and word2vec files are sorted by
       frequency) that step 1 did not keep are added after them, so a model can read words that training
       never saw through their pretrained vectors.

    Args:
        texts: iterable of str.
        max_size: int, optional. The most words taken from `texts` (the special tokens not counted).
        min_count: int. Words seen fewer times are left out (they become `<unk>`).
        vectors_path: str, optional. A GloVe/word2vec file (see `tflm.text.read_vectors`).
        max_vector_words: int, optional. The most words taken from the vectors file (all when None: GloVe 6B
            has 400,000).
    Returns:
        A `WordTokenizer`; its size is `4 + (words kept) + (vector words added)`.
    Example:
    >>> tokenizer = train_words(["The cat sat.", "The dog sat."], min_count=2)
    >>> tokenizer.pieces[4:]
    ['.', 'sat', 'the']
    """
    if min_count < 1:
        raise ValueError(f"min_count={min_count}: a word must be seen at least once; use min_count=1 or more.")
    if max_size is not None and max_size < 0:
        raise ValueError(f"max_size={max_size} must be 0 or more (or None for every word).")
    counts = count_words(texts)
    ranked = sorted((item for item in counts.items() if item[1] >= min_count), key=lambda item: (-item[1], item[0]))
    words = [word for word, _ in ranked[:max_size]]
    added = 0
    if vectors_path is not None:
        known = set(words) | set(SPECIAL_TOKENS)
        for word in vector_file_words(vectors_path, limit=max_vector_words):
            if word not in known and word and not any(c.isspace() for c in word):
                words.append(word)
                known.add(word)
                added += 1
    tokenizer = WordTokenizer(list(SPECIAL_TOKENS) + words)
    logger.info("word vocabulary has %d words: %d of the %d distinct training words (min_count=%d, max_size=%s)%s.",
                tokenizer.vocabulary_size, len(words) - added, len(counts), min_count, max_size,
                f" and {added} from {vectors_path}" if vectors_path else "")
    return tokenizer


def train_tokenizer(texts, vocabulary_type="unigram", vocabulary_size=8000, seed=0, reserved=()):
    """Trains a tokenizer of `vocabulary_type` (one of `VOCABULARY_TYPES`) on `texts`.

    `reserved` (e.g. `("<mask>",)`) puts extra pieces at ids 4, 5, ... (WordPiece, unigram and BPE only).
    """
    if check_reserved(reserved) and vocabulary_type not in ("wordpiece", "unigram", "bpe"):
        raise ValueError(f"reserved={tuple(reserved)!r} needs a 'wordpiece', 'unigram' or 'bpe' vocabulary; "
                         f"{vocabulary_type!r} vocabularies cannot reserve pieces. Use one of those types.")
    if vocabulary_type == "character":
        return train_characters(texts)
    if vocabulary_type == "byte_bpe":
        return train_byte_level_bpe(texts, vocabulary_size)
    if vocabulary_type == "wordpiece":
        return train_wordpiece(texts, vocabulary_size, reserved=reserved)
    if vocabulary_type in ("unigram", "bpe"):
        return train_sentencepiece(texts, vocabulary_size, model_type=vocabulary_type, seed=seed, reserved=reserved)
    raise ValueError(
        f"vocabulary type {vocabulary_type!r} is not one of {', '.join(VOCABULARY_TYPES)}."
    )


def _log_size(tokenizer, requested, kind):
    if tokenizer.vocabulary_size < requested:
        logger.info(
            "%s vocabulary has %d pieces (asked for %d): the training text has no more to give.",
            kind, tokenizer.vocabulary_size, requested,
        )
    else:
        logger.info("%s vocabulary has %d pieces.", kind, tokenizer.vocabulary_size)
