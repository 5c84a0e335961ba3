"""`tflm classify`: the top labels of texts (or sentence pairs), from a run or from a server's Classify API."""

import json

import click

from tflm.cli._common import main, open_run, require_command, setup_logging


def _rows(arguments, input_file):
    """Rows from arguments, --input or stdin: a text, `a<TAB>b` (a pair), or a JSON object naming the fields."""
    if arguments and input_file:
        raise click.UsageError("Give texts as arguments or --input, not both.")
    lines = list(arguments) if arguments else [line.rstrip("\n") for line in (input_file or click.open_file("-"))]
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except ValueError as error:
                raise click.UsageError(f"input {number}: not a JSON object ({error}): {line[:80]!r}") from None
        elif "\t" in line:
            text_a, _, text_b = line.partition("\t")
            row = {"text_a": text_a, "text_b": text_b}
        else:
            row = {"text": line}
        rows.append(row)
    return rows


def _local(run_dir, checkpoint, rows):
    """[(classes, scores)] of each row, from the run's model."""
    run = open_run(run_dir)
    require_command(run.task, run_dir, "classify")
    predictor = run.load_predictor(checkpoint)
    fields = predictor.text_fields
    for number, row in enumerate(rows, start=1):
        if fields == ("text",) and set(row) == {"text_a", "text_b"}:
            raise click.UsageError(f"input {number} is a pair (a TAB in it) but {run_dir} classifies one text.")
        if fields != ("text",) and set(row) == {"text"}:
            raise click.UsageError(f"input {number}: {run_dir} classifies sentence pairs ({', '.join(fields)}); give "
                                   "each as 'a<TAB>b' or a JSON object.")
    answers = predictor.predict([row["text"] if fields == ("text",) and "text" in row else row for row in rows])
    return [list(zip(answer["classes"], answer["scores"])) for answer in answers]


def _served(server, model_name, protocol, signature, rows, batch_size):
    from tflm.serving.client import ServingClientError, classify_grpc, classify_rest

    client = classify_rest if protocol == "rest" else classify_grpc
    results = []
    try:
        for start in range(0, len(rows), batch_size):
            results += client(server, model_name, rows[start:start + batch_size], signature_name=signature)
    except ServingClientError as error:
        raise click.ClickException(str(error)) from None
    return results


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--run-dir", type=click.Path(exists=True, file_okay=False), help="A trained classification run.")
@click.option("--server", metavar="HOST:PORT", help="Ask TF Serving (or tflm serve) instead of loading a run.")
@click.option("--model", "model_name", help="With --server: the served model's name.")
@click.option("--protocol", type=click.Choice(["rest", "grpc"]), default="rest", show_default=True)
@click.option("--signature", default="classify", show_default=True, help="With --server: the Classify signature.")
@click.option("--input", "-i", "input_file", type=click.File("r", encoding="utf-8"),
              help="File of texts, one a line ('-' for stdin). Default: the arguments, else stdin.")
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many labels to show per text.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line: the input, labels and probabilities.")
@click.option("--checkpoint", default="best", show_default=True, help="best, last, averaged, or a path.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
def classify(texts, run_dir, server, model_name, protocol, signature, input_file, top_k, as_json, checkpoint,
             batch_size):
    """The top labels of TEXTS (or of --input's lines, or stdin) and their probabilities.

    A line with a TAB is a sentence pair (text_a, text_b); a JSON object names the fields. With --run-dir the
    run's model answers; with --server HOST:PORT --model NAME, TF Serving's Classify API (REST :classify or gRPC
    Classify) of a served export does.
    """
    setup_logging(verbose=False)
    if bool(run_dir) == bool(server):
        raise click.UsageError("Give --run-dir RUN (a trained run) or --server HOST:PORT --model NAME, one of them.")
    if server and not model_name:
        raise click.UsageError("--server needs --model NAME (the served model's name).")
    rows = _rows(texts, input_file)
    results = _local(run_dir, checkpoint, rows) if run_dir else _served(server, model_name, protocol, signature,
                                                                         rows, batch_size)
    for row, ranked in zip(rows, results):
        ranked = sorted(ranked, key=lambda pair: -pair[1])[:top_k]
        if as_json:
            click.echo(json.dumps({**row, "labels": [label for label, _ in ranked],
                                   "probabilities": [round(float(score), 6) for _, score in ranked]},
                                  ensure_ascii=False))
        else:
            click.echo("  ".join(f"{label} {float(score):.3f}" for label, score in ranked))
