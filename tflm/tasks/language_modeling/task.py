"""The language-modelling task: a `Task` whose runs train a GPT or Transformer-XL on text and are scored by
perplexity (and bits per character, word-level perplexity)."""

import dataclasses
import inspect
import logging
import time

import numpy as np

from tflm.data.language_modeling import tokenize_stream
from tflm.models import get_model_class
from tflm.tasks import register_task
from tflm.tasks.base import Evaluation, Task
from tflm.tasks.language_modeling.config import LanguageModelConfig
from tflm.tasks.language_modeling.data import (
    load_vocabulary,
    prepare_data,
    prepare_vocabulary,
    prepared_task_data,
    read_split,
    task_data,
)
from tflm.tasks.language_modeling.generator import SAMPLE_PROMPTS, Generator, SampleGenerations
from tflm.tasks.language_modeling.scoring import DynamicEvaluation, NeuralCache, evaluate_ids, metrics
from tflm.tasks.sections import model_dtype, model_params
from tflm.training.checkpoints import resolve_run_checkpoint
from tflm.training.checkpoints import restore_model

logger = logging.getLogger("tflm")


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


def _evaluation_setting(memory_length, stride, dynamic, cache):
    """Every setting that differs from the plain reading, for the file name (results never overwrite each other)."""
    setting = ""
    if memory_length is not None:
        setting += f".memory{memory_length}"
    if stride is not None:
        setting += f".stride{stride}"
    if dynamic is not None:
        setting += f".dynamic{dynamic.learning_rate:g}" + (f"d{dynamic.decay:g}" if dynamic.decay else "") + \
            (f"s{dynamic.streams}" if dynamic.streams != 1 else "")
    if cache is not None:
        setting += f".cache{cache.size}t{cache.theta:g}m{cache.mix:g}"
    return setting


