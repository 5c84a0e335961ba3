"""tflm against OpenNMT-tf and CTranslate2, side by side in one run: training speed and decoding speed.

    python tools/bench/peers/run.py --data-dir ../shared/data          # everything, about 45 minutes on 2 cores

One command: it makes two virtual environments of its own under `--work-dir` (Python 3.11; OpenNMT-tf 2.32
with TensorFlow 2.13 and tensorflow-addons 0.21; CTranslate2 4.8), from the package registry, not part of
tflm's install or CI. Then, on `tatoeba-es-en` en→es, with the same model (Transformer, 3+3 layers, width 256,
4 heads, feed-forward 1024, target embedding tied to the output layer, pre-LN, dropout 0.1, label smoothing
0.1), the same two 8k SentencePiece vocabularies (tflm's, trained once: OpenNMT-tf reads their pieces), the
same 4,096-token batches and the same learning-rate schedule (inverse square root after 400 warm-up steps,
peak 1e-3):

1. **training**: target tokens/s over the same optimizer steps (`--timed` START:STOP, after tracing) for tflm
   in float32 and bfloat16 mixed precision, and for OpenNMT-tf (float32: its mixed precision is float16 on
   GPUs only), each by its own clock (tflm's trainer, OpenNMT-tf's log); both models then train on to
   `--steps` so that they translate (OpenNMT-tf's figure is read off its log lines);
2. **decoding**: sentences/s, greedy and beam 4 (length penalty 0.6), over the whole test set sorted by
   source length in batches of 32, one warm-up batch first, for tflm in process (`Translator`), tflm's
   exported SavedModel (what TF Serving runs: no XLA), tflm's CTranslate2 conversion
   (`tflm export --format ctranslate2`), OpenNMT-tf's exported SavedModel, and CTranslate2 float32 and int8
   converted from the OpenNMT-tf model (OpenNMT-tf's own `ctranslate2` exporters); with each output's BLEU and
   mean length, so that like is compared with like;
3. **MFU**: tflm's model FLOPs per second in training (the matmul and attention FLOPs of the forward and
   backward passes, counted from the training pairs' lengths) against the peak of a large `tf.matmul` measured
   in this process, float32 and bfloat16.

It prints ratios against OpenNMT-tf and writes one record per figure in `docs/results/` (`peers-train-*`,
`peers-greedy-*`, `peers-beam4-*`, each with `metrics.ratio_vs_opennmt_tf`). Stages that finished are kept
in `--work-dir/stages.json` and not redone when the command is run again (an interrupted run goes on);
`--redo` names stages to measure again (`train`, `decode`).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

import tflm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from machine import describe  # noqa: E402

DATASET = "tatoeba-es-en"
# pip install steps of each venv. OpenNMT-tf 2.32 declares ctranslate2<4, so one resolution of both fails; its
# `ctranslate2` exporters work with 4.8 (that is what converts its model here), installed in a second step.
ONMT_PACKAGES = [["OpenNMT-tf==2.32.0", "tensorflow==2.13.1", "tensorflow-addons==0.21.0"], ["ctranslate2==4.8.*"]]
CT2_PACKAGES = [["ctranslate2==4.8.*"]]
MODEL = dict(num_layers=3, hidden_dim=256, num_heads=4, intermediate_dim=1024)
MODEL_NAME = "transformer 3+3 layers, d 256, 4 heads, ff 1024, 8k+8k unigram"
SPECIALS = {"<pad>", "<unk>", "<s>", "</s>"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("TFLM_DATA_DIR"))
    parser.add_argument("--work-dir", default="runs/peers")
    parser.add_argument("--python", default="python3.11", help="the interpreter of the peers' venvs")
    parser.add_argument("--steps", type=int, default=1000, help="training steps of each model")
    parser.add_argument("--timed", default="100:200", help="the optimizer steps START:STOP whose speed is compared")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per decoding batch")
    parser.add_argument("--max-sentences", type=int, help="decode only the first N test sentences")
    parser.add_argument("--redo", default="", help="comma-separated stages to measure again: train, decode")
    parser.add_argument("--results-dir", default=tflm.results.RESULTS_DIR)
    return parser.parse_args()


class Stages:
    """What finished, kept on disk so a rerun goes on where the last one stopped."""

    def __init__(self, path, redo):
        self.path = path
        self.done = json.load(open(path)) if os.path.exists(path) else {}
        for prefix in filter(None, redo.split(",")):
            self.done = {k: v for k, v in self.done.items() if not k.startswith(prefix)}

    def run(self, name, function):
        if name not in self.done:
            print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
            self.done[name] = function()
            with open(self.path, "w") as f:
                json.dump(self.done, f, indent=1)
        return self.done[name]


# ------------------------------------------------------------------ environments


def venv(work_dir, name, python, steps):
    """A venv of its own for a peer, made once (`steps`: the package lists of successive pip installs);
    returns its python."""
    directory = os.path.join(work_dir, "venvs", name)
    marker = os.path.join(directory, "installed.json")
    if not os.path.exists(marker) or json.load(open(marker)) != steps:
        print(f"[{time.strftime('%H:%M:%S')}] making the {name} venv: {steps}", flush=True)
        subprocess.run([python, "-m", "venv", "--clear", directory], check=True)
        for packages in steps:
            subprocess.run([os.path.join(directory, "bin", "python"), "-m", "pip", "install", "--quiet", *packages],
                           check=True)
        with open(marker, "w") as f:
            json.dump(steps, f)
    return os.path.join(directory, "bin", "python")


def side(python, script, *arguments, log=None):
    """Runs a peer's script in its venv; returns the JSON of its last stdout line."""
    command = [python, os.path.join(HERE, script), *map(str, arguments)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "KERAS"))}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "1"
    with open(log or os.devnull, "a") as stderr:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=environment)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}); see {log}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ tflm


