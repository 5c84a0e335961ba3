"""`SentencePieceTokenizer`: a SentencePiece model (unigram or BPE), run by
`tensorflow_text.SentencepieceTokenizer`. Detokenization is exact up to SentencePiece's normalization."""

import hashlib

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops import sentencepiece_tokenizer as _tf_text_sentencepiece

from tflm.text.special_tokens import SPECIAL_TOKENS
from tflm.text.tokenizer import Tokenizer


class _SharedSentencepieceResource(_tf_text_sentencepiece._SentencepieceModelResource):
    """tensorflow-text's SentencePiece model resource, made shared instead of kernel-owned.

    tensorflow-text creates the model resource with an empty `shared_name`, which makes it private to the
    op kernel that created it: when TensorFlow clears its kernel cache (as `tf.random.set_seed` and
    `keras.utils.set_random_seed` do), the resource is deleted and every later tokenization fails with
    "Resource ... SentencepieceResource does not exist" (tensorflow-text's own TODO b/318839908). A
    `shared_name` derived from the model's content keeps it in the resource manager instead; identical
    models share one resource. It is the same op, so exported graphs need nothing new.
    """

    def _create_resource(self):
        shared_name = "tflm_sentencepiece_" + hashlib.sha256(self._model).hexdigest()[:24]
        with tf.name_scope(self._name or "SentenceTokenizerInitializer"):
            return _tf_text_sentencepiece.gen_sentencepiece_tokenizer.sentencepiece_op(
                model=self._model, shared_name=shared_name
            )


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model (unigram or BPE) run by tensorflow-text.

    Args:
        model_proto: bytes. A serialized SentencePiece `ModelProto` whose ids 0-3 are
            `<pad>`, `<unk>`, `<s>`, `</s>` (as `train_sentencepiece` makes them).
    Example:
    >>> tokenizer = SentencePieceTokenizer.from_file("run/vocab/source.model")
    >>> ids = tokenizer.tokenize(["Hello, world."])
    >>> tokenizer.detokenize(ids)
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'Hello, world.'], dtype=object)>
    """

    kind = "sentencepiece"
    file_suffix = ".model"

    def __init__(self, model_proto, name=None):
        super().__init__(name=name)
        self.model_proto = bytes(model_proto)
        self._tokenizer = tf_text.SentencepieceTokenizer(model=self.model_proto, out_type=tf.int32)
        self._tokenizer._model_resource = _SharedSentencepieceResource(self.model_proto, None)
        pieces = self._pieces_from_proto(self.model_proto)
        if tuple(pieces[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"This SentencePiece model has {pieces[:4]} as ids 0-3, but tflm needs {list(SPECIAL_TOKENS)}. "
                "Train it with `tflm vocab` (or sentencepiece with pad_id=0 unk_id=1 bos_id=2 eos_id=3)."
            )
        self._set_pieces(pieces)

    @staticmethod
    def _pieces_from_proto(model_proto):
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]

    @classmethod
    def from_file(cls, path):
        with open(path, "rb") as f:
            return cls(f.read())

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    def _tokenize(self, text):
        return self._tokenizer.tokenize(text)

    def tokenize_with_offsets(self, text):
        """`(ids, starts, ends)`: ragged piece ids and each piece's byte offsets in its text (tensorflow-text's
        own offsets; `tflm.text.align_pieces` builds on them)."""
        return self._tokenizer.tokenize_with_offsets(text)

    def _detokenize(self, token_ids):
        return self._tokenizer.detokenize(token_ids)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.model_proto)
