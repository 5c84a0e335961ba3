"""What the commands share: the `tflm` group, error reporting, logging, a run's task, decoding options."""

import dataclasses
import json
import os
import sys

import click


def setup_logging(verbose=True, log_file=None):
    from tflm.log import setup_logging as setup

    setup(log_file, verbose)


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
@click.option("--verbose", is_flag=True, help="Also show TensorFlow's own C++ log lines (CUDA probing, oneDNN "
                                              "notices), hidden by default; TFLM_VERBOSE=1 does the same.")
def main(verbose):
    """tflm: train, evaluate, export and serve language models with TensorFlow and Keras 3."""


def open_run(run_dir, task=None):
    """The run in `run_dir`, read once (`tflm.tasks.Run`): its configuration, its task (a plug-in task found
    again by the import path it recorded). `task`: a --task the user gave, which must be the run's."""
    from tflm.tasks import Run

    return Run.open(run_dir, task)


def task_for_new_run(run_dir, task=None):
    """(task, config.json's values or None): the task of `run_dir`'s run, or the task named `task` (default:
    translation) for a new run. Resolves a plug-in task before anything is written."""
    from tflm.tasks import DEFAULT_TASK, Run, get_task
    from tflm.tasks.runs import is_run, read_run_file

    if is_run(run_dir):
        run = Run.open(run_dir, task)
        return run.task, read_run_file(run_dir)
    return get_task(task or DEFAULT_TASK), None


def require_command(task, run_dir, command):
    """A UsageError unless `command` is how the run's task answers (`Task.command`)."""
    if task.command != command:
        raise click.UsageError(f"{run_dir} is a {task.name} run; use `tflm {task.command}` (or `tflm predict`).")


def parse_row(line):
    """An input row: a JSON object (`{"text_a": ..., "text_b": ...}`) for a signature with several inputs, else
    the text itself."""
    if line.startswith("{"):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return line
        return value if isinstance(value, dict) else line
    return line


def echo_json(values):
    click.echo(json.dumps(values, indent=1, ensure_ascii=False))


# ----------------------------------------------------------------------------------------- decoding options

_DECODING_OPTIONS = [
    click.option("--beam-size", type=int, help="Beam search with this many hypotheses (1: greedy)."),
    click.option("--length-penalty", type=float, help="Beam search length penalty (GNMT alpha, default 0.6)."),
    click.option("--num-hypotheses", "--n-best", "num_hypotheses", type=int,
                 help="Hypotheses (or samples) per input; with more than one, each line is "
                      "INPUT_INDEX<TAB>SCORE<TAB>OUTPUT (translation). --n-best: the same."),
    click.option("--sample", "use_sampling", is_flag=True, help="Sample instead of searching."),
    click.option("--temperature", type=float, help="Sampling temperature."),
    click.option("--top-k", type=int, help="Sample among the k most likely tokens."),
    click.option("--top-p", type=float, help="Sample from the smallest set of tokens of probability >= p."),
    click.option("--seed", type=int, help="Sampling seed (the same seed gives the same output)."),
    click.option("--no-repeat-ngram", type=int, help="Never generate the same n-gram twice (n >= 2)."),
    click.option("--min-length", type=int, help="At least this many tokens before EOS."),
    click.option("--max-length", type=int, help="At most this many output tokens."),
]


def decoding_options(function):
    for option in reversed(_DECODING_OPTIONS):
        function = option(function)
    return function


def run_decoding(run, options):
    """The run's decoding settings with the command-line choices applied (None for a task that does not
    decode: there a decoding option is an error, not silently ignored)."""
    decoding = run.decoding()
    given = sorted(name for name, value in options.items() if value not in (None, False))
    if decoding is None:
        if given:
            flags = ", ".join("--" + ("sample" if name == "use_sampling" else name.replace("_", "-")) for name in given)
            raise click.UsageError(f"{flags}: {run.run_dir} is a {run.task.name} run, which does not decode; "
                                   "decoding options apply to tasks that generate text.")
        return None
    changes = {key: options[name] for key, name in [
        ("length_penalty", "length_penalty"), ("temperature", "temperature"), ("top_k", "top_k"),
        ("top_p", "top_p"), ("seed", "seed"), ("no_repeat_ngram_size", "no_repeat_ngram"),
        ("min_length", "min_length"), ("max_length", "max_length"), ("num_hypotheses", "num_hypotheses"),
        ("beam_size", "beam_size")] if options.get(name) is not None}
    if options.get("use_sampling"):
        changes["strategy"] = "sample"
    elif options.get("beam_size") is not None:
        changes["strategy"] = "beam" if options["beam_size"] > 1 else "greedy"
    elif (options.get("num_hypotheses") or 1) > 1 and decoding.strategy == "greedy":
        changes["strategy"] = "beam"
        changes["beam_size"] = max(decoding.beam_size, options["num_hypotheses"])
    return dataclasses.replace(decoding, **changes).validate()