@register_task
class LanguageModelingTask(Task):
    """Language modelling: `tflm train --task language_modeling`, `tflm evaluate` (perplexity), `tflm generate`."""

    name = "language_modeling"
    config_class = LanguageModelConfig
    command = "generate"
    final_metrics = ("perplexity", "word_perplexity", "bits_per_character")
    evaluation_options = ("stride", "memory_length", "dynamic", "cache", "dynamic_lr", "dynamic_decay",
                          "dynamic_streams", "cache_size", "cache_theta", "cache_mix")

    def prepare_data(self, config, run_dir):
        return prepared_task_data(prepare_data(config, run_dir), config.data.batch_size)

    def prepare_vocabulary(self, config, run_dir):
        tokenizer = prepare_vocabulary(config.vocabulary, run_dir, read_split(config.data, "train"))
        return f"{tokenizer.kind} vocabulary of {tokenizer.vocabulary_size} tokens"

    def load_tokenizers(self, run_dir):
        return load_vocabulary(run_dir)

    def build_model(self, config, tokenizers):
        return build_model(config, tokenizers)

    def prepare_model_for_training(self, config, model):
        model.enable_memory_state(config.data.batch_size)

    def training_data(self, config, data, model):
        return task_data(config, data.data, model)

    def make_predictor(self, config, model, tokenizers, decoding=None, jit_compile=False, truncate=False):
        return Generator(model, tokenizers, decoding or config.decoding, jit_compile=jit_compile, truncate=truncate)

    def samples(self, config, model, data):
        return SampleGenerations(Generator(model, data.tokenizer, config.decoding), config.training.samples)

    def export_inputs(self, config, count=16):
        return list(SAMPLE_PROMPTS)

    def evaluate_split(self, run_dir, config, split, checkpoint, max_examples=None, decoding=None, stride=None,
                       memory_length=None, dynamic=None, cache=None, dynamic_lr=None, dynamic_decay=None,
                       dynamic_streams=None, cache_size=None, cache_theta=None, cache_mix=None):
        """Loss, perplexity, bits per character and word-level perplexity on a split (the first `max_examples`
        tokens, in whole lines).

        More context than training gave: `stride` (GPT) scores each token in windows `stride` apart (default
        the run's `data.eval_stride`, else half a window); `memory_length` (Transformer-XL) keeps that many
        hidden states of the previous segments instead of the trained length (the paper evaluates with
        longer memory). Adaptive evaluation: `dynamic` (a `DynamicEvaluation`, or `dynamic_lr`,
        `dynamic_decay`, `dynamic_streams`) keeps training on the text already scored; `cache` (a
        `NeuralCache`, or `cache_size`, `cache_theta`, `cache_mix`) points at the tokens that followed similar
        states (choose their settings on `valid`). The file's name then says so (`test.best.memory256.json`,
        `test.best.dynamic0.15d0.01.cache4000t0.05m0.2.json`).
        """
        if dynamic is None and dynamic_lr is not None:
            dynamic = DynamicEvaluation(dynamic_lr, dynamic_decay or 0.0, dynamic_streams or 1)
        if cache is None and cache_size is not None:
            defaults = NeuralCache()
            cache = NeuralCache(cache_size, defaults.theta if cache_theta is None else cache_theta,
                                defaults.mix if cache_mix is None else cache_mix)
        tokenizer = self.load_tokenizers(run_dir)
        takes_memory = "memory_length" in inspect.signature(get_model_class(config.model.type).__init__).parameters
        if memory_length is not None and not takes_memory:
            raise ValueError(f"memory_length is for Transformer-XL runs; {run_dir} is a {config.model.type!r} run "
                             "(give it a stride instead).")
        if memory_length is not None and memory_length < 0:
            raise ValueError(f"memory_length must be 0 or more; got {memory_length}.")
        if memory_length is not None:
            config.model.params = {**config.model.params, "memory_length": memory_length}
        model = build_model(config, tokenizer)
        if stride is not None and model.reads_contiguous_streams:
            raise ValueError(f"stride is for window models; {run_dir} is a Transformer-XL run, which reads the text "
                             "with memory (give it a memory_length instead).")
        if stride is not None and not 0 < stride <= config.data.sequence_length:
            raise ValueError(f"stride must be in [1, {config.data.sequence_length}] (the run's sequence_length); "
                             f"got {stride}.")
        restore_model(model, resolve_run_checkpoint(run_dir, checkpoint))
        lines = read_split(config.data, split)
        ids, line_lengths = tokenize_stream(lines, tokenizer, line_lengths=True)
        if max_examples:  # whole lines only, so the word count matches the tokens scored
            kept = int(np.searchsorted(np.cumsum(line_lengths), max_examples + 1, side="right"))
            lines = lines[:kept]
            ids = ids[: int(np.sum(line_lengths[:kept]))]
        started = time.monotonic()
        window_stride = stride or config.data.eval_stride or max(1, config.data.sequence_length // 2)
        loss, tokens = evaluate_ids(model, ids, config.data.sequence_length, config.data.batch_size, window_stride,
                                    dynamic=dynamic, cache=cache, progress=True)
        result = metrics(loss, tokens, lines, tokenizer, text_tokens=len(ids) - 1)
        context = (f"contiguous segments with memory {model.memory_length}" if model.reads_contiguous_streams else
                   f"windows of {config.data.sequence_length}, stride {window_stride}")
        result.update({"split": split, "checkpoint": checkpoint, "seconds": round(time.monotonic() - started, 1),
                       "context": context})
        if dynamic is not None:
            result["dynamic"] = dataclasses.asdict(dynamic)
        if cache is not None:
            result["cache"] = dataclasses.asdict(cache)
        summary = (f"loss {result['loss']:.4f}, perplexity {result['perplexity']:.2f}, word perplexity "
                   f"{result['word_perplexity']:.2f}")
        return Evaluation(result, setting=_evaluation_setting(memory_length, stride, dynamic, cache), summary=summary)
