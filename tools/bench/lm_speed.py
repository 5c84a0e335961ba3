"""tflm GPT vs keras-hub GPT-2 of the same size: training and generation tokens/s, in one process.

    python tools/bench/lm_speed.py --data-dir ../shared/data [--hidden 384 --layers 6 --heads 6 --vocab-size 8000]

Both models get the same shape (width, layers, heads, feed-forward, vocabulary, context), the same batches
of WikiText-2 token windows and the same precision:
  - training: tflm's `Trainer.fit` on `tflm.models.GPT`, as a graph and XLA-compiled (`jit_compile=True`), vs
    `keras_hub.models.GPT2CausalLM(GPT2Backbone)` with Keras `fit` (Keras' default `jit_compile="auto"`;
    the benchmark prints what it chose); all with Adam, `--warmup` steps, then `--steps` timed in `--rounds`
    rounds that take turns (a few steps of each contender per round);
  - generation: `tflm.language_modeling.Generator.generate` (in-graph greedy decoding with a key/value
    cache, strings in and out), as a plain graph (what exports run) and with `jit_compile=True` (XLA, in
    this process), vs `GPT2CausalLM.generate` (keras-hub's greedy sampler, XLA-compiled, token ids in and
    out), `--new-tokens` after prompts of `--prompt-length` tokens, batches of `--generate-batch`; the
    fastest of `--repeats` calls counts.
Ratios are tflm / keras-hub.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

import tflm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4, help="timed training steps are split into rounds")
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--generate-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed generation calls; the fastest counts")
    parser.add_argument("--mixed-precision", default=None, help="bfloat16 for both models")
    parser.add_argument("--parts", default="training,generation",
                        help="what to measure: training, generation or both (comma-separated)")
    args = parser.parse_args()
    unknown = set(args.parts.split(",")) - {"training", "generation"}
    if unknown:
        parser.error(f"--parts {args.parts!r}: unknown {', '.join(sorted(unknown))}; use training, generation or both.")
    return args


def best_seconds(function, repeats):
    """The shortest of `repeats` timed calls (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeats):
        started = time.monotonic()
        function()
        times.append(time.monotonic() - started)
    return min(times)


def main():
    args = parse_args()

    tflm.log.setup_logging(verbose=False)
    lm = tflm.language_modeling
    work = tempfile.mkdtemp()
    config = lm.LanguageModelConfig(
        data=lm.LMDataConfig(dataset="wikitext-2-raw", data_dir=args.data_dir, sequence_length=args.sequence_length,
                             batch_size=args.batch_size, max_train_tokens=2_000_000),
        vocabulary=lm.LMVocabularyConfig(type="unigram", size=args.vocab_size),
        model=tflm.translation.ModelConfig(type="gpt", params=dict(
            hidden_dim=args.hidden, intermediate_dim=4 * args.hidden, num_heads=args.heads, num_layers=args.layers,
            dropout=0.1, max_sequence_length=args.sequence_length + args.new_tokens + args.prompt_length)),
        training=tflm.translation.TrainingConfig(label_smoothing=0.0, clip_norm=None, learning_rate=3e-4,
                                                 mixed_precision=args.mixed_precision, samples=0),
    )
    data = lm.prepare_data(config, work)
    vocabulary = data.tokenizer.vocabulary_size
    windows = tflm.data.language_modeling.windows(data.train_ids, args.sequence_length)[
        : (args.warmup + args.steps) * args.batch_size]
    dtype = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}.get(args.mixed_precision)
    print(f"machine: {describe()}")

    parts = set(args.parts.split(","))
    # --- training: tflm
    trainer = lm.build_trainer(config, work, data, verbose=False)
    model = trainer.model
    if "training" in parts:
        tflm_train, tflm_xla_train, keras_train, keras_jit = train_speeds(
            args, trainer, config, data, windows, vocabulary, dtype)
    if "generation" in parts:
        keras_generate, tflm_generate, tflm_xla_generate, same = generation_speeds(
            args, model, data.tokenizer, windows, vocabulary, dtype)

    print(f"GPT: {args.layers} layers, width {args.hidden}, {args.heads} heads, vocabulary {vocabulary}, context "
          f"{args.sequence_length}; {tflm.translation.count_parameters(model):,} parameters; "
          f"precision {args.mixed_precision or 'float32'}")
    if "training" in parts:
        print("training tokens/s:")
        print(f"  keras-hub fit (jit_compile={keras_jit})          {keras_train:8.0f}")
        print(f"  tflm Trainer.fit                                {tflm_train:8.0f}   "
              f"ratio x{tflm_train / keras_train:.2f}")
        print(f"  tflm Trainer.fit, jit_compile=True              {tflm_xla_train:8.0f}   "
              f"ratio x{tflm_xla_train / keras_train:.2f}")
    if "generation" in parts:
        print(f"generation tokens/s (batch {args.generate_batch}, {args.new_tokens} new tokens, greedy):")
        print(f"  keras-hub generate (XLA)       {keras_generate:8.1f}")
        print(f"  tflm graph (as exported)       {tflm_generate:8.1f}   ratio x{tflm_generate / keras_generate:.2f}")
        print(f"  tflm jit_compile=True          {tflm_xla_generate:8.1f}   "
              f"ratio x{tflm_xla_generate / keras_generate:.2f}   (same texts as the graph: {same})")


