"""Language-modelling runs: configuration, vocabulary, data, model, training, evaluation, generation.

The same shape as `tflm.tasks.translation`: a configuration dataclass saved in the run directory, step
functions that the CLI (`tflm train --task language_modeling`, `tflm evaluate`, `tflm generate`) and the
recipe (`recipes/generation.py`) compose, and a `Generator` (a `tf.Module`) that generates in the graph and
is what export saves.

Metrics (`evaluate`): mean token loss (nats), perplexity, bits per character for character models, and the
word-level perplexity `exp(total loss / words)` for any tokenizer, where words are counted as WikiText's
word-level version counts them (whitespace words plus one end-of-line per line), so figures compare with
published ones.
"""

import dataclasses
import inspect
import json
import logging
import math
import os
import time
import weakref
from typing import Optional

import numpy as np
import tensorflow as tf

from tflm import config as config_lib
from tflm.data.language_modeling import (
    contiguous_dataset,
    contiguous_segments,
    count_words,
    keeps_newlines,
    num_contiguous_segments,
    num_windows,
    read_text_lines,
    tokenize_stream,
    window_dataset,
    windows,
)
from tflm.data.registry import dataset_info, find_dataset, split_file
from tflm.decoding.common import DecodeResult, constrain, lengths_of
from tflm.decoding.sampling import draw
from tflm.decoding.search import DecodingOptions, search
from tflm.models import get_model_class
from tflm.tasks import runs
from tflm.tasks.runs import (
    ModelConfig,
    TrainingConfig,
    build_optimizer,
    check_optimizer,
    count_parameters,
    load_config,
    model_dtype,
    model_params,
    resolve_run_checkpoint,
    save_averaged_checkpoint,
    start_run,
)
from tflm.text.tokenizers import EOS_ID, PAD_ID, load_tokenizer
from tflm.text.vocab import VOCABULARY_TYPES, train_tokenizer
from tflm.training.checkpoints import ModelVariables, restore_model
from tflm.training.strategies import make_strategy
from tflm.training.trainer import Trainer

logger = logging.getLogger("tflm")


@dataclasses.dataclass
class LMDataConfig:
    dataset: Optional[str] = "shakespeare"  # a registered corpus with {train,valid,test}.txt
    data_dir: Optional[str] = None
    train_file: Optional[str] = None  # or explicit files
    valid_file: Optional[str] = None
    test_file: Optional[str] = None
    sequence_length: int = 256  # tokens per training window (or segment, for Transformer-XL)
    stride: Optional[int] = None  # between training windows (default: sequence_length, no overlap)
    random_offsets: bool = True  # shift each epoch's windows (or segments) by a random offset: new cuts each epoch
    segments_per_chunk: Optional[int] = None  # Transformer-XL: shuffled chunks of this many segments (None: streams)
    batch_size: int = 32
    eval_stride: Optional[int] = None  # evaluation windows (default sequence_length // 2: context for every token)
    max_train_tokens: Optional[int] = None  # use only the first N training tokens (quick runs)
    max_valid_tokens: Optional[int] = 100_000  # validation loss after each epoch on at most this many tokens


@dataclasses.dataclass
class LMVocabularyConfig:
    type: str = "character"  # "character", "byte_bpe", "unigram", "bpe" or "wordpiece"
    size: int = 8000  # ignored for "character"


def _generation_defaults():
    return DecodingOptions(strategy="sample", top_k=40, max_length=200, max_length_a=0.0, n_best=1,
                           batch_size=16)


