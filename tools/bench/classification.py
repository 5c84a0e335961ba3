"""Text classification benchmark: every model on every classification corpus, with the bag-of-words line.

Run from the repository root (a GPU is not needed; each model trains at most --time-budget):

    python tools/bench/classification.py --data-dir ../shared/data --out runs/bench-classification

For each corpus (movie-review-sentiment, trec-6, sms-spam, tatoeba-paraphrase-en) it trains and scores, in this
process one after the other:

- `bow-svm`: TF-IDF word 1-2-grams + linear SVM (`tflm.metrics.bag_of_words_baseline`);
- `cnn-rand`: Kim's CNN with word embeddings from scratch (128 wide);
- `cnn-glove-static`, `cnn-glove-non_static`: Kim's CNN (3/4/5 x 100 maps) over glove-6b-50d, frozen or
  fine-tuned (a pair is read jointly, `a </s> b`); `cnn-glove-multichannel`: both copies, widths 1 to 5;
- `bilstm-glove`: a BiLSTM (2 x 128) over fine-tuned GloVe, max-pooled;
- `transformer`: tflm's Transformer encoder (2 layers, d=128), word embeddings from scratch, mean-pooled;

then evaluates the best checkpoint (lowest validation loss) on the test split, exports it (no TF Serving check,
to save time: the suite checks exports) and times the exported `serving_default` on the test texts in batches of
64. Each (corpus, model) is a record `docs/results/classification-<corpus>-<model>.json` (`accuracy`,
`macro_f1`, `spam_f1` for sms-spam, training and serving examples/s); the table for docs/benchmarks.md is
printed at the end. A finished run is not trained again (its run directory is reused), so an interrupted
benchmark resumes.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tflm  # noqa: E402
from machine import describe  # noqa: E402

DATASETS = ("movie-review-sentiment", "trec-6", "sms-spam", "tatoeba-paraphrase-en")
POSITIVE = {"sms-spam": "spam"}
MODELS = {
    "cnn-rand": dict(type="cnn", vectors=None, params={"dropout": 0.5, "embedding_dim": 128}),
    "cnn-glove-static": dict(type="cnn", vectors="static", params={"dropout": 0.5}),
    "cnn-glove-non_static": dict(type="cnn", vectors="non_static", params={"dropout": 0.5}),
    "cnn-glove-multichannel": dict(type="cnn", vectors="multichannel",
                                   params={"dropout": 0.5, "filter_widths": [1, 2, 3, 4, 5]}),
    "bilstm-glove": dict(type="bilstm", vectors="non_static", params={"hidden_dim": 256, "dropout": 0.3}),
    "transformer": dict(type="transformer", vectors=None, learning_rate=5e-4,
                        params={"embedding_dim": 128, "hidden_dim": 128, "intermediate_dim": 512, "num_heads": 4,
                                "num_layers": 2, "dropout": 0.2}),
}


def bag_of_words(data_dir, dataset):
    from tflm.data import read_classification_splits
    from tflm.data.registry import dataset_info, find_dataset
    from tflm.metrics import classification_scores
    from tflm.metrics.bag_of_words import bag_of_words_baseline

    fields = ("text_a", "text_b") if dataset_info(dataset).task == "sentence_pairs" else ("text",)
    splits, labels = read_classification_splits(find_dataset(dataset, data_dir), fields)
    rows = {name: list(zip(*(split.texts[f] for f in fields))) for name, split in splits.items()}
    rows = {name: [r if len(r) > 1 else r[0] for r in value] for name, value in rows.items()}
    started = time.monotonic()
    predicted = bag_of_words_baseline(rows["train"], splits["train"].labels, rows["test"])
    seconds = time.monotonic() - started
    scores = classification_scores(splits["test"].labels, predicted, labels, POSITIVE.get(dataset))
    return scores, {"train_seconds": round(seconds, 1)}


def neural(args, dataset, name, spec):
    cls = tflm.classification
    run_dir = os.path.join(args.out, f"{dataset}-{name}")
    config = cls.ClassificationConfig(
        data=cls.ClassificationDataConfig(dataset=dataset, data_dir=args.data_dir, batch_size=50, max_length=100,
                                          class_weights=dataset in POSITIVE, positive_label=POSITIVE.get(dataset)),
        vectors=cls.VectorsConfig(path="glove-6b-50d" if spec["vectors"] else None, mode=spec["vectors"] or "non_static"),
        model=cls.ModelConfig(type=spec["type"], params=dict(spec["params"])),
        training=cls.TrainingConfig(epochs=args.epochs, time_budget=args.time_budget, label_smoothing=0.0, samples=0,
                                    learning_rate=spec.get("learning_rate", 1e-3), checkpoint_every_seconds=None,
                                    seed=args.seed),
    )
    result = cls.train(config, run_dir, verbose=False)
    scores = cls.evaluate(run_dir, "test")
    exported = tflm.export.export_run(run_dir, "model", base_dir=os.path.join(run_dir, "export"), check=False)
    model = tflm.export.load(exported)
    classifier = cls.load_classifier(run_dir)
    rows, _ = cls.data_rows(config, "test")
    columns = classifier.signatures()[0].columns(rows)
    batches = [{k: v[i:i + 64] for k, v in columns.items()} for i in range(0, len(rows), 64)]
    model.run("serving_default", **batches[0])  # (the first call prepares the graph)
    started = time.monotonic()
    for batch in batches:
        model.run("serving_default", **batch)
    serving = len(rows) / (time.monotonic() - started)
    return scores, {"train_seconds": round(result.train_seconds, 1), "steps": result.step,
                    "train_examples_per_second": round(result.per_second, 1),
                    "serving_examples_per_second": round(serving, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--out", default="runs/bench-classification")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--models", nargs="*", default=["bow-svm", *MODELS])
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the records already in docs/results (no training)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--time-budget", default="10m", help="the most training time of one model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = []
    if args.table_only:
        args.datasets, args.models = [], []
        for dataset in DATASETS:
            for name in ["bow-svm", *MODELS]:
                path = os.path.join(tflm.results.RESULTS_DIR, f"classification-{dataset}-{name}.json")
                if os.path.exists(path):
                    with open(path) as f:
                        table.append((dataset, name, json.load(f)["metrics"]))
    else:
        tflm.log.setup_logging(os.path.join(args.out, "bench.log"))
    for dataset in args.datasets:
        for name in args.models:
            scores, extra = bag_of_words(args.data_dir, dataset) if name == "bow-svm" else \
                neural(args, dataset, name, MODELS[name])
            metrics = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], **extra}
            if "positive" in scores:
                metrics["spam_f1"] = scores["positive"]["f1"]
            model = "TF-IDF + linear SVM" if name == "bow-svm" else name
            tflm.results.write_record(f"classification-{dataset}-{name}", "classification", dataset, model, metrics)
            table.append((dataset, name, metrics))
            print(json.dumps({"dataset": dataset, "model": name, **metrics}), flush=True)
    print("\n| corpus | model | accuracy | macro-F1 | spam F1 | train s | train ex/s | serving ex/s |\n|---|---|---:|---:|"
          "---:|---:|---:|---:|")
    for dataset, name, m in table:
        print(f"| {dataset} | {name} | {m['accuracy']:.2f} | {m['macro_f1']:.2f} | {m.get('spam_f1', '')} | "
              f"{m['train_seconds']} | {m.get('train_examples_per_second', '')} | "
              f"{m.get('serving_examples_per_second', '')} |")
    print(f"\nmachine: {describe()}")


if __name__ == "__main__":
    main()
