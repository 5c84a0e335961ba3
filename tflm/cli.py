"""The `tflm` command line: each command parses its options, calls one library function, and prints.

TensorFlow is imported inside the commands, so `tflm --help` answers at once.
"""

import dataclasses
import json
import os
import sys

import click


def _setup_logging(verbose=True, log_file=None):
    from tflm.log import setup_logging

    setup_logging(log_file, verbose)


class _FriendlyErrors(click.Group):
    """Turns the library's expected errors (bad config, missing files, bad data) into one clear line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (ValueError, FileNotFoundError, KeyError, ConnectionError, RuntimeError) as error:
            if os.environ.get("TFLM_DEBUG"):
                raise
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            click.echo(f"Error: {message}", err=True)
            click.echo("(set TFLM_DEBUG=1 for the full traceback)", err=True)
            sys.exit(1)


@click.group(cls=_FriendlyErrors)
@click.version_option(package_name="tflm")
def main():
    """tflm: train, evaluate, export and serve language models with TensorFlow and Keras 3."""


# ----------------------------------------------------------------------------------------- vocab


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--type", "vocabulary_type", default="unigram", show_default=True,
              type=click.Choice(["unigram", "bpe", "wordpiece"]), help="SentencePiece unigram/BPE, or WordPiece.")
@click.option("--size", default=8000, show_default=True, help="Number of pieces, special tokens included.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Vocabulary file to write (.model for SentencePiece, .vocab for WordPiece; added if missing).")
def vocab(files, vocabulary_type, size, output):
    """Train a subword vocabulary on text FILES (one sentence per line, .gz accepted).

    Special ids are fixed: 0 <pad>, 1 <unk>, 2 <s>, 3 </s>. Giving the files of both languages makes a
    joint vocabulary.
    """
    _setup_logging()
    from tflm.data import read_lines
    from tflm.text import train_tokenizer

    texts = [line for path in files for line in read_lines(path) if line]
    tokenizer = train_tokenizer(texts, vocabulary_type, size)
    if not output.endswith(tokenizer.file_suffix):
        output += tokenizer.file_suffix
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tokenizer.save(output)
    click.echo(f"{output}: {tokenizer.kind} vocabulary of {tokenizer.vocabulary_size} pieces from {len(texts)} lines")


# ----------------------------------------------------------------------------------------- train

_TRAIN_OPTIONS = {
    # option name: configuration field it sets
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "source_lang": "data.source_language",
    "target_lang": "data.target_language",
    "batch_tokens": "data.batch_tokens",
    "max_train_pairs": "data.max_train_pairs",
    "sequence_length": "data.sequence_length",
    "batch_size": "data.batch_size",
    "vocab_type": "vocabulary.type",
    "vocab_size": "vocabulary.size",
    "model": "model.type",
    "preset": "model.preset",
    "epochs": "training.epochs",
    "max_steps": "training.max_steps",
    "time_budget": "training.time_budget",
    "learning_rate": "training.learning_rate",
    "strategy": "training.strategy",
    "mixed_precision": "training.mixed_precision",
    "seed": "training.seed",
}


@main.command()
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="Run directory: created for a new run; an existing one is resumed.")
@click.option("--task", type=click.Choice(["translation", "language_modeling"]),
              help="What to train (default: translation; an existing run keeps its own).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="JSON or YAML configuration (sections data, vocabulary, model, training, decoding).")
@click.option("--dataset", help="Registered corpus (see `tflm data list`). Default: the shipped sample "
                                "(translation), shakespeare (language modelling).")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="TFLM_DATA_DIR",
              help="Folder holding the corpus (or its parent). Also $TFLM_DATA_DIR.")
@click.option("--source-lang", help="Source language code, as in the corpus file names.")
@click.option("--target-lang", help="Target language code.")
@click.option("--model", help="Model type: transformer or lstm (translation); gpt or transformer_xl (language "
                                "modelling).")
@click.option("--preset", help="Model size preset, e.g. tiny, small, base (see tflm.models.PRESETS).")
@click.option("--epochs", type=int)
@click.option("--max-steps", type=int)
@click.option("--time-budget", help="Stop after this much training time, e.g. 25m or 1.5h (across resumes).")
@click.option("--batch-tokens", type=int, help="Translation: token budget per batch.")
@click.option("--max-train-pairs", type=int, help="Translation: use only the first N training pairs.")
@click.option("--sequence-length", type=int, help="Language modelling: tokens per training window.")
@click.option("--batch-size", type=int, help="Language modelling: windows per batch.")
@click.option("--vocab-type", type=click.Choice(["unigram", "bpe", "wordpiece", "byte_bpe", "character"]))
@click.option("--vocab-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker", "tpu"]))
@click.option("--mixed-precision", type=click.Choice(["bfloat16", "float16"]))
@click.option("--seed", type=int)
@click.option("--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Set any configuration field, e.g. --set model.params.hidden_dim=256 (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bar; warnings only on the console.")
def train(run_dir, task, config_file, overrides, quiet, **options):
    """Train a translation model or a language model in RUN_DIR (or resume the run already there).

    Writes config.json, vocab/, checkpoints/ (last N and best on validation), logs/ for TensorBoard
    (`tensorboard --logdir RUN_DIR/logs`) and train.log. Interrupt it at any time: running the same
    command again resumes from the last checkpoint.
    """
    from tflm.training.strategies import worker_role

    index, count, chief = worker_role()
    if chief:
        _setup_logging(not quiet, os.path.join(run_dir, "train.log"))
    else:  # only the chief writes into the run directory; another worker logs to a place of its own
        import tempfile

        log_file = os.path.join(tempfile.mkdtemp(prefix=f"tflm-worker-{index}-"), "train.log")
        _setup_logging(not quiet, log_file)
        click.echo(f"worker {index} of {count}: not the chief, so it logs to {log_file}", err=True)
    if count > 1:
        import logging

        logging.getLogger("tflm").info("This process is worker %s of %d%s", index, count, " (the chief)" * chief)
    module = _task_module(task, run_dir)
    config = _run_config(run_dir, config_file, overrides, options, module)
    result = module.train(config, run_dir, verbose=not quiet)
    click.echo(json.dumps({
        "run_dir": run_dir, "step": result.step, "epoch": result.epoch, "stopped_by": result.stopped_by,
        "train_seconds": round(result.train_seconds, 1),
        "target_tokens_per_second": round(result.tokens_per_second, 1),
        "best_valid_loss": round(result.best_valid_loss, 4),
    }))


def _task_module(task, run_dir=None):
    """The task module of `task`, or of the run in `run_dir` (whose task wins when it exists)."""
    from tflm.tasks import language_modeling, translation
    from tflm.tasks.runs import CONFIG_FILE, task_name

    modules = {"translation": translation, "language_modeling": language_modeling}
    if run_dir and os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        existing = task_name(run_dir)
        if task and task != existing:
            raise click.UsageError(f"{run_dir} is a {existing} run; --task {task} does not apply to it.")
        return modules[existing]
    return modules[task or "translation"]


def _run_config(run_dir, config_file, overrides, options, module):
    from tflm import config as config_lib
    from tflm.tasks.runs import CONFIG_FILE

    config_class = module.TranslationConfig if hasattr(module, "TranslationConfig") else module.LanguageModelConfig
    if os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        if config_file:
            raise config_lib.ConfigError(
                f"{run_dir} already has its configuration; to resume, leave out --config (or use a new --run-dir)."
            )
        config = module.load_run_config(run_dir)
    elif config_file:
        config = config_lib.from_dict(config_class, config_lib.load_file(config_file), config_file)
    else:
        config = config_class()
    fields = {field.name for field in dataclasses.fields(config.data)}
    flags = []
    for name, field in _TRAIN_OPTIONS.items():
        if options.get(name) is None:
            continue
        section, key = field.split(".")
        if section == "data" and key not in fields:
            raise click.UsageError(f"--{name.replace('_', '-')} does not apply to a {config.task} run.")
        flags.append(f"{field}={json.dumps(options[name])}")
    return config_lib.apply_overrides(config, flags + list(overrides)).validate()


# ----------------------------------------------------------------------------------------- decoding options

_DECODING_OPTIONS = [
    click.option("--beam-size", type=int, help="Beam search with this many hypotheses (1: greedy)."),
    click.option("--length-penalty", type=float, help="Beam search length penalty (GNMT alpha, default 0.6)."),
    click.option("--n-best", type=int, help="Hypotheses (or samples) per input; with --n-best > 1 each line is "
                                            "INPUT_INDEX<TAB>SCORE<TAB>TRANSLATION."),
    click.option("--sample", "use_sampling", is_flag=True, help="Sample instead of searching."),
    click.option("--temperature", type=float, help="Sampling temperature."),
    click.option("--top-k", type=int, help="Sample among the k most likely tokens."),
    click.option("--top-p", type=float, help="Sample from the smallest set of tokens of probability >= p."),
    click.option("--seed", type=int, help="Sampling seed (the same seed gives the same output)."),
    click.option("--no-repeat-ngram", type=int, help="Never generate the same n-gram twice (n >= 2)."),
    click.option("--min-length", type=int, help="At least this many tokens before EOS."),
    click.option("--max-length", type=int, help="At most this many output tokens."),
]


def _decoding_options(function):
    for option in reversed(_DECODING_OPTIONS):
        function = option(function)
    return function


def _decoding(run_dir, options):
    """The run's decoding settings with the command-line choices applied."""
    decoding = _task_module(None, run_dir).load_run_config(run_dir).decoding
    changes = {key: options[name] for key, name in [
        ("length_penalty", "length_penalty"), ("temperature", "temperature"), ("top_k", "top_k"),
        ("top_p", "top_p"), ("seed", "seed"), ("no_repeat_ngram_size", "no_repeat_ngram"),
        ("min_length", "min_length"), ("max_length", "max_length"), ("n_best", "n_best"),
        ("beam_size", "beam_size")] if options.get(name) is not None}
    if options.get("use_sampling"):
        changes["strategy"] = "sample"
    elif options.get("beam_size") is not None:
        changes["strategy"] = "beam" if options["beam_size"] > 1 else "greedy"
    elif (options.get("n_best") or 1) > 1 and decoding.strategy == "greedy":
        changes["strategy"] = "beam"
        changes["beam_size"] = max(decoding.beam_size, options["n_best"])
    return dataclasses.replace(decoding, **changes).validate()


