"""`Classifier`: the predictor of a classification run (texts in, labels and probabilities out, in the graph).

Signatures:
- `serving_default`: `text` (or `text_a`, `text_b` for a pair) -> `label` (the most probable), `probability`
  (its probability), and every class sorted by probability: `classes` (string) and `scores` (float),
  `(batch, classes)`;
- `classify`: TF Serving's Classify API (REST `:classify`, gRPC `Classify`): `inputs`, serialized `tf.Example`s
  whose string features are named as the text fields, -> `classes` and `scores` as above;
- `tokenize`: `text` -> the token ids the model reads.
"""

import tensorflow as tf

from tflm.tasks.classification.data import dense, encode_texts
from tflm.tasks.predictor import (
    CLASSIFY_METHOD,
    Predictor,
    Signature,
    example_input,
    parse_example_texts,
    text_input,
    token_signatures,
)


class Classifier(Predictor):
    """A trained classifier with its tokenizer and labels.

    Args:
        model: a `tflm.models.TextClassifier`.
        tokenizer: the run's tokenizer.
        labels: list of str, in class-id order.
        text_fields: the text inputs: `("text",)` or `("text_a", "text_b")`.
        max_length: the tokens of each text the model reads (as in training).
    """

    def __init__(self, model, tokenizer, labels, text_fields=("text",), max_length=128):
        super().__init__(model)
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.text_fields = tuple(text_fields)
        self.max_length = max_length
        self._labels = tf.constant(self.labels)

    def tokenizers(self):
        return {"tokenizer": self.tokenizer}

    def probabilities(self, *texts):
        """float32 `(batch, classes)` for string tensors `(batch,)` (one per text field)."""
        inputs = dense(encode_texts(self.tokenizer, list(texts), self.model.pair_mode, self.max_length,
                                    self.model.reads_token_ids))
        return tf.nn.softmax(self.model(inputs, training=False), axis=-1)

    def _ranked(self, probabilities):
        scores, ids = tf.math.top_k(probabilities, k=len(self.labels))
        return {"classes": tf.gather(self._labels, ids), "scores": scores}

    def classify_texts(self, **texts):
        probabilities = self.probabilities(*(texts[field] for field in self.text_fields))
        ranked = self._ranked(probabilities)
        return {"label": ranked["classes"][:, 0], "probability": ranked["scores"][:, 0], **ranked}

    def classify_examples(self, inputs):
        texts = parse_example_texts(inputs, self.text_fields)
        return self._ranked(self.probabilities(*(texts[field] for field in self.text_fields)))

    def count_tokens(self, text):
        return self.tokenizer.tokenize(text).row_lengths()

    def signatures(self):
        fields = self.text_fields
        rows = fields if len(fields) > 1 else fields[0]
        row_name = "sentence pair" if len(fields) > 1 else "text"
        return [
            Signature("serving_default", self.classify_texts, text_input(*fields), rows=rows, row_name=row_name),
            Signature("classify", self.classify_examples, example_input(), rows="inputs", row_name="example",
                      method_name=CLASSIFY_METHOD, example_features=fields),
            token_signatures(self.tokenizer, self.tokenizer)[0],
        ]

    def predict_proba(self, rows, batch_size=256):
        """Probabilities `(len(rows), classes)` (NumPy) of rows (str, or dicts naming the text fields)."""
        import numpy as np

        signature = self.signatures()[0]
        if getattr(self, "_graph_probabilities", None) is None:  # (traced once per text shape: a batch of strings)
            specs = [tf.TensorSpec([None], tf.string)] * len(self.text_fields)
            self._graph_probabilities = tf.function(self.probabilities, input_signature=specs)
        function = self._graph_probabilities
        parts = []
        for start in range(0, len(rows), batch_size):
            columns = signature.columns(rows[start:start + batch_size])
            parts.append(function(*(tf.constant(columns[field], tf.string) for field in self.text_fields)).numpy())
        return np.concatenate(parts) if parts else np.zeros([0, len(self.labels)], "float32")
