"""Recipe: train a translation model, evaluate it on the test split, and write results.json.

Run it from the repository root, for example on the Tatoeba English-Spanish corpus:

    python recipes/translation.py --dataset tatoeba-es-en --data-dir ../shared/data \
        --direction en-es --model transformer --time-budget 60m --run-dir runs/tatoeba-en-es-transformer

or, offline and in a few minutes, on the sample shipped with tflm:

    python recipes/translation.py --time-budget 3m --preset tiny --run-dir runs/recipe-sample

Re-running the same command resumes an interrupted run. Watch it learn with
`tensorboard --logdir RUN_DIR/logs`.
"""

import argparse
import dataclasses
import json
import os
import time

import tflm


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tatoeba-es-en-sample", help="a corpus of `tflm data list`")
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"), help="folder holding the corpus")
    parser.add_argument("--direction", default="en-es", help="source-target language codes, e.g. de-en")
    parser.add_argument("--model", default="transformer", help="transformer or lstm")
    parser.add_argument("--preset", default="small", help="model size (see tflm.models.PRESETS)")
    parser.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--schedule", default=None, help="constant, inverse_sqrt or cosine (default: "
                        "inverse_sqrt for the Transformer, constant for the LSTM)")
    parser.add_argument("--warmup-steps", type=int, default=800)
    parser.add_argument("--mixed-precision", default=None, help="bfloat16 (CPUs with AVX512-BF16/AMX, recent "
                        "GPUs, TPUs) or float16 (GPUs)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--time-budget", default="60m", help="training time, e.g. 25m (resumes count)")
    parser.add_argument("--checkpoint-every-steps", type=int, default=300)
    parser.add_argument("--average", type=int, default=5, help="also evaluate the average of the last N checkpoints")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ log lines (hidden by default; or TFLM_VERBOSE=1)")
    return parser.parse_args()


def main():
    args = parse_args()
    tflm.log.quiet_unless_verbose(args.verbose)  # before TensorFlow is imported, as the `tflm` command
    source_language, target_language = args.direction.split("-")
    translation = tflm.translation

    # 1. Configuration: one dataclass per component, saved as the run's config.json.
    schedule = args.schedule or ("inverse_sqrt" if args.model == "transformer" else "constant")
    config = translation.TranslationConfig(
        data=translation.DataConfig(dataset=args.dataset, data_dir=args.data_dir, source_language=source_language,
                                    target_language=target_language, batch_tokens=args.batch_tokens),
        vocabulary=translation.VocabularyConfig(type="unigram", size=args.vocab_size, joint=True),
        model=translation.ModelConfig(type=args.model, preset=args.preset,
                                      params={} if args.dropout is None else {"dropout": args.dropout}),
        training=translation.TrainingConfig(epochs=args.epochs, time_budget=args.time_budget,
                                            learning_rate=args.learning_rate, schedule=schedule,
                                            warmup_steps=args.warmup_steps if schedule != "constant" else 0,
                                            clip_norm=1.0, label_smoothing=0.1, mixed_precision=args.mixed_precision,
                                            checkpoint_every_steps=args.checkpoint_every_steps, keep_checkpoints=10),
    )
    tflm.log.setup_logging(os.path.join(args.run_dir, "train.log"))

    # 2. Train: the task's driver reads the parallel files, trains a joint SentencePiece vocabulary on the
    #    training side (saved in the run directory), tokenizes with tensorflow-text inside tf.data, builds the
    #    model and optimizer, and trains with teacher forcing until the time budget (or epochs) runs out; after
    #    each epoch the validation loss is computed, the best checkpoint kept, and sample translations logged.
    #    Re-running resumes. (Its steps, for a loop of your own: translation.prepare_data, .build_trainer.)
    started = time.monotonic()
    result = translation.train(config, args.run_dir)

    # 3. Evaluate on the test split with sacreBLEU: greedy and beam 4 decoding in the graph, with the best
    #    checkpoint and with the average of the last checkpoints.
    greedy = tflm.decoding.DecodingOptions(strategy="greedy")
    beam = tflm.decoding.DecodingOptions(strategy="beam", beam_size=4, length_penalty=0.6)
    evaluations = {"best_greedy": translation.evaluate(args.run_dir, "test", "best", greedy),
                   "best_beam4": translation.evaluate(args.run_dir, "test", "best", beam)}
    if args.average:
        translation.average_run_checkpoints(args.run_dir, args.average)
        evaluations["averaged_greedy"] = translation.evaluate(args.run_dir, "test", "averaged", greedy)
        evaluations["averaged_beam4"] = translation.evaluate(args.run_dir, "test", "averaged", beam)
    translator = translation.Translator.from_run_dir(args.run_dir)
    print("Where is the train station? =>", translator.translate(["Where is the train station?"])[0])

    # 4. Results: next to the checkpoints, and as a record under docs/results/ (the benchmarks page's twin).
    parameters = translation.count_parameters(translator.model)
    results = {
        "dataset": args.dataset, "direction": args.direction, "model": args.model, "preset": args.preset,
        "parameters": parameters, "bleu_signature": evaluations["best_greedy"]["signatures"]["bleu"],
        "evaluations": {name: {key: e[key] for key in ("bleu", "chrf", "sentences_per_second")}
                        for name, e in evaluations.items()},
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds_this_invocation": round(time.monotonic() - started, 1),
        "train_tokens_per_second": round(result.tokens_per_second, 1), "steps": result.step, "epochs": result.epoch,
        "best_valid_loss": round(result.best_valid_loss, 4), "config": dataclasses.asdict(config),
    }
    with open(os.path.join(args.run_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    metrics = {f"{name}_{key}": value for name, e in results["evaluations"].items() for key, value in e.items()}
    metrics.update(steps=result.step, train_seconds=results["train_seconds"], parameters=parameters)
    record = tflm.results.write_record(f"recipe-translation-{os.path.basename(os.path.normpath(args.run_dir))}",
                                       "translation", f"{args.dataset} {args.direction}",
                                       f"{args.model} {args.preset}", metrics)
    print(json.dumps({k: v for k, v in results.items() if k != "config"}, indent=1), "\nrecord:", record)


if __name__ == "__main__":
    main()
