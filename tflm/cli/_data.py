"""Commands around runs: vocabularies, checkpoint averaging, the Embedding Projector, the corpus registry."""

import os
import sys

import click

from tflm.cli._common import main, open_run, setup_logging

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
    setup_logging()
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


@main.command()
@click.option("--run-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--last", "count", default=5, show_default=True, type=click.IntRange(min=1),
              help="Average the last N training checkpoints.")
def average(run_dir, count):
    """Average the weights of the last N checkpoints of a run (often better than any one of them).

    Runs of every task. Writes RUN_DIR/checkpoints/averaged/; use it with --checkpoint
    averaged in evaluate, translate, generate and export.
    """
    setup_logging()
    click.echo(open_run(run_dir).average(count))


@main.command()
@click.option("--run-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--checkpoint", default="last", show_default=True,
              help="Whose tables to show: last (what training writes), best, averaged, or a checkpoint path.")
def projector(run_dir, checkpoint):
    """Write TensorBoard's Embedding Projector files for a run's embedding tables into RUN_DIR/logs.

    Runs of every task: projector_config.pbtxt and metadata.tsv (a word per row; metadata-target.tsv for a
    translation's own target vocabulary). Training writes them too; this rewrites them for another checkpoint,
    a run trained before, or a moved run directory. Then `tensorboard --logdir RUN_DIR/logs`, tab Projector.
    """
    setup_logging()
    from tflm.training.projector import write_run_projector

    run = open_run(run_dir)
    model = run.task.load_model(run_dir, checkpoint, config=run.config, tokenizers=run.tokenizers)
    path = write_run_projector(run.task, run_dir, run.config, model, run.tokenizers, checkpoint)
    if path is None:
        raise click.UsageError(f"{run_dir} is a {run.task.name} run, whose task names no embedding tables to show.")
    click.echo(path)


# ----------------------------------------------------------------------------------------- attention


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
    setup_logging()
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
