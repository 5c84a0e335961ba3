"""Recipe: train a text classifier (or a sentence-pair classifier), evaluate it, use it, export it for TF Serving.

Question types (TREC-6) with Kim's CNN over GloVe vectors, a frozen and a fine-tuned copy (a few minutes on
two CPU cores):

    python recipes/classification.py --dataset trec-6 --data-dir ../shared/data --model cnn \
        --vectors glove-6b-50d --vectors-mode multichannel --run-dir runs/trec-cnn --export-name trec

Spam (12% of the messages) with class weights and the spam class's F1; sentiment with a BiLSTM; paraphrases
(sentence pairs, read as `a </s> b` by one encoder, or `--pair-mode siamese`) with a Transformer:

    python recipes/classification.py --dataset sms-spam --class-weights --positive-label spam --run-dir runs/spam
    python recipes/classification.py --dataset movie-review-sentiment --model bilstm --vectors glove-6b-50d \
        --run-dir runs/sentiment-bilstm
    python recipes/classification.py --dataset tatoeba-paraphrase-en --model transformer --run-dir runs/para

Your own data: `--train-file train.tsv --valid-file valid.tsv --test-file test.tsv` (`text<TAB>label`, or CSV /
JSON Lines with `--text-fields` and `--label-field`). Re-running the same command resumes an interrupted run;
`tensorboard --logdir RUN_DIR/logs` shows the losses, the confusion matrices and (Projector) the word vectors.
"""

import argparse
import json
import os
import time

import tflm


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="trec-6", help="a corpus of `tflm data list` (classification or pairs)")
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--train-file", help="instead of --dataset: your files (TSV, CSV or JSON Lines)")
    parser.add_argument("--valid-file")
    parser.add_argument("--test-file")
    parser.add_argument("--text-fields", default=None, help='JSON list, e.g. ["text_a", "text_b"] for pairs')
    parser.add_argument("--label-field", default="label")
    parser.add_argument("--model", default="cnn", help="cnn, bilstm, bigru, transformer, or module:Class")
    parser.add_argument("--params", default="{}", help='JSON of model arguments, e.g. {"filters": 100}')
    parser.add_argument("--pair-mode", default=None, help="sentence pairs: joint (default) or siamese")
    parser.add_argument("--vectors", default=None, help="word vectors: a file or glove-6b-50d")
    parser.add_argument("--vectors-mode", default="non_static", help="static, non_static or multichannel")
    parser.add_argument("--class-weights", action="store_true", help="weigh classes by inverse frequency")
    parser.add_argument("--positive-label", default=None, help="also report this class's F1 (e.g. spam)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens of a text the model reads")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--time-budget", default="10m")
    parser.add_argument("--examples", default='["What is the capital of Peru ?", "Who wrote Hamlet ?"]',
                        help="JSON list of texts (or of {text_a, text_b} objects) to classify at the end")
    parser.add_argument("--export-name", default=None, help="export to saved_models/NAME (default: no export)")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ log lines")
    return parser.parse_args()


def main():
    args = parse_args()
    tflm.log.quiet_unless_verbose(args.verbose)  # before TensorFlow is imported, as the `tflm` command
    cls = tflm.classification

    # 1. Configuration, saved as the run's config.json.
    params = json.loads(args.params)
    if args.pair_mode:
        params["pair_mode"] = args.pair_mode
    config = cls.ClassificationConfig(
        data=cls.ClassificationDataConfig(
            dataset=None if args.train_file else args.dataset, data_dir=args.data_dir, train_file=args.train_file,
            valid_file=args.valid_file, test_file=args.test_file, label_field=args.label_field,
            text_fields=json.loads(args.text_fields) if args.text_fields else None, max_length=args.max_length,
            batch_size=args.batch_size, class_weights=args.class_weights, positive_label=args.positive_label),
        vectors=cls.VectorsConfig(path=args.vectors, mode=args.vectors_mode),
        model=cls.ModelConfig(type=args.model, params=params),
        training=cls.TrainingConfig(epochs=args.epochs, time_budget=args.time_budget, learning_rate=args.learning_rate,
                                    label_smoothing=0.0, samples=0, checkpoint_every_seconds=None),
    )
    tflm.log.setup_logging(os.path.join(args.run_dir, "train.log"))

    # 2. Train: the labels come from the training split (sorted, saved in vocab/labels.txt), the word vocabulary
    #    from its words (and the vectors' most frequent words); the vectors fill the embedding table; the best
    #    checkpoint is the one with the lowest validation loss. Re-running resumes.
    started = time.monotonic()
    result = cls.train(config, args.run_dir)

    # 3. Evaluate the best checkpoint: accuracy, macro-F1, per class, the confusion matrix (also in TensorBoard).
    scores = {split: cls.evaluate(args.run_dir, split) for split in ("valid", "test")}

    # 4. Use it: the top labels of a few texts, as `tflm classify --run-dir` prints them.
    classifier = cls.load_classifier(args.run_dir)
    for text, answer in zip(json.loads(args.examples), classifier.predict(json.loads(args.examples))):
        print(text, "->", ", ".join(f"{c} {s:.3f}" for c, s in zip(answer["classes"][:3], answer["scores"][:3])))

    # 5. Export (text in, labels and probabilities out; and TF Serving's Classify signature), checked for TF
    #    Serving; results next to the checkpoints and a record under docs/results/.
    exported = tflm.export.export_run(args.run_dir, args.export_name) if args.export_name else None
    metrics = {"accuracy": scores["test"]["accuracy"], "macro_f1": scores["test"]["macro_f1"],
               "valid_accuracy": scores["valid"]["accuracy"], "steps": result.step,
               "train_seconds": round(result.train_seconds, 1),
               "train_examples_per_second": round(result.per_second, 1),
               "test_examples_per_second": scores["test"]["examples_per_second"]}
    if "positive" in scores["test"]:
        metrics[f"{args.positive_label}_f1"] = scores["test"]["positive"]["f1"]
    results = {"dataset": args.train_file or args.dataset, "model": args.model, "metrics": metrics,
               "wall_seconds_this_invocation": round(time.monotonic() - started, 1), "export": exported}
    with open(os.path.join(args.run_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    model = args.model + (f" + {os.path.basename(args.vectors)} {args.vectors_mode}" if args.vectors else "")
    record = tflm.results.write_record(f"recipe-classification-{os.path.basename(os.path.normpath(args.run_dir))}",
                                       "classification", args.train_file or args.dataset, model, metrics)
    print(json.dumps(results, indent=1), "\nrecord:", record)


if __name__ == "__main__":
    main()
