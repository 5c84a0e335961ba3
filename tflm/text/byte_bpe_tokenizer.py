"""`ByteLevelBPETokenizer`: GPT-2's byte-level BPE, run by keras-hub's `BytePairTokenizer`."""

import json

import tensorflow as tf

from tflm.text.special_tokens import SPECIAL_TOKENS
from tflm.text.tokenizer import Tokenizer


class ByteLevelBPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2's scheme), run by keras-hub's `BytePairTokenizer`: no unknown tokens, and
    detokenization gives the text back byte for byte.

    Args:
        vocabulary: dict piece -> id, with `<pad>`, `<unk>`, `<s>`, `</s>` as ids 0-3.
        merges: list of str, the merge rules (`"a b"`), in order.
    """

    kind = "byte_bpe"
    file_suffix = ".bpe.json"

    def __init__(self, vocabulary, merges, name=None):
        super().__init__(name=name)
        import keras_hub

        vocabulary, merges = dict(vocabulary), list(merges)
        by_id = sorted(vocabulary.items(), key=lambda item: item[1])
        pieces = [piece for piece, _ in by_id]
        if tuple(pieces[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS or [i for _, i in by_id] != list(range(len(by_id))):
            raise ValueError(f"A byte-level BPE vocabulary must number its pieces 0..n-1 with {list(SPECIAL_TOKENS)} "
                             "first; build it with `tflm vocab --type byte_bpe`.")
        self._set_pieces(pieces)
        # Kept as a JSON string: a dict attribute of a tf.Module would be wrapped for tracking.
        self._serialized = json.dumps({"vocabulary": vocabulary, "merges": merges}, ensure_ascii=False)
        # The TensorFlow path always (not keras-hub's eager Python path), so eager, graph and exported
        # tokenization are one and the same.
        self._tokenizer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=vocabulary, merges=merges, dtype="int32", _allow_python_workflow=False
        )

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return cls(data["vocabulary"], data["merges"])

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    # keras-hub returns Python lists when called eagerly; inside a tf.function it returns tensors.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def _tokenize(self, text):
        return tf.cast(self._tokenizer.tokenize(text), tf.int32)

    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32, row_splits_dtype=tf.int64)])
    def _detokenize_ragged(self, token_ids):
        return self._tokenizer.detokenize(token_ids)

    def _detokenize(self, token_ids):
        return self._detokenize_ragged(token_ids.with_row_splits_dtype(tf.int64))

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(self._serialized)
