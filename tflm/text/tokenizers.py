"""The tokenizer kinds and how a saved one is loaded.

Every tokenizer (`tflm.text.tokenizer.Tokenizer`) maps a string tensor to int32 ids and back with TensorFlow
and tensorflow-text ops only (no Python per example), so the same object serves the training pipeline,
in-graph decoding and TF Serving. The special ids are fixed for every kind (`tflm.text.special_tokens`).

| kind | class | file |
|------|-------|------|
| `sentencepiece` | `SentencePieceTokenizer` (unigram or BPE) | `.model` |
| `wordpiece` | `WordPieceTokenizer` (reversible pre-tokens) | `.vocab` |
| `character` | `CharacterTokenizer` | `.chars` |
| `byte_bpe` | `ByteLevelBPETokenizer` (GPT-2's byte-level BPE) | `.bpe.json` |
| `word` | `WordTokenizer` (lower-cased GloVe-style words, for pretrained word vectors) | `.words` |
| `hub` | `HubTokenizer` (a keras-hub / Hugging Face folder's own tokenizer; its own special ids) | `.hub` (a folder) |
"""

import os

from tflm.text.byte_bpe_tokenizer import ByteLevelBPETokenizer
from tflm.text.character_tokenizer import CharacterTokenizer
from tflm.text.hub_tokenizer import HubTokenizer
from tflm.text.sentencepiece_tokenizer import SentencePieceTokenizer
from tflm.text.word_tokenizer import WordTokenizer
from tflm.text.wordpiece_tokenizer import WordPieceTokenizer

TOKENIZER_KINDS = {
    "sentencepiece": SentencePieceTokenizer,
    "wordpiece": WordPieceTokenizer,
    "character": CharacterTokenizer,
    "byte_bpe": ByteLevelBPETokenizer,
    "word": WordTokenizer,
    "hub": HubTokenizer,
}


def load_tokenizer(path):
    """Loads a tokenizer saved by `Tokenizer.save`, choosing the kind by the file suffix."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such vocabulary file. Build one with `tflm vocab`.")
    for cls in TOKENIZER_KINDS.values():
        if path.endswith(cls.file_suffix):
            return cls.from_file(path)
    raise ValueError(
        f"{path}: unknown vocabulary file type; expected a SentencePiece '.model', a WordPiece '.vocab', a "
        "character '.chars', a byte-level BPE '.bpe.json', a word '.words' file or a keras-hub '.hub' folder."
    )