@dataclasses.dataclass
class LanguageModelConfig:
    task: str = "language_modeling"
    data: LMDataConfig = dataclasses.field(default_factory=LMDataConfig)
    vocabulary: LMVocabularyConfig = dataclasses.field(default_factory=LMVocabularyConfig)
    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(type="gpt"))
    training: TrainingConfig = dataclasses.field(default_factory=lambda: TrainingConfig(label_smoothing=0.0))
    decoding: DecodingOptions = dataclasses.field(default_factory=_generation_defaults)

    def validate(self):
        if self.task != "language_modeling":
            raise config_lib.ConfigError(f"task={self.task!r}: this is a language-modelling configuration.")
        if self.vocabulary.type not in VOCABULARY_TYPES:
            raise config_lib.ConfigError(
                f"vocabulary.type={self.vocabulary.type!r} must be one of {', '.join(VOCABULARY_TYPES)}.")
        if self.data.dataset is None and not self.data.train_file:
            raise config_lib.ConfigError("Set data.dataset (a registered corpus) or data.train_file.")
        if get_model_class(self.model.type).__name__ not in ("GPT", "TransformerXL"):
            raise config_lib.ConfigError(f"model.type={self.model.type!r} is not a language model; use gpt or "
                                         "transformer_xl.")
        config_lib.parse_duration(self.training.time_budget)
        check_optimizer(self.training.optimizer)
        self.decoding.validate()
        return self


def load_run_config(run_dir):
    return load_config(run_dir, LanguageModelConfig)


# ------------------------------------------------------------------------------------------- data


def split_path(data_config, split):
    explicit = getattr(data_config, f"{split}_file")
    if explicit:
        return explicit
    if data_config.dataset is None:
        raise config_lib.ConfigError(f"No text for the {split} split: set data.dataset or data.{split}_file.")
    info = dataset_info(data_config.dataset)
    if info.task != "language_modeling":
        raise config_lib.ConfigError(f"Dataset {info.name!r} is a {info.task} corpus; language models train on "
                                     "wikitext-2-raw, shakespeare, or data.train_file.")
    return split_file(find_dataset(data_config.dataset, data_config.data_dir), split, "txt")


def read_split(data_config, split):
    return read_text_lines(split_path(data_config, split))


def prepare_vocabulary(vocabulary_config, run_dir, train_lines):
    """Loads the run's tokenizer, or trains it on the training text and saves it in `run_dir/vocab/`."""
    directory = os.path.join(run_dir, "vocab")
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.startswith("tokenizer."):
                return load_tokenizer(os.path.join(directory, name))
    if not runs.is_chief():
        return runs.wait_for_chief_vocabulary(run_dir, lambda: _saved_vocabulary(run_dir))
    texts = train_lines if vocabulary_config.type in ("character", "byte_bpe") else [
        line.strip() for line in train_lines if line.strip()]
    tokenizer = train_tokenizer(texts, vocabulary_config.type, vocabulary_config.size)
    runs.save_vocabulary({os.path.join(directory, "tokenizer" + tokenizer.file_suffix): tokenizer})
    return tokenizer


def _saved_vocabulary(run_dir):
    try:
        return load_vocabulary(run_dir)
    except FileNotFoundError:
        return None


def load_vocabulary(run_dir):
    directory = os.path.join(run_dir, "vocab")
    names = [n for n in sorted(os.listdir(directory)) if n.startswith("tokenizer.")] if os.path.isdir(directory) else []
    if not names:
        raise FileNotFoundError(f"{directory}: no tokenizer; was this run trained?")
    return load_tokenizer(os.path.join(directory, names[0]))


@dataclasses.dataclass
class LMData:
    tokenizer: object
    train_ids: np.ndarray
    valid_ids: np.ndarray
    valid_lines: list


def prepare_data(config, run_dir):
    """Reads and tokenizes the train and valid text (training the vocabulary on first use)."""
    train_lines = read_split(config.data, "train")
    tokenizer = prepare_vocabulary(config.vocabulary, run_dir, train_lines)
    train_ids = tokenize_stream(train_lines, tokenizer)
    if config.data.max_train_tokens:
        train_ids = train_ids[: config.data.max_train_tokens]
    valid_lines = read_split(config.data, "valid")
    valid_ids = tokenize_stream(valid_lines, tokenizer)
    logger.info("Language-model data: %d training tokens, %d validation tokens, vocabulary %d",
                len(train_ids), len(valid_ids), tokenizer.vocabulary_size)
    return LMData(tokenizer, train_ids, valid_ids, valid_lines)


