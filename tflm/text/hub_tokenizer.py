"""`HubTokenizer`: a keras-hub tokenizer (BERT's WordPiece, RoBERTa's byte-level BPE, ALBERT's SentencePiece,
...) behind tflm's `Tokenizer` interface, so a run that starts from a keras-hub or Hugging Face folder
(`tflm.models.hub.load_hub_encoder`) tokenizes with the folder's own vocabulary and special ids.

keras-hub's tokenizers run TensorFlow / tensorflow-text ops inside a `tf.function` (and plain Python when
eager); `tokenize` here always runs the graph path, so the ids are the same in tf.data, in eager code and in
an exported SavedModel, which has no py_function.

Saved form (`save(path)`, `file_suffix` ".hub"): `path` is a folder holding keras-hub's own serialization of
the tokenizer, `tokenizer.json` (its class and settings) and `assets/tokenizer/` (its vocabulary files), as
keras-hub's `save_to_preset` writes them. `HubTokenizer.from_directory(path)` reads that folder back, or a
keras-hub preset folder, or a Hugging Face folder keras-hub converts.
"""

import json
import os

import tensorflow as tf

from tflm.text.tokenizer import Tokenizer

TOKENIZER_FILE = "tokenizer.json"  # keras-hub's file name for a serialized tokenizer (TOKENIZER_CONFIG_FILE)
_SPECIAL = {  # tflm's name -> the keras-hub tokenizer attributes (`<name>_token`) that can give it, in order
    "cls": ("cls_token", "start_token"),
    "sep": ("sep_token", "end_token"),
    "pad": ("pad_token",),
    "mask": ("mask_token",),
    "unk": ("unk_token", "oov_token"),
}
_UNK_PIECES = ("[UNK]", "<unk>")


