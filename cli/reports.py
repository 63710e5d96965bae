"""Bias reports on the command line: ``tfft inspect`` and ``tfft evaluate --slice-*``.

``inspect`` reads classify, regress and multilabel tables without importing TensorFlow
(:mod:`tfft.reports.reading`); the slice options are added to ``evaluate`` by
:func:`slice_options`, its table printed by :func:`slice_lines`.
"""

from __future__ import annotations

import json

import click

from tfft.tasks import task_names
from tfft_cli.options import GroupedCommand, SuggestingChoice, overrides, with_config_options
from tfft_cli.output import handle_errors

SLICE_BY = ("length", "label")  # tfft.reports.predictions.SLICE_BY (not imported: it loads numpy)


def slice_options(function):
    """Decorator: ``--slice-column`` and ``--slice-by`` (both repeatable) for ``evaluate``."""
    function = click.option(
        "--slice-by",
        "slice_by",
        multiple=True,
        type=click.Choice(SLICE_BY),
        help="Built-in slicing: length (quartiles of words) or label (gold label). Repeatable.",
    )(function)
    return click.option(
        "--slice-column",
        "slice_columns",
        multiple=True,
        help="Report metrics per value of this data column (e.g. a source or group field). Repeatable.",
    )(function)


def slice_lines(metrics: dict) -> list[str]:
    """The slice table of ``tfft evaluate`` output, if a slice report was asked for."""
    if "slices" not in metrics:
        return []
    from tfft.reports.slices import format_slices

    return [""] + format_slices(metrics["slices"])


@click.command(
    cls=GroupedCommand,
    epilog="""
\b
Examples:
  tfft inspect train.tsv --eval dev.tsv --text-column sentence --label-column label
  tfft inspect train.jsonl --task multilabel --label-column tags --json
""",
)
@click.argument("train")
@click.option("--eval", "eval_path", default=None, help="Evaluation data, checked for leakage from TRAIN.")
@click.option(
    "--task",
    default="classify",
    show_default=True,
    type=SuggestingChoice(task_names()),
    help="How to read the data (the --task of fit).",
)
@click.option(
    "--max-length", type=int, default=128, show_default=True, help="Count rows longer than this (in words)."
)
@click.option("--max-examples", type=int, default=None, help="Use only the first N rows of each file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_config_options("evaluate")
@handle_errors
def inspect(train, eval_path, task, max_length, max_examples, as_json, **options):
    """Bias report on data without training: labels, duplicates, leakage, lengths, near-empty texts."""
    from tfft.config import load_config
    from tfft.reports.data import data_report
    from tfft.reports.reading import read_for_report

    config = load_config(None, {**overrides(options), "model.task": task, "data.max_length": max_length})
    examples = read_for_report(train, config, "TRAIN", max_examples)
    evaluation = None if eval_path is None else read_for_report(eval_path, config, "--eval", max_examples)
    report = data_report(examples, evaluation, task, max_length=None if task == "qa" else max_length)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    for line in report["findings"]:
        click.echo(line)
