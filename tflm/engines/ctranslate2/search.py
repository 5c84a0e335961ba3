"""How a CTranslate2 engine searches: tflm's decoding settings as CTranslate2's options (`Search`), the rows'
length limits, and the hypotheses ranked and scored as tflm's.

How tflm's decoding maps to CTranslate2's:

- every strategy: PAD and BOS are never produced (`suppress_sequences`), EOS may come first
  (`min_decoding_length` is tflm's `min_length`, default 0), n-gram blocking is `no_repeat_ngram_size`;
- greedy: `beam_size=1`; the pieces are tflm's (tested);
- beam: `beam_size`, `num_hypotheses` and `length_penalty`. tflm's penalty is GNMT's: a finished hypothesis
  scores `log_prob / ((5 + length) / 6) ** alpha`; CTranslate2 divides by `length ** alpha` (the same
  exponent, a slightly different ranking of lengths). With `alpha > 0` the engine takes the `beam_size`
  hypotheses CTranslate2's search finishes (it collects that many anyway) and ranks them by tflm's GNMT
  score, returning the best `num_hypotheses`; which hypotheses finish is CTranslate2's search (it stops after
  `beam_size` finished ones, tflm once no alive one can win), so beam outputs can differ from tflm's;
- sample: `sampling_topk` (0: the whole vocabulary, as tflm's `top_k=0`), `sampling_topp`,
  `sampling_temperature`, `num_hypotheses` independent samples (CTranslate2 returns them best first, tflm in
  drawing order). The seed: CTranslate2 seeds each worker thread's generator at its first draw from
  `ctranslate2.set_random_seed`, which the engine calls with the run's `seed` before it loads the model: a
  process decoding the same inputs in the same order draws the same samples, but a request's `seed` cannot
  reseed it, and the samples are not tflm's (another generator);
- lengths (translation): a row's limit is tflm's, EOS included: `min(max_length, ceil(max_length_a *
  (pieces + 1)) + max_length_b)` (float32 arithmetic, as the graph's), at least 1, and at most a learned
  position table's size. CTranslate2's `max_decoding_length` is one per batch: a batch decodes to its
  largest row limit, and the rows whose outputs overran their own limit are decoded again with it, grouped
  by limit (exact for greedy decoding, which only cuts; a beam row that fits its limit keeps its result);
- lengths (language models): as tflm's `Generator`, a batch's positions are its longest prompt's plus
  `max_new_tokens` (at most the model's `max_sequence_length`), so a shorter prompt of the batch may get more
  new tokens; the prompt is forced through the decoding loop (`include_prompt_in_result=True`), so
  `min_length` and n-gram blocking count its tokens, as tflm's do; an empty prompt starts from a line break
  (character and byte-level vocabularies) or EOS;
- sources are truncated to `max_source_length - 1` pieces by the engine (CTranslate2 appends EOS); an empty
  (or blank) source line gives empty outputs with score 0 and is not decoded, as tflm's `Translator` does.

Scores are tflm's: the sum of the output's log-probabilities under the model, EOS included (the prompt
excluded), divided by GNMT's `((5 + length) / 6) ** alpha` for beam search with `alpha > 0` (length counting
EOS, and a language model's prompt tokens after its first, as tflm's). CTranslate2's own search scores
renormalize the softmax over the tokens it suppresses (PAD, BOS, and EOS before `min_length`), so with
`exact_scores=True` (the default) the returned hypotheses are scored again with CTranslate2's `score_batch`
(one teacher-forced pass, the full softmax: tflm's scores exactly); `exact_scores=False` skips that pass and
returns the search's scores (slightly higher where tokens were suppressed, converted to GNMT's normalization
for beam search). `translate` and `generate`, which return no scores, skip it unless the GNMT ranking of a
beam needs it.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tflm.decoding.common import NEGATIVE, row_max_lengths


@dataclasses.dataclass(frozen=True)
class Search:
    """One decoding's strategy and settings, as CTranslate2 is asked for them.

    `count` is the number of outputs per input: 1 for greedy, `num_hypotheses` for beam and sampling."""

    strategy: str = "greedy"
    beam_size: int = 1
    count: int = 1
    length_penalty: float = 0.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_length: int = 0
    no_repeat_ngram_size: int = 0

    @classmethod
    def from_options(cls, options):
        """The search of `DecodingOptions`."""
        constraints = dict(min_length=int(options.min_length), no_repeat_ngram_size=int(options.no_repeat_ngram_size))
        if options.strategy == "sample":
            return cls("sample", 1, int(options.num_hypotheses), 0.0, float(options.temperature), int(options.top_k),
                       float(options.top_p), **constraints)
        if options.strategy == "beam":
            return cls("beam", int(options.beam_size), min(int(options.num_hypotheses), int(options.beam_size)),
                       float(options.length_penalty), **constraints)
        return cls(**constraints)

    @classmethod
    def from_controls(cls, options, beam_size, num_hypotheses, length_penalty, temperature, top_k, top_p,
                      min_length=None, no_repeat_ngram_size=None, **_ignored):
        """The search a request's controls ask for, as the exported graph chooses it (`search_by_controls`):
        sampling when `temperature > 0`, else beam search when `beam_size > 1` (the best
        `min(num_hypotheses, beam_size)`), else greedy; the constraints the request does not give are the
        options'."""
        constraints = dict(
            min_length=int(options.min_length if min_length is None else min_length),
            no_repeat_ngram_size=int(options.no_repeat_ngram_size if no_repeat_ngram_size is None
                                     else no_repeat_ngram_size))
        beam_size, count = max(int(beam_size), 1), max(int(num_hypotheses), 1)
        if float(temperature) > 0:
            return cls("sample", 1, count, 0.0, float(temperature), int(top_k), float(top_p), **constraints)
        if beam_size > 1:
            return cls("beam", beam_size, min(count, beam_size), float(length_penalty), **constraints)
        return cls(**constraints)

    @property
    def gnmt(self):
        """Whether hypotheses are ranked by tflm's GNMT-normalized score (beam search with a penalty)."""
        return self.strategy == "beam" and self.length_penalty > 0

    def ctranslate2_options(self, suppress):
        options = dict(return_end_token=True, return_scores=True, suppress_sequences=suppress,
                       no_repeat_ngram_size=self.no_repeat_ngram_size if self.no_repeat_ngram_size >= 2 else 0)
        if self.strategy == "sample":
            options.update(beam_size=1, num_hypotheses=self.count, length_penalty=0.0, sampling_topk=self.top_k,
                           sampling_topp=self.top_p, sampling_temperature=self.temperature)
        elif self.strategy == "beam":
            # with a penalty CTranslate2 finishes beam_size hypotheses anyway: all of them are ranked by GNMT's
            options.update(beam_size=self.beam_size, num_hypotheses=self.beam_size if self.gnmt else self.count,
                           length_penalty=self.length_penalty)
        else:
            options.update(beam_size=1, num_hypotheses=1, length_penalty=0.0)
        return options


