"""The commands that use a trained run: evaluate, translate, summarize, generate, predict, attention."""

import dataclasses
import json
import sys

import click

from tflm.cli._common import (
    decoding_options, echo_json, main, open_run, parse_row, require_command, run_decoding, setup_logging,
)


# Options of `evaluate` that some tasks take (`Task.evaluation_options`); a task refuses the others.
_TASK_EVALUATION_OPTIONS = ("stride", "memory_length", "dynamic_lr", "dynamic_decay", "dynamic_streams", "cache_size",
                            "cache_theta", "cache_mix", "baseline")


@main.command()
@click.option("--run-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "valid", "test"]))
@click.option("--checkpoint", default="best", show_default=True,
              help="best, last, averaged (see `tflm average`), or a checkpoint path.")
@click.option("--max-pairs", type=int, help="Evaluate on the first N pairs (tokens, for language models) only.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="TFLM_DATA_DIR",
              help="Where the run's corpus is, if not where it was trained.")
@click.option("--stride", type=click.IntRange(min=1),
              help="Language models (GPT): score tokens in windows this far apart (default: half a window).")
@click.option("--memory-length", type=click.IntRange(min=0),
              help="Transformer-XL: evaluate with this much memory (default: as trained).")
@click.option("--dynamic-lr", type=click.FloatRange(min=0, min_open=True),
              help="Language models: dynamic evaluation, an SGD step of this size on each segment once scored.")
@click.option("--dynamic-decay", type=click.FloatRange(0, 1, max_open=True),
              help="Dynamic evaluation: pull the weights back toward the trained ones by this fraction each step "
                   "[default: 0].")
@click.option("--dynamic-streams", type=click.IntRange(min=1),
              help="Dynamic evaluation: read the text as this many parallel streams [default: 1, in order].")
@click.option("--cache-size", type=click.IntRange(min=1),
              help="Language models: mix in a neural cache over this many previous positions.")
@click.option("--cache-theta", type=float, help="Neural cache: the scale of its hidden-state dot products "
                                                "[default: 0.05].")
@click.option("--cache-mix", type=click.FloatRange(0, 1),
              help="Neural cache: its weight in the mixture with the model's probabilities [default: 0.2].")
@click.option("--baseline", help="Summarization: score a baseline instead of the model, by the same code on the same "
                                 "split: lead-1 (the first sentence; lead-K) or first-10 (the first words; first-N).")
@click.option("--profile", metavar="START:STOP", help="Trace decoding batches START to STOP (excluded; batch 0 is the "
              "warm-up) with the TensorFlow profiler into RUN_DIR/logs (TensorBoard's Profile tab).")
@decoding_options
def evaluate(run_dir, split, checkpoint, max_pairs, data_dir, profile, **options):
    """Evaluate a run on a split of its corpus, and print the scores as JSON.

    Scores by task. Translation: translate and score with sacreBLEU (BLEU 13a, chrF); writes
    RUN_DIR/eval/SPLIT.CHECKPOINT.STRATEGY.hyp and .json. Summarization: summarize and score with ROUGE-1/2/L
    (rouge-score F1, stemmed, Unicode-safe tokens, 95% bootstrap intervals); --baseline lead-1 or first-10
    scores a baseline instead (RUN_DIR/eval/SPLIT.best.BASELINE.json). Language models: loss, perplexity, bits per
    character (character models) and word-level perplexity; writes RUN_DIR/eval/SPLIT.CHECKPOINT.json
    (--stride, --memory-length: more context than training had; --dynamic-lr, --cache-size: adaptive
    evaluation, its settings chosen on the valid split; each noted in the file's name). A task refuses the
    options that are not its own.
    """
    task_options = {name: options.pop(name) for name in _TASK_EVALUATION_OPTIONS}
    setup_logging()
    run = open_run(run_dir)
    if data_dir:
        run = run.with_data_dir(data_dir)  # for this command only: config.json stays as it is
    try:
        scores = run.evaluate(split=split, checkpoint=checkpoint, max_examples=max_pairs,
                              decoding=run_decoding(run, options), profile=profile, **task_options)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    echo_json(scores)


# ----------------------------------------------------------------------------------------- translate


# CTranslate2's compute types (`tflm.engines.ctranslate2.COMPUTE_TYPES`, not imported: it loads TensorFlow)
_COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                  "bfloat16", "float32")