# ------------------------------------------------------------------------------------------- model


def is_recurrent(model):
    return getattr(model, "memory_length", 0) > 0


def build_model(config, tokenizer):
    cls = get_model_class(config.model.type)
    params = model_params(config.model, inspect.signature(cls.__init__).parameters,
                          ("self", "kwargs", "vocabulary_size"))
    if "max_sequence_length" in inspect.signature(cls.__init__).parameters:
        needed = max(config.data.sequence_length, config.decoding.max_length) + 1
        params["max_sequence_length"] = max(params.get("max_sequence_length", 0), needed)
    model = cls(tokenizer.vocabulary_size, dtype=model_dtype(config.training.mixed_precision), **params)
    model.build()
    return model


# ------------------------------------------------------------------------------------------- evaluation


@dataclasses.dataclass
class DynamicEvaluation:
    """Dynamic evaluation (Krause et al. 2018): the model keeps learning from the text it has already scored.

    After scoring each segment (or window), one SGD step on that segment's loss with `learning_rate`; `decay`
    pulls the weights back toward the trained ones each step (`w += decay * (trained - w)`). The text is read
    as `streams` parallel streams (1: the text in order, the paper's reading). Scores are always taken
    before the step on their own tokens, so no token is predicted by a model that has seen it. The trained
    weights are restored afterwards.
    """

    learning_rate: float
    decay: float = 0.0
    streams: int = 1

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"DynamicEvaluation.learning_rate must be above 0; got {self.learning_rate}.")
        if not 0 <= self.decay < 1:
            raise ValueError(f"DynamicEvaluation.decay must be in [0, 1); got {self.decay}.")
        if self.streams < 1:
            raise ValueError(f"DynamicEvaluation.streams must be 1 or more; got {self.streams}.")


@dataclasses.dataclass
class NeuralCache:
    """The continuous cache of Grave et al. (2017): the model's probabilities mixed with a pointer to the
    tokens that followed similar hidden states among the last `size` positions of the same stream.

    `p = (1 - mix) * p_model + mix * p_cache`, `p_cache(w) ∝ Σ_i exp(theta * h_t·h_i) [x_{i+1} = w]`, where `h`
    is the last layer's normalized output. Nothing is trained: `theta` and `mix` are chosen on validation.
    """

    size: int = 4000  # the defaults: the best on WikiText-2's validation text (docs/benchmarks.md)
    theta: float = 0.05
    mix: float = 0.2

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"NeuralCache.size must be 1 or more; got {self.size}.")
        if not 0 <= self.mix <= 1:
            raise ValueError(f"NeuralCache.mix must be in [0, 1]; got {self.mix}.")


def evaluate_ids(model, ids, length, batch_size=16, stride=None, max_tokens=None, dynamic=None, cache=None,
                 progress=False):
    """Mean next-token loss (nats) over a token stream, and the number of tokens scored.

    Models with memory (Transformer-XL) read the stream as `batch_size` contiguous streams, one segment of
    `length` at a time, carrying their memory across segments (the whole text is context). Others read
    windows of `length` every `stride` tokens (default `length // 2`), each token scored once, in the
    window where it has the most context. `dynamic` (a `DynamicEvaluation`) adapts the model to the text as
    it reads it; `cache` (a `NeuralCache`) mixes in a cache pointer, and then Transformer-XL reads the text as
    one stream, so that every position's cache holds the text before it (not only its stream's part).
    `progress` logs how far the reading is, every tenth of the text.
    """
    if cache is not None and is_recurrent(model):
        batch_size = 1
    streams = score_ids(model, ids, length, batch_size, stride, max_tokens, dynamic=dynamic,
                        keep_hidden=cache is not None, progress=progress)
    losses = [cache_nll(stream, cache) if cache is not None else stream["nll"] for stream in streams]
    count = sum(len(loss) for loss in losses)
    return float(sum(np.sum(loss, dtype=np.float64) for loss in losses)) / max(count, 1), count


