"""Recipe: train a language model, evaluate it, sample from it, export it, and write results.json.

A character-level GPT on Shakespeare (nanoGPT's "baby GPT" shape by default):

    python recipes/generation.py --corpus shakespeare --data-dir ../shared/data --model gpt \
        --time-budget 60m --run-dir runs/shakespeare-char-gpt

The hour that reaches 1.443 nats/char on validation on two CPU cores with bfloat16 (docs/benchmarks.md):

    python recipes/generation.py --corpus shakespeare --data-dir ../shared/data --model gpt --preset small \
        --params '{"num_layers": 5, "hidden_dim": 384, "intermediate_dim": 1536, "num_heads": 6,
                   "dropout": 0.0, "position_embedding": "rotary"}' --batch-size 16 --optimizer muon \
        --learning-rate 3e-3 --schedule cosine --max-steps 2200 --mixed-precision bfloat16 \
        --time-budget 60m --run-dir runs/shakespeare-char-gpt-5l

A subword model on WikiText-2 (GPT, or Transformer-XL with --model transformer_xl):

    python recipes/generation.py --corpus wikitext-2-raw --data-dir ../shared/data --model transformer_xl \
        --vocab-type unigram --vocab-size 8000 --time-budget 60m --run-dir runs/wikitext2-txl

The Transformer-XL hour ahead of GPT's on one core (test word perplexity 277 vs 295; docs/benchmarks.md):

    python recipes/generation.py --corpus wikitext-2-raw --data-dir ../shared/data --model transformer_xl \
        --preset small --params '{"num_layers": 4, "hidden_dim": 256, "intermediate_dim": 1024, "num_heads": 4,
                                  "dropout": 0.0, "memory_length": 128}' \
        --vocab-type unigram --vocab-size 8000 --sequence-length 128 --batch-size 16 --optimizer muon \
        --learning-rate 3e-3 --schedule cosine --max-steps 3450 --segments-per-chunk 8 \
        --mixed-precision bfloat16 --time-budget 60m --run-dir runs/wikitext2-txl-chunks

and the same run evaluated with a neural cache and dynamic evaluation (test word perplexity 141; the settings
were chosen on validation by tools/bench/lm_adaptive_eval.py):

    tflm evaluate --run-dir runs/wikitext2-txl-chunks --cache-size 4000 --cache-theta 0.05 --cache-mix 0.2 \
        --dynamic-lr 0.15 --dynamic-decay 0.01

Offline and in a minute, on a text of your own: `--train-file my.txt --preset tiny --time-budget 1m`.
Re-running the same command resumes an interrupted run; `tensorboard --logdir RUN_DIR/logs` shows the losses
and the samples generated after each epoch.
"""

import argparse
import dataclasses
import json
import os
import time

import tflm


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="shakespeare", help="a language-modelling corpus of `tflm data list`")
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--train-file", help="instead of --corpus: a text file (used for validation and test too)")
    parser.add_argument("--model", default="gpt", help="gpt or transformer_xl")
    parser.add_argument("--preset", default="small", help="model size (see tflm.models.PRESETS)")
    parser.add_argument("--params", default="{}", help='JSON of model arguments over the preset, e.g. {"dropout": 0.1}')
    parser.add_argument("--vocab-type", default="character", help="character, byte_bpe, unigram, bpe")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--schedule", default="inverse_sqrt",
                        help="inverse_sqrt, cosine (decays to 10%% of the peak at --max-steps) or constant")
    parser.add_argument("--optimizer", default="adam", help="adam, or muon (Muon for the blocks' 2-D weights)")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="decoupled weight decay (AdamW with adam; Muon applies it to every weight)")
    parser.add_argument("--mixed-precision", default=None, help="bfloat16 or float16")
    parser.add_argument("--jit-compile", action="store_true",
                        help="XLA-compile the training step (training windows have one shape)")
    parser.add_argument("--random-offsets", action=argparse.BooleanOptionalAction, default=True,
                        help="cut the text at a random offset each epoch (--no-random-offsets: the same windows)")
    parser.add_argument("--segments-per-chunk", type=int, default=None,
                        help="Transformer-XL: read shuffled chunks of this many segments (default: unbroken streams)")
    parser.add_argument("--time-budget", default="60m")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--prompts", default='["", "ROMEO:", "The history of"]', help="JSON list of prompts to sample")
    parser.add_argument("--export-name", default=None, help="export to saved_models/NAME (default: no export)")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ log lines (hidden by default; or TFLM_VERBOSE=1)")
    return parser.parse_args()