def _engine_options():
    """--engine and --compute-type: decode a run with tflm's graph (TensorFlow) or a CTranslate2 conversion."""
    return [
        click.option("--engine", type=click.Choice(["tensorflow", "ctranslate2"]), default="tensorflow",
                     show_default=True, help="Decode with tflm's TensorFlow graph, or with CTranslate2 (the run's "
                     "checkpoint converted once into RUN_DIR/ctranslate2/; Transformer encoder-decoders without "
                     "copy attention and GPT models)."),
        click.option("--compute-type", type=click.Choice(_COMPUTE_TYPES), default="default", show_default=True,
                     help="With --engine ctranslate2: CTranslate2's compute type (int8 quantizes as it loads)."),
    ]


def _ctranslate2_predictor(run_dir, checkpoint, decoding, compute_type):
    """The CTranslate2 engine of a run's checkpoint (converted once, again when the checkpoint is newer); a
    click error naming the model type for a run CTranslate2 cannot decode."""
    from tflm.engines.ctranslate2 import convert_run_cached, load_engine

    try:
        path = convert_run_cached(run_dir, checkpoint)
        return load_engine(path, compute_type=compute_type, decoding=decoding)
    except ImportError as error:
        raise click.ClickException(f"{error} Or decode with --engine tensorflow.") from None
    except ValueError as error:
        raise click.ClickException(f"{error} Decode this run with --engine tensorflow (the default).") from None


def _decoding_command_options(what, rows, outputs):
    """The options `tflm translate` and `tflm summarize` share: a run or a server, the input and output files."""
    options = [
        click.option("--run-dir", type=click.Path(exists=True, file_okay=False), help=f"A trained run to {what} with."),
        click.option("--server", help="Or a TF Serving (tflm serve or the real one) at HOST:PORT."),
        click.option("--model", "model_name", help="With --server: the model's name."),
        click.option("--protocol", type=click.Choice(["rest", "grpc"]), default="rest", show_default=True,
                     help="With --server: REST (port 8501 by default) or gRPC (8500)."),
        click.option("--input", "-i", "input_file", type=click.File("r", encoding="utf-8"),
                     help=f"File of {rows}, one per line ('-' for stdin). Default: the arguments, else stdin."),
        click.option("--output", "-o", "output_file", type=click.File("w", encoding="utf-8"), default="-",
                     help=f"Where the {outputs} go, one line per input line. Default: stdout."),
        click.option("--checkpoint", default="best", show_default=True,
                     help="best, last, averaged (see `tflm average`), or a checkpoint path."),
        click.option("--batch-size", type=int, help=f"{rows.capitalize()} per decoding batch."),
        *_engine_options(),
        decoding_options,
    ]

    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


@main.command()
@click.argument("sentences", nargs=-1)
@_decoding_command_options("translate", "sentences", "translations")
def translate(sentences, run_dir, server, model_name, protocol, input_file, output_file, checkpoint, batch_size, engine,
              compute_type, **options):
    """Translate SENTENCES (or a file, or stdin) with a trained run: one line out per line in.

    An empty input line gives an empty output line. Decoding is the run's (greedy unless configured)
    unless options choose otherwise: e.g. --beam-size 4, or --sample --top-p 0.9 --seed 1.
    """
    setup_logging(verbose=False)
    _decode_command("translate", sentences, run_dir, server, model_name, protocol, input_file, output_file, checkpoint,
                    batch_size, options, engine, compute_type)


@main.command()
@click.argument("texts", nargs=-1)
@_decoding_command_options("summarize", "documents", "summaries")
def summarize(texts, run_dir, server, model_name, protocol, input_file, output_file, checkpoint, batch_size, engine,
              compute_type, **options):
    """Summarize TEXTS (or a file of documents, one per line, or stdin) with a summarization run.

    One summary line out per document line in; an empty line gives an empty line. Decoding is the run's
    (beam 4 with repeated-trigram blocking unless configured) unless options choose otherwise: e.g.
    --no-repeat-ngram 0, --min-length 4, --max-length 24, --length-penalty 1.0, --beam-size 1.
    """
    setup_logging(verbose=False)
    _decode_command("summarize", texts, run_dir, server, model_name, protocol, input_file, output_file, checkpoint,
                    batch_size, options, engine, compute_type)


