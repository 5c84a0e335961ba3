"""`Tagger`: the predictor of a tagging run (sentences in, a label per word out, in the graph).

Signatures:
- `serving_default`: `text` (a sentence, words separated by spaces) -> `words` and `labels` (string), `scores`
  (the label's probability), each `(batch, words)` padded to the longest row, and `lengths` (the words of each
  row that were tagged: all of them, unless the sentence has more pieces than `data.max_length`);
- `tokenize`: `text` -> the token ids of the sentence as a whole.
"""

import tensorflow as tf

from tflm.tasks.predictor import Predictor, Signature, text_input, token_signatures
from tflm.tasks.tagging.data import dense, encode_sentences


class Tagger(Predictor):
    """A trained tagger with its tokenizer and labels.

    Args:
        model: a `tflm.models.TokenTagger`.
        tokenizer: the run's tokenizer.
        labels: list of str, in label-id order.
        max_length: the pieces of a sentence the model reads ([CLS] and [SEP] included), as in training.
    """

    def __init__(self, model, tokenizer, labels, max_length=128):
        super().__init__(model)
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self._labels = tf.constant(self.labels)

    def tokenizers(self):
        return {"tokenizer": self.tokenizer}

    def tag(self, text):
        """Words, labels, scores `(batch, words)` and `lengths` `(batch,)` for sentences `(batch,)`."""
        encoded = encode_sentences(self.tokenizer, text, self.max_length, with_words=True)
        words = encoded.pop("words")
        probabilities = tf.nn.softmax(self.model(dense(encoded), training=False), axis=-1)  # (batch, words, labels)
        lengths = tf.cast(encoded["word_starts"].row_lengths(), tf.int32)
        width = tf.shape(probabilities)[1]
        tagged = tf.sequence_mask(lengths, width)
        words = words.to_tensor("")
        words = tf.pad(words, [[0, 0], [0, tf.maximum(width - tf.shape(words)[1], 0)]], constant_values="")
        words = tf.where(tagged, words[:, :width], "")
        ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"words": words, "labels": tf.where(tagged, tf.gather(self._labels, ids), ""),
                "scores": tf.where(tagged, tf.reduce_max(probabilities, axis=-1), 0.0), "lengths": lengths}

    def signatures(self):
        outputs = {"words": "lengths", "labels": "lengths", "scores": "lengths"}
        return [Signature("serving_default", self.tag, text_input("text"), rows="text", row_name="sentence",
                          row_lengths=outputs),
                token_signatures(self.tokenizer, self.tokenizer)[0]]

    def predict_labels(self, sentences, batch_size=128):
        """`[[label]]` of sentences (str, words separated by spaces), traced once; a row has a label for each
        word tagged (`lengths`)."""
        if getattr(self, "_graph_tag", None) is None:
            self._graph_tag = tf.function(self.tag, input_signature=[tf.TensorSpec([None], tf.string)])
        result = []
        for start in range(0, len(sentences), batch_size):
            outputs = self._graph_tag(tf.constant(sentences[start:start + batch_size], tf.string))
            labels, lengths = outputs["labels"].numpy(), outputs["lengths"].numpy()
            result += [[label.decode("utf-8") for label in row[:length]] for row, length in zip(labels, lengths)]
        return result
