"""The OpenNMT-tf side of the peer benchmark; runs in its own venv (OpenNMT-tf 2.32, TensorFlow 2.13).

    python onmt_side.py train  --work-dir W --steps 1000 --report-every 100
    python onmt_side.py export --work-dir W            # SavedModels (greedy, beam 4) and CTranslate2 fp32/int8
    python onmt_side.py decode --work-dir W --export greedy --batch-size 32

`run.py` writes the data (SentencePiece pieces of tflm's vocabularies, one sentence per line), the vocabularies
and `onmt.json` (the shared settings) into W/onmt before calling this. Results go to stdout as one JSON line.
It uses OpenNMT-tf's public API only (`opennmt.Runner`, `opennmt.models.Transformer`), as a user would.
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np


def model_and_config(work_dir, beam_width=1, length_penalty=0.0, model_dir=None, steps=None):
    import opennmt

    with open(os.path.join(work_dir, "onmt.json")) as f:
        settings = json.load(f)
    model = opennmt.models.Transformer(
        source_inputter=opennmt.inputters.WordEmbedder(embedding_size=settings["hidden_dim"]),
        target_inputter=opennmt.inputters.WordEmbedder(embedding_size=settings["hidden_dim"]),
        num_layers=settings["num_layers"], num_units=settings["hidden_dim"], num_heads=settings["num_heads"],
        ffn_inner_dim=settings["intermediate_dim"], dropout=0.1, attention_dropout=0.1, ffn_dropout=0.1,
        share_embeddings=opennmt.models.EmbeddingsSharingLevel.TARGET,  # tflm ties the output layer too
    )
    path = lambda name: os.path.join(work_dir, name)  # noqa: E731
    config = {
        "model_dir": model_dir or path("model"),
        "data": {"source_vocabulary": path("vocab.src"), "target_vocabulary": path("vocab.tgt"),
                 "train_features_file": path("train.src"), "train_labels_file": path("train.tgt")},
        "params": {"learning_rate": settings["noam_scale"], "decay_type": "NoamDecay",
                   "decay_params": {"model_dim": settings["hidden_dim"], "warmup_steps": settings["warmup_steps"]},
                   "beam_width": beam_width, "length_penalty": length_penalty,
                   "maximum_decoding_length": settings["max_decoding_length"]},
        "train": {"batch_size": settings["batch_tokens"], "batch_type": "tokens", "effective_batch_size": None,
                  "max_step": steps or settings["steps"], "save_summary_steps": settings["report_every"],
                  "save_checkpoints_steps": steps or settings["steps"], "average_last_checkpoints": 0,
                  "keep_checkpoint_max": 1, "seed": 0},
        "infer": {"batch_size": 32},
    }
    return opennmt, opennmt.Runner(model, config, auto_config=True, seed=0)


def train(args):
    """Trains with OpenNMT-tf's own loop; its log lines give target tokens/s per reporting interval."""
    import logging

    import tensorflow as tf

    opennmt, runner = model_and_config(args.work_dir, model_dir=args.model_dir, steps=args.steps)
    records = []

    class Catch(logging.Handler):
        def emit(self, record):
            found = re.search(r"Step = (\d+) ; steps/s = ([\d.]+), tokens/s = (\d+) \((\d+) source, (\d+) target\)",
                              record.getMessage())
            if found:
                step, steps_per_s, _, source, target = found.groups()
                records.append({"step": int(step), "steps_per_second": float(steps_per_s),
                                "source_tokens_per_second": int(source), "target_tokens_per_second": int(target)})

    tf.get_logger().addHandler(Catch())
    tf.get_logger().setLevel(logging.INFO)
    started = time.monotonic()
    runner.train(num_devices=1)
    print(json.dumps({"intervals": records, "wall_seconds": time.monotonic() - started,
                      "opennmt_tf": opennmt.__version__, "tensorflow": tf.__version__}))


def export(args):
    from opennmt.utils import exporters

    for name, beam in (("greedy", 1), ("beam4", 4)):
        _, runner = model_and_config(args.work_dir, beam_width=beam, length_penalty=args.length_penalty if beam > 1
                                     else 0.0)
        target = os.path.join(args.work_dir, "export", name)
        if not os.path.exists(os.path.join(target, "saved_model.pb")):
            runner.export(target)
    for name in ("ctranslate2", "ctranslate2_int8"):
        target = os.path.join(args.work_dir, "export", name)
        if not os.path.exists(os.path.join(target, "model.bin")):
            _, runner = model_and_config(args.work_dir)
            runner.export(target, exporter=exporters.make_exporter(name))
    print(json.dumps({"exported": sorted(os.listdir(os.path.join(args.work_dir, "export")))}))


def decode(args):
    """Sentences/s of an exported SavedModel on pre-tokenized batches (the test set, sorted by length)."""
    import tensorflow as tf

    with open(args.input, encoding="utf-8") as f:
        lines = [line.split() for line in f.read().splitlines()]
    batches = [lines[i: i + args.batch_size] for i in range(0, len(lines), args.batch_size)]
    function = tf.saved_model.load(os.path.join(args.work_dir, "export", args.export)).signatures["serving_default"]

    def run(batch):
        length = max(len(tokens) for tokens in batch)
        tokens = tf.constant([tokens + [""] * (length - len(tokens)) for tokens in batch])
        outputs = function(tokens=tokens, length=tf.constant([len(t) for t in batch], tf.int32))
        out_tokens, out_lengths = outputs["tokens"].numpy()[:, 0], outputs["length"].numpy()[:, 0]
        return [[t.decode("utf-8") for t in row[:n]] for row, n in zip(out_tokens, out_lengths)]

    run(batches[0])  # tracing and first-run costs are not counted
    started = time.monotonic()
    hypotheses = [h for batch in batches for h in run(batch)]
    seconds = time.monotonic() - started
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("".join(" ".join(h) + "\n" for h in hypotheses))
    print(json.dumps({"sentences": len(lines), "seconds": seconds, "sentences_per_second": len(lines) / seconds,
                      "mean_output_tokens": float(np.mean([len(h) for h in hypotheses]))}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "export", "decode"])
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--export", default="greedy")
    parser.add_argument("--model-dir", help="train: where the checkpoints go (default: WORK_DIR/model)")
    parser.add_argument("--steps", type=int, help="train: the last step (default: onmt.json's)")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length-penalty", type=float, default=0.6)
    args = parser.parse_args()
    {"train": train, "export": export, "decode": decode}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
