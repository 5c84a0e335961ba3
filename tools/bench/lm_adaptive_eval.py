"""Adaptive evaluation of a trained language-model run: static vs neural cache vs dynamic evaluation.

Chooses the settings on the validation split, then scores the test split once with each, and prints word-level
perplexities with their ratio to the static figure of the same process:

1. validation, static; then read again keeping the hidden states (Transformer-XL: as one stream, as
   `evaluate_ids` reads it with a cache): the cache's (size, theta, mix) grid on them;
2. the first `--tune-tokens` of validation: the dynamic-evaluation learning rates (and decays), against the
   static score of the same tokens read in one stream;
3. all of validation with the chosen dynamic evaluation, keeping the hidden states: the cache grid again, for
   the two together;
4. test: static (the run's own reading, and one stream), cache, dynamic, dynamic + cache, through
   `language_modeling.evaluate` (which writes `RUN/eval/test.best.*.json`).

    python tools/bench/lm_adaptive_eval.py --run-dir runs/wikitext2-transformer_xl-60m-muon-bf16-chunks8
"""

import argparse
import itertools
import json
import os
import sys
import time

import numpy as np

from tflm.data.language_modeling import tokenize_stream
from tflm.tasks import language_modeling as lm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def floats(text):
    return [float(value) for value in text.split(",")]


def ints(text):
    return [int(value) for value in text.split(",")]


def mean_nll(losses):
    return float(np.sum([np.sum(loss, dtype=np.float64) for loss in losses]) / sum(len(loss) for loss in losses))


def best_cache(streams, sizes, thetas, mixes, log):
    """The grid's lowest mean loss on `streams` (as `score_ids` returns them, with hidden states)."""
    best = None
    for size, theta, mix in itertools.product(sizes, thetas, mixes):
        cache = lm.NeuralCache(size, theta, mix)
        loss = mean_nll([lm.cache_nll(stream, cache) for stream in streams])
        log(f"  cache size {size} theta {theta} mix {mix}: {loss:.4f}")
        if best is None or loss < best[0]:
            best = (loss, cache)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--checkpoint", default="best")
    # The default grids: those of docs/benchmarks.md's WikiText-2 Transformer-XL figures.
    parser.add_argument("--learning-rates", type=floats, default=[0.05, 0.1, 0.15, 0.2])
    parser.add_argument("--decays", type=floats, default=[0.0, 0.001, 0.01])
    parser.add_argument("--cache-sizes", type=ints, default=[1000, 2000, 4000])
    parser.add_argument("--thetas", type=floats, default=[0.02, 0.03, 0.05])
    parser.add_argument("--mixes", type=floats, default=[0.15, 0.2, 0.3])
    parser.add_argument("--tune-tokens", type=int, default=40000,
                        help="validation tokens that the dynamic learning rates and decays are chosen on")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args()
    started = time.monotonic()

    def log(message):
        print(f"[{time.monotonic() - started:6.0f}s] {message}", flush=True)

    log(describe())
    config = lm.load_run_config(args.run_dir)
    generator = lm.Generator.from_run_dir(args.run_dir, args.checkpoint)
    model, tokenizer = generator.model, generator.tokenizer
    length, streams, stride = (config.data.sequence_length, config.data.batch_size,
                               config.data.eval_stride or config.data.sequence_length // 2)
    valid_lines = lm.read_split(config.data, "valid")
    valid = tokenize_stream(valid_lines, tokenizer)

    def word_perplexity(loss, lines, ids):
        return lm.metrics(loss, 1, lines, tokenizer, text_tokens=len(ids) - 1)["word_perplexity"]

    static, _ = lm.evaluate_ids(model, valid, length, streams, stride)
    log(f"valid static: loss {static:.4f}, word ppl {word_perplexity(static, valid_lines, valid)}")
    # With a cache, evaluate_ids reads Transformer-XL's text as one stream: choose the cache on that reading.
    scored = lm.score_ids(model, valid, length, 1 if lm.is_recurrent(model) else streams, stride, keep_hidden=True)
    cache_loss, cache = best_cache(scored, args.cache_sizes, args.thetas, args.mixes, log)
    del scored
    log(f"valid cache {cache}: loss {cache_loss:.4f}, word ppl {word_perplexity(cache_loss, valid_lines, valid)}")

    part = valid[: args.tune_tokens + 1]
    one_stream, _ = lm.evaluate_ids(model, part, length, batch_size=1, stride=stride)
    log(f"valid[:{args.tune_tokens}] static, one stream: {one_stream:.4f}")
    dynamic, dynamic_loss = None, None
    for learning_rate, decay in itertools.product(args.learning_rates, args.decays):
        candidate = lm.DynamicEvaluation(learning_rate, decay)
        loss, _ = lm.evaluate_ids(model, part, length, stride=stride, dynamic=candidate)
        log(f"  dynamic lr {learning_rate} decay {decay}: {loss:.4f} ({loss - one_stream:+.4f})")
        if np.isfinite(loss) and (dynamic_loss is None or loss < dynamic_loss):
            dynamic, dynamic_loss = candidate, loss
    log(f"chosen: {dynamic}")

    scored = lm.score_ids(model, valid, length, streams, stride, dynamic=dynamic, keep_hidden=True)
    dynamic_valid = mean_nll([stream["nll"] for stream in scored])
    log(f"valid dynamic: loss {dynamic_valid:.4f}, word ppl {word_perplexity(dynamic_valid, valid_lines, valid)}")
    both_loss, both_cache = best_cache(scored, args.cache_sizes, args.thetas, args.mixes, log)
    del scored
    log(f"valid dynamic + cache {both_cache}: loss {both_loss:.4f}, "
        f"word ppl {word_perplexity(both_loss, valid_lines, valid)}")

    test_lines = lm.read_split(config.data, "test")
    test = tokenize_stream(test_lines, tokenizer)
    figures = {"run_dir": args.run_dir, "checkpoint": args.checkpoint, "machine": describe(),
               "valid": {"static": word_perplexity(static, valid_lines, valid),
                         "cache": word_perplexity(cache_loss, valid_lines, valid),
                         "dynamic": word_perplexity(dynamic_valid, valid_lines, valid),
                         "dynamic+cache": word_perplexity(both_loss, valid_lines, valid)},
               "settings": {"cache": vars(cache), "dynamic": vars(dynamic), "dynamic+cache": vars(both_cache)},
               "test": {}, "seconds": {}}
    loss, _ = lm.evaluate_ids(model, test, length, batch_size=1, stride=stride)
    figures["test"]["static, one stream"] = word_perplexity(loss, test_lines, test)
    for name, options in [("static", {}), ("cache", {"cache": cache}), ("dynamic", {"dynamic": dynamic}),
                          ("dynamic+cache", {"dynamic": dynamic, "cache": both_cache})]:
        result = lm.evaluate(args.run_dir, "test", args.checkpoint, **options)
        figures["test"][name], figures["seconds"][name] = result["word_perplexity"], result["seconds"]
    base = figures["test"]["static"]
    print(f"\n{'test':<20} {'word ppl':>9} {'vs static':>9} {'seconds':>8}")
    for name, value in figures["test"].items():
        print(f"{name:<20} {value:9.1f} {value / base:9.3f} {figures['seconds'].get(name, ''):>8}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
