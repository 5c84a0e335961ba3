"""Text: in-graph tokenizers (subword, character, word) and their trainers; pretrained word vectors."""

from tflm.text.alignment import align_pieces, tokenize_words_with_offsets
from tflm.text.byte_bpe_tokenizer import ByteLevelBPETokenizer
from tflm.text.character_tokenizer import CharacterTokenizer
from tflm.text.sentencepiece_tokenizer import SentencePieceTokenizer
from tflm.text.special_tokens import (
    BOS_ID,
    CLS_ID,
    EOS_ID,
    MASK_TOKEN,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    strip_special,
)
from tflm.text.tokenizer import Tokenizer
from tflm.text.tokenizers import TOKENIZER_KINDS, load_tokenizer
from tflm.text.word_tokenizer import ABBREVIATIONS, WordTokenizer, count_words, split_words
from tflm.text.word_vectors import (
    VectorCoverage,
    VectorFileError,
    is_binary_vectors,
    load_vectors,
    read_vectors,
    vector_file_words,
)
from tflm.text.wordpiece_tokenizer import WordPieceTokenizer, pretokenize_words
from tflm.text.vocab import (
    VOCABULARY_TYPES,
    train_byte_level_bpe,
    train_characters,
    train_sentencepiece,
    train_tokenizer,
    train_wordpiece,
    train_words,
)
