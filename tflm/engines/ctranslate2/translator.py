"""`CTranslate2Translator`: a CTranslate2 encoder-decoder export (translation or summarization) decoding
sentences (or documents) as tflm's `Translator` (`Summarizer`) does, and answering their serving signatures
(`serving_default`, `translate` or `summarize`, `tokenize`, `detokenize`, `score`) from the same declarations.

How it decodes (lengths, strategies, scores): `tflm.engines.ctranslate2.search`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tflm.engines.ctranslate2.engine import Engine
from tflm.engines.ctranslate2.search import Hypothesis, Search, rank, row_limits
from tflm.engines.ctranslate2.signatures import (
    common_outputs,
    decoded_outputs,
    numpy_token_signatures,
    output_specs,
    scalar,
    string_array,
    strings,
)
from tflm.tasks.summarization.summarizer import SERVING_DEFAULT as SUMMARIZE_DEFAULT
from tflm.tasks.summarization.summarizer import SUMMARIZE
from tflm.tasks.translation.translator import SCORE, TRANSLATE
from tflm.tasks.translation.translator import SERVING_DEFAULT as TRANSLATE_DEFAULT
from tflm.text.special_tokens import BOS_ID, EOS_ID, PAD_ID

_ASCII_SPACE = " \t\n\v\f\r"  # what tf.strings.strip strips: a line of only these is empty


class CTranslate2Translator(Engine):
    """A CTranslate2 encoder-decoder export (translation or summarization): sentences in, sentences out.

    Args:
        path: the export's directory (the one holding `tflm_ctranslate2.json`).
        compute_type: CTranslate2's compute type ("default": the saved weights' type; "int8" quantizes a
            float32 model as it loads; see `COMPUTE_TYPES`).
        decoding: `DecodingOptions` (default: the run's, recorded in the export).
        device: "cpu" (or "cuda", "auto" where CTranslate2 has them).
        intra_threads: CPU threads per translation (default: `os.cpu_count()`).
        inter_threads: translations running at once (default 1; concurrent calls queue).
        exact_scores: bool. Score the outputs again with the full softmax (tflm's scores exactly); see
            `tflm.engines.ctranslate2.search`.
        limits: `ServingLimits` for `run` (default: the export's).
    Example:
    >>> translator = CTranslate2Translator("saved_models/ct2/1")
    >>> translator.translate(["I love you."])
    ['Te quiero.']
    """

    ctranslate2_class = "Translator"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        self.source_tokenizer = self._tokenizer("source")
        self.target_tokenizer = self._tokenizer("target")
        self.max_source_length = int(self.metadata.get("max_source_length") or 256)
        self.max_target_positions = self.metadata.get("max_target_positions")
        target_pieces = self._target_pieces = self.target_tokenizer.pieces
        self._source_pieces = self.source_tokenizer.pieces
        self._target_ids = {piece: index for index, piece in enumerate(target_pieces)}
        self._suppress = [[target_pieces[PAD_ID]], [target_pieces[BOS_ID]]]
        self._eos = target_pieces[EOS_ID]

    # ------------------------------------------------------------------ decoding

    def _cap(self, max_length=None):
        """The largest output of any row: the options' `max_length`, a request's, and a learned table's size."""
        cap = int(self.decoding.max_length)
        if max_length is not None:
            cap = min(cap, int(max_length))
        if self.max_target_positions:
            cap = min(cap, int(self.max_target_positions))
        return max(cap, 1)

    def decode(self, sentences, search=None, max_length=None, want_scores=True):
        """Decodes a list of str as one batch; returns, per sentence, `search.count` `(text, score)` pairs,
        best first (an empty or blank sentence: empty texts with score 0).

        Args:
            sentences: list of str.
            search: a `Search` (default: the engine's decoding options').
            max_length: optional int, a request's limit on output tokens (EOS included), below the options'.
            want_scores: bool. Whether the scores are used (else an exact rescoring may be skipped).
        """
        search = search or Search.from_options(self.decoding)
        answers = [[("", 0.0)] * search.count for _ in sentences]
        rows = [i for i, sentence in enumerate(sentences) if sentence.strip(_ASCII_SPACE)]
        if not rows:
            return answers
        source_ids = [ids[: max(self.max_source_length - 1, 0)]
                      for ids in self._token_ids(self.source_tokenizer, [sentences[i] for i in rows])]
        sources = [[self._source_pieces[i] for i in ids] for ids in source_ids]
        options = self.decoding
        limits = row_limits([len(ids) + 1 for ids in source_ids], self._cap(max_length), options.max_length_a,
                            options.max_length_b)
        hypotheses = self._search(sources, limits, search)
        raw = self._exact_scores(sources, hypotheses) if self._rescore(search, want_scores) else None
        ranked = rank(hypotheses, search, raw)
        texts = self._texts(self.target_tokenizer, [ids for row in ranked for ids, _ in row])
        for position, index in enumerate(rows):
            row = ranked[position]
            answers[index] = [(texts[position * search.count + k], score) for k, (_, score) in enumerate(row)]
        return answers

    def _search(self, sources, limits, search):
        """CTranslate2's hypotheses of each source within its own length limit (see the module docstring)."""
        results = [None] * len(sources)

        def run(indices, limit):
            options = search.ctranslate2_options(self._suppress)
            decoded = self.model.translate_batch([sources[i] for i in indices], max_decoding_length=limit,
                                                 min_decoding_length=min(search.min_length, limit),
                                                 max_input_length=0, **options)
            for i, result in zip(indices, decoded):
                results[i] = [Hypothesis([self._target_ids[p] for p in pieces], float(score), len(pieces))
                              for pieces, score in zip(result.hypotheses, result.scores)]

        everything = list(range(len(sources)))
        run(everything, max(limits))
        over = [i for i in everything if any(len(h.ids) > limits[i] for h in results[i])]
        for limit in sorted({limits[i] for i in over}):
            run([i for i in over if limits[i] == limit], limit)
        return results

    def _exact_scores(self, sources, hypotheses):
        """The log-probability of each hypothesis under the model (full softmax, EOS included when it ended)."""
        flat_sources, targets, ended = [], [], []
        for source, row in zip(sources, hypotheses):
            for hypothesis in row:
                ids = hypothesis.ids
                ends = bool(ids) and ids[-1] == EOS_ID
                flat_sources.append(source)
                targets.append([self._target_pieces[i] for i in (ids[:-1] if ends else ids)])
                ended.append(ends)
        scored = self.model.score_batch(flat_sources, targets, max_input_length=0) if targets else []
        flat = [float(sum(r.log_probs if ends else r.log_probs[:-1])) for r, ends in zip(scored, ended)]
        raw, start = [], 0
        for row in hypotheses:
            raw.append(flat[start: start + len(row)])
            start += len(row)
        return raw

    def _batches(self, sentences, batch_size):
        batch_size = batch_size or self.decoding.batch_size
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        for start in range(0, len(order), batch_size):
            yield order[start: start + batch_size]

    def translate(self, sentences, batch_size=None):
        """Translates a list of str (any size, in batches of `batch_size` sentences of similar length,
        default the options' `batch_size`) to a list of str, in order."""
        outputs = [None] * len(sentences)
        for chunk in self._batches(sentences, batch_size):
            for i, hypotheses in zip(chunk, self.decode([sentences[i] for i in chunk], want_scores=False)):
                outputs[i] = hypotheses[0][0]
        return outputs

    def translate_n_best(self, sentences, batch_size=None):
        """Translates a list of str to, per sentence, a list of `(translation, score)`, best first."""
        outputs = [None] * len(sentences)
        for chunk in self._batches(sentences, batch_size):
            for i, hypotheses in zip(chunk, self.decode([sentences[i] for i in chunk])):
                outputs[i] = hypotheses
        return outputs

    summarize = translate

    def predict(self, inputs):
        return self.translate(list(inputs))

    def score(self, sources, targets):
        """The model's log-probability of each target given its source (EOS included), and its token count,
        as tflm's `Translator.score_batch`: `{"log_prob": float32 (batch,), "tokens": int32 (batch,)}`."""
        sources, targets = list(sources), list(targets)
        if not sources:
            return {"log_prob": np.zeros((0,), np.float32), "tokens": np.zeros((0,), np.int32)}
        source_ids = [ids[: max(self.max_source_length - 1, 0)]
                      for ids in self._token_ids(self.source_tokenizer, sources)]
        limit = (int(self.max_target_positions) if self.max_target_positions else 100_000) - 1
        target_ids = [ids[:limit] for ids in self._token_ids(self.target_tokenizer, targets)]
        scored = self.model.score_batch([[self._source_pieces[i] for i in ids] for ids in source_ids],
                                        [[self._target_pieces[i] for i in ids] for ids in target_ids],
                                        max_input_length=0)
        return {"log_prob": np.array([sum(r.log_probs) for r in scored], np.float32),
                "tokens": np.array([len(ids) + 1 for ids in target_ids], np.int32)}

    # ------------------------------------------------------------------ serving

    def _count_tokens(self, text):
        return self.source_tokenizer.tokenize(text).row_lengths()

    def _make_signatures(self):
        if self.task == "summarization":
            default, decode = SUMMARIZE_DEFAULT, SUMMARIZE
        else:
            default, decode = TRANSLATE_DEFAULT, TRANSLATE
        self._outputs = {"serving_default": output_specs(outputs=(tf.string, 1), scores=(tf.float32, 1)),
                         decode.name: output_specs(outputs=(tf.string, 2), scores=(tf.float32, 2)), **common_outputs()}
        return [
            dataclasses.replace(default, function=self._serving_default),
            dataclasses.replace(decode, function=self._decode_signature,
                                vocabulary_size=self.target_tokenizer.vocabulary_size),
            *numpy_token_signatures(self.source_tokenizer, self.target_tokenizer),
            dataclasses.replace(SCORE, function=lambda source, target: self.score(strings(source), strings(target))),
        ]

    def _serving_default(self, text):
        answers = self.decode(strings(text))
        return {"outputs": string_array([row[0][0] for row in answers]),
                "scores": np.array([row[0][1] for row in answers], np.float32)}

    def _decode_signature(self, text, max_length, **controls):
        controls = {key: scalar(value) for key, value in controls.items()}
        search = Search.from_controls(self.decoding, **controls)
        return decoded_outputs(self.decode(strings(text), search, max_length=scalar(max_length)), search.count)