def keras_hub_model(args, vocabulary, max_sequence_length, dtype):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary, num_layers=args.layers, num_heads=args.heads, hidden_dim=args.hidden,
        intermediate_dim=4 * args.hidden, dropout=0.1, max_sequence_length=max_sequence_length, dtype=dtype)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def train_speeds(args, trainer, config, data, windows, vocabulary, dtype):
    """Training tokens/s of tflm's `Trainer.fit` (a graph, and XLA-compiled) and of keras-hub's GPT-2 with
    Keras `fit` (XLA-compiled when Keras' `jit_compile="auto"` finds every layer supports it).

    After `--warmup` steps of each, the `--steps` timed steps run in `--rounds` rounds, each round a few
    steps of every contender in turn, so that a slow spell of the machine falls on all of them.
    """
    import keras

    model = trainer.model
    dataset = lambda epoch: tf.data.Dataset.from_tensor_slices(windows).batch(args.batch_size).map(  # noqa: E731
        lambda w: ({"token_ids": w[:, :-1]}, w[:, 1:]))
    config.training.jit_compile = True
    xla_trainer = tflm.language_modeling.build_trainer(config, tempfile.mkdtemp(), data, verbose=False)
    causal_lm = keras_hub_model(args, vocabulary, model.max_sequence_length, dtype)
    causal_lm.compile(optimizer=keras.optimizers.Adam(3e-4), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), weighted_metrics=[])
    inputs = {"token_ids": windows[:, :-1], "padding_mask": np.ones_like(windows[:, :-1], dtype=bool)}
    labels = windows[:, 1:]

    def tflm_steps(trainer, first, count):
        """Seconds of `count` steps from step `first` (the trainer's own clock: the steps, not saving)."""
        before = float(trainer.train_seconds.numpy())
        return trainer.fit(dataset, max_steps=first + count).train_seconds - before

    def keras_steps(first, count):
        rows = slice(first * args.batch_size, (first + count) * args.batch_size)
        started = time.monotonic()
        causal_lm.fit({k: v[rows] for k, v in inputs.items()}, labels[rows], batch_size=args.batch_size,
                      verbose=0, shuffle=False)
        return time.monotonic() - started

    contenders = {"tflm": lambda first, count: tflm_steps(trainer, first, count),
                  "tflm_xla": lambda first, count: tflm_steps(xla_trainer, first, count),
                  "keras": keras_steps}
    for run in contenders.values():  # warm up: trace, compile
        run(0, args.warmup)
    seconds = dict.fromkeys(contenders, 0.0)
    per_round = -(-args.steps // args.rounds)
    first = args.warmup
    while first < args.warmup + args.steps:
        count = min(per_round, args.warmup + args.steps - first)
        for name, run in contenders.items():
            seconds[name] += run(first, count)
        first += count
    tokens = args.steps * args.batch_size * args.sequence_length
    return (tokens / seconds["tflm"], tokens / seconds["tflm_xla"], tokens / seconds["keras"],
            causal_lm.jit_compile)


def generation_speeds(args, model, tokenizer, windows, vocabulary, dtype):
    """Greedy generation tokens/s: keras-hub's `generate`, tflm's Generator as a graph and with XLA."""
    lm = tflm.language_modeling
    # --- generation: the same prompts, greedy, the same number of new tokens
    prompts_ids = windows[: args.generate_batch, : args.prompt_length]
    prompts = [np.asarray(tokenizer.detokenize(tf.constant([row.tolist()])))[0].decode() for row in prompts_ids]
    # EOS is forbidden, so both generate exactly --new-tokens (keras-hub runs without stop tokens)
    options = tflm.decoding.DecodingOptions(strategy="greedy", max_length=args.new_tokens, max_length_a=0.0,
                                            min_length=args.prompt_length + args.new_tokens)
    generator = lm.Generator(model, tokenizer, options)
    generator.generate(prompts)  # trace
    tflm_generate = args.generate_batch * args.new_tokens / best_seconds(
        lambda: generator.generate(prompts), args.repeats)
    xla_generator = lm.Generator(model, tokenizer, options, jit_compile=True)
    same = xla_generator.generate(prompts) == generator.generate(prompts)  # trace and XLA-compile
    tflm_xla_generate = args.generate_batch * args.new_tokens / best_seconds(
        lambda: xla_generator.generate(prompts), args.repeats)

    causal_lm = keras_hub_model(args, vocabulary, model.max_sequence_length, dtype)
    causal_lm.compile(sampler="greedy")
    total = args.prompt_length + args.new_tokens
    padded = np.zeros((args.generate_batch, total), dtype="int32")
    padded[:, : args.prompt_length] = prompts_ids
    mask = np.zeros_like(padded, dtype=bool)
    mask[:, : args.prompt_length] = True
    request = {"token_ids": padded, "padding_mask": mask}
    causal_lm.generate(request, max_length=total, stop_token_ids=None)  # trace and XLA-compile
    keras_generate = args.generate_batch * args.new_tokens / best_seconds(
        lambda: causal_lm.generate(request, max_length=total, stop_token_ids=None), args.repeats)

    return keras_generate, tflm_generate, tflm_xla_generate, same


if __name__ == "__main__":
    main()