def tflm_config(args, steps, mixed_precision):
    translation = tflm.translation
    return translation.TranslationConfig(
        data=translation.DataConfig(dataset=DATASET, data_dir=args.data_dir, source_language="en",
                                    target_language="es", batch_tokens=args.batch_tokens),
        vocabulary=translation.VocabularyConfig(type="unigram", size=8000, joint=False),
        model=translation.ModelConfig(type="transformer", preset="small"),
        training=translation.TrainingConfig(epochs=None, max_steps=steps, learning_rate=1e-3,
                                            schedule="inverse_sqrt", warmup_steps=400, samples=0,
                                            mixed_precision=mixed_precision, checkpoint_every_seconds=None),
    )


def tflm_train(args, run_dir, steps, mixed_precision, timed, vocab_from=None):
    """Trains a tflm run to `steps` in this process; the speed of steps `timed` by the trainer's clock.
    `vocab_from`: a run whose vocabularies this one takes (not trained again)."""
    import shutil

    import keras

    translation = tflm.translation
    keras.utils.set_random_seed(0)
    config = translation.start_run(tflm_config(args, steps, mixed_precision), run_dir)
    if vocab_from:
        shutil.copytree(os.path.join(vocab_from, "vocab"), os.path.join(run_dir, "vocab"), dirs_exist_ok=True)
    data = translation.prepare_data(config, run_dir)
    trainer = translation.build_trainer(config, run_dir, data, verbose=False)
    if timed is None:  # a model to decode: no timing, and an interrupted run resumes where it stopped
        result = trainer.fit(data.train_dataset, max_steps=steps)
        return {"steps": steps, "train_seconds": result.train_seconds}
    start, stop = timed
    first = trainer.fit(data.train_dataset, max_steps=start)
    second = trainer.fit(data.train_dataset, max_steps=stop)
    if steps > stop:
        trainer.fit(data.train_dataset, max_steps=steps)
    tokens = second.target_tokens - first.target_tokens
    return {"target_tokens_per_second": tokens / (second.train_seconds - first.train_seconds),
            "target_tokens_per_step": tokens / (stop - start),
            "parameters": translation.count_parameters(trainer.model)}


def tokenize_file(tokenizer, texts, path):
    pieces = tokenizer.pieces
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, len(texts), 8192):
            for row in tokenizer.tokenize(texts[start: start + 8192]).to_list():
                f.write(" ".join(pieces[i] for i in row) + "\n")


