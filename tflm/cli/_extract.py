"""`tflm tag` and `tflm answer`: a label per word (tagging runs) and the answer span of a question in a context
(extractive-QA runs), from a run or from a server's Predict API (REST or gRPC)."""

import json
import sys

import click

from tflm.cli._common import main, open_run, require_command, setup_logging


def _server_options(function):
    for option in reversed([
        click.option("--run-dir", type=click.Path(exists=True, file_okay=False), help="A trained run."),
        click.option("--server", metavar="HOST:PORT", help="Ask TF Serving (or tflm serve) instead of a run."),
        click.option("--model", "model_name", help="With --server: the served model's name."),
        click.option("--protocol", type=click.Choice(["rest", "grpc"]), default="rest", show_default=True),
        click.option("--checkpoint", default="best", show_default=True, help="best, last, averaged, or a path."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object a line (the outputs of each row)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
    ]):
        function = option(function)
    return function


def _answers(command, rows, run_dir, server, model_name, protocol, checkpoint, batch_size):
    """The outputs of each row (a dict per row, a per-word output cut to the row's length)."""
    if run_dir:
        run = open_run(run_dir)
        require_command(run.task, run_dir, command)
        ask = run.load_predictor(checkpoint).predict
    else:
        from tflm.serving.client import predict_grpc, predict_rest

        def ask(part):
            if protocol == "rest":
                return predict_rest(server, model_name, part)
            names = list(part[0]) if isinstance(part[0], dict) else ["text"]
            return predict_grpc(server, model_name, {name: [row[name] if isinstance(row, dict) else row
                                                            for row in part] for name in names})
    from tflm.serving.client import ServingClientError

    answers = []
    label = {"tag": "Tagging", "answer": "Answering"}[command]
    with click.progressbar(length=len(rows), label=label, file=sys.stderr,  # (a long input: how far it is)
                           hidden=len(rows) <= 4 * batch_size or not sys.stderr.isatty()) as bar:
        try:
            for start in range(0, len(rows), batch_size):
                answers += ask(rows[start:start + batch_size])
                bar.update(min(batch_size, len(rows) - start))
        except ServingClientError as error:
            raise click.ClickException(str(error)) from None
    for answer in answers:  # (a served row is padded to its request's longest row)
        if "lengths" in answer:
            length = int(answer["lengths"])
            for key in ("words", "labels", "scores"):
                if key in answer:
                    answer[key] = answer[key][:length]
    return answers


def _check_source(run_dir, server, model_name):
    """A usage error (before any input is read) unless the command has a run or a server to ask."""
    if bool(run_dir) == bool(server):
        raise click.UsageError("Give --run-dir RUN (a trained run) or --server HOST:PORT --model NAME, one of them.")
    if server and not model_name:
        raise click.UsageError("--server needs --model NAME (the served model's name).")


def _lines(arguments, input_file):
    if arguments and input_file:
        raise click.UsageError("Give the input as arguments or --input, not both.")
    return list(arguments) if arguments else [line.rstrip("\n") for line in (input_file or click.open_file("-"))]


@main.command()
@click.argument("sentences", nargs=-1)
@_server_options
@click.option("--input", "-i", "input_file", type=click.File("r", encoding="utf-8"),
              help="File of sentences, one a line ('-' for stdin). Default: the arguments, else stdin.")
@click.option("--restore", is_flag=True, help="A punctuation-and-case run: print the text its labels rebuild.")
def tag(sentences, run_dir, server, model_name, protocol, checkpoint, as_json, batch_size, input_file, restore):
    """A label for each word of SENTENCES (words separated by spaces): word/label pairs, one sentence a line.

    With --run-dir the run's model answers; with --server HOST:PORT --model NAME, a served export (REST or gRPC
    Predict). --restore prints the text that punctuation-and-case labels rebuild (`data.derive: punctuation`).
    """
    setup_logging(verbose=False)
    _check_source(run_dir, server, model_name)
    lines = _lines(sentences, input_file)
    answers = _answers("tag", lines, run_dir, server, model_name, protocol, checkpoint, batch_size)
    for line, answer in zip(lines, answers):
        if as_json:
            click.echo(json.dumps({"text": line, **answer}, ensure_ascii=False))
        elif restore:
            from tflm.data.punctuation import restore as rebuild

            untagged = line.split()[len(answer["words"]):]  # (words past max_length: as they are)
            click.echo(" ".join([rebuild(answer["words"], answer["labels"])] * bool(answer["words"]) + untagged))
        else:
            click.echo(" ".join(f"{word}/{label}" for word, label in zip(answer["words"], answer["labels"])))


@main.command()
@_server_options
@click.option("--question", "-q", help="The question (with --context).")
@click.option("--context", "-c", help="The text the answer is in (with --question).")
@click.option("--input", "-i", "input_file", type=click.File("r", encoding="utf-8"),
              help='File of JSON objects {"question": ..., "context": ...}, one a line (\'-\' for stdin).')
def answer(run_dir, server, model_name, protocol, checkpoint, as_json, batch_size, question, context, input_file):
    """The answer to a question: a span of its context (extractive QA), with its character offsets and score.

    Give --question and --context, or --input (one JSON object a line). An empty answer means the model found
    none (a model trained with unanswerable questions, SQuAD v2.0).
    """
    setup_logging(verbose=False)
    _check_source(run_dir, server, model_name)
    if (question is None) != (context is None):
        raise click.UsageError("Give --question and --context together (or --input).")
    if question is not None and input_file:
        raise click.UsageError("Give --question/--context or --input, not both.")
    if question is not None:
        rows = [{"question": question, "context": context}]
    else:
        rows = []
        for number, line in enumerate(input_file or click.open_file("-"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise click.UsageError(f"input line {number}: not JSON ({error}): {line[:80]!r}") from None
            if not isinstance(row, dict) or set(row) != {"question", "context"}:
                raise click.UsageError(f'input line {number}: give {{"question": ..., "context": ...}}, not '
                                       f"{line.strip()[:80]!r}")
            rows.append(row)
    answers = _answers("answer", rows, run_dir, server, model_name, protocol, checkpoint, batch_size)
    for row, found in zip(rows, answers):
        if as_json:
            click.echo(json.dumps({**row, **found}, ensure_ascii=False))
        else:
            click.echo(f"{found['answer']}\t{found['start']}\t{found['end']}\t{float(found['score']):.3f}")
