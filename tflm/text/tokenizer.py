"""`Tokenizer`: the base class of tflm's in-graph tokenizers (strings to int32 ids and back with TensorFlow
ops only, so one object serves tf.data, `tf.function`s and exported SavedModels)."""

import tensorflow as tf

from tflm.text.special_tokens import BOS_ID, CLS_ID, EOS_ID, MASK_TOKEN, PAD_ID, SEP_ID, UNK_ID, strip_special


class Tokenizer(tf.Module):
    """Base class: `tokenize` strings to ids, `detokenize` ids to strings.

    Subclasses set `kind`, implement `_tokenize(text)` for a rank-1 string tensor and
    `_detokenize(ids)` for a ragged rank-2 id tensor already cleaned of special ids, and `save(path)`.
    """

    kind = None
    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID
    cls_id, sep_id = CLS_ID, SEP_ID  # BERT's [CLS] and [SEP] are `<s>` and `</s>`

    @property
    def mask_id(self):
        """The id of `<mask>` (BERT's [MASK]), or None when the vocabulary was trained without reserving it."""
        return self._piece_ids.get(MASK_TOKEN)

    @property
    def vocabulary_size(self):
        raise NotImplementedError

    def tokenize(self, text):
        """Tokenizes strings.

        Args:
            text: string tensor, a scalar or `(batch_size,)`.
        Returns:
            int32 ids: `(None,)` for a scalar, a ragged `(batch_size, None)` for a vector. No BOS/EOS added.
        """
        text = tf.convert_to_tensor(text, dtype=tf.string)
        if text.shape.rank == 0:
            return self._tokenize(tf.expand_dims(text, 0))[0]
        return self._tokenize(text)

    def tokenize_attached(self, words):
        """Tokenizes words that continue the text before them without whitespace (the "1990" of "(1990)"), as they
        would be tokenized inside that text; for a word read on its own (extractive QA splits its contexts into
        words). Default: as `tokenize`, right for tokenizers without a word-start marker.

        Args:
            words: string `(batch,)`, each one pre-token (no whitespace, no punctuation inside a word).
        Returns:
            A ragged int32 `(batch, None)`.
        """
        return self.tokenize(words)

    def detokenize(self, token_ids):
        """Turns ids back into text: stops at the first EOS, drops PAD and BOS.

        Args:
            token_ids: int `(length,)` or `(batch_size, length)`, dense or ragged.
        Returns:
            A string scalar or `(batch_size,)`.
        """
        if token_ids.shape.rank == 1:
            return self.detokenize(tf.expand_dims(token_ids, 0))[0]
        return self._detokenize(strip_special(token_ids))

    def id_to_token(self, token_ids):
        """Returns the piece string of each id (same shape as `token_ids`)."""
        return tf.gather(self._pieces, token_ids)

    def token_to_id(self, token):
        """Returns the id of a piece, or `unk_id` if the vocabulary lacks it (Python-side helper)."""
        return self._piece_ids.get(token, self.unk_id)

    @property
    def pieces(self):
        """The vocabulary as a list of Python strings, indexed by id."""
        return list(self._piece_list)

    def _set_pieces(self, pieces):
        self._piece_list = tuple(pieces)
        self._piece_ids = {piece: index for index, piece in enumerate(pieces)}
        self._pieces = tf.constant(list(pieces), dtype=tf.string)

    def save(self, path):
        raise NotImplementedError