def write_onmt_data(args, run_dir, onmt_dir):
    """OpenNMT-tf's inputs: tflm's pieces of the training pairs and test sources, and the two vocabularies
    (OpenNMT-tf's specials `<blank> <s> </s>` first; unknown pieces go to its OOV bucket, as tflm's `<unk>`)."""
    translation = tflm.translation
    config = translation.load_run_config(run_dir)
    source_tokenizer, target_tokenizer = translation.load_vocabularies(run_dir)[:2]
    os.makedirs(onmt_dir, exist_ok=True)
    train = translation.read_split(config.data, "train")
    tokenize_file(source_tokenizer, train.source, os.path.join(onmt_dir, "train.src"))
    tokenize_file(target_tokenizer, train.target, os.path.join(onmt_dir, "train.tgt"))
    for name, tokenizer in (("vocab.src", source_tokenizer), ("vocab.tgt", target_tokenizer)):
        with open(os.path.join(onmt_dir, name), "w", encoding="utf-8") as f:
            f.write("".join(p + "\n" for p in ["<blank>", "<s>", "</s>"] + [p for p in tokenizer.pieces
                                                                          if p not in SPECIALS]))
    settings = dict(MODEL, batch_tokens=args.batch_tokens, steps=args.steps, warmup_steps=400,
                    report_every=math.gcd(*[int(x) for x in args.timed.split(":")]),
                    # NoamDecay: scale * d^-0.5 * min(step^-0.5, step * warmup^-1.5): peak 1e-3 at step 400
                    noam_scale=1e-3 * math.sqrt(MODEL["hidden_dim"]) * math.sqrt(400), max_decoding_length=128)
    with open(os.path.join(onmt_dir, "onmt.json"), "w") as f:
        json.dump(settings, f, indent=1)
    return {"train_pairs": len(train.source)}


def test_set(args, run_dir, work_dir):
    """The test sentences sorted by source length in pieces (every engine gets the same batches)."""
    translation = tflm.translation
    config = translation.load_run_config(run_dir)
    test = translation.read_split(config.data, "test", max_pairs=args.max_sentences)
    source_tokenizer = translation.load_vocabularies(run_dir)[0]
    lengths = source_tokenizer.tokenize(test.source).row_lengths().numpy()
    order = np.argsort(lengths, kind="stable")
    sources = [test.source[i] for i in order]
    references = [test.target[i] for i in order]
    tokenize_file(source_tokenizer, sources, os.path.join(work_dir, "test.src"))
    return sources, references


def timed_batches(function, sources, batch_size):
    """Runs `function` on each batch after one warm-up batch; (outputs, seconds)."""
    batches = [sources[i: i + batch_size] for i in range(0, len(sources), batch_size)]
    function(batches[0])
    started = time.monotonic()
    outputs = [text for batch in batches for text in function(batch)]
    return outputs, time.monotonic() - started


def tflm_decode(run_dir, saved_model, sources, batch_size, beam):
    """tflm in process (`Translator.translate_batch`) and through its exported SavedModel."""
    import tensorflow as tf

    decoding = tflm.decoding.DecodingOptions(strategy="beam" if beam > 1 else "greedy", beam_size=max(beam, 1),
                                             length_penalty=0.6)
    translator = tflm.translation.Translator.from_run_dir(run_dir, "last", decoding=decoding)
    results = {}
    for name, function in (("tflm", lambda b: translator.translate_batch(tf.constant(b))["outputs"].numpy()),
                           ("tflm_savedmodel", _saved_model_function(saved_model))):
        outputs, seconds = timed_batches(function, sources, batch_size)
        results[name] = {"outputs": [o.decode("utf-8") for o in outputs], "seconds": seconds}
    return results


def _saved_model_function(path):
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["serving_default"]
    return lambda batch: signature(text=tf.constant(batch))["outputs"].numpy()


def pieces_to_text(line):
    return line.replace(" ", "").replace("\u2581", " ").strip()


# ------------------------------------------------------------------ FLOPs


