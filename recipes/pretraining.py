"""Recipe: pretrain a BERT-style encoder on raw text (masked LM + next sentence), then fine-tune it on a labelled
set, beside the same encoder trained from scratch, and export the fine-tuned classifier for TF Serving.

    python recipes/pretraining.py --corpus wikitext-2-raw --data-dir ../shared/data --run-dir runs/bert \
        --pretrain-budget 45m --finetune trec-6 --finetune-budget 10m --scratch --export-name trec-bert

Pretraining resumes where it stopped when the same command runs again; each fine-tuned run lives in
`RUN_DIR-<dataset>` (`-scratch` for the baseline). `--no-next-sentence` pretrains on full-sentence segments without
the next-sentence task (RoBERTa), `--whole-words` masks whole words. The scores go to RUN_DIR/results.json and a
record per fine-tuned run under docs/results/.
"""

import argparse
import json
import os

import tflm


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="wikitext-2-raw", help="raw text to pretrain on (`tflm data list`)")
    parser.add_argument("--extra-datasets", default="[]", help='JSON list of classification corpora whose training '
                        'texts are pretraining documents too, e.g. ["movie-review-sentiment"]')
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--preset", default="small", help="encoder size: tiny or small (tflm.models.bert.BERT_PRESETS)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--next-sentence", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--whole-words", action="store_true")
    parser.add_argument("--pretrain-budget", default="45m")
    parser.add_argument("--max-steps", type=int, default=20000, help="sets the linear schedule's length")
    parser.add_argument("--finetune", nargs="*", default=["trec-6"], help="classification corpora to fine-tune on")
    parser.add_argument("--finetune-budget", default="10m")
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--scratch", action="store_true",
                        help="also train the same encoder (same tokenizer and sizes) from random weights")
    parser.add_argument("--scratch-only", action="store_true",
                        help="only those baselines (they need the pretraining run's vocabulary, not its weights)")
    parser.add_argument("--layer-decay", type=float, default=1.0, help="layer-wise learning-rate decay (pretrained)")
    parser.add_argument("--frozen-steps", type=int, default=0, help="steps with the pretrained encoder frozen")
    parser.add_argument("--variant", default="", help="fine-tune only (the pretraining as it is), into run "
                        "directories and records named RUN_DIR-<dataset>-VARIANT (e.g. other fine-tuning options)")
    parser.add_argument("--export-name", default=None, help="export the first fine-tuned run to saved_models/NAME")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ log lines")
    return parser.parse_args()


def finetune(args, dataset, pretrained):
    """A classification run on `dataset`: the pretrained encoder, or (`pretrained=False`) the same encoder and
    tokenizer with random weights."""
    cls = tflm.classification
    suffix = ("" if pretrained else "-scratch") + (f"-{args.variant}" if args.variant else "")
    run_dir = f"{args.run_dir}-{dataset}{suffix}"
    config = cls.ClassificationConfig(
        data=cls.ClassificationDataConfig(dataset=dataset, data_dir=args.data_dir, batch_size=32, max_length=62,
                                          class_weights=dataset == "sms-spam",
                                          positive_label="spam" if dataset == "sms-spam" else None),
        vocabulary=cls.ClassificationVocabularyConfig(type="wordpiece", size=args.vocab_size),
        model=cls.ModelConfig(type="bert", preset=args.preset, params={"dropout": 0.1}),
        training=cls.TrainingConfig(epochs=args.finetune_epochs, time_budget=args.finetune_budget, learning_rate=1e-4,
                                    schedule="linear", warmup_steps=100, label_smoothing=0.0, samples=0,
                                    checkpoint_every_seconds=None),
        init=cls.InitConfig(from_run=args.run_dir, weights=pretrained,
                            layer_decay=args.layer_decay if pretrained else 1.0,
                            frozen_steps=args.frozen_steps if pretrained else 0),
    )
    result = cls.train(config, run_dir)
    scores = cls.evaluate(run_dir, "test")
    metrics = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "steps": result.step,
               "train_seconds": round(result.train_seconds, 1)}
    if "positive" in scores:
        metrics["spam_f1"] = scores["positive"]["f1"]
    kind = ("pretrained" if pretrained else "scratch") + (f", {args.variant}" if args.variant else "")
    tflm.results.write_record(f"recipe-pretraining-{os.path.basename(run_dir)}", "classification", dataset,
                              f"bert {args.preset} {kind} ({args.corpus})", metrics)
    return run_dir, metrics


def main():
    args = parse_args()
    tflm.log.quiet_unless_verbose(args.verbose)
    mlm = tflm.masked_lm
    tflm.log.setup_logging(os.path.join(args.run_dir, "train.log"))

    # 1. Pretrain: a WordPiece vocabulary with <mask> (id 4) from the raw text; `[CLS] a [SEP] b [SEP]` sequences
    #    (b the next segment or one of another document), 15% of the pieces masked anew each epoch (80% <mask>,
    #    10% random, 10% kept); after each epoch the validation accuracies and fill-in-the-blank samples.
    config = mlm.MaskedLMConfig(
        data=mlm.MaskedLMDataConfig(dataset=args.corpus, data_dir=args.data_dir, sequence_length=args.sequence_length,
                                    batch_size=args.batch_size, next_sentence=args.next_sentence,
                                    whole_words=args.whole_words, extra_datasets=json.loads(args.extra_datasets)),
        vocabulary=mlm.MaskedLMVocabularyConfig(type="wordpiece", size=args.vocab_size),
        model=mlm.ModelConfig(type="bert", preset=args.preset),
        training=mlm.TrainingConfig(epochs=None, max_steps=args.max_steps, time_budget=args.pretrain_budget,
                                    learning_rate=args.learning_rate, schedule="linear", warmup_steps=500,
                                    weight_decay=0.01, label_smoothing=0.0, samples=3, checkpoint_every_seconds=300),
    )
    results = {"finetuned": {}, "scratch": {}}
    if not args.scratch_only and not args.variant:
        mlm.train(config, args.run_dir)
        results["pretraining"] = mlm.evaluate(args.run_dir, "test")
        tflm.results.write_record(f"recipe-pretraining-{os.path.basename(os.path.normpath(args.run_dir))}",
                                  "masked_lm", args.corpus, f"bert {args.preset}",
                                  {k: v for k, v in results["pretraining"].items() if isinstance(v, (int, float))})

    # 2. Fine-tune on each labelled set (a new classification head on the pretrained encoder; warmup then linear
    #    decay), and the same encoder from scratch with the same budget.
    for dataset in args.finetune:
        if not args.scratch_only:
            run_dir, results["finetuned"][dataset] = finetune(args, dataset, True)
        if args.scratch or args.scratch_only:
            results["scratch"][dataset] = finetune(args, dataset, False)[1]
        if args.export_name and dataset == args.finetune[0] and not args.scratch_only:
            results["export"] = tflm.export.export_run(run_dir, args.export_name)

    name = "results" + ("-scratch" if args.scratch_only else "") + (f"-{args.variant}" if args.variant else "")
    with open(os.path.join(args.run_dir, name + ".json"), "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
