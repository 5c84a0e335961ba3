"""Recipe: restore punctuation and capitalisation with a tagger, a label per word (its case and the punctuation after
it), derived by tflm from a text corpus in its own splits; an encoder pretrained by `recipes/pretraining.py` beside
the same encoder from scratch (same tokenizer and sizes, random weights).

    python recipes/tagging.py --dataset tatoeba-es-en --data-dir ../shared/data --init-from runs/bert \
        --budget 20m --scratch --run-dir runs/punct --export-name punct
    tflm tag --run-dir runs/punct --restore "where is tom i think hes at home"

Without --init-from it trains a new small BERT with its own WordPiece vocabulary. A run resumes where it
stopped when the same command runs again; the scratch baseline lives in `RUN_DIR-scratch`. The test scores (F1 per
label, of the case and the punctuation apart, and overall) go to RUN_DIR/results.json and a record per run under
docs/results/.
"""

import argparse
import json
import os

import tflm


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tatoeba-es-en", help="a registered text corpus (`tflm data list`)")
    parser.add_argument("--language", default="en", help="the side of a parallel corpus")
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--init-from", default=None, help="a masked_lm (or GPT language-model) run to start from")
    parser.add_argument("--scratch", action="store_true", help="also train the same encoder from random weights")
    parser.add_argument("--scratch-only", action="store_true", help="train only the from-scratch baseline")
    parser.add_argument("--budget", default="20m", help="training time of each run")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--layer-decay", type=float, default=1.0, help="layer-wise learning-rate decay (pretrained)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64, help="pieces of a sentence the model reads")
    parser.add_argument("--export-name", default=None, help="export the (first) run to saved_models/NAME")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ log lines")
    return parser.parse_args()


def tag(args, run_dir, pretrained):
    """Trains (or resumes) one tagging run and scores it on the test split."""
    tagging = tflm.tagging
    init = tagging.InitConfig()
    if args.init_from:
        init = tagging.InitConfig(from_run=args.init_from, weights=pretrained,
                                  layer_decay=args.layer_decay if pretrained else 1.0)
    config = tagging.TaggingConfig(
        data=tagging.TaggingDataConfig(dataset=args.dataset, derive="punctuation", language=args.language,
                                       data_dir=args.data_dir, batch_size=args.batch_size, max_length=args.max_length),
        model=tagging.ModelConfig(type="bert", preset="small", params={"dropout": 0.1}),
        training=tagging.TrainingConfig(epochs=args.epochs, time_budget=args.budget, learning_rate=args.learning_rate,
                                        schedule="linear", warmup_steps=300, label_smoothing=0.0, samples=0,
                                        checkpoint_every_seconds=300, log_every_steps=200),
        init=init,
    )
    result = tagging.train(config, run_dir)
    scores = tagging.evaluate(run_dir, "test")
    metrics = {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
               "accuracy": scores["accuracy"], "steps": result.step, "train_seconds": round(result.train_seconds, 1)}
    for family, values in scores.get("families", {}).items():
        metrics[f"{family}_f1"] = values["f1"]
    metrics.update({f"f1[{label}]": values["f1"] for label, values in scores["per_label"].items()})
    kind = ("pretrained" if pretrained else "scratch") if args.init_from else "new"
    tflm.results.write_record(f"recipe-tagging-{os.path.basename(os.path.normpath(run_dir))}", "tagging",
                              f"{args.dataset} punctuation and case ({args.language})", f"bert small {kind}", metrics)
    return scores


def main():
    args = parse_args()
    tflm.log.quiet_unless_verbose(args.verbose)
    tflm.log.setup_logging(os.path.join(args.run_dir, "train.log"))
    # The corpus: each word lower-cased without its punctuation, labelled with its case (C: Capitalised, U: UPPER)
    # and the punctuation that followed it ("C.", ",", "U?", ...; "O": lower-case, none), derived once into
    # RUN_DIR/corpus from the source's own train/valid/test files.
    results = {}
    if not args.scratch_only:
        results["pretrained" if args.init_from else "new"] = tag(args, args.run_dir, True)
    if (args.scratch or args.scratch_only) and args.init_from:
        results["scratch"] = tag(args, args.run_dir.rstrip("/") + "-scratch", False)
    if args.export_name:
        results["export"] = tflm.export.export_run(args.run_dir, args.export_name)
    with open(os.path.join(args.run_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps({kind: {k: v for k, v in scores.items() if k in ("f1", "accuracy", "families")}
                      for kind, scores in results.items() if isinstance(scores, dict)}, indent=1))


if __name__ == "__main__":
    main()
