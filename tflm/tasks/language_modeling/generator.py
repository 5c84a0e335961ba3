"""`Generator`: a language model with its tokenizer and generation settings, prompts in and text out in the
graph; what `tflm generate` runs and export saves (signatures `serving_default`, `generate`, `tokenize`,
`detokenize`, `score`)."""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from tflm.data.language_modeling import keeps_newlines
from tflm.decoding.common import DecodeResult, constrain, lengths_of
from tflm.decoding.sampling import draw
from tflm.decoding.search import search, search_by_controls
from tflm.tasks.language_modeling.config import generation_defaults
from tflm.tasks.language_modeling.context import check_scored, context_info, context_length, fit_prompts
from tflm.tasks.predictor import Predictor, Signature, control_inputs, text_input, token_signatures
from tflm.text.special_tokens import EOS_ID, PAD_ID

logger = logging.getLogger("tflm")

CONTROLS = ("beam_size", "num_hypotheses", "max_new_tokens", "length_penalty", "temperature", "top_k", "top_p",
            "seed", "truncate")

# The signatures' interfaces, declared once without a model: the `Generator` gives them its functions (and its
# vocabulary's size), the CTranslate2 engine (`tflm.engines.ctranslate2`) its own, with the same declaration.
_PROMPTS = dict(rows="prompt", row_name="prompt", token_limited=("prompt",))
SERVING_DEFAULT = Signature("serving_default", None, text_input("prompt"), **_PROMPTS)
GENERATE = Signature("generate", None, {**text_input("prompt"), **control_inputs(*CONTROLS)},
                     length="max_new_tokens", warmup=True, **_PROMPTS)
SCORE = Signature("score", None, text_input("text"), rows="text", row_name="text", token_limited=("text",))


