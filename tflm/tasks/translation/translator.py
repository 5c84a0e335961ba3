"""`Translator`: a translation model with its tokenizers and decoding settings, strings in and out in the
graph; what `tflm translate` runs and export saves (its signatures: `serving_default`, `translate`,
`tokenize`, `detokenize`, `score`)."""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from tflm.decoding.common import DecodeResult, lengths_of
from tflm.decoding.search import DecodingOptions, search, search_by_controls
from tflm.tasks.predictor import Predictor, Signature, control_inputs, text_input, token_signatures
from tflm.text.special_tokens import BOS_ID, EOS_ID, PAD_ID
from tflm.training.profiling import tick

logger = logging.getLogger("tflm")

CONTROLS = ("beam_size", "num_hypotheses", "max_length", "length_penalty", "temperature", "top_k", "top_p", "seed")

# The signatures' interfaces, declared once without a model: the `Translator` gives them its functions (and its
# vocabulary's size), the CTranslate2 engine (`tflm.engines.ctranslate2`) its own, with the same declaration.
SERVING_DEFAULT = Signature("serving_default", None, text_input("text"), rows="text", row_name="sentence")
TRANSLATE = Signature("translate", None, {**text_input("text"), **control_inputs(*CONTROLS)}, rows="text",
                      row_name="sentence", length="max_length", warmup=True)
SCORE = Signature("score", None, {**text_input("source"), **text_input("target")})