def row_limits(source_lengths, max_length, max_length_a=0.0, max_length_b=None):
    """tflm's per-row output limits (EOS included), a list of int: `tflm.decoding.row_max_lengths`, the
    graph's own function; `source_lengths` count EOS."""
    return [int(v) for v in np.asarray(row_max_lengths(tf.constant(list(source_lengths), tf.int32), max_length,
                                                       max_length_a, max_length_b))]


def gnmt_penalty(length, alpha):
    """GNMT's length penalty `((5 + length) / 6) ** alpha` (tflm's `tflm.decoding.length_penalty`)."""
    return ((5.0 + length) / 6.0) ** alpha


@dataclasses.dataclass
class Hypothesis:
    ids: list  # output token ids, EOS included when it ended
    score: float  # CTranslate2's search score
    length: int  # tflm's length of it for the length penalty


def rank(rows, search, raw_scores=None):
    """Each row's hypotheses as (ids, tflm score), best first, `search.count` of them. `raw_scores`: the
    hypotheses' exact log-probabilities (rescored), else derived from CTranslate2's search scores."""
    ranked = []
    for index, hypotheses in enumerate(rows):
        scored = []
        for position, hypothesis in enumerate(hypotheses):
            if raw_scores is not None:
                raw = raw_scores[index][position]
            elif search.strategy == "beam" and search.length_penalty > 0:
                raw = hypothesis.score * max(hypothesis.length, 1) ** search.length_penalty
            else:
                raw = hypothesis.score
            score = raw / gnmt_penalty(hypothesis.length, search.length_penalty) if search.gnmt else raw
            scored.append((hypothesis.ids, float(score)))
        if search.strategy == "beam":
            scored.sort(key=lambda item: -item[1])
        scored = scored[: search.count]
        scored += [([], float(NEGATIVE))] * (search.count - len(scored))
        ranked.append(scored)
    return ranked