def main():
    args = parse_args()
    tflm.log.quiet_unless_verbose(args.verbose)  # before TensorFlow is imported, as the `tflm` command
    lm = tflm.language_modeling

    # 1. Configuration, saved as the run's config.json.
    data = lm.LMDataConfig(dataset=None if args.train_file else args.corpus, data_dir=args.data_dir,
                           sequence_length=args.sequence_length, batch_size=args.batch_size,
                           random_offsets=args.random_offsets, segments_per_chunk=args.segments_per_chunk)
    if args.train_file:
        data.train_file = data.valid_file = data.test_file = args.train_file
    config = lm.LanguageModelConfig(
        data=data,
        vocabulary=lm.LMVocabularyConfig(type=args.vocab_type, size=args.vocab_size),
        model=lm.ModelConfig(type=args.model, preset=args.preset, params=json.loads(args.params)),
        training=lm.TrainingConfig(
            epochs=None, max_steps=args.max_steps, time_budget=args.time_budget, learning_rate=args.learning_rate,
            schedule=args.schedule, warmup_steps=args.warmup_steps, label_smoothing=0.0, clip_norm=1.0,
            optimizer=args.optimizer, weight_decay=args.weight_decay,
            mixed_precision=args.mixed_precision, jit_compile=args.jit_compile, checkpoint_every_seconds=300,
            samples=3),
    )
    tflm.log.setup_logging(os.path.join(args.run_dir, "train.log"))

    # 2. Train: the task's driver tokenizes the text into one stream of ids (training the tokenizer first),
    #    builds the model (Transformer-XL reads contiguous segments and carries its memory across batches), and
    #    trains until the time budget runs out, validating and sampling after each epoch. Re-running resumes.
    started = time.monotonic()
    result = lm.train(config, args.run_dir)

    # 3. Evaluate the best checkpoint on the validation and test text (with memory over the whole text for
    #    Transformer-XL), then sample from it.
    valid = lm.evaluate(args.run_dir, "valid")
    test = lm.evaluate(args.run_dir, "test")
    generator = lm.Generator.from_run_dir(args.run_dir)
    samples = {prompt: generator.generate([prompt])[0][0] for prompt in json.loads(args.prompts)}
    for prompt, text in samples.items():
        print(f"--- {prompt!r}\n{prompt}{text}")

    # 4. Export (strings in, strings out, checked for TF Serving), results next to the checkpoints and a record
    #    under docs/results/.
    exported = tflm.export.export_run(args.run_dir, args.export_name) if args.export_name else None
    parameters = lm.count_parameters(generator.model)
    results = {
        "corpus": args.train_file or args.corpus, "model": args.model, "preset": args.preset,
        "parameters": parameters, "valid": valid, "test": test, "train_seconds": round(result.train_seconds, 1),
        "wall_seconds_this_invocation": round(time.monotonic() - started, 1),
        "train_tokens_per_second": round(result.tokens_per_second, 1), "steps": result.step, "samples": samples,
        "export": exported, "config": dataclasses.asdict(config),
    }
    with open(os.path.join(args.run_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    metrics = {f"{split}_{key}": scores[key] for split, scores in (("valid", valid), ("test", test))
               for key in ("loss", "perplexity", "word_perplexity", "bits_per_character") if key in scores}
    metrics.update(steps=result.step, train_seconds=results["train_seconds"], parameters=parameters)
    record = tflm.results.write_record(f"recipe-generation-{os.path.basename(os.path.normpath(args.run_dir))}",
                                       "language_modeling", args.train_file or args.corpus,
                                       f"{args.model} {args.preset}", metrics)
    print(json.dumps({k: v for k, v in results.items() if k not in ("config", "samples")}, indent=1),
          "\nrecord:", record)


if __name__ == "__main__":
    main()
