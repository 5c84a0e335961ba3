"""Text: subword tokenizers (in-graph) and their trainers."""

from tflm.text.alignment import align_pieces, tokenize_words_with_offsets
from tflm.text.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    ByteLevelBPETokenizer,
    CharacterTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    pretokenize_words,
    strip_special,
)
from tflm.text.vocab import (
    VOCABULARY_TYPES,
    train_byte_level_bpe,
    train_characters,
    train_sentencepiece,
    train_tokenizer,
    train_wordpiece,
)
