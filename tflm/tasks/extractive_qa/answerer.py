"""`Answerer`: the predictor of an extractive-QA run (a question and a context in, the answer's text, its
character offsets in the context and its score out, in the graph).

Signatures:
- `serving_default`: `question`, `context` -> `answer` (the context's own characters), `start`, `end`
  (character offsets: `context[start:end] == answer`; -1 and -1 with "" when the model says the context has no
  answer, SQuAD v2.0), `score` (the span's start + end logits, or the no-answer score);
- `tokenize`: `text` -> token ids.
"""

import tensorflow as tf

from tflm.data.qa_windows import decode_answers
from tflm.tasks.extractive_qa.data import MODEL_INPUTS, features
from tflm.tasks.predictor import Predictor, Signature, text_input, token_signatures


class Answerer(Predictor):
    """A trained span extractor with its tokenizer and packing settings.

    Args:
        model: a `tflm.models.SpanExtractor`.
        tokenizer: the run's tokenizer.
        config: the run's configuration (its `data` section: windows, answer length, no-answer threshold).
        no_answer: whether "" is an answer (a model trained on SQuAD v2.0-style data).
    """

    def __init__(self, model, tokenizer, config, no_answer=False):
        super().__init__(model)
        self.tokenizer = tokenizer
        self.config = config
        self.no_answer = bool(no_answer)

    def tokenizers(self):
        return {"tokenizer": self.tokenizer}

    def answer(self, question, context):
        found = features(self.config, self.tokenizer, question, context)
        inputs = {name: found[name] for name in MODEL_INPUTS}
        length = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(tf.cast(inputs["padding_mask"], tf.bool), tf.int32),
                                                        axis=1)), 1)
        logits = self.model({name: value[:, :length] for name, value in inputs.items()}, training=False)
        width = tf.shape(inputs["token_ids"])[1]  # (the decoder reads the windows at their full width)
        pad = [[0, 0], [0, width - length]]
        data = self.config.data
        return decode_answers(tf.pad(logits["start_logits"], pad, constant_values=-1e9),
                              tf.pad(logits["end_logits"], pad, constant_values=-1e9), found, context,
                              max_answer_length=data.max_answer_length, allow_no_answer=self.no_answer,
                              null_threshold=data.null_threshold)

    def signatures(self):
        return [Signature("serving_default", self.answer, text_input("question", "context"),
                          rows=("question", "context"), row_name="question"),
                token_signatures(self.tokenizer, self.tokenizer)[0]]

    def predict_answers(self, questions, contexts, batch_size=32):
        """`[{"answer", "start", "end", "score"}]` of (question, context) pairs, traced once."""
        if getattr(self, "_graph_answer", None) is None:
            spec = tf.TensorSpec([None], tf.string)
            self._graph_answer = tf.function(self.answer, input_signature=[spec, spec])
        result = []
        for first in range(0, len(questions), batch_size):
            outputs = self._graph_answer(tf.constant(questions[first:first + batch_size], tf.string),
                                         tf.constant(contexts[first:first + batch_size], tf.string))
            outputs = {key: value.numpy() for key, value in outputs.items()}
            for index in range(len(outputs["answer"])):
                result.append({"answer": outputs["answer"][index].decode("utf-8"),
                               "start": int(outputs["start"][index]), "end": int(outputs["end"][index]),
                               "score": float(outputs["score"][index])})
        return result
