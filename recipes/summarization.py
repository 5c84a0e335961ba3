"""Recipe: train a summarization model, score it and the lead / first-words baselines with ROUGE on the test
split, and write results.json and records under docs/results/.

Run it from the repository root, on Debian package descriptions -> their one-line synopses:

    python recipes/summarization.py --data-dir ../shared/data --model transformer --copy \
        --time-budget 60m --run-dir runs/debian-transformer-copy

(`--no-copy` for the plain Transformer, `--model lstm` for the LSTM-attention pointer-generator, `--coverage
1.0` adds See et al.'s coverage loss, `--baselines` also scores lead-1 and the first 10 words.) Any folder of
`{train,valid,test}.source/.target` works: `--dataset none --data-dir FOLDER`. Re-running the same command
resumes an interrupted run; `tensorboard --logdir RUN_DIR/logs` shows the loss and sample summaries.
"""

import argparse
import dataclasses
import json
import os
import time

import tflm


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="debian-descriptions",
                        help="a summarization corpus of `tflm data list`, or none (then --data-dir is the folder)")
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"), help="folder holding the corpus")
    parser.add_argument("--model", default="transformer", help="transformer or lstm (with attention)")
    parser.add_argument("--preset", default="small", help="model size (see tflm.models.PRESETS)")
    parser.add_argument("--copy", action=argparse.BooleanOptionalAction, default=True,
                        help="copy attention (pointer-generator) [default: on]")
    parser.add_argument("--coverage", type=float, default=0.0, help="coverage loss weight (0: none)")
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument("--max-source-length", type=int, default=128, help="source tokens kept (the rest is cut)")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: 1e-3 (Transformer), 3e-3 (LSTM)")
    parser.add_argument("--warmup-steps", type=int, default=800)
    parser.add_argument("--mixed-precision", default=None, help="bfloat16 (CPUs with AVX512-BF16/AMX, GPUs) or float16")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--time-budget", default="60m", help="training time, e.g. 25m (resumes count)")
    parser.add_argument("--max-train-pairs", type=int, default=None, help="train on the first N pairs only")
    parser.add_argument("--max-test-pairs", type=int, default=None, help="score the first N test pairs only")
    parser.add_argument("--checkpoint-every-steps", type=int, default=500)
    parser.add_argument("--average", type=int, default=5, help="also evaluate the average of the last N checkpoints")
    parser.add_argument("--baselines", action="store_true", help="also score lead-1 and first-10 (records too)")
    parser.add_argument("--results-dir", default="docs/results", help="where the records go")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ log lines (hidden by default; or TFLM_VERBOSE=1)")
    return parser.parse_args()


