"""Training tokens/s of one GPT with Adam, Muon (Newton–Schulz in float32) and Muon (Newton–Schulz in bfloat16).

    python tools/bench/optimizer_speed.py --data-dir ../shared/data [--hidden 384 --layers 4 --heads 6]

The character-level Shakespeare GPT of the recipe (rotary positions, no dropout), trained with tflm's
`Trainer.fit` on the same batches in each variant, under `--mixed-precision` (bfloat16 by default, where the
recipe puts Muon's iterations in bfloat16). After `--warmup` steps of each, the `--steps` timed steps run in
`--rounds` rounds, a few steps of every variant per round, so that a slow spell of the machine falls on all.
Ratios are against Muon with float32 iterations (Keras' `Muon` as it is).
"""

import argparse
import os
import sys
import tempfile

import tflm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=6, help="timed training steps are split into rounds")
    parser.add_argument("--mixed-precision", default="bfloat16", help="bfloat16, float16 or float32")
    return parser.parse_args()


def main():
    args = parse_args()
    tflm.log.setup_logging(verbose=False)
    lm = tflm.language_modeling
    precision = None if args.mixed_precision == "float32" else args.mixed_precision
    work = tempfile.mkdtemp()

    def config(optimizer):
        return lm.LanguageModelConfig(
            data=lm.LMDataConfig(dataset="shakespeare", data_dir=args.data_dir, sequence_length=args.sequence_length,
                                 batch_size=args.batch_size),
            vocabulary=lm.LMVocabularyConfig(type="character"),
            model=tflm.translation.ModelConfig(type="gpt", preset="small", params=dict(
                hidden_dim=args.hidden, intermediate_dim=4 * args.hidden, num_heads=args.heads,
                num_layers=args.layers, dropout=0.0, position_embedding="rotary")),
            training=tflm.translation.TrainingConfig(optimizer=optimizer, learning_rate=3e-3, schedule="constant",
                                                     warmup_steps=1, label_smoothing=0.0,
                                                     mixed_precision=precision, samples=0))

    data = lm.prepare_data(config("adam"), work)
    trainers = {}
    for name, optimizer, newton_schulz_dtype in (("Adam", "adam", None),
                                                 ("Muon, Newton-Schulz float32", "muon", "float32"),
                                                 ("Muon, Newton-Schulz bfloat16", "muon", "bfloat16")):
        trainer = lm.build_trainer(config(optimizer), tempfile.mkdtemp(), data, verbose=False)
        if newton_schulz_dtype:
            trainer.optimizer.newton_schulz_dtype = newton_schulz_dtype  # read when the step is traced
        trainers[name] = trainer
    dataset, _ = lm.train_datasets(config("adam"), data, next(iter(trainers.values())).model)
    print(f"machine: {describe()}")

    def steps(trainer, first, count):
        """Seconds of `count` steps from step `first` (the trainer's own clock: the steps, not saving)."""
        before = float(trainer.train_seconds.numpy())
        return trainer.fit(dataset, max_steps=first + count).train_seconds - before

    for trainer in trainers.values():  # warm up: trace
        steps(trainer, 0, args.warmup)
    seconds = dict.fromkeys(trainers, 0.0)
    per_round = -(-args.steps // args.rounds)
    first = args.warmup
    while first < args.warmup + args.steps:
        count = min(per_round, args.warmup + args.steps - first)
        for name, trainer in trainers.items():
            seconds[name] += steps(trainer, first, count)
        first += count

    model = next(iter(trainers.values())).model
    print(f"GPT: {args.layers} layers, width {args.hidden}, {args.heads} heads, context {args.sequence_length}, "
          f"batch {args.batch_size}; {tflm.translation.count_parameters(model):,} parameters; "
          f"precision {args.mixed_precision}; {args.steps} timed steps in {args.rounds} rounds")
    tokens = args.steps * args.batch_size * args.sequence_length
    baseline = tokens / seconds["Muon, Newton-Schulz float32"]
    print("training tokens/s:")
    for name, total in seconds.items():
        print(f"  {name:32s} {tokens / total:8.0f}   x{tokens / total / baseline:.2f} of Muon (float32 iterations)")


if __name__ == "__main__":
    main()