class HubTokenizer(Tokenizer):
    """A keras-hub `Tokenizer` behind tflm's tokenizer interface.

    `tokenize` gives the ids the keras-hub tokenizer gives, without any special token (packing `[CLS] a [SEP]`
    is the model's job, with `cls_id` and `sep_id`). `detokenize` drops the special ids and asks keras-hub to
    join the pieces.

    Args:
        tokenizer: a `keras_hub.tokenizers.Tokenizer` with its vocabulary set (e.g. from
            `keras_hub.models.Tokenizer.from_preset(directory)`).
    Raises:
        ValueError: the tokenizer has no vocabulary, or no `[CLS]`/`[SEP]`-like special tokens.
    """

    kind = "hub"
    file_suffix = ".hub"

    def __init__(self, tokenizer, name=None):
        super().__init__(name=name)
        vocabulary = tokenizer.get_vocabulary() if hasattr(tokenizer, "get_vocabulary") else None
        if not vocabulary:
            raise ValueError(f"{type(tokenizer).__name__} has no vocabulary; load it with "
                             "keras_hub.models.Tokenizer.from_preset(directory).")
        self.hub = tokenizer
        self._set_pieces([str(piece) for piece in vocabulary])
        ids = {name: self._special_id(attributes) for name, attributes in _SPECIAL.items()}
        missing = [name for name in ("cls", "sep") if ids[name] is None]
        if missing:
            raise ValueError(f"{type(tokenizer).__name__} has no {' or '.join(missing)} token (looked for "
                             f"{[a for name in missing for a in _SPECIAL[name]]}); tflm packs `[CLS] a [SEP]` "
                             "with them. Use the tokenizer of a BERT-family encoder.")
        self._cls_id, self._sep_id = ids["cls"], ids["sep"]
        self._pad_id = ids["pad"] if ids["pad"] is not None else 0
        self._mask_id = ids["mask"]
        self.unk_id = ids["unk"]
        self.bos_id, self.eos_id = self._cls_id, self._sep_id
        # detokenize drops these (an unknown piece and [MASK] stay visible, as tflm's other tokenizers keep <unk>)
        self._special_ids = tf.constant(sorted({self.cls_id, self.sep_id, self.pad_id}), tf.int32)
        # keras-hub runs Python when eager; this function always runs its TensorFlow path.
        self._graph_tokenize = tf.function(lambda text: tf.cast(tokenizer.tokenize(text), tf.int32),
                                           input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        self._graph_detokenize = tf.function(lambda ids: tokenizer.detokenize(ids), autograph=False,
                                             input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])

    def _special_id(self, attributes):
        for attribute in attributes:
            token = getattr(self.hub, attribute, None)
            if isinstance(token, str) and token in self._piece_ids:
                return self._piece_ids[token]
        if attributes == _SPECIAL["unk"]:
            return next((self._piece_ids[piece] for piece in _UNK_PIECES if piece in self._piece_ids), None)
        return None

    @classmethod
    def from_directory(cls, path):
        """Loads the tokenizer of a folder: one `save` wrote (`tokenizer.json` of keras-hub and its assets),
        a keras-hub preset folder, or a Hugging Face folder keras-hub converts.

        Args:
            path: the folder.
        Returns:
            A `HubTokenizer`.
        Raises:
            FileNotFoundError: the folder does not exist or has neither tokenizer.json nor config.json.
        """
        import keras
        import keras_hub

        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path}: no such tokenizer folder. It is written by HubTokenizer.save "
                                    "(a run keeps it as vocab/tokenizer.hub).")
        config_path = os.path.join(path, TOKENIZER_FILE)
        config = None
        if os.path.exists(config_path):
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        if isinstance(config, dict) and "class_name" in config and "module" in config:  # keras-hub's own file
            tokenizer = keras.saving.deserialize_keras_object(config)
            tokenizer.load_preset_assets(path)
            return cls(tokenizer)
        if os.path.exists(os.path.join(path, "config.json")):  # a preset or Hugging Face folder
            return cls(keras_hub.models.Tokenizer.from_preset(path))
        raise FileNotFoundError(
            f"{path}: found {sorted(os.listdir(path)) or 'nothing'}, but no keras-hub tokenizer.json (with "
            "class_name) and no config.json. Give the folder HubTokenizer.save wrote, a keras-hub preset "
            "folder or a Hugging Face model folder.")

    from_file = from_directory  # `tflm.text.load_tokenizer` loads every kind with `from_file(path)`

    @property
    def vocabulary_size(self):
        return len(self._piece_list)

    # The folder's own special ids (the base class gives tflm's: <s>, </s>, <pad>, <mask> by name).
    cls_id = property(lambda self: self._cls_id)
    sep_id = property(lambda self: self._sep_id)
    pad_id = property(lambda self: self._pad_id)
    mask_id = property(lambda self: self._mask_id)

    def token_to_id(self, token):
        """Returns the id of a piece, or `unk_id` if the vocabulary lacks it (Python-side helper)."""
        return self._piece_ids.get(token, self.unk_id)

    def _tokenize(self, text):
        if tf.executing_eagerly():
            return self._graph_tokenize(text)
        return tf.cast(self.hub.tokenize(text), tf.int32)

    def detokenize(self, token_ids):
        """Turns ids back into text with keras-hub's detokenizer, after dropping `[CLS]`, `[SEP]` and `[PAD]`
        (`[UNK]` and `[MASK]` stay).

        Args:
            token_ids: int `(length,)` or `(batch_size, length)`, dense or ragged.
        Returns:
            A string scalar or `(batch_size,)`.
        """
        if token_ids.shape.rank == 1:
            return self.detokenize(tf.expand_dims(token_ids, 0))[0]
        if not isinstance(token_ids, tf.RaggedTensor):
            token_ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(token_ids))
        token_ids = tf.cast(token_ids, tf.int32)
        special = tf.reduce_any(tf.equal(tf.expand_dims(token_ids.flat_values, -1), self._special_ids), axis=-1)
        kept = tf.ragged.boolean_mask(token_ids, token_ids.with_flat_values(tf.logical_not(special)))
        text = self._graph_detokenize(kept) if tf.executing_eagerly() else self.hub.detokenize(kept)
        return tf.strings.strip(text)

    def save(self, path):
        """Writes the tokenizer as a folder `path` (keras-hub's `tokenizer.json` and `assets/tokenizer/`),
        enough for `from_directory(path)` to rebuild it without the original folder."""
        import keras

        os.makedirs(os.path.join(path, "assets"), exist_ok=True)
        config = keras.saving.serialize_keras_object(self.hub)
        with open(os.path.join(path, TOKENIZER_FILE), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        asset_dir = os.path.join(path, "assets", getattr(self.hub, "config_file", TOKENIZER_FILE).split(".")[0])
        os.makedirs(asset_dir, exist_ok=True)
        self.hub.save_assets(asset_dir)
