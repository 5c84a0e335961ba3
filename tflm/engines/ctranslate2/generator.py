"""`CTranslate2Generator`: a CTranslate2 GPT export continuing prompts as tflm's `Generator` does, and
answering its serving signatures (`serving_default`, `generate`, `tokenize`, `detokenize`, `score`) from the
same declarations.

How it decodes (lengths, strategies, scores): `tflm.engines.ctranslate2.search`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tflm.engines.ctranslate2.engine import Engine
from tflm.engines.ctranslate2.search import Hypothesis, Search, rank
from tflm.engines.ctranslate2.signatures import (
    common_outputs,
    decoded_outputs,
    numpy_token_signatures,
    output_specs,
    scalar,
    strings,
)
from tflm.tasks.language_modeling.generator import GENERATE, SCORE, SERVING_DEFAULT
from tflm.text.special_tokens import BOS_ID, EOS_ID, PAD_ID


class CTranslate2Generator(Engine):
    """A CTranslate2 GPT export: prompts in, continuations out (the arguments are `CTranslate2Translator`'s).

    Example:
    >>> generator = CTranslate2Generator("saved_models/gpt/1", decoding=DecodingOptions(strategy="greedy"))
    >>> generator.generate(["ROMEO:"])
    """

    ctranslate2_class = "Generator"

    def __init__(self, path, **options):
        super().__init__(path, **options)
        self.tokenizer = self._tokenizer("tokenizer")
        self._pieces = self.tokenizer.pieces
        separator = self.metadata.get("separator")
        if separator:
            self.separator = int(separator["id"])
        else:  # an export that predates the field: tflm's Generator's rule
            from tflm.data.language_modeling import keeps_newlines

            self.separator = int(self._token_ids(self.tokenizer, ["\n"])[0][0]) if keeps_newlines(self.tokenizer) \
                else EOS_ID
        self.max_sequence_length = self.metadata.get("max_sequence_length")  # the context (None: unbounded)
        self.truncate = False  # a prompt too long for the context keeps its last tokens (else: refused)
        self._suppress = [[self._pieces[PAD_ID]], [self._pieces[BOS_ID]]]

    def decode(self, prompts, search=None, max_new_tokens=None, want_scores=True, truncate=None):
        """Continues a list of prompts as one batch; returns, per prompt, `search.count` `(continuation,
        score)` pairs, best first (`max_new_tokens`: default the options' `max_length`). A prompt plus the new
        tokens beyond the model's context is refused as tflm's graph refuses it, or with `truncate` cut to its
        last tokens (`tflm.tasks.language_modeling.context`)."""
        search = search or Search.from_options(self.decoding)
        new_tokens = int(self.decoding.max_length if max_new_tokens is None else max_new_tokens)
        starts = [ids or [self.separator] for ids in self._token_ids(self.tokenizer, list(prompts))]
        starts = self._fit_context(starts, new_tokens, self.truncate if truncate is None else truncate)
        answers = [[("", 0.0)] * search.count for _ in starts]
        if not starts:
            return answers
        forced = [len(ids) - 1 for ids in starts]
        positions = max(forced) + new_tokens
        if self.max_sequence_length:
            positions = min(positions, int(self.max_sequence_length))
        rows = [i for i in range(len(starts)) if forced[i] < positions]  # the others are all prompt
        if not rows:
            return answers
        options = search.ctranslate2_options(self._suppress)
        decoded = self.model.generate_batch([[self._pieces[t] for t in starts[i]] for i in rows],
                                            max_length=positions, min_length=min(search.min_length, positions),
                                            include_prompt_in_result=True, **options)
        hypotheses = []
        for i, result in zip(rows, decoded):
            prompt = len(starts[i])
            hypotheses.append([Hypothesis(list(ids[prompt:]), float(score), len(ids) - 1)
                               for ids, score in zip(result.sequences_ids, result.scores)])
        raw = None
        if self._rescore(search, want_scores):
            flat = [[self._pieces[t] for t in starts[i] + h.ids] for i, row in zip(rows, hypotheses) for h in row]
            scored = iter(self.model.score_batch(flat, max_input_length=0))
            raw = [[float(sum(next(scored).log_probs[len(starts[i]) - 1:])) for _ in row]
                   for i, row in zip(rows, hypotheses)]
        ranked = rank(hypotheses, search, raw)
        texts = self._texts(self.tokenizer, [ids for row in ranked for ids, _ in row])
        for position, index in enumerate(rows):
            answers[index] = [(texts[position * search.count + k], score)
                              for k, (_, score) in enumerate(ranked[position])]
        return answers

    def generate(self, prompts):
        """Generates for a list of prompts (one batch, as tflm's `Generator.generate`); returns, per prompt,
        the list of continuations (str)."""
        return [[text for text, _ in row] for row in self.decode(list(prompts), want_scores=False)]

    def predict(self, inputs):
        return self.generate(list(inputs))

    def _fit_context(self, starts, new_tokens, truncate):
        """`starts` (token ids per prompt) within the context, with the messages of tflm's graph."""
        if not self.max_sequence_length or not starts:
            return starts
        context = int(self.max_sequence_length)
        if new_tokens >= context:
            raise tf.errors.InvalidArgumentError(None, None, f"max_new_tokens = {new_tokens} leaves no room for a "
                                                 f"prompt: the model attends to {context} tokens (its context; "
                                                 "max_sequence_length)")
        room, longest = context - new_tokens, max(len(ids) for ids in starts)
        if longest > room and not truncate:
            raise tf.errors.InvalidArgumentError(None, None, (
                f"a prompt of {longest} tokens + max_new_tokens {new_tokens} = {longest + new_tokens} exceeds the "
                f"model's context of {context} tokens (its max_sequence_length): shorten the prompt, ask for fewer "
                f"new tokens, or set truncate (keeps each prompt's last {room} tokens)"))
        return [ids[-room:] for ids in starts]

    def score(self, texts):
        """The model's log-probability of each text (its tokens after the separator) and its token count, as
        tflm's `Generator.score_batch`: `{"log_prob": float32 (batch,), "tokens": int32 (batch,)}`."""
        rows = self._token_ids(self.tokenizer, list(texts))
        longest = max((len(ids) for ids in rows), default=0)
        if self.max_sequence_length and longest > int(self.max_sequence_length):
            raise tf.errors.InvalidArgumentError(None, None, (
                f"a text of {longest} tokens exceeds the model's context of {int(self.max_sequence_length)} tokens "
                "(its max_sequence_length): score a shorter text, or its parts"))
        log_probs = np.zeros((len(rows),), np.float32)
        scored = [i for i, ids in enumerate(rows) if ids]
        if scored:
            results = self.model.score_batch([[self._pieces[t] for t in [self.separator] + rows[i]] for i in scored],
                                             max_input_length=0)
            for i, result in zip(scored, results):
                log_probs[i] = sum(result.log_probs)
        return {"log_prob": log_probs, "tokens": np.array([len(ids) for ids in rows], np.int32)}

    # ------------------------------------------------------------------ serving

    def _count_tokens(self, text):
        return self.tokenizer.tokenize(text).row_lengths()

    def _make_signatures(self):
        matrix = output_specs(outputs=(tf.string, 2), scores=(tf.float32, 2))
        self._outputs = {"serving_default": matrix, "generate": dict(matrix), **common_outputs()}
        return [
            dataclasses.replace(SERVING_DEFAULT, function=self._serving_default),
            dataclasses.replace(GENERATE, function=self._generate_signature,
                                vocabulary_size=self.tokenizer.vocabulary_size),
            *numpy_token_signatures(self.tokenizer, self.tokenizer),
            dataclasses.replace(SCORE, function=lambda text: self.score(strings(text))),
        ]

    def _serving_default(self, prompt):
        search = Search.from_options(self.decoding)
        return decoded_outputs(self.decode(strings(prompt), search), search.count)

    def _generate_signature(self, prompt, max_new_tokens, truncate=False, **controls):
        controls = {key: scalar(value) for key, value in controls.items()}
        search = Search.from_controls(self.decoding, **controls)
        return decoded_outputs(self.decode(strings(prompt), search, max_new_tokens=scalar(max_new_tokens),
                                           truncate=bool(scalar(truncate))), search.count)
