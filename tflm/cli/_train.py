"""`tflm train` and `tflm run` (from raw text to a checked export, stage by stage)."""

import json
import os

import click

from tflm.cli._common import main, setup_logging, task_for_new_run

@main.command()
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="Run directory: created for a new run; an existing one is resumed.")
@click.option("--task", help="What to train: translation (default), language_modeling, or any registered task "
                             "(package.module:TaskClass); an existing run keeps its own.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="JSON or YAML configuration (sections data, vocabulary, model, training, decoding).")
@click.option("--dataset", help="Registered corpus (see `tflm data list`). Default: the shipped sample "
                                "(translation), shakespeare (language modelling).")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="TFLM_DATA_DIR",
              help="Folder holding the corpus (or its parent). Also $TFLM_DATA_DIR.")
@click.option("--source-lang", help="Source language code, as in the corpus file names.")
@click.option("--target-lang", help="Target language code.")
@click.option("--model", help="Model type: transformer or lstm (translation); gpt or transformer_xl (language "
                                "modelling); cnn, bilstm, bigru, transformer or module:Class (classification).")
@click.option("--preset", help="Model size preset, e.g. tiny, small, base (see tflm.models.PRESETS).")
@click.option("--epochs", type=int)
@click.option("--max-steps", type=int)
@click.option("--time-budget", help="Stop after this much training time, e.g. 25m or 1.5h (across resumes).")
@click.option("--batch-tokens", type=int, help="Translation: token budget per batch.")
@click.option("--max-train-pairs", type=int, help="Translation: use only the first N training pairs.")
@click.option("--sequence-length", type=int, help="Language modelling: tokens per training window.")
@click.option("--batch-size", type=int, help="Language modelling: windows per batch; classification: examples.")
@click.option("--vocab-type", type=click.Choice(["unigram", "bpe", "wordpiece", "byte_bpe", "character", "word"]))
@click.option("--vectors", help="Classification: word vectors (a GloVe/word2vec file, or glove-6b-50d).")
@click.option("--max-examples", type=int, help="Classification: use only the first N training examples.")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False),
              help="Classification: start the encoder (and tokenizer) from this masked_lm run.")
@click.option("--init-from-preset", type=click.Path(exists=True, file_okay=False),
              help="Classification: start from a keras-hub preset or Hugging Face folder (BERT family).")
@click.option("--checkpoint", "init_checkpoint", help="With --init-from: which checkpoint of that run (default best).")
@click.option("--vocab-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker", "tpu"]))
@click.option("--mixed-precision", type=click.Choice(["bfloat16", "float16"]))
@click.option("--seed", type=int)
@click.option("--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Set any configuration field, e.g. --set model.params.hidden_dim=256 (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bar; warnings only on the console.")
@click.option("--profile", metavar="START:STOP", help="Trace optimizer steps START to STOP (excluded) with the "
              "TensorFlow profiler into RUN_DIR/logs (TensorBoard's Profile tab).")
def train(run_dir, task, config_file, overrides, quiet, profile, **options):
    """Train a model of a task (translation, language modelling, ...) in RUN_DIR (or resume the run there).

    Writes config.json, vocab/, checkpoints/ (last N and best on validation), logs/ for TensorBoard
    (`tensorboard --logdir RUN_DIR/logs`) and train.log. Interrupt it at any time: running the same
    command again resumes from the last checkpoint.
    """
    from tflm.training.strategies import worker_role

    task, saved = task_for_new_run(run_dir, task)  # a plug-in task's module found (or one clear error) first
    if click.get_current_context().get_parameter_source("data_dir") == click.core.ParameterSource.ENVIRONMENT \
            and "data_dir" not in task.option_fields:
        options["data_dir"] = None  # $TFLM_DATA_DIR is for the tasks that read a corpus folder
    config = run_config(task, run_dir, saved, config_file, overrides, options)
    index, count, chief = worker_role()
    if chief:
        setup_logging(not quiet, os.path.join(run_dir, "train.log"))
    else:  # only the chief writes into the run directory; another worker logs to a place of its own
        import tempfile

        log_file = os.path.join(tempfile.mkdtemp(prefix=f"tflm-worker-{index}-"), "train.log")
        setup_logging(not quiet, log_file)
        click.echo(f"worker {index} of {count}: not the chief, so it logs to {log_file}", err=True)
    if count > 1:
        import logging

        logging.getLogger("tflm").info("This process is worker %s of %d%s", index, count, " (the chief)" * chief)
    if profile:
        from tflm.training.profiling import parse_profile_range

        try:
            parse_profile_range(profile)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    result = task.train(config, run_dir, verbose=not quiet, profile=profile, saved_values=saved)
    click.echo(json.dumps(train_summary(run_dir, result)))


def train_summary(run_dir, result):
    return {"run_dir": run_dir, **result.summary()}


def run_config(task, run_dir, saved, config_file, overrides, options):
    """The configuration of a run: the saved one (resuming; `saved`: config.json's values), the file's (merged
    into the task's defaults), or the task's defaults; then the options (through the task: an option applies
    where its configuration has the field) and `--set` overrides."""
    from tflm import config as config_lib

    if saved is not None:
        if config_file:
            raise config_lib.ConfigError(
                f"{run_dir} already has its configuration; to resume, leave out --config (or use a new --run-dir)."
            )
        config = task.load_config(run_dir, saved)
    elif config_file:
        config = task.config_from_dict(config_lib.load_file(config_file), config_file)
    else:
        config = task.default_config()
    from tflm.tasks.runs import check_data_dir

    config = task.apply_options(config, options, overrides)
    check_data_dir(config)  # before the run directory (train.log) is made
    return config


@main.command("run")
@click.argument("pipeline_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--run-dir", type=click.Path(file_okay=False), help="Where the run lives (default: the file's run_dir).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Change a value of the file, e.g. --set training.max_steps=100 (repeatable).")
@click.option("--quiet", is_flag=True, help="Only the stage lines and warnings (no training log, no progress bar).")
@click.option("--serve", is_flag=True, help="Then serve the export (REST 8501, gRPC 8500) until Ctrl-C.")
@click.option("--rest-port", default=8501, show_default=True, type=int, help="With --serve: the REST port.")
@click.option("--grpc-port", default=8500, show_default=True, type=int, help="With --serve: the gRPC port.")
def run(pipeline_file, run_dir, overrides, quiet, serve, rest_port, grpc_port):
    """From raw text to a checked export: vocabulary -> train -> average -> evaluate -> export (-> serve).

    PIPELINE_FILE is a task's configuration (YAML or JSON, as for `tflm train --config`) with `run_dir` and a
    `pipeline` section (average, evaluate, export); see recipes/configs/. Each stage is skipped when its
    output is there and current (RUN_DIR/pipeline.json), so running it again does only what changed, and
    an interrupted run goes on where it stopped. Training and evaluation log their progress as `tflm train`
    does (train.log too); --quiet keeps the console to the stage lines.
    """
    from tflm.pipeline import load_pipeline, run_pipeline

    pipeline = load_pipeline(pipeline_file, run_dir, overrides)
    setup_logging(not quiet, os.path.join(pipeline.run_dir, "train.log"))
    results = run_pipeline(pipeline, report=lambda line: click.echo(line, err=True), serve=serve,
                           verbose=not quiet, rest_port=rest_port, grpc_port=grpc_port)
    click.echo(json.dumps(results, indent=1, default=str))