def _decode_command(command, arguments, run_dir, server, model_name, protocol, input_file, output_file, checkpoint,
                    batch_size, options, engine="tensorflow", compute_type="default"):
    """`tflm translate` and `tflm summarize`: the lines in, one output line per line (n-best: index, score, text)."""
    if engine == "ctranslate2" and server:
        raise click.UsageError("--engine ctranslate2 decodes a run here (--run-dir); a --server decodes with its own "
                               "model (serve a CTranslate2 export with `tflm serve` instead).")
    if compute_type != "default" and engine != "ctranslate2":
        raise click.UsageError("--compute-type applies to --engine ctranslate2 only.")
    lines = _input_lines(arguments, input_file)
    if server:
        _translate_with_server(server, model_name, protocol, lines, output_file, batch_size or 32)
        return
    if not run_dir:
        raise click.UsageError("Give --run-dir RUN, or --server HOST:PORT --model NAME.")
    run = open_run(run_dir)
    require_command(run.task, run_dir, command)
    decoding = run_decoding(run, options)
    if engine == "ctranslate2":
        translator = _ctranslate2_predictor(run_dir, checkpoint, decoding, compute_type)
    else:
        translator = run.load_predictor(checkpoint, decoding=decoding)
    n_best = decoding.num_hypotheses > 1
    chunk = 1024
    label = {"translate": "Translating", "summarize": "Summarizing"}[command]
    with click.progressbar(length=len(lines), label=label, file=sys.stderr,
                           hidden=len(lines) <= chunk or not sys.stderr.isatty()) as bar:
        for start in range(0, len(lines), chunk):
            batch = lines[start: start + chunk]
            if n_best:
                for index, hypotheses in enumerate(translator.translate_n_best(batch, batch_size), start=start):
                    for text, score in hypotheses:
                        output_file.write(f"{index}\t{score:.4f}\t{text}\n")
            else:
                for text in translator.translate(batch, batch_size=batch_size):
                    output_file.write(text + "\n")
            bar.update(len(batch))


def _input_lines(arguments, input_file):
    """The inputs of a command: its arguments, or the lines of --input, or of stdin."""
    if arguments and input_file:
        raise click.UsageError("Give inputs as arguments or --input, not both.")
    if arguments:
        return list(arguments)
    source = input_file or click.open_file("-", encoding="utf-8")
    return [line.rstrip("\n") for line in source]


def _translate_with_server(server, model_name, protocol, lines, output_file, batch_size):
    from tflm.serving.client import ServingClientError, translate_grpc, translate_rest

    if not model_name:
        raise click.UsageError("--server needs --model NAME (the served model's name).")
    client = translate_rest if protocol == "rest" else translate_grpc
    for start in range(0, len(lines), batch_size):
        try:
            for text in client(server, model_name, lines[start: start + batch_size]):
                output_file.write(text + "\n")
        except ServingClientError as error:
            raise click.ClickException(str(error)) from None


# ----------------------------------------------------------------------------------------- generate


@main.command()
@click.argument("prompts", nargs=-1)
@click.option("--run-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--checkpoint", default="best", show_default=True, help="best, last, averaged, or a path.")
@click.option("--max-new-tokens", type=int, help="Tokens to generate after the prompt.")
@click.option("--greedy", is_flag=True, help="Greedy decoding (default: the run's, sampling with top-k 40).")
@click.option("--jit-compile", is_flag=True,
              help="XLA-compile the decoding (faster after a compilation per batch shape; samples may differ).")
@click.option("--stream/--no-stream", default=None,
              help="Print the text as it is produced (default: for a single prompt, without beam search; "
                   "TensorFlow engine only).")
@click.option("--engine", type=click.Choice(["tensorflow", "ctranslate2"]), default="tensorflow", show_default=True,
              help="Generate with tflm's TensorFlow graph, or with CTranslate2 (GPT runs; the checkpoint converted "
                   "once into RUN_DIR/ctranslate2/).")
@click.option("--compute-type", type=click.Choice(_COMPUTE_TYPES), default="default", show_default=True,
              help="With --engine ctranslate2: CTranslate2's compute type.")
@click.option("--truncate-prompt", is_flag=True, help="A prompt that leaves too little of the model's context for "
              "--max-new-tokens keeps its last tokens (default: it is refused, naming both numbers).")