# ----------------------------------------------------------------------------------------- evaluate


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
@click.option("--dynamic-decay", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Dynamic evaluation: pull the weights back toward the trained ones by this fraction each step.")
@click.option("--dynamic-streams", type=click.IntRange(min=1), default=1, show_default=True,
              help="Dynamic evaluation: read the text as this many parallel streams (1: in order).")
@click.option("--cache-size", type=click.IntRange(min=1),
              help="Language models: mix in a neural cache over this many previous positions.")
@click.option("--cache-theta", type=float, default=0.05, show_default=True,
              help="Neural cache: the scale of its hidden-state dot products.")
@click.option("--cache-mix", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Neural cache: its weight in the mixture with the model's probabilities.")
@_decoding_options
def evaluate(run_dir, split, checkpoint, max_pairs, data_dir, stride, memory_length, dynamic_lr, dynamic_decay,
             dynamic_streams, cache_size, cache_theta, cache_mix, **options):
    """Evaluate a run on a split of its corpus, and print the scores as JSON.

    Translation: translate and score with sacreBLEU (BLEU 13a, chrF); writes RUN_DIR/eval/SPLIT.CHECKPOINT.
    STRATEGY.hyp and .json. Language models: loss, perplexity, bits per character (character models) and
    word-level perplexity; writes RUN_DIR/eval/SPLIT.CHECKPOINT.json (--stride, --memory-length: more context
    than training had; --dynamic-lr, --cache-size: adaptive evaluation, its settings chosen on the valid
    split; each noted in the file's name).
    """
    _setup_logging()
    module = _task_module(None, run_dir)
    if data_dir:
        _set_run_data_dir(run_dir, data_dir, module)
    if hasattr(module, "Translator"):
        if any(option is not None for option in (stride, memory_length, dynamic_lr, cache_size)):
            raise click.UsageError("--stride, --memory-length, --dynamic-* and --cache-* are for language-model "
                                   "runs.")
        scores = module.evaluate(run_dir, split=split, checkpoint=checkpoint, max_pairs=max_pairs,
                                 decoding=_decoding(run_dir, options))
    else:
        try:
            scores = module.evaluate(run_dir, split=split, checkpoint=checkpoint, max_tokens=max_pairs,
                                     stride=stride, memory_length=memory_length,
                                     dynamic=module.DynamicEvaluation(dynamic_lr, dynamic_decay, dynamic_streams)
                                     if dynamic_lr else None,
                                     cache=module.NeuralCache(cache_size, cache_theta, cache_mix)
                                     if cache_size else None)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    click.echo(json.dumps(scores, indent=1))


def _set_run_data_dir(run_dir, data_dir, module):
    from tflm import config as config_lib
    from tflm.tasks.runs import CONFIG_FILE

    config = module.load_run_config(run_dir)
    config.data.data_dir = data_dir
    config_lib.save_file(config, os.path.join(run_dir, CONFIG_FILE))


# ----------------------------------------------------------------------------------------- translate


@main.command()
@click.argument("sentences", nargs=-1)
@click.option("--run-dir", type=click.Path(exists=True, file_okay=False), help="A trained run to translate with.")
@click.option("--server", help="Or a TF Serving (tflm serve or the real one) at HOST:PORT.")
@click.option("--model", "model_name", help="With --server: the model's name.")
@click.option("--protocol", type=click.Choice(["rest", "grpc"]), default="rest", show_default=True,
              help="With --server: REST (port 8501 by default) or gRPC (8500).")
@click.option("--input", "-i", "input_file", type=click.File("r", encoding="utf-8"),
              help="File of sentences, one per line ('-' for stdin). Default: the arguments, else stdin.")
@click.option("--output", "-o", "output_file", type=click.File("w", encoding="utf-8"), default="-",
              help="Where the translations go, one line per input line. Default: stdout.")
@click.option("--checkpoint", default="best", show_default=True,
              help="best, last, averaged (see `tflm average`), or a checkpoint path.")
@click.option("--batch-size", type=int, help="Sentences per decoding batch.")
@_decoding_options
def translate(sentences, run_dir, server, model_name, protocol, input_file, output_file, checkpoint, batch_size,
              **options):
    """Translate SENTENCES (or a file, or stdin) with a trained run: one line out per line in.

    An empty input line gives an empty output line. Decoding is the run's (greedy unless configured)
    unless options choose otherwise: e.g. --beam-size 4, or --sample --top-p 0.9 --seed 1.
    """
    _setup_logging(verbose=False)
    if sentences and input_file:
        raise click.UsageError("Give sentences as arguments or --input, not both.")
    if sentences:
        lines = list(sentences)
    else:
        source = input_file or click.open_file("-", encoding="utf-8")
        lines = [line.rstrip("\n") for line in source]
    from tflm.tasks import translation

    if server:
        _translate_with_server(server, model_name, protocol, lines, output_file, batch_size or 32)
        return
    if not run_dir:
        raise click.UsageError("Give --run-dir RUN, or --server HOST:PORT --model NAME.")
    if _task_module(None, run_dir) is not translation:
        raise click.UsageError(f"{run_dir} is a language-model run; use `tflm generate`.")
    decoding = _decoding(run_dir, options)
    translator = translation.Translator.from_run_dir(run_dir, checkpoint, decoding=decoding)
    n_best = decoding.n_best > 1
    chunk = 1024
    with click.progressbar(length=len(lines), label="Translating", file=sys.stderr,
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
              help="Print the text as it is produced (default: for a single prompt, without beam search).")
@_decoding_options
def generate(prompts, run_dir, checkpoint, max_new_tokens, greedy, jit_compile, stream, **options):
    """Continue PROMPTS (or stdin lines) with a language-model run.

    Greedy, beam (--beam-size), or sampling (--sample, --temperature, --top-k, --top-p, --seed), with
    --no-repeat-ngram and --n-best (number of return sequences). A single prompt streams to the console.
    """
    _setup_logging(verbose=False)
    from tflm.tasks import language_modeling

    if _task_module(None, run_dir) is not language_modeling:
        raise click.UsageError(f"{run_dir} is not a language-model run; use `tflm translate`.")
    if not prompts:
        prompts = [line.rstrip("\n") for line in click.open_file("-", encoding="utf-8")]
    decoding = _decoding(run_dir, options)
    if greedy:
        decoding = dataclasses.replace(decoding, strategy="greedy")
    if max_new_tokens:
        decoding = dataclasses.replace(decoding, max_length=max_new_tokens)
    generator = language_modeling.Generator.from_run_dir(run_dir, checkpoint, decoding=decoding,
                                                         jit_compile=jit_compile)
    if stream is None:
        stream = len(prompts) == 1 and decoding.strategy != "beam" and decoding.n_best == 1
    if stream:
        for prompt in prompts:
            click.echo(prompt, nl=False)
            for piece in generator.stream(prompt):
                click.echo(piece, nl=False)
            click.echo()
        return
    for prompt, continuations in zip(prompts, generator.generate(prompts)):
        for continuation in continuations:
            click.echo(prompt + continuation)
            if len(continuations) > 1:
                click.echo("---")


# ----------------------------------------------------------------------------------------- serve


@main.command()
@click.argument("base_dir", type=click.Path(exists=True, file_okay=False), default="saved_models")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--rest-port", default=8501, show_default=True, type=int, help="REST port (TF Serving's default).")
@click.option("--grpc-port", default=8500, show_default=True, type=int, help="gRPC port (TF Serving's default).")
@click.option("--batching/--no-batching", default=True, show_default=True,
              help="Batch concurrent requests to the same signature.")
@click.option("--max-batch-size", default=32, show_default=True, help="Most rows per request and per batch.")
@click.option("--batch-timeout-ms", default=10.0, show_default=True, help="How long a batch waits for more.")
@click.option("--max-body-bytes", default=1 << 20, show_default=True,
              help="Largest request accepted (REST body: 413 above; gRPC message).")
@click.option("--poll-seconds", default=2.0, show_default=True, help="How often to look for new versions.")
@click.option("--max-pending", default=128, show_default=True, type=click.IntRange(min=1),
              help="Most predictions queued or running at once; more are answered 503 / UNAVAILABLE.")
@click.option("--request-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a prediction may take, queueing included; 504 / DEADLINE_EXCEEDED after.")
@click.option("--shutdown-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="On SIGTERM or Ctrl-C, seconds the requests in flight may take to finish.")
@click.option("--log-requests", is_flag=True, help="Log every request (default: only failed ones).")
def serve(base_dir, host, rest_port, grpc_port, batching, max_batch_size, batch_timeout_ms, max_body_bytes,
          poll_seconds, max_pending, request_timeout, shutdown_timeout, log_requests):
    """Serve every model under BASE_DIR with TF Serving's REST and gRPC APIs.

    New versions dropped into BASE_DIR/NAME/ are loaded and swapped in without failing requests; a version
    that fails to load is reported (GET /v1/models/NAME) and the previous one keeps serving. Every request
    is bounded (body size, batch size, the export's limits on decoding controls, a deadline, a bound on
    queued work). SIGTERM or Ctrl-C stops gracefully: requests in flight finish, new ones are refused.
    """
    _setup_logging()
    import logging

    from tflm.serving import serve as run_server

    if log_requests:
        logging.getLogger("tflm").setLevel(logging.DEBUG)
        for handler in logging.getLogger("tflm").handlers:
            handler.setLevel(logging.DEBUG)
    run_server(base_dir, host=host, rest_port=rest_port, grpc_port=grpc_port, batching=batching,
               max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms, max_body_bytes=max_body_bytes,
               poll_seconds=poll_seconds, max_pending=max_pending, request_timeout=request_timeout,
               shutdown_timeout=shutdown_timeout)


# ----------------------------------------------------------------------------------------- average


@main.command()
@click.option("--run-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--last", "count", default=5, show_default=True, type=click.IntRange(min=1),
              help="Average the last N training checkpoints.")
def average(run_dir, count):
    """Average the weights of the last N checkpoints of a run (often better than any one of them).

    Translation and language-model runs. Writes RUN_DIR/checkpoints/averaged/; use it with --checkpoint
    averaged in evaluate, translate, generate and export.
    """
    _setup_logging()
    click.echo(_task_module(None, run_dir).average_run_checkpoints(run_dir, count))


# ----------------------------------------------------------------------------------------- attention


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("sentence")
@click.option("--output", "-o", default="attention.png", show_default=True, type=click.Path(dir_okay=False),
              help="PNG file to write.")
@click.option("--checkpoint", default="best", show_default=True)
def attention(run_dir, sentence, output, checkpoint):
    """Translate SENTENCE with RUN_DIR and draw the model's cross-attention as a PNG heatmap."""
    _setup_logging(verbose=False)
    from tflm.tasks import translation
    from tflm.visualization import attention_heatmap

    translator = translation.Translator.from_run_dir(run_dir, checkpoint)
    weights, source_pieces, target_pieces, text = translator.attention(sentence)
    attention_heatmap(weights, source_pieces, target_pieces).save(output)
    click.echo(f"{text}\n{output}: {len(target_pieces)} x {len(source_pieces)} attention weights")


# ----------------------------------------------------------------------------------------- export


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--name", required=True, help="Model name: the export goes to BASE_DIR/NAME/<next version>/.")
@click.option("--base-dir", default="saved_models", show_default=True, type=click.Path(file_okay=False))
@click.option("--checkpoint", default="best", show_default=True, help="best, last, averaged, or a path.")
@click.option("--average", type=int, default=0, help="First average the last N checkpoints, and export that.")
@click.option("--no-check", is_flag=True, help="Skip the servability check (not recommended).")
@click.option("--beam-size", type=int, help="Decode serving_default with beam search of this size (default: the "
                                            "run's decoding settings).")
@click.option("--length-penalty", type=float, help="Length penalty of that beam search.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Limit: most sentences or prompts per request.")
@click.option("--max-beam-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Limit: largest beam_size a request may ask.")
@click.option("--max-hypotheses", type=click.IntRange(min=1), default=16, show_default=True,
              help="Limit: most num_hypotheses / num_return_sequences.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Limit: largest max_length (translation) / max_new_tokens (language models).")
@click.option("--max-input-tokens", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Limit: longest prompt or scored text of a language model, in tokens.")
def export(run_dir, name, base_dir, checkpoint, average, no_check, beam_size, length_penalty, **limits):
    """Export RUN_DIR as a SavedModel for TensorFlow Serving: strings in, strings out.

    The version is checked (ops in TF Serving 2.20's op set, loads through the TF1 session loader, same
    outputs as the in-memory model on validation sentences) before it appears under BASE_DIR/NAME/, and
    BASE_DIR/models.config is updated for TF Serving's --model_config_file.

    The --max-* limits bound what one request may ask; the graph checks them (and the range of every
    decoding control) before decoding, so TF Serving answers a request outside them with INVALID_ARGUMENT.
    """
    _setup_logging()
    from tflm.export import ServingLimits, export_run

    decoding = _decoding(run_dir, {"beam_size": beam_size, "length_penalty": length_penalty})
    click.echo(export_run(run_dir, name, base_dir, checkpoint=checkpoint, average=average, check=not no_check,
                          decoding=decoding, limits=ServingLimits(**limits)))


@main.command()
@click.argument("saved_model", type=click.Path(exists=True, file_okay=False))
@click.option("--sentences", "sentences_file", type=click.File("r", encoding="utf-8"),
              help="Sentences to translate in the check, one per line (default: a few built-in ones).")
def check(saved_model, sentences_file):
    """Check that stock TF Serving 2.20 can serve SAVED_MODEL (a version directory).

    Every op must be in TF Serving 2.20's op set (no py_function, no XLA-only functions), the model must
    load and answer through the TF1 session loader with only tensorflow-text's op libraries, its warm-up
    requests must replay, and its outputs must match tf.saved_model.load's. Exit status 1 on a problem.
    """
    _setup_logging(verbose=False)
    from tflm.export.check import DEFAULT_SENTENCES, check_saved_model

    sentences = [line.rstrip("\n") for line in sentences_file] if sentences_file else DEFAULT_SENTENCES
    report = check_saved_model(saved_model, sentences)
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)


# ----------------------------------------------------------------------------------------- data


@main.group()
def data():
    """List, fetch and verify the registered corpora."""


@data.command("list")
def data_list():
    """List the registered corpora with their task, license and whether they can be downloaded."""
    from tflm.data.registry import REGISTRY

    for name, info in REGISTRY.items():
        how = "shipped" if info.packaged else ("download" if info.downloads else "manual")
        click.echo(f"{name:24} {info.task:18} {how:9} {info.license}")


@data.command("get")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="TFLM_DATA_DIR")
def data_get(name, data_dir):
    """Find corpus NAME locally, or download and prepare it into the cache; print its folder."""
    _setup_logging()
    from tflm.data.registry import find_dataset

    click.echo(find_dataset(name, data_dir))


@data.command("verify")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="TFLM_DATA_DIR")
def data_verify(name, data_dir):
    """Check the files of corpus NAME against the registry's sha256 checksums."""
    from tflm.data.registry import dataset_info, find_dataset, verify_files

    directory = find_dataset(name, data_dir, download=False)
    problems = verify_files(dataset_info(name), directory)
    for problem in problems:
        click.echo(problem)
    click.echo(f"{directory}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