def matmul_peak(dtype, size=2048, seconds=3.0):
    """FLOP/s of a large square `tf.matmul` on this machine, in this process (best of repeated runs)."""
    import tensorflow as tf

    a = tf.random.normal([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)
    step = tf.function(lambda x: tf.matmul(x, x))
    step(a).numpy()
    best, ends = 0.0, time.monotonic() + seconds
    while time.monotonic() < ends:
        started = time.perf_counter()
        for _ in range(4):
            out = step(a)
        out.numpy()
        best = max(best, 4 * 2 * size ** 3 / (time.perf_counter() - started))
    return best


def training_flops_per_target_token(source_lengths, target_lengths, vocabulary_size):
    """Forward + backward FLOPs (3x the forward's matmuls) per target token (EOS included), from the pairs'
    lengths: dense layers 2 FLOPs per weight per token, attention scores and mixing 4*L*d per token and layer."""
    d, ff, layers = MODEL["hidden_dim"], MODEL["intermediate_dim"], MODEL["num_layers"]
    s = np.asarray(source_lengths, np.float64) + 1  # EOS
    t = np.asarray(target_lengths, np.float64) + 1  # BOS in, EOS out
    encoder = layers * (2 * (4 * d * d + 2 * d * ff) * s + 4 * s * s * d)
    decoder = layers * (2 * (8 * d * d + 2 * d * ff) * t + 4 * t * t * d + 4 * t * s * d)
    output = 2 * d * vocabulary_size * t
    return float(3 * (encoder + decoder + output).sum() / t.sum())


# ------------------------------------------------------------------ main


def main():
    args = parse_args()
    if not args.data_dir:
        sys.exit("Give --data-dir (the folder holding tatoeba-es-en) or set TFLM_DATA_DIR.")
    work_dir = os.path.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    tflm.log.setup_logging(verbose=False)
    import logging

    logging.getLogger("tflm").setLevel(logging.WARNING)
    stages = Stages(os.path.join(work_dir, "stages.json"), args.redo)
    timed = tuple(int(x) for x in args.timed.split(":"))
    onmt_python = venv(work_dir, "opennmt-tf", args.python, ONMT_PACKAGES)
    ct2_python = venv(work_dir, "ctranslate2", args.python, CT2_PACKAGES)
    run_dir, onmt_dir = os.path.join(work_dir, "tflm-run"), os.path.join(work_dir, "onmt")
    machine = describe()
    print(f"machine: {machine}")

    # the models that are decoded, trained to --steps (tflm's trainer resumes an interrupted run by itself)
    stages.run("models/tflm", lambda: tflm_train(args, run_dir, args.steps, "bfloat16", None))
    stages.run("data/onmt", lambda: write_onmt_data(args, run_dir, onmt_dir))

    def onmt_train(model_dir, steps):
        log = side(onmt_python, "onmt_side.py", "train", "--work-dir", onmt_dir, "--model-dir", model_dir,
                   "--steps", steps, log=os.path.join(onmt_dir, "train.log"))
        interval = [r for r in log["intervals"] if timed[0] < r["step"] <= timed[1]]
        return {"target_tokens_per_second": float(np.mean([r["target_tokens_per_second"] for r in interval])),
                "steps_per_second": float(np.mean([r["steps_per_second"] for r in interval])),
                "intervals": log["intervals"], "versions": {k: log[k] for k in ("opennmt_tf", "tensorflow")}}

    stages.run("models/opennmt_tf", lambda: onmt_train(os.path.join(onmt_dir, "model"), args.steps))

    # training speed: fresh runs to the end of the timed steps, one after the other (the same vocabularies)
    stamp = time.time_ns()
    timing = os.path.join(work_dir, "timing")
    train = {
        "tflm_fp32": stages.run("train/tflm_fp32", lambda: tflm_train(
            args, os.path.join(timing, f"tflm-fp32-{stamp}"), timed[1], None, timed, vocab_from=run_dir)),
        "tflm_bf16": stages.run("train/tflm_bf16", lambda: tflm_train(
            args, os.path.join(timing, f"tflm-bf16-{stamp}"), timed[1], "bfloat16", timed, vocab_from=run_dir)),
        "opennmt_tf": stages.run("train/opennmt_tf", lambda: onmt_train(os.path.join(timing, f"onmt-{stamp}"),
                                                                        timed[1])),
    }
    train["opennmt_tf"]["target_tokens_per_step"] = (train["opennmt_tf"]["target_tokens_per_second"]
                                                     / train["opennmt_tf"]["steps_per_second"])

    # MFU, against the matmul peak measured here
    def mfu():
        config = tflm.translation.load_run_config(run_dir)
        pairs = tflm.translation.read_split(config.data, "train")
        source_tokenizer, target_tokenizer = tflm.translation.load_vocabularies(run_dir)[:2]
        sample = slice(0, 20000)
        per_token = training_flops_per_target_token(
            source_tokenizer.tokenize(pairs.source[sample]).row_lengths().numpy(),
            target_tokenizer.tokenize(pairs.target[sample]).row_lengths().numpy(), target_tokenizer.vocabulary_size)
        import tensorflow as tf

        return {"flops_per_target_token": per_token, "matmul_peak_fp32": matmul_peak(tf.float32),
                "matmul_peak_bf16": matmul_peak(tf.bfloat16)}

    flops = stages.run("train/mfu", mfu)

    # exports
    def exports():
        from tflm.engines.ctranslate2 import convert_run

        decoding = tflm.decoding.DecodingOptions
        paths = {}
        for name, options in (("greedy", decoding(strategy="greedy")),
                              ("beam4", decoding(strategy="beam", beam_size=4, length_penalty=0.6))):
            paths[name] = tflm.export.export_run(run_dir, f"peers-{name}", base_dir=os.path.join(work_dir, "saved"),
                                                 checkpoint="last", check=False, decoding=options)
        for quantization in (None, "int8"):
            target = os.path.join(work_dir, "tflm-ctranslate2", quantization or "float32")
            paths[f"ct2_{quantization or 'float32'}"] = convert_run(run_dir, target, checkpoint="last",
                                                                    quantization=quantization, force=True)
        side(onmt_python, "onmt_side.py", "export", "--work-dir", onmt_dir, log=os.path.join(onmt_dir, "export.log"))
        return paths

    paths = stages.run("export", exports)

    # decoding
    sources, references = test_set(args, run_dir, work_dir)
    test_pieces = os.path.join(work_dir, "test.src")
    import sacrebleu

    def decode(beam):
        mode = "beam4" if beam > 1 else "greedy"
        results = tflm_decode(run_dir, paths[mode], sources, args.batch_size, beam)
        hypotheses = os.path.join(work_dir, "hyp")
        os.makedirs(hypotheses, exist_ok=True)
        peers = [("opennmt_tf", onmt_python, "onmt_side.py", ["decode", "--work-dir", onmt_dir, "--export", mode]),
                 *[(f"{origin}_ctranslate2_{kind}", ct2_python, "ct2_side.py",
                    ["--model", model, "--beam-size", beam, "--length-penalty", 0.6])
                   for origin, kind, model in (
                       ("tflm", "float32", paths["ct2_float32"]), ("tflm", "int8", paths["ct2_int8"]),
                       ("opennmt", "float32", os.path.join(onmt_dir, "export", "ctranslate2")),
                       ("opennmt", "int8", os.path.join(onmt_dir, "export", "ctranslate2_int8")))]]
        for name, python, script, arguments in peers:
            output = os.path.join(hypotheses, f"{name}.{mode}")
            measured = side(python, script, *arguments, "--input", test_pieces, "--output", output,
                            "--batch-size", args.batch_size, log=os.path.join(work_dir, "decode.log"))
            with open(output, encoding="utf-8") as f:
                measured["outputs"] = [pieces_to_text(line) for line in f.read().splitlines()]
            results[name] = measured
        for name, result in results.items():
            outputs = result.pop("outputs")
            result["sentences_per_second"] = len(sources) / result["seconds"]
            result["bleu"] = sacrebleu.corpus_bleu(outputs, [references]).score
            result["mean_output_characters"] = float(np.mean([len(o) for o in outputs]))
        return results

    decoding = {mode: stages.run(f"decode/{mode}", lambda beam=beam: decode(beam))
                for mode, beam in (("greedy", 1), ("beam4", 4))}
    report(args, train, flops, decoding, len(sources), machine)


TARGETS = {"train": 1.5, "beam4": 2.0, "greedy": 1.0}  # issue 25: tflm's best against OpenNMT-tf


def report(args, train, flops, decoding, sentences, machine):
    """Prints the figures with their ratios and the targets, writes the records and `WORK_DIR/table.md`."""
    table = [f"machine: {machine}; commit {tflm.results.commit()}", ""]
    base = train["opennmt_tf"]["target_tokens_per_second"]
    table += ["| training | target tokens/s | x OpenNMT-tf | target tokens/step | MFU |", "|---|---|---|---|---|"]
    command = "python tools/bench/peers/run.py " + " ".join(sys.argv[1:])
    dataset = f"{DATASET} en-es"
    print(f"\nTraining, steps {args.timed}, {args.batch_tokens}-token batches (target tokens/s):")
    for name in ("opennmt_tf", "tflm_fp32", "tflm_bf16"):
        result = train[name]
        ratio = result["target_tokens_per_second"] / base
        metrics = {"target_tokens_per_second": result["target_tokens_per_second"],
                   "target_tokens_per_step": result["target_tokens_per_step"],
                   "opennmt_tf_target_tokens_per_second": base, "ratio_vs_opennmt_tf": ratio}
        line = f"  {name:<12} {result['target_tokens_per_second']:8.0f}  x{ratio:.2f}" \
               f"  ({result['target_tokens_per_step']:.0f} target tokens/step)"
        if name.startswith("tflm"):
            peak = flops["matmul_peak_bf16" if name.endswith("bf16") else "matmul_peak_fp32"]
            model_flops = result["target_tokens_per_second"] * flops["flops_per_target_token"]
            metrics.update(model_gflops_per_second=model_flops / 1e9, matmul_peak_gflops=peak / 1e9,
                           mfu_percent=100 * model_flops / peak)
            line += f"  MFU {100 * model_flops / peak:.1f}% of a {peak / 1e9:.0f} GFLOP/s matmul"
            tflm.results.write_record(f"peers-train-{name.replace('_', '-')}", "translation", dataset, MODEL_NAME,
                                      metrics, args.results_dir, command)
        print(line)
        mfu = f"{metrics['mfu_percent']:.1f}% of {metrics['matmul_peak_gflops']:.0f} GFLOP/s" \
            if "mfu_percent" in metrics else "–"
        table.append(f"| {name} | {result['target_tokens_per_second']:,.0f} | x{ratio:.2f} | "
                     f"{result['target_tokens_per_step']:,.0f} | {mfu} |")
    best = max(train["tflm_fp32"]["target_tokens_per_second"], train["tflm_bf16"]["target_tokens_per_second"]) / base
    print(_target("training", best, TARGETS["train"]))
    for mode, results in decoding.items():
        base = results["opennmt_tf"]["sentences_per_second"]
        print(f"\n{mode}, {sentences} test sentences in batches of {args.batch_size} (sentences/s):")
        table += ["", f"| {mode} | sentences/s | x OpenNMT-tf | BLEU | characters/sentence |", "|---|---|---|---|---|"]
        for name, result in results.items():
            ratio = result["sentences_per_second"] / base
            table.append(f"| {name} | {result['sentences_per_second']:,.1f} | x{ratio:.2f} | {result['bleu']:.2f} | "
                         f"{result['mean_output_characters']:.1f} |")
            print(f"  {name:<30} {result['sentences_per_second']:8.1f}  x{ratio:.2f}  BLEU {result['bleu']:.2f}"
                  f"  {result['mean_output_characters']:.1f} characters/sentence")
            if name != "opennmt_tf":
                tflm.results.write_record(
                    f"peers-{mode}-{name.replace('_', '-')}", "translation", dataset, MODEL_NAME,
                    {"sentences_per_second": result["sentences_per_second"], "opennmt_tf_sentences_per_second": base,
                     "ratio_vs_opennmt_tf": ratio, "bleu": result["bleu"],
                     "opennmt_tf_bleu": results["opennmt_tf"]["bleu"],
                     "batch_size": args.batch_size, "sentences": sentences}, args.results_dir, command)
        best = max(results[name]["sentences_per_second"] for name in ("tflm", "tflm_savedmodel")) / base
        print(_target(f"{mode} decoding in TensorFlow (in process or SavedModel)", best, TARGETS[mode]))
    path = os.path.join(os.path.abspath(args.work_dir), "table.md")
    with open(path, "w") as f:
        f.write("\n".join(table) + "\n")
    print(f"\ntable: {path}")


def _target(what, ratio, target):
    met = "met" if ratio >= target else "NOT met"
    return f"  target for {what}: x{target:.1f} OpenNMT-tf; tflm's best x{ratio:.2f}: {met}"


if __name__ == "__main__":
    main()