class Generator(Predictor):
    """A language model with its tokenizer and generation settings: prompts in, text out, in the graph.

    The prompt's first token starts the decoding and its others are forced (`tflm.decoding`'s `forced`),
    so every strategy continues a prompt: greedy, beam, sampling with temperature/top-k/top-p, with
    no-repeat-n-gram blocking. An empty prompt starts from a line break. A model with a `prefill` (GPT) reads
    the positions all prompts of a batch force in one pass first (`prefill=False`: step by step, as the
    decoding loop would; the outputs are the same).

    `jit_compile=True` XLA-compiles the decoding of `generate` and `stream`, in this process only: the
    prompts are tokenized outside, and the decoding runs with buffers rounded up to a multiple of 16
    positions (one compilation per batch size, buffer length and shortest prompt). Exports never use it:
    `generate_batch` and the signatures stay plain graphs, which stock TF Serving runs without XLA. Greedy
    and beam give the graph's texts (tested); XLA's random numbers differ, so samples may too.

    Example:
    >>> generator = Generator.from_run_dir("runs/shakespeare-gpt")
    >>> generator.generate(["ROMEO:"])
    """

    def __init__(self, model, tokenizer, decoding=None, prefill=True, jit_compile=False, truncate=False):
        super().__init__(model, decoding or generation_defaults())
        self.context = context_length(model)  # prompt + continuation, in positions (None: no bound)
        self.truncate = truncate  # a prompt that leaves too little room keeps its last tokens (else: an error)
        self.prefill = prefill and model.supports_prefill
        self.jit_compile = jit_compile
        self.tokenizer = tokenizer
        self.separator = (int(np.asarray(tokenizer.tokenize("\n"))[0]) if keeps_newlines(tokenizer) else EOS_ID)

    @classmethod
    def from_run_dir(cls, run_dir, checkpoint="best", decoding=None, jit_compile=False):
        from tflm.tasks import get_task

        return get_task("language_modeling").load_predictor(run_dir, checkpoint, decoding=decoding,
                                                            jit_compile=jit_compile)

    def tokenizers(self):
        return {"tokenizer": self.tokenizer}

    def context_length(self):
        return self.context

    def context_info(self):
        return context_info(self.model)

    def signatures(self):
        return [
            dataclasses.replace(SERVING_DEFAULT, function=lambda prompt: self.generate_batch(prompt)),
            dataclasses.replace(GENERATE, function=self._generate_signature,
                                vocabulary_size=self.tokenizer.vocabulary_size),
            *token_signatures(self.tokenizer, self.tokenizer),
            dataclasses.replace(SCORE, function=self.score_batch),
        ]

    def _generate_signature(self, prompt, **controls):
        outputs, scores = self.generate_with_controls(prompt, **controls)
        return {"outputs": outputs, "scores": scores}

    def predict(self, inputs):
        return self.generate(list(inputs))

    def encode_prompt(self, prompts):
        """`(start_ids (B,), forced_ids (B, P), forced_lengths (B,))`: each prompt's first token starts the
        decoding and the rest are forced; an empty prompt starts from a line break."""
        pieces = self.tokenizer.tokenize(prompts)
        empty = tf.equal(pieces.row_lengths(), 0)
        separator = tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], self.separator))
        keep = tf.concat([tf.RaggedTensor.from_tensor(empty[:, tf.newaxis]), tf.ones_like(pieces, tf.bool)], axis=1)
        pieces = tf.ragged.boolean_mask(tf.concat([separator, pieces], axis=1), keep)
        dense = pieces.to_tensor(PAD_ID)
        forced = tf.pad(dense[:, 1:], [[0, 0], [0, 1]])  # at least one column
        return dense[:, 0], forced, tf.cast(pieces.row_lengths(), tf.int32) - 1

    def generate_ids(self, prompts, **overrides):
        """A `DecodeResult` whose token ids are the prompts' continuations (the prompts themselves are PAD).
        A prompt plus the new tokens beyond the model's context is refused, or with `truncate` cut to its last
        tokens (`tflm.tasks.language_modeling.context`)."""
        start, forced_ids, forced_lengths = self.encode_prompt(prompts)
        new_tokens = tf.cast(overrides.pop("max_length", self.decoding.max_length), tf.int32)
        start, forced_ids, forced_lengths = fit_prompts(start, forced_ids, forced_lengths, new_tokens, self.context,
                                                        overrides.pop("truncate", self.truncate))
        max_length = tf.reduce_max(forced_lengths) + new_tokens
        prefix_length = None
        if self.prefill:
            # The positions every row forces (the shortest prompt) are read in one pass, not step by step.
            prefix_length = tf.minimum(tf.reduce_min(forced_lengths), max_length - 1)
        return self._continue(start, forced_ids, forced_lengths, max_length, prefix_length, **overrides)

    def _continue(self, start, forced_ids, forced_lengths, max_length, prefix_length, row_max_length=None,
                  **overrides):
        """Decodes from encoded prompts; `max_length` sizes the buffers, `prefix_length` positions are
        read first in one pass (None: none), `row_max_length` limits every row (default: `max_length`)."""
        batch_size = tf.shape(start)[0]
        with self.compute_weights():
            state = self.model.initial_state(batch_size, max_length)
            if prefix_length is not None:
                positions = tf.concat([start[:, tf.newaxis], forced_ids], axis=1)[:, :prefix_length]
                if isinstance(prefix_length, int):  # a fixed length (XLA)
                    state = self.model.prefill(positions, state) if prefix_length > 0 else state
                else:
                    state = tf.cond(prefix_length > 0, lambda: self.model.prefill(positions, state), lambda: state)
            result = search(self.model.decode_step, state, batch_size, self.decoding, start_ids=start,
                            forced=(forced_ids, forced_lengths), prefix_length=prefix_length, max_length=max_length,
                            row_max_length=row_max_length, **overrides)
        prompt_part = tf.range(max_length)[tf.newaxis, tf.newaxis, :] < forced_lengths[:, tf.newaxis, tf.newaxis]
        token_ids = tf.where(prompt_part, PAD_ID, result.token_ids)
        return DecodeResult(token_ids, lengths_of(token_ids), result.scores)

    def _generate_xla(self, prompts):
        """`generate_batch`'s outputs with the decoding XLA-compiled: shapes fixed from the prompts here."""
        start, forced_ids, forced_lengths = fit_prompts(*self.encode_prompt(prompts), self.decoding.max_length,
                                                        self.context, self.truncate)
        lengths = np.asarray(forced_lengths)
        max_length = int(lengths.max()) + int(self.decoding.max_length)
        limit = self.context or max_length
        buffer_length = min(-(-max_length // 16) * 16, limit)  # fewer shapes, fewer compilations
        forced_ids = forced_ids[:, :buffer_length]
        forced_ids = tf.pad(forced_ids, [[0, 0], [0, buffer_length - forced_ids.shape[1]]])
        prefix_length = None
        if self.prefill:
            prefix_length = min(int(lengths.min()), max_length - 1)
        if "_xla_decode" not in self.__dict__:  # untracked: never part of an export
            def decode(*args, **kwargs):
                result = self._continue(*args, **kwargs)
                return result.token_ids, result.scores

            self.__dict__["_xla_decode"] = tf.function(decode, jit_compile=True)
        token_ids, scores = self._xla_decode(start, forced_ids, forced_lengths, buffer_length, prefix_length,
                                             row_max_length=tf.fill(tf.shape(start), max_length))
        token_ids = token_ids[:, :, :max_length]
        return {"outputs": self.texts(DecodeResult(token_ids, lengths_of(token_ids), scores)), "scores": scores}

    def texts(self, result):
        n = tf.shape(result.token_ids)[1]
        flat = tf.reshape(result.token_ids, [-1, tf.shape(result.token_ids)[2]])
        return tf.reshape(self.tokenizer.detokenize(flat), [-1, n])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def generate_batch(self, prompts):
        """string `(batch,)` -> `{"outputs": string (batch, n), "scores": float32 (batch, n)}`: continuations."""
        result = self.generate_ids(prompts)
        return {"outputs": self.texts(result), "scores": result.scores}

    def generate_with_controls(self, prompts, beam_size, num_hypotheses, max_new_tokens, length_penalty,
                               temperature, top_k, top_p, seed, truncate=False):
        """As the exported signature: sampling when temperature > 0, else beam when beam_size > 1, else greedy;
        `truncate`: a prompt too long for the context keeps its last tokens instead of being refused."""

        def run(strategy, **settings):
            result = self.generate_ids(prompts, strategy=strategy, max_length=max_new_tokens, truncate=truncate,
                                       **settings)
            return result.token_ids, result.scores

        token_ids, scores = search_by_controls(run, beam_size, num_hypotheses, length_penalty, temperature, top_k,
                                               top_p, seed)
        return self.texts(DecodeResult(token_ids, lengths_of(token_ids), scores)), scores

    def score_batch(self, text):
        """The model's log-probability of each text (its tokens after a line break), and its token count.

        Returns:
            `{"log_prob": float32 (batch,), "tokens": int32 (batch,)}`.
        """
        pieces = self.tokenizer.tokenize(text)
        check = check_scored(pieces.row_lengths(), self.context)
        if check is not None:
            with tf.control_dependencies([check]):
                pieces = tf.identity(pieces)
        separator = tf.RaggedTensor.from_tensor(tf.fill([pieces.nrows(), 1], self.separator))
        labels = pieces.to_tensor(PAD_ID)
        inputs = tf.concat([separator, pieces], axis=1).to_tensor(PAD_ID)[:, :-1]
        logits = self.model({"token_ids": inputs})
        log_probs = tf.gather(tf.nn.log_softmax(tf.cast(logits, tf.float32)), labels, batch_dims=2)
        mask = tf.not_equal(labels, PAD_ID)
        return {"log_prob": tf.reduce_sum(tf.where(mask, log_probs, 0.0), axis=1),
                "tokens": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)}

    def generate(self, prompts):
        """Generates for a list of prompts; returns, per prompt, the list of continuations (str)."""
        prompts = tf.constant(list(prompts), dtype=tf.string)
        result = self._generate_xla(prompts) if self.jit_compile else self.generate_batch(prompts)
        return [[t.decode("utf-8") for t in row] for row in np.asarray(result["outputs"])]

    def stream(self, prompt, max_new_tokens=None, seed=None):
        """Yields the continuation of one prompt piece by piece as it is produced (greedy or sampling).

        A Python loop over a compiled single-step function, for the console; `generate` (one graph) is
        what export and batch generation use. Each step constrains and picks its token with the graph's own
        functions (`constrain`; `argmax`, or `draw` seeded by the seed and the step), over the same token
        buffer (prompt included), so it yields what `generate_batch` and the export give for that prompt
        and seed, samples included (tested).
        """
        decoding = self.decoding
        max_new_tokens = max_new_tokens or decoding.max_length
        start, forced_ids, forced_lengths = fit_prompts(*self.encode_prompt(tf.constant([prompt])), max_new_tokens,
                                                        self.context, self.truncate)
        forced_length = int(forced_lengths[0])
        prompt_ids = [int(start[0])] + [int(t) for t in np.asarray(forced_ids[0, :forced_length])]
        max_length = forced_length + max_new_tokens  # as `generate_ids` sizes its buffers
        step = tf.function(self.model.decode_step, reduce_retracing=True, jit_compile=self.jit_compile)
        choose = _token_chooser(decoding, decoding.seed if seed is None else seed)
        state = self.model.initial_state(1, max_length)
        tokens = np.full([1, max_length], PAD_ID, np.int32)  # the decoding buffer: forced, then generated
        tokens[0, :min(forced_length, max_length)] = prompt_ids[1: max_length + 1]
        first = min(forced_length, max_length - 1) if self.prefill else 0  # positions read in one pass
        if first > 0:
            state = self.model.prefill(tf.constant([prompt_ids[:first]], tf.int32), state)
        token, history, previous_text = prompt_ids[first], [], ""
        for position in range(first, max_length):
            logits, state = step(tf.constant([token], tf.int32), state, tf.constant(position))
            if position < forced_length:
                token = prompt_ids[position + 1]
                continue
            token = int(choose(logits, tf.constant(position), tf.constant(tokens)))
            if token == EOS_ID:
                break
            tokens[0, position] = token
            history.append(token)
            text = np.asarray(self.tokenizer.detokenize(tf.constant([history], tf.int32)))[0].decode("utf-8", "replace")
            yield text[len(previous_text):]
            previous_text = text


def _token_chooser(decoding, seed):
    """`(logits (1, V), step, tokens (1, L)) -> token`, as the decoding graph picks it at `step`."""
    sampling = decoding.strategy == "sample"

    @tf.function(reduce_retracing=True)
    def choose(logits, step, tokens):
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        log_probs = constrain(log_probs, step, tokens, decoding.min_length, decoding.no_repeat_ngram_size, EOS_ID)
        if sampling:
            return draw(log_probs, step, decoding.temperature, decoding.top_k, decoding.top_p, seed)[0]
        return tf.argmax(log_probs, -1, tf.int32)[0]

    return choose


SAMPLE_PROMPTS = ("", "The ", "In the beginning", "ROMEO:")


class SampleGenerations:
    """After each epoch, generates from a few fixed prompts into the log and TensorBoard (as text)."""

    def __init__(self, generator, count):
        self.generator = generator
        self.prompts = list(SAMPLE_PROMPTS[:count])

    def __call__(self, trainer, epoch, valid_loss):
        outputs = self.generator.generate(self.prompts)
        rows = ["| prompt | generated |", "|---|---|"]
        for prompt, continuations in zip(self.prompts, outputs):
            logger.info("sample: %r => %r", prompt, continuations[0][:200])
            rows.append(f"| {prompt!r} | {continuations[0].replace('|', '/').replace(chr(10), ' / ')} |")
        trainer.write_text("sample_generations", "\n".join(rows))
