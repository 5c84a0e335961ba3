"""Decoding speed of a trained run, as ratios measured in one process.

    python tools/bench/decode_speed.py --run-dir RUN [--sentences 256] [--batch-size 32]

Reports, on the first `--sentences` test sentences of the run's corpus, in sentences per second:
  1. beam 4 vs greedy (the run's model, batches of `--batch-size`);
  2. XLA (`jit_compile=True`) vs graph mode, greedy and beam 4;
  3. key/value-cached decoding vs recomputing the whole prefix at every step (Transformers), forcing
     `--cache-length` output tokens (EOS is forbidden before that), where the cache matters.
Batches are sorted by length and their decoding buffers sized as `Translator` sizes them (the relative length
limit of each batch's longest source). Every variant decodes the same batches once to warm up
(trace/compile), then is timed over all of them.
"""

import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf

import tflm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache-length", type=int, default=50)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: beam, xla, cache")
    return parser.parse_args()


def timed(function, batches):
    for batch in batches:  # warm-up: trace (and compile) every shape
        function(*batch)
    started = time.monotonic()
    for batch in batches:
        result = function(*batch)
        np.asarray(result)
    return time.monotonic() - started


def main():
    args = parse_args()
    tflm.log.setup_logging(verbose=False)
    translation = tflm.translation
    config = translation.load_run_config(args.run_dir)
    translator = translation.Translator.from_run_dir(args.run_dir, args.checkpoint)
    model = translator.model
    sentences = translation.read_split(config.data, "test", max_pairs=args.sentences).source
    sentences.sort(key=len)  # batches of similar lengths, as `Translator.translate` makes them
    batches = [translator.encode_source(tf.constant(sentences[i: i + args.batch_size]))
               for i in range(0, len(sentences), args.batch_size)]
    # Each batch with its decoding buffer length, as `Translator` sizes it (the relative limit of its longest
    # source); a Python int, so that every variant, XLA included, gets the same static shapes.
    lengths = [tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), axis=1) for ids in batches]
    batches = [(ids, n, int(translator.buffer_length(n))) for ids, n in zip(batches, lengths)]
    count = len(sentences)
    skip = set(args.skip.split(","))
    print(f"machine: {describe()}")
    print(f"{args.run_dir}: {type(model).__name__}, {translation.count_parameters(model):,} parameters; "
          f"{count} test sentences in batches of {args.batch_size}")

    def decoder(options, jit=False, cached=True):
        @tf.function(jit_compile=jit)
        def decode(source_ids, source_lengths, max_length):
            encoded = model.encode(source_ids)
            if cached:
                step_fn, state = model.decode_step, model.initial_state(encoded, max_length)
            else:
                step_fn, state = model.uncached_decoding(encoded, max_length)
            return tflm.decoding.search(step_fn, state, tf.shape(source_ids)[0], options, source_lengths,
                                        max_length=max_length).token_ids

        # with a relative limit, the translator's buffer; without (the forced-length runs), the absolute one
        return lambda ids, lengths, length: decode(ids, lengths, length if options.max_length_a else
                                                   options.max_length)

    base = translator.decoding
    greedy = tflm.decoding.DecodingOptions(**{**vars(base), "strategy": "greedy"})
    beam = tflm.decoding.DecodingOptions(**{**vars(base), "strategy": "beam", "beam_size": 4, "n_best": 1})
    rows = []
    greedy_seconds = timed(decoder(greedy), batches)
    rows.append(("greedy", count / greedy_seconds, 1.0))
    if "beam" not in skip:
        beam_seconds = timed(decoder(beam), batches)
        rows.append(("beam 4", count / beam_seconds, greedy_seconds / beam_seconds))
    if "xla" not in skip:
        xla_seconds = timed(decoder(greedy, jit=True), batches)
        rows.append(("greedy, XLA", count / xla_seconds, greedy_seconds / xla_seconds))
        if "beam" not in skip:
            xla_beam = timed(decoder(beam, jit=True), batches)
            rows.append(("beam 4, XLA", count / xla_beam, beam_seconds / xla_beam))
    if "cache" not in skip and hasattr(model, "decoder_layers"):
        forced = tflm.decoding.DecodingOptions(**{**vars(greedy), "min_length": args.cache_length,
                                                  "max_length": args.cache_length + 1, "max_length_a": 0.0})
        cached = timed(decoder(forced), batches)
        uncached = timed(decoder(forced, cached=False), batches)
        rows.append((f"greedy, {args.cache_length} tokens, KV cache", count / cached, uncached / cached))
        rows.append((f"greedy, {args.cache_length} tokens, recomputing", count / uncached, 1.0))
    for name, per_second, ratio in rows:
        print(f"{name:>40}: {per_second:8.1f} sentences/s   ratio x{ratio:.2f}")
    print("ratios: beam vs greedy (sentence throughput), XLA vs graph of the same strategy, cache vs recompute")


if __name__ == "__main__":
    main()
