"""Training throughput (target tokens per second) of a translation model, in several variants, in one process.

    python tools/bench/train_speed.py --data-dir ../shared/data --model transformer --preset small \
        --variants fp32,bf16,xla,xla+bf16 --steps 40

Each variant builds a fresh model and trainer and trains with `Trainer.fit` on real batches of the corpus
(a token budget of `--batch-tokens`): `--warmup` steps (tracing; XLA compilation) then `--steps` timed
steps, by the trainer's own clock (waiting for data included). Ratios are against the first variant.
Variants: `fp32`, `bf16` (mixed bfloat16), `xla` (XLA-compiled forward/backward with fixed batch shapes),
combinations with `+`.
"""

import argparse
import os
import sys
import tempfile
import time

import tflm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tatoeba-es-en")
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--direction", default="en-es")
    parser.add_argument("--model", default="transformer")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--joint", action="store_true", help="one joint vocabulary (default: one per side)")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--bucket-growth", type=float, default=1.5, help="bucket width for fixed shapes (XLA)")
    parser.add_argument("--variants", default="fp32,bf16")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=40, help="steps before timing (tracing, XLA compilation)")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "tflm-bench"))
    return parser.parse_args()


def config_for(args, variant):
    translation = tflm.translation
    source, target = args.direction.split("-")
    parts = set(variant.split("+"))
    return translation.TranslationConfig(
        data=translation.DataConfig(dataset=args.dataset, data_dir=args.data_dir, source_language=source,
                                    target_language=target, batch_tokens=args.batch_tokens),
        vocabulary=translation.VocabularyConfig(type="unigram", size=args.vocab_size, joint=args.joint),
        model=translation.ModelConfig(type=args.model, preset=args.preset),
        training=translation.TrainingConfig(mixed_precision="bfloat16" if "bf16" in parts else None,
                                            jit_compile="xla" in parts),
    )


def measure(args, variant, data):
    """Target tokens/s of `variant`, through `Trainer.fit` (the training code path): the first
    `--warmup` steps trace/compile, the next `--steps` are timed (the trainer's own step clock)."""
    import dataclasses

    import keras

    translation = tflm.translation
    xla = "xla" in variant.split("+")
    config = config_for(args, variant)
    keras.utils.set_random_seed(0)
    prepared = dataclasses.replace(data, batching=dataclasses.replace(
        data.batching, fixed_shapes=xla, bucket_growth=args.bucket_growth if xla else 1.2))
    trainer = translation.build_trainer(config, tempfile.mkdtemp(dir=args.work_dir), prepared, verbose=False)
    batches = lambda epoch: prepared.train_dataset(epoch)  # noqa: E731
    started = time.monotonic()
    warm = trainer.fit(batches, max_steps=args.warmup)
    warmup_seconds = time.monotonic() - started
    timed = trainer.fit(batches, max_steps=args.warmup + args.steps)
    seconds = timed.train_seconds - warm.train_seconds
    return {"variant": variant, "steps": args.steps, "warmup_seconds": warmup_seconds,
            "tokens_per_second": (timed.target_tokens - warm.target_tokens) / seconds,
            "parameters": translation.count_parameters(trainer.model)}


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    tflm.log.setup_logging(verbose=False)
    import logging

    logging.getLogger("tflm").setLevel(logging.WARNING)
    variants = args.variants.split(",")
    vocab_dir = os.path.join(args.work_dir, f"vocab-{args.dataset}-{args.direction}-{args.vocab_size}-{args.joint}")
    config = config_for(args, variants[0])
    data = tflm.translation.prepare_data(config, vocab_dir)
    print(f"machine: {describe()}")
    print(f"{args.model}/{args.preset} on {args.dataset} {args.direction}, batches of {args.batch_tokens} tokens")
    results = [measure(args, variant, data) for variant in variants]
    base = results[0]["tokens_per_second"]
    for r in results:
        print(f"{r['variant']:>10}: {r['tokens_per_second']:8.0f} target tokens/s  x{r['tokens_per_second'] / base:.2f}"
              f"  ({r['steps']} timed steps after {r['warmup_seconds']:.0f}s of warm-up; "
              f"{r['parameters']:,} parameters)")


if __name__ == "__main__":
    main()
