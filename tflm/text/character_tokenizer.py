"""`CharacterTokenizer`: one id per Unicode character (character-level language models)."""

import json

import tensorflow as tf

from tflm.text.special_tokens import SPECIAL_TOKENS, UNK_ID
from tflm.text.tokenizer import Tokenizer


class CharacterTokenizer(Tokenizer):
    """One id per Unicode character (character-level language models).

    The vocabulary is the special tokens followed by the characters of the training text; an unseen
    character maps to `<unk>`. Detokenization concatenates the characters, so it returns the text exactly
    (whitespace and newlines included).

    Args:
        characters: list of str, one character each (without the special tokens).
    Example:
    >>> tokenizer = CharacterTokenizer(sorted(set("hello world")))
    >>> tokenizer.detokenize(tokenizer.tokenize(["hello"]))
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'hello'], dtype=object)>
    """

    kind = "character"
    file_suffix = ".chars"

    def __init__(self, characters, name=None):
        super().__init__(name=name)
        characters = list(characters)
        if any(len(c) != 1 for c in characters) or len(set(characters)) != len(characters):
            raise ValueError("A CharacterTokenizer needs distinct single characters.")
        self._set_pieces(list(SPECIAL_TOKENS) + characters)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(characters, dtype=tf.string),
                                                tf.range(len(SPECIAL_TOKENS), len(self._piece_list), dtype=tf.int32)),
            default_value=UNK_ID,
        )

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f)["characters"])

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    def _tokenize(self, text):
        characters = tf.strings.unicode_split(text, "UTF-8")
        return tf.ragged.map_flat_values(self._table.lookup, characters)

    def _detokenize(self, token_ids):
        return tf.strings.reduce_join(tf.gather(self._pieces, token_ids), axis=-1)

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"characters": list(self._piece_list[len(SPECIAL_TOKENS):])}, f, ensure_ascii=False)