def score_ids(model, ids, length, batch_size=16, stride=None, max_tokens=None, dynamic=None, keep_hidden=False,
              progress=False):
    """Each scored token's negative log-likelihood, per stream in text order (see `evaluate_ids`).

    Returns a list of streams (one for window models; `batch_size` for Transformer-XL, or
    `dynamic.streams`), each a dict of `nll` float32 `(n,)`, `targets` int32 `(n,)` and, with
    `keep_hidden`, `hidden` float32 `(n, hidden_dim)`: the states a `NeuralCache` points with.
    """
    ids = np.asarray(ids[: max_tokens + 1] if max_tokens else ids, dtype=np.int32)
    recurrent = is_recurrent(model)
    adapt = _Adaptation(model, dynamic) if dynamic is not None else None
    step = adapt.step if adapt is not None else _evaluation_function(model, "segment" if recurrent else "window")
    wanted = dynamic.streams if dynamic is not None else batch_size
    num_streams = max(1, min(wanted, (len(ids) - 1) // length)) if recurrent else 1
    collected = [{"nll": [], "targets": [], "hidden": []} for _ in range(num_streams)]
    started = time.monotonic()

    def report(done, total):
        if progress and total >= 10 and (done + 1) % (total // 10) == 0:
            logger.info("scored %d/%d %s (%.0fs)", done + 1, total, "segments" if recurrent else "batches of windows",
                        time.monotonic() - started)

    def add(stream, nll, targets, hidden):
        collected[stream]["nll"].append(np.asarray(nll, np.float32))
        collected[stream]["targets"].append(np.asarray(targets, np.int32))
        if keep_hidden:
            collected[stream]["hidden"].append(np.asarray(hidden, np.float32))

    try:
        if recurrent:
            memory = None
            segments = contiguous_segments(ids, length, num_streams)
            for index, segment in enumerate(segments):
                targets = segment[:, 1:]
                nll, hidden, memory = step(segment[:, :-1], targets, memory, np.ones(targets.shape, np.float32))
                nll, hidden = np.asarray(nll), (np.asarray(hidden) if keep_hidden else None)
                for row in range(num_streams):
                    add(row, nll[row], targets[row], hidden[row] if keep_hidden else None)
                report(index, len(segments))
        else:
            stride = stride or max(1, length // 2)
            cut = windows(ids, length, stride) if len(ids) > length else ids[None, :]
            first = np.full(len(cut), length - stride)  # score only the tokens new to each window
            first[0] = 0
            covered = (len(cut) - 1) * stride + length if len(ids) > length else len(ids) - 1
            if covered < len(ids) - 1:  # the tail after the last full window
                cut = np.concatenate([cut, ids[None, -(length + 1):]])
                first = np.append(first, length - (len(ids) - 1 - covered))
            starts_of_batches = range(0, len(cut), wanted)
            for index, start in enumerate(starts_of_batches):
                batch, starts = cut[start: start + wanted], first[start: start + wanted]
                targets = batch[:, 1:]
                scored = (np.arange(targets.shape[1])[None, :] >= starts[:, None]).astype(np.float32)
                nll, hidden, _ = step(batch[:, :-1], targets, None, scored)
                nll, hidden = np.asarray(nll), (np.asarray(hidden) if keep_hidden else None)
                for row, begin in enumerate(starts):
                    add(0, nll[row, begin:], targets[row, begin:], hidden[row, begin:] if keep_hidden else None)
                report(index, len(starts_of_batches))
    finally:
        if adapt is not None:
            adapt.restore()
    return [{key: np.concatenate(parts) for key, parts in stream.items() if parts} for stream in collected
            if stream["nll"]]


def _nll(logits, labels):
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    return -tf.gather(log_probs, labels, batch_dims=2)  # (B, T)


def _forward_hidden(model, inputs, memory):
    if is_recurrent(model):
        return model.forward_hidden(inputs, memory)
    return model.hidden_states(inputs), None


def _evaluation_function(model, kind):
    """The model's traced scoring function (kept while the model lives): `(inputs, labels, memory, mask)` ->
    `(nll, hidden, new_memory)`."""

    def score(inputs, labels, memory, mask):
        hidden, new_memory = _forward_hidden(model, inputs, memory)
        return _nll(model.output_logits(hidden), labels), hidden, new_memory

    return _EVALUATION_FUNCTIONS.setdefault(model, {}).setdefault(kind, tf.function(score, reduce_retracing=True))


_EVALUATION_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> its traced evaluation functions


class _Adaptation:
    """The scoring function of a `DynamicEvaluation`: scores with the current weights, then one SGD step on
    the masked tokens' mean loss. `restore()` puts the trained weights back."""

    def __init__(self, model, dynamic):
        self.variables = list(model.trainable_variables)
        self.trained = [tf.Variable(tf.identity(variable.value), trainable=False) for variable in self.variables]
        learning_rate, decay = tf.constant(dynamic.learning_rate, tf.float32), tf.constant(dynamic.decay, tf.float32)

        def step(inputs, labels, memory, mask):
            with tf.GradientTape() as tape:
                hidden, new_memory = _forward_hidden(model, inputs, memory)
                nll = _nll(model.output_logits(hidden), labels)
                loss = tf.reduce_sum(nll * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
            grads = tape.gradient(loss, self.variables)
            for variable, grad, trained in zip(self.variables, grads, self.trained):
                if grad is None:
                    continue
                variable.assign_sub(learning_rate * tf.cast(tf.convert_to_tensor(grad), variable.dtype))
                if dynamic.decay:
                    variable.assign_add(decay * (trained - variable.value))
            return nll, hidden, new_memory

        self.step = tf.function(step, reduce_retracing=True)

    def restore(self):
        for variable, trained in zip(self.variables, self.trained):
            variable.assign(trained)


def cache_nll(stream, cache):
    """A stream's negative log-likelihoods with a `NeuralCache` mixed in (`stream` as `score_ids` returns
    it, with `hidden`). The cache holds the stream's previous `cache.size` positions: their hidden states
    and the tokens that followed them; a position with an empty cache (the first) keeps the model's."""
    hidden, targets = stream["hidden"], stream["targets"]
    p_model = np.exp(-stream["nll"].astype(np.float64))
    result = np.empty(len(targets), np.float64)
    block = 256
    for start in range(0, len(targets), block):
        stop = min(len(targets), start + block)
        low = max(0, start - cache.size)
        scores = cache.theta * (hidden[start:stop] @ hidden[low:stop].T).astype(np.float64)  # (queries, keys)
        query, key = np.arange(start, stop)[:, None], np.arange(low, stop)[None, :]
        visible = (key < query) & (key >= query - cache.size)
        scores = np.where(visible, scores, -np.inf)
        top = np.max(scores, axis=1, keepdims=True)
        weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
        total = weights.sum(axis=1)
        same = targets[low:stop][None, :] == targets[start:stop][:, None]
        p_cache = (weights * same).sum(axis=1) / np.maximum(total, 1e-300)
        mixed = (1 - cache.mix) * p_model[start:stop] + cache.mix * p_cache
        result[start:stop] = -np.log(np.where(total > 0, mixed, p_model[start:stop]))
    return result


def metrics(loss, tokens, lines, tokenizer, text_tokens=None):
    """Loss, perplexity, bits per character (character models) and word-level perplexity.

    `loss` is the mean over the `tokens` scored; `text_tokens` (default `tokens`) is how many the text has.
    Transformer-XL's contiguous streams leave up to a segment per stream unscored: the word-level figure
    charges those at the mean loss, so that it always covers every word of the text.
    """
    text_tokens = text_tokens or tokens
    result = {"loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 50)), 3), "tokens": tokens,
              "text_tokens": text_tokens}
    words = count_words(lines)
    result["words"] = words
    result["word_perplexity"] = round(math.exp(min(loss * text_tokens / max(words, 1), 50)), 3)
    if tokenizer.kind == "character":
        result["bits_per_character"] = round(loss / math.log(2), 4)
    return result


# ------------------------------------------------------------------------------------------- generation


class Generator(tf.Module):
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

    def __init__(self, model, tokenizer, decoding=None, prefill=True, jit_compile=False):
        super().__init__()
        self.model = model
        self.prefill = prefill and hasattr(model, "prefill")
        self.jit_compile = jit_compile
        self.model_variables = ModelVariables(model)
        self.tokenizer = tokenizer
        self.decoding = decoding or _generation_defaults()
        self.separator = (int(np.asarray(tokenizer.tokenize("\n"))[0]) if keeps_newlines(tokenizer) else EOS_ID)

    @classmethod
    def from_run_dir(cls, run_dir, checkpoint="best", decoding=None, jit_compile=False):
        config = load_run_config(run_dir)
        tokenizer = load_vocabulary(run_dir)
        model = build_model(config, tokenizer)
        restore_model(model, resolve_run_checkpoint(run_dir, checkpoint))
        return cls(model, tokenizer, decoding or config.decoding, jit_compile=jit_compile)

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
        """A `DecodeResult` whose token ids are the prompts' continuations (the prompts themselves are PAD)."""
        start, forced_ids, forced_lengths = self.encode_prompt(prompts)
        new_tokens = tf.cast(overrides.pop("max_length", self.decoding.max_length), tf.int32)
        max_length = tf.reduce_max(forced_lengths) + new_tokens
        limit = getattr(self.model, "max_sequence_length", None)
        if limit:
            max_length = tf.minimum(max_length, limit)
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
        start, forced_ids, forced_lengths = self.encode_prompt(prompts)
        lengths = np.asarray(forced_lengths)
        max_length = int(lengths.max()) + int(self.decoding.max_length)
        limit = getattr(self.model, "max_sequence_length", None) or max_length
        max_length = min(max_length, limit)
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

    def generate_with_controls(self, prompts, beam_size, num_return_sequences, max_new_tokens, length_penalty,
                               temperature, top_k, top_p, seed):
        """As the exported signature: sampling when temperature > 0, else beam when beam_size > 1, else greedy."""
        beam_size = tf.maximum(tf.cast(beam_size, tf.int32), 1)
        count = tf.maximum(tf.cast(num_return_sequences, tf.int32), 1)

        def run(strategy, **settings):
            result = self.generate_ids(prompts, strategy=strategy, max_length=max_new_tokens, **settings)
            return result.token_ids, result.scores

        token_ids, scores = tf.case([
            (temperature > 0, lambda: run("sample", n_best=count, temperature=temperature, top_k=top_k,
                                          top_p=top_p, seed=seed)),
            (beam_size > 1, lambda: run("beam", beam_size=beam_size, n_best=tf.minimum(count, beam_size),
                                        length_penalty=length_penalty)),
        ], default=lambda: run("greedy"))
        return self.texts(DecodeResult(token_ids, lengths_of(token_ids), scores)), scores

    def score_batch(self, text):
        """The model's log-probability of each text (its tokens after a line break), and its token count.

        Returns:
            `{"log_prob": float32 (batch,), "tokens": int32 (batch,)}`.
        """
        pieces = self.tokenizer.tokenize(text)
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
        start, forced_ids, forced_lengths = self.encode_prompt(tf.constant([prompt]))
        forced_length = int(forced_lengths[0])
        prompt_ids = [int(start[0])] + [int(t) for t in np.asarray(forced_ids[0, :forced_length])]
        max_length = forced_length + max_new_tokens  # as `generate_ids` sizes its buffers
        limit = getattr(self.model, "max_sequence_length", None)
        if limit:
            max_length = min(max_length, limit)
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


# ------------------------------------------------------------------------------------------- training


def build_trainer(config, run_dir, data, strategy=None, verbose=True):
    training = config.training
    strategy = strategy or make_strategy(training.strategy, training.devices)
    with strategy.scope():
        model = build_model(config, data.tokenizer)
        optimizer = build_optimizer(training, training.max_steps)
    if is_recurrent(model):
        model.enable_memory_state(config.data.batch_size)
    logger.info("Model %s: %d parameters", config.model.type, count_parameters(model))
    return Trainer(model, optimizer, run_dir, strategy=strategy, label_smoothing=training.label_smoothing,
                   clip_norm=training.clip_norm, keep_checkpoints=training.keep_checkpoints,
                   checkpoint_every_steps=training.checkpoint_every_steps,
                   checkpoint_every_seconds=training.checkpoint_every_seconds,
                   log_every_steps=training.log_every_steps, jit_compile=training.jit_compile, verbose=verbose)


def train_datasets(config, data, model):
    """`(epoch -> dataset, steps per epoch)`: shuffled windows, or contiguous segments for recurrence."""
    length, batch = config.data.sequence_length, config.data.batch_size
    stride, random_offset, seed = config.data.stride, config.data.random_offsets, config.training.seed
    if config.data.segments_per_chunk is not None and not is_recurrent(model):
        raise ValueError(f"data.segments_per_chunk is for Transformer-XL with memory; a {config.model.type!r} model "
                         "reads shuffled windows. Leave it unset (--segments-per-chunk in the recipe).")
    if is_recurrent(model):
        chunk = config.data.segments_per_chunk
        steps = num_contiguous_segments(data.train_ids, length, batch, random_offset, chunk)
        return (lambda epoch: contiguous_dataset(data.train_ids, length, batch, seed=seed, epoch=epoch,
                                                 random_offset=random_offset, segments_per_chunk=chunk)), steps
    count = num_windows(data.train_ids, length, stride, random_offset)
    return (lambda epoch: window_dataset(data.train_ids, length, batch, stride, seed=seed, epoch=epoch,
                                         random_offset=random_offset)), -(-count // batch)


def train(config, run_dir, verbose=True):
    """Trains (or resumes) a language-model run in `run_dir`; returns the `TrainResult`."""
    config = start_run(config, run_dir)
    # before any TensorFlow op runs: MultiWorkerMirroredStrategy configures collectives at program start
    strategy = make_strategy(config.training.strategy, config.training.devices)
    data = prepare_data(config, run_dir)
    trainer = build_trainer(config, run_dir, data, strategy=strategy, verbose=verbose)
    model = trainer.model
    dataset, steps = train_datasets(config, data, model)

    def validate():
        return evaluate_ids(model, data.valid_ids, config.data.sequence_length, config.data.batch_size,
                            config.data.eval_stride, config.data.max_valid_tokens)

    samples = SampleGenerations(Generator(model, data.tokenizer, config.decoding), config.training.samples)
    return trainer.fit(
        dataset, epochs=config.training.epochs, max_steps=config.training.max_steps,
        time_budget=config_lib.parse_duration(config.training.time_budget), valid_data=validate,
        steps_per_epoch=steps, on_epoch_end=samples if config.training.samples else None,
        on_epoch_start=(lambda trainer, epoch: model.reset_memory()) if is_recurrent(model) else None,
    )


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
        with trainer.writers["valid"].as_default(step=trainer.step):
            tf.summary.text("sample_generations", "\n".join(rows))


def average_run_checkpoints(run_dir, count=5):
    """Averages the last `count` training checkpoints of a run into `checkpoints/averaged/`; returns its path."""
    return save_averaged_checkpoint(run_dir, build_model(load_run_config(run_dir), load_vocabulary(run_dir)), count)


def evaluate(run_dir, split="test", checkpoint="best", max_tokens=None, stride=None, memory_length=None,
             dynamic=None, cache=None):
    """Loss, perplexity, bits per character and word-level perplexity on a split; writes eval/<split>.json.

    More context than training gave: `stride` (GPT) scores each token in windows `stride` apart (default the
    run's `data.eval_stride`, else half a window); `memory_length` (Transformer-XL) keeps that many hidden
    states of the previous segments instead of the trained length (the paper evaluates with longer memory).
    Adaptive evaluation: `dynamic` (a `DynamicEvaluation`) keeps training on the text already scored; `cache`
    (a `NeuralCache`) points at the tokens that followed similar states (choose their settings on `valid`).
    The JSON file's name then says so (`test.best.memory256.json`,
    `test.best.dynamic0.15d0.01.cache4000t0.05m0.2.json`).
    """
    config = load_run_config(run_dir)
    tokenizer = load_vocabulary(run_dir)
    recurrent = config.model.type == "transformer_xl"
    if memory_length is not None and not recurrent:
        raise ValueError(f"memory_length is for Transformer-XL runs; {run_dir} is a {config.model.type!r} run "
                         "(give it a stride instead).")
    if stride is not None and recurrent:
        raise ValueError(f"stride is for window models; {run_dir} is a Transformer-XL run, which reads the text "
                         "with memory (give it a memory_length instead).")
    if stride is not None and not 0 < stride <= config.data.sequence_length:
        raise ValueError(f"stride must be in [1, {config.data.sequence_length}] (the run's sequence_length); got "
                         f"{stride}.")
    if memory_length is not None and memory_length < 0:
        raise ValueError(f"memory_length must be 0 or more; got {memory_length}.")
    if memory_length is not None:
        config.model.params = {**config.model.params, "memory_length": memory_length}
    model = build_model(config, tokenizer)
    restore_model(model, resolve_run_checkpoint(run_dir, checkpoint))
    lines = read_split(config.data, split)
    ids, line_lengths = tokenize_stream(lines, tokenizer, line_lengths=True)
    if max_tokens:  # whole lines only, so the word count matches the tokens scored
        kept = int(np.searchsorted(np.cumsum(line_lengths), max_tokens + 1, side="right"))
        lines = lines[:kept]
        ids = ids[: int(np.sum(line_lengths[:kept]))]
    started = time.monotonic()
    window_stride = stride or config.data.eval_stride or max(1, config.data.sequence_length // 2)
    loss, tokens = evaluate_ids(model, ids, config.data.sequence_length, config.data.batch_size, window_stride,
                                dynamic=dynamic, cache=cache, progress=True)
    result = metrics(loss, tokens, lines, tokenizer, text_tokens=len(ids) - 1)
    result.update({"split": split, "checkpoint": checkpoint, "seconds": round(time.monotonic() - started, 1),
                   "context": f"contiguous segments with memory {model.memory_length}" if is_recurrent(model) else
                   f"windows of {config.data.sequence_length}, stride {window_stride}"})
    if dynamic is not None:
        result["dynamic"] = dataclasses.asdict(dynamic)
    if cache is not None:
        result["cache"] = dataclasses.asdict(cache)
    directory = os.path.join(run_dir, "eval")
    os.makedirs(directory, exist_ok=True)
    setting = ""  # every setting that differs from the plain reading, so that results do not overwrite each other
    if memory_length is not None:
        setting += f".memory{memory_length}"
    if stride is not None:
        setting += f".stride{stride}"
    if dynamic is not None:
        setting += f".dynamic{dynamic.learning_rate:g}" + (f"d{dynamic.decay:g}" if dynamic.decay else "") + \
            (f"s{dynamic.streams}" if dynamic.streams != 1 else "")
    if cache is not None:
        setting += f".cache{cache.size}t{cache.theta:g}m{cache.mix:g}"
    with open(os.path.join(directory, f"{split}.{os.path.basename(str(checkpoint))}{setting}.json"), "w") as f:
        json.dump(result, f, indent=1)
    logger.info("%s %s: loss %.4f, perplexity %.2f, word perplexity %.2f", run_dir, split, result["loss"],
                result["perplexity"], result["word_perplexity"])
    return result