def main():
    args = parse_args()
    tflm.log.quiet_unless_verbose(args.verbose)  # before TensorFlow is imported, as the `tflm` command
    summarization = tflm.summarization
    task = tflm.tasks.get_task("summarization")
    dataset = None if args.dataset in ("none", "") else args.dataset
    name = os.path.basename(os.path.normpath(args.run_dir))

    # 1. Configuration: one dataclass per component, saved as the run's config.json.
    params = {"share_embeddings": True, "copy_attention": args.copy}
    if args.coverage:
        params["coverage_loss_weight"] = args.coverage
    learning_rate = args.learning_rate or (1e-3 if args.model == "transformer" else 3e-3)
    config = summarization.SummarizationConfig(
        data=summarization.SummarizationDataConfig(dataset=dataset, data_dir=args.data_dir,
                                                   max_source_length=args.max_source_length,
                                                   batch_tokens=args.batch_tokens,
                                                   max_train_pairs=args.max_train_pairs),
        vocabulary=summarization.SummarizationVocabularyConfig(type="unigram", size=args.vocab_size, joint=True),
        model=summarization.ModelConfig(type=args.model, preset=args.preset, params=params),
        training=summarization.TrainingConfig(
            epochs=args.epochs, time_budget=args.time_budget, learning_rate=learning_rate, schedule="inverse_sqrt",
            warmup_steps=args.warmup_steps, clip_norm=1.0, label_smoothing=0.1, mixed_precision=args.mixed_precision,
            checkpoint_every_steps=args.checkpoint_every_steps, keep_checkpoints=10),
    )
    tflm.log.setup_logging(os.path.join(args.run_dir, "train.log"))

    # 2. Train: the task's driver reads the document/summary files, trains a joint SentencePiece vocabulary
    #    (copy attention copies its ids), truncates long documents (counted in the log), buckets by length under
    #    the token budget, and trains until the time budget runs out; after each epoch: the validation loss, the
    #    best checkpoint, sample summaries in the log and TensorBoard. Re-running resumes.
    started = time.monotonic()
    result = task.train(config, args.run_dir)

    # 3. Evaluate on the test split with ROUGE (rouge-score F1, stemmed, Unicode-safe tokens, 95% bootstrap
    #    intervals): beam 4 with repeated-trigram blocking (the run's decoding), best and averaged checkpoints.
    evaluations = {"best": task.evaluate(args.run_dir, "test", "best", max_examples=args.max_test_pairs)}
    if args.average:
        task.average(args.run_dir, args.average)
        evaluations["averaged"] = task.evaluate(args.run_dir, "test", "averaged", max_examples=args.max_test_pairs)
    baselines = {}
    if args.baselines:
        for baseline in ("lead-1", "first-10"):
            baselines[baseline] = task.evaluate(args.run_dir, "test", baseline=baseline,
                                                max_examples=args.max_test_pairs)
    summarizer = summarization.Summarizer.from_run_dir(args.run_dir)
    example = ("GNU Hello prints the familiar greeting. It serves as an example of the GNU coding standards "
               "and of how to write a program that follows them.")
    print(example, "=>", summarizer.summarize([example])[0])

    # 4. Results: next to the checkpoints, and as records under docs/results/ (the benchmarks page's twin).
    keys = ("rouge1", "rouge2", "rougeL", "rouge1_ci", "rouge2_ci", "rougeL_ci", "documents_per_second")
    parameters = summarization.count_parameters(summarizer.model)
    results = {
        "dataset": args.dataset, "model": args.model, "preset": args.preset, "copy_attention": args.copy,
        "coverage_loss_weight": args.coverage, "parameters": parameters,
        "rouge_signature": evaluations["best"]["signature"],
        "evaluations": {key: {k: e[k] for k in keys} for key, e in evaluations.items()},
        "baselines": {key: {k: e[k] for k in keys} for key, e in baselines.items()},
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds_this_invocation": round(time.monotonic() - started, 1),
        "steps": result.step, "epochs": result.epoch, "best_valid_loss": round(result.best_valid_loss, 4),
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(args.run_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    best = max(evaluations.values(), key=lambda e: e["rougeL"])  # the headline: the better checkpoint
    metrics = {key: best[key] for key in keys}
    metrics.update({f"{key}_{metric}": e[metric] for key, e in evaluations.items()
                    for metric in ("rouge1", "rouge2", "rougeL")})
    metrics.update(checkpoint="averaged" if best is evaluations.get("averaged") else "best", steps=result.step,
                   train_seconds=results["train_seconds"], parameters=parameters,
                   test_documents=best["examples"])
    model = f"{args.model} {args.preset}{' + copy' if args.copy else ''}{' + coverage' if args.coverage else ''}"
    dataset_name = args.dataset if dataset else args.data_dir
    records = [tflm.results.write_record(f"recipe-summarization-{name}", "summarization", dataset_name, model, metrics,
                                         directory=args.results_dir)]
    for baseline, scores in baselines.items():
        records.append(tflm.results.write_record(
            f"summarization-baseline-{baseline}-{args.dataset}", "summarization", dataset_name, baseline,
            {key: scores[key] for key in keys[:6]} | {"test_documents": scores["examples"]},
            directory=args.results_dir))
    print(json.dumps({k: v for k, v in results.items() if k != "config"}, indent=1), "\nrecords:", *records)


if __name__ == "__main__":
    main()