@decoding_options
def generate(prompts, run_dir, checkpoint, max_new_tokens, greedy, jit_compile, stream, engine, compute_type,
             truncate_prompt, **options):
    """Continue PROMPTS (or stdin lines) with a language-model run.

    Greedy, beam (--beam-size), or sampling (--sample, --temperature, --top-k, --top-p, --seed), with
    --no-repeat-ngram and --num-hypotheses (continuations per prompt; --n-best is the same). A single prompt
    streams to the console.
    """
    setup_logging(verbose=False)
    if engine == "ctranslate2" and (stream or jit_compile):
        raise click.UsageError("--stream and --jit-compile apply to --engine tensorflow only.")
    if compute_type != "default" and engine != "ctranslate2":
        raise click.UsageError("--compute-type applies to --engine ctranslate2 only.")
    run = open_run(run_dir)
    require_command(run.task, run_dir, "generate")
    if not prompts:
        prompts = [line.rstrip("\n") for line in click.open_file("-", encoding="utf-8")]
    decoding = run_decoding(run, options)
    if greedy:
        decoding = dataclasses.replace(decoding, strategy="greedy")
    if max_new_tokens:
        decoding = dataclasses.replace(decoding, max_length=max_new_tokens)
    if engine == "ctranslate2":
        generator = _ctranslate2_predictor(run_dir, checkpoint, decoding, compute_type)
        generator.truncate = truncate_prompt
        stream = False
    else:
        generator = run.load_predictor(checkpoint, decoding=decoding, jit_compile=jit_compile,
                                       truncate=truncate_prompt)
    try:
        _generate(generator, prompts, decoding, stream)
    except tf_errors().InvalidArgumentError as error:  # e.g. a prompt beyond the model's context
        from tflm.serving.errors import graph_error_message

        raise click.ClickException(graph_error_message(error.message)) from None


def tf_errors():
    import tensorflow as tf

    return tf.errors


def _generate(generator, prompts, decoding, stream):
    if stream is None:
        stream = len(prompts) == 1 and decoding.strategy != "beam" and decoding.num_hypotheses == 1
    if stream:
        for prompt in prompts:
            pieces = generator.stream(prompt)
            first = next(pieces, "")  # (a prompt the model cannot take is refused before anything is printed)
            click.echo(prompt + first, nl=False)
            for piece in pieces:
                click.echo(piece, nl=False)
            click.echo()
        return
    for prompt, continuations in zip(prompts, generator.generate(prompts)):
        for continuation in continuations:
            click.echo(prompt + continuation)
            if len(continuations) > 1:
                click.echo("---")


@main.command()
@click.argument("inputs", nargs=-1)
@click.option("--run-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--input", "-i", "input_file", type=click.File("r", encoding="utf-8"),
              help="File of inputs, one per line ('-' for stdin). Default: the arguments, else stdin.")
@click.option("--checkpoint", default="best", show_default=True, help="best, last, averaged, or a path.")
@decoding_options
def predict(inputs, run_dir, input_file, checkpoint, **options):
    """Answer INPUTS (or a file, or stdin) with a run of any task: one JSON line per input.

    An input is a text, or a JSON object naming the inputs of a task that takes several, e.g.
    '{"text_a": "tom is here", "text_b": "Tom está aquí"}'. What an answer holds is the task's: a translation,
    continuations, a label and its scores, a tag per word (exactly the row's own words), ...
    """
    setup_logging(verbose=False)
    run = open_run(run_dir)
    predictor = run.load_predictor(checkpoint, decoding=run_decoding(run, options))
    for answer in predictor.predict([parse_row(line) for line in _input_lines(inputs, input_file)]):
        click.echo(json.dumps(answer, ensure_ascii=False))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("sentence")
@click.option("--output", "-o", default="attention.png", show_default=True, type=click.Path(dir_okay=False),
              help="PNG file to write.")
@click.option("--checkpoint", default="best", show_default=True)
def attention(run_dir, sentence, output, checkpoint):
    """Translate SENTENCE with RUN_DIR and draw the model's cross-attention as a PNG heatmap."""
    setup_logging(verbose=False)
    from tflm.visualization import attention_heatmap

    translator = open_run(run_dir).load_predictor(checkpoint)
    weights, source_pieces, target_pieces, text = translator.attention(sentence)
    attention_heatmap(weights, source_pieces, target_pieces).save(output)
    click.echo(f"{text}\n{output}: {len(target_pieces)} x {len(source_pieces)} attention weights")
