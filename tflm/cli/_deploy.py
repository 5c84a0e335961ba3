"""The commands between a trained run and its users: export, check, serve."""

import os
import sys

import click

from tflm.cli._common import main, open_run, parse_row, run_decoding, setup_logging

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
@click.option("--ctranslate2-threads", type=click.IntRange(min=1),
              help="CPU threads per batch of each CTranslate2 export served (default 1: more collapse when "
                   "the CPU is shared; batches run side by side on the other cores).")
def serve(base_dir, host, rest_port, grpc_port, batching, max_batch_size, batch_timeout_ms, max_body_bytes,
          poll_seconds, max_pending, request_timeout, shutdown_timeout, log_requests, ctranslate2_threads):
    """Serve every model under BASE_DIR with TF Serving's REST and gRPC APIs.

    New versions dropped into BASE_DIR/NAME/ are loaded and swapped in without failing requests; a version
    that fails to load is reported (GET /v1/models/NAME) and the previous one keeps serving. Every request
    is bounded (body size, batch size, the export's limits on decoding controls, a deadline, a bound on
    queued work). SIGTERM or Ctrl-C stops gracefully: requests in flight finish, new ones are refused.
    """
    setup_logging()
    import logging

    from tflm.serving import serve as run_server
    from tflm.serving.server import PortError

    if log_requests:
        logging.getLogger("tflm").setLevel(logging.DEBUG)
        for handler in logging.getLogger("tflm").handlers:
            handler.setLevel(logging.DEBUG)
    try:
        run_server(base_dir, host=host, rest_port=rest_port, grpc_port=grpc_port, batching=batching,
                   max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms, max_body_bytes=max_body_bytes,
                   poll_seconds=poll_seconds, max_pending=max_pending, request_timeout=request_timeout,
                   shutdown_timeout=shutdown_timeout, ctranslate2_threads=ctranslate2_threads)
    except PortError as error:  # one line, exit status 1: another server has the port
        raise click.ClickException(str(error)) from None


# ----------------------------------------------------------------------------------------- average


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
              help="Limit: most num_hypotheses per input.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Limit: largest max_length (translation) / max_new_tokens (language models).")
@click.option("--max-input-tokens", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Limit: longest prompt or scored text of a language model, in tokens.")
@click.option("--format", "export_format", type=click.Choice(["saved_model", "ctranslate2"]), default="saved_model",
              show_default=True, help="A SavedModel for TF Serving, or a CTranslate2 model (Transformer "
              "encoder-decoders and GPT; the run's tokenizers are saved next to it).")
@click.option("--quantization", type=click.Choice(["int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                                                   "float16", "bfloat16", "float32"]),
              help="With --format ctranslate2: the weights' type (default: float32).")
def export(run_dir, name, base_dir, checkpoint, average, no_check, beam_size, length_penalty, export_format,
           quantization, **limits):
    """Export RUN_DIR as a SavedModel for TensorFlow Serving: strings in, strings out.

    The version is checked (ops in TF Serving 2.20's op set, loads through the TF1 session loader, same
    outputs as the in-memory model on validation sentences) before it appears under BASE_DIR/NAME/, and
    BASE_DIR/models.config is updated for TF Serving's --model_config_file.

    The --max-* limits bound what one request may ask; the graph checks them (and the range of every
    decoding control) before decoding, so TF Serving answers a request outside them with INVALID_ARGUMENT.
    """
    setup_logging()
    from tflm.export import ServingLimits, export_run

    run = open_run(run_dir)
    decoding = run_decoding(run, {"beam_size": beam_size, "length_penalty": length_penalty})
    if export_format == "ctranslate2":
        click.echo(_export_ctranslate2(run, name, base_dir, checkpoint, average, quantization, decoding,
                                       ServingLimits(**limits)))
        return
    if quantization:
        raise click.UsageError("--quantization applies to --format ctranslate2 only.")
    click.echo(export_run(run, name, base_dir, checkpoint=checkpoint, average=average, check=not no_check,
                          decoding=decoding, limits=ServingLimits(**limits)))


def _export_ctranslate2(run, name, base_dir, checkpoint, average, quantization, decoding, limits):
    """A CTranslate2 model of the run as BASE_DIR/NAME/<next version>/ (its default decoding and the request
    limits as for a SavedModel); a clear error for a model it cannot hold."""
    from tflm.export import next_version
    from tflm.engines.ctranslate2 import convert_run

    if average:
        run.average(average)
        checkpoint = "averaged"
    path = os.path.join(base_dir, name, str(next_version(os.path.join(base_dir, name))))
    try:
        return convert_run(run, path, checkpoint=checkpoint, quantization=quantization, decoding=decoding,
                           limits=limits)
    except (ValueError, ImportError) as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.argument("saved_model", type=click.Path(exists=True, file_okay=False))
@click.option("--sentences", "sentences_file", type=click.File("r", encoding="utf-8"),
              help="Inputs of serving_default for the check, one per line: a text, or a JSON object naming the "
                   "inputs of a signature with several (default: a few built-in sentences).")
def check(saved_model, sentences_file):
    """Check that stock TF Serving 2.20 can serve SAVED_MODEL (a version directory).

    Every op must be in TF Serving 2.20's op set (no py_function, no XLA-only functions), the model must
    load and answer through the TF1 session loader with only tensorflow-text's op libraries, its warm-up
    requests must replay, and its outputs must match tf.saved_model.load's. Exit status 1 on a problem.
    """
    setup_logging(verbose=False)
    from tflm.export.check import DEFAULT_SENTENCES, check_saved_model

    sentences = [parse_row(line.rstrip("\n")) for line in sentences_file] if sentences_file else DEFAULT_SENTENCES
    report = check_saved_model(saved_model, sentences)
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)


# ----------------------------------------------------------------------------------------- data