class Translator(Predictor):
    """A model with its tokenizers and decoding settings: strings in, strings out, all in the graph.

    `translate_batch` is a `tf.function` over a string vector; it is what `tflm translate` runs and what
    export saves. Its variables are tracked explicitly (see `ModelVariables`).

    Args:
        model: a `Seq2Seq` model.
        source_tokenizer, target_tokenizer: `tflm.text.Tokenizer`s.
        decoding: a `DecodingOptions`.
        max_source_length: int. Longer inputs are truncated (EOS included).
    Example:
    >>> translator = Translator.from_run_dir("runs/quickstart")
    >>> translator.translate(["I love you."])
    ['Te quiero.']
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, decoding=None, max_source_length=256):
        super().__init__(model, decoding or DecodingOptions())
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_source_length = max_source_length

    @classmethod
    def from_run_dir(cls, run_dir, checkpoint="best", decoding=None):
        """Loads a trained run: its configuration, vocabularies and a checkpoint (`"best"`, `"last"`, or a path)."""
        from tflm.tasks import get_task

        return get_task("translation").load_predictor(run_dir, checkpoint, decoding=decoding)

    def tokenizers(self):
        return {"source": self.source_tokenizer, "target": self.target_tokenizer}

    def signatures(self):
        return [
            dataclasses.replace(SERVING_DEFAULT, function=self.translate_batch),
            dataclasses.replace(TRANSLATE, function=self._translate_signature,
                                vocabulary_size=self.target_tokenizer.vocabulary_size),
            *token_signatures(self.source_tokenizer, self.target_tokenizer),
            dataclasses.replace(SCORE, function=self.score_batch),
        ]

    def _translate_signature(self, text, **controls):
        outputs, scores = self.decode_with_controls(text, **controls)
        return {"outputs": outputs, "scores": scores}

    def predict(self, inputs):
        return self.translate(list(inputs))

    def encode_source(self, text):
        """Source ids `(batch, length)`: pieces (truncated) then EOS, PAD-padded."""
        pieces = self.source_tokenizer.tokenize(text)[:, : self.max_source_length - 1]
        eos = tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], EOS_ID))
        return tf.concat([pieces, eos], axis=1).to_tensor(PAD_ID)

    def decode_ids(self, source_ids, **overrides):
        """Decodes padded source ids with the translator's options; returns a `DecodeResult`.

        `overrides` replace decoding options with tensors (see `tflm.decoding.search`).
        """
        batch_size = tf.shape(source_ids)[0]
        source_lengths = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD_ID), tf.int32), axis=1)
        max_length = overrides.pop("max_length", self.buffer_length(source_lengths))
        with self.compute_weights():
            state = self.model.initial_state(self.model.encode(source_ids), max_length)
            return search(self.model.decode_step, state, batch_size, self.decoding, source_lengths,
                          max_length=max_length, **overrides)

    def buffer_length(self, source_lengths):
        """The decoding buffers' length for a batch: the absolute limit, or less when the relative limit
        (`max_length_a * source + b`) of the batch's longest source is smaller. Caches and the attention over
        them scale with it, so short sentences decode fast."""
        options = self.decoding
        if not options.max_length_a:
            return options.max_length
        relative = tf.cast(tf.math.ceil(options.max_length_a * tf.cast(tf.reduce_max(source_lengths), tf.float32)),
                           tf.int32) + int(options.max_length_b or 0)
        return tf.clip_by_value(relative, 1, options.max_length)

    def _texts(self, text, result):
        """Detokenized hypotheses `(batch, n)`; an empty input gives empty outputs with score 0."""
        n = tf.shape(result.token_ids)[1]
        flat = tf.reshape(result.token_ids, [-1, tf.shape(result.token_ids)[2]])
        outputs = tf.reshape(self.target_tokenizer.detokenize(flat), [-1, n])
        empty = tf.equal(tf.strings.length(tf.strings.strip(text)), 0)[:, tf.newaxis]
        return tf.where(empty, "", outputs), tf.where(empty, 0.0, result.scores)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate_batch(self, text):
        """string `(batch,)` -> `{"outputs": string (batch,), "scores": float32 (batch,)}`: the best hypothesis."""
        outputs, scores = self._texts(text, self.decode_ids(self.encode_source(text)))
        return {"outputs": outputs[:, 0], "scores": scores[:, 0]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate_batch_n_best(self, text):
        """string `(batch,)` -> `{"outputs": string (batch, n), "scores": float32 (batch, n)}`, best first."""
        outputs, scores = self._texts(text, self.decode_ids(self.encode_source(text)))
        return {"outputs": outputs, "scores": scores}

    def attention(self, sentence):
        """Translates one sentence and returns the model's cross-attention over it.

        Returns:
            `(weights, source_pieces, target_pieces, translation)`: float array `(target, source)` (the
            row of each produced piece, EOS included, over the source pieces and EOS), the piece strings
            and the detokenized translation.
        """
        source_ids = self.encode_source(tf.constant([sentence]))
        result = self.decode_ids(source_ids)
        length = int(result.lengths[0, 0])
        hypothesis = result.token_ids[0, 0, :length]
        decoder_inputs = tf.concat([[BOS_ID], hypothesis[:-1]], axis=0)[tf.newaxis]
        weights = np.asarray(self.model.cross_attention(source_ids, decoder_inputs))[0]
        pieces = lambda tokenizer, ids: [p.decode("utf-8") for p in np.asarray(tokenizer.id_to_token(ids))]  # noqa
        translation = np.asarray(self.target_tokenizer.detokenize(hypothesis[tf.newaxis]))[0].decode("utf-8")
        return weights, pieces(self.source_tokenizer, source_ids[0]), pieces(self.target_tokenizer, hypothesis), \
            translation

    def decode_with_controls(self, text, beam_size, num_hypotheses, max_length, length_penalty, temperature,
                             top_k, top_p, seed, **constraints):
        """Decodes with per-request settings (scalar tensors), as the exported `translate` signature does.

        Sampling when `temperature > 0` (`num_hypotheses` samples, `top_k`/`top_p`/`seed`), else beam search
        when `beam_size > 1` (the best `min(num_hypotheses, beam_size)`), else greedy (one hypothesis).
        `constraints` (e.g. `min_length`, `no_repeat_ngram_size` tensors) apply to every strategy.

        Returns:
            `(outputs, scores)`: string `(batch, n)` and float32 `(batch, n)`, best first.
        """
        source_ids = self.encode_source(text)
        batch_size = tf.shape(source_ids)[0]
        source_lengths = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD_ID), tf.int32), axis=1)
        max_length = tf.clip_by_value(tf.minimum(tf.cast(max_length, tf.int32), self.buffer_length(source_lengths)),
                                      1, self.max_target_positions())
        with self.compute_weights():
            state = self.model.initial_state(self.model.encode(source_ids), max_length)

            def run(strategy, **settings):
                result = search(self.model.decode_step, state, batch_size, self.decoding, source_lengths,
                                strategy=strategy, max_length=max_length, **constraints, **settings)
                return result.token_ids, result.scores

            token_ids, scores = search_by_controls(run, beam_size, num_hypotheses, length_penalty, temperature,
                                                   top_k, top_p, seed)
        return self._texts(text, DecodeResult(token_ids, lengths_of(token_ids), scores))

    def max_target_positions(self):
        """The longest output the model can produce (learned positions have a fixed table)."""
        if getattr(self.model, "position_embedding", None) == "learned":
            return int(self.model.max_sequence_length)
        return 100_000

    def score_batch(self, source, target):
        """The model's log-probability of each target given its source (EOS included).

        Returns:
            `{"log_prob": float32 (batch,), "tokens": int32 (batch,)}`.
        """
        source_ids = self.encode_source(source)
        pieces = self.target_tokenizer.tokenize(target)[:, : self.max_target_positions() - 1]
        eos = tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], EOS_ID))
        bos = tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], BOS_ID))
        labels = tf.concat([pieces, eos], axis=1).to_tensor(PAD_ID)
        inputs = tf.concat([bos, pieces], axis=1).to_tensor(PAD_ID)
        logits = self.model({"source_ids": source_ids, "target_ids": inputs})
        log_probs = tf.gather(tf.nn.log_softmax(tf.cast(logits, tf.float32)), labels, batch_dims=2)
        mask = tf.not_equal(labels, PAD_ID)
        return {"log_prob": tf.reduce_sum(tf.where(mask, log_probs, 0.0), axis=1),
                "tokens": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)}

    def _batches(self, sentences, batch_size, function):
        """Runs `function` over batches of sentences of similar length; yields (indices, result)."""
        batch_size = batch_size or self.decoding.batch_size
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start: start + batch_size]
            yield chunk, tick(function, tf.constant([sentences[i] for i in chunk], dtype=tf.string))

    def translate(self, sentences, batch_size=None):
        """Translates a list of str (any size) to a list of str; order is kept."""
        outputs = [None] * len(sentences)
        for chunk, result in self._batches(sentences, batch_size, self.translate_batch):
            for i, text in zip(chunk, np.asarray(result["outputs"])):
                outputs[i] = text.decode("utf-8")
        return outputs

    def translate_n_best(self, sentences, batch_size=None):
        """Translates a list of str to, per sentence, a list of `(translation, score)`, best first."""
        outputs = [None] * len(sentences)
        for chunk, result in self._batches(sentences, batch_size, self.translate_batch_n_best):
            for i, texts, scores in zip(chunk, np.asarray(result["outputs"]), np.asarray(result["scores"])):
                outputs[i] = [(t.decode("utf-8"), float(s)) for t, s in zip(texts, scores)]
        return outputs
