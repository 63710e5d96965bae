"""The ``tfft`` command line: a thin layer over the library.

Each command maps its options to one library call and turns tfft's errors into a
one-line message and exit code 1 (no traceback). The options that mirror configuration
fields are generated from the dataclasses (:mod:`tfft_cli.options`). TensorFlow is
imported only inside commands, so ``tfft --help`` is quick; ``fit`` checks what it can
before importing it (:mod:`tfft_cli.checks`). Results go to stdout, logs and progress to
stderr, quiet by default (:mod:`tfft_cli.output`).
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

import click

from tfft_cli.doctor import doctor, task_lines, tasks
from tfft_cli.export import adapters_option, export, open_model
from tfft_cli.options import GroupedCommand, overrides, with_config_options
from tfft_cli.output import (
    add_verbosity_options,
    handle_errors,
    keras_verbose,
    progress_to_stderr,
    stdin_as_file,
)
from tfft_cli.reports import inspect, slice_lines, slice_options
from tfft_cli.run_report import report

EXAMPLE_FIT = """
\b
Examples:
  tfft fit --hf-model ./all-MiniLM-L6-v2 --task classify \\
      --train train.tsv --eval dev.tsv --text-column sentence --label-column label \\
      --epochs 2 --batch-size 32 --max-length 128 --export-dir saved_models/sst2
  tfft fit --hub-url ./hub/encoder --hub-preprocess-url ./hub/preprocess \\
      --train rte.tsv --eval-split 0.1 --text-column sentence1 --text-pair-column sentence2
  tfft fit --config run.yaml --epochs 3        # flags win over the file
  tfft fit ... --json | python -m json.tool     # the result as one JSON document

\b
Tasks (--task):
{tasks}
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="tfft")
def cli() -> None:
    """Fine-tune pretrained language models (Hugging Face TF, TF Hub) with TensorFlow.

    Run `tfft COMMAND --help` for a command's options and examples. Results go to stdout,
    progress and logs to stderr; -q/--quiet and -v/--verbose go before or after COMMAND.
    """


@cli.command(
    cls=GroupedCommand, epilog=EXAMPLE_FIT.replace("{tasks}", "\n".join(f"  {t}" for t in task_lines()))
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file with sections data/model/task/train/runtime/export; flags win.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a finished (or interrupted) run in --run-dir instead of refusing.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Estimate memory and time from a few real steps on a throw-away model; train, save, export nothing.",
)
@with_config_options("fit")
@handle_errors
def fit(config_path, as_json, overwrite, dry_run, **options):
    """Fine-tune a backbone, evaluate each epoch, keep the best weights and export."""
    from tfft.config import load_config
    from tfft_cli.checks import check_fit
    from tfft_cli.results import fit_report, fit_table

    config = load_config(config_path, overrides(options))
    check_fit(config, overwrite=overwrite, run_folder=not dry_run)  # before TensorFlow loads
    if dry_run:
        from tfft_cli.dry_run import dry_run_command

        click.echo(dry_run_command(config, as_json))
        return

    from tfft.errors import Interrupted
    from tfft.pipeline import run_fit
    from tfft.tasks import get_task
    from tfft_cli.results import interrupted_message

    try:
        with progress_to_stderr():
            result = run_fit(config, verbose=keras_verbose(), overwrite=overwrite)
    except Interrupted as error:  # SIGINT/SIGTERM: 130/143, the resume command, no traceback
        click.echo(interrupted_message(error), err=True)
        raise click.exceptions.Exit(error.exit_code) from None
    report = fit_report(result, config, get_task(config.model.task))
    click.echo(json.dumps(report) if as_json else "\n".join(fit_table(report)))


def _reading_config(model, options: dict):
    """The reading options given to evaluate or predict, checked against the model's task."""
    from tfft.config import load_config

    return load_config(None, {**overrides(options), "model.task": model.task.name})


@cli.command(
    cls=GroupedCommand,
    epilog="""
\b
Examples:
  tfft evaluate saved_models/sst2 --data dev.tsv --text-column sentence --label-column label
  tfft evaluate saved_models/sst2/3 --data dev.jsonl --json
  tfft evaluate saved_models/sst2 --data dev.tsv --slice-column source --slice-by length --slice-by label
  tfft evaluate --adapters saved_models/sst2-adapters --data dev.tsv   # base model + LoRA adapters
""",
)
@click.argument("model_dir", type=click.Path(), required=False)
@click.option(
    "--data", required=True, help="Labelled data: CSV, TSV, JSON Lines, CoNLL, SQuAD JSON or tfds:NAME:SPLIT."
)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--max-examples", type=int, default=None, help="Use only the first N rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@slice_options
@adapters_option
@with_config_options("evaluate")
@handle_errors
def evaluate(model_dir, data, batch_size, max_examples, as_json, slice_columns, slice_by, **options):
    """Metrics of an exported model (MODEL_DIR: version, model or run folder; or --adapters) on data."""
    from tfft.inference import run_evaluate

    model = open_model(model_dir, options.pop("adapters"))
    config = _reading_config(model, options)
    with progress_to_stderr():
        metrics = run_evaluate(
            model,
            data,
            config,
            batch_size=batch_size,
            max_examples=max_examples,
            slice_columns=slice_columns,
            slice_by=slice_by,
        )
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(f"model     {metrics['model']}")
    click.echo(f"data      {metrics['data']} ({metrics['examples']} examples)")
    for line in model.task.format_metrics(metrics) + slice_lines(metrics):
        click.echo(line)


@cli.command(
    cls=GroupedCommand,
    epilog="""
\b
Examples:
  tfft predict saved_models/sst2 --text "a gripping, funny film" --text "dull"
  tfft predict saved_models/sst2 --input dev.tsv --text-column sentence --output predictions.jsonl
  cat new.jsonl | tfft predict saved_models/sst2 --input -
  tfft predict --adapters saved_models/sst2-adapters --text "dull"   # base model + LoRA adapters
""",
)
@click.argument("model_dir", type=click.Path(), required=False)
@click.option("--text", "texts", multiple=True, help="A text (ner: a sentence; qa: a question). Repeatable.")
@click.option(
    "--text-pair",
    "text_pairs",
    multiple=True,
    help="Its second text, for pair models (qa: the context). Repeatable.",
)
@click.option(
    "--input", "input_path", default=None, help="A file of inputs (the formats of --data); - reads stdin."
)
@click.option(
    "--output", type=click.Path(dir_okay=False), default=None, help="Write JSON Lines here (default: stdout)."
)
@click.option("--batch-size", type=int, default=64, show_default=True)
@adapters_option
@with_config_options("predict")
@handle_errors
def predict(model_dir, texts, text_pairs, input_path, output, batch_size, **options):
    """The task's answers from an exported model, as JSON Lines."""
    from tfft.errors import ConfigError
    from tfft.inference import predict_rows, read_inputs

    if bool(texts) == bool(input_path):
        raise ConfigError(
            "Give texts with --text (repeatable) or a file with --input, not both and not neither."
        )
    model = open_model(model_dir, options.pop("adapters"))
    config = _reading_config(model, options)
    pairs = list(text_pairs) or None
    if not input_path and pairs is not None and len(pairs) != len(texts):
        raise ConfigError(f"--text-pair was given {len(pairs)} times for {len(texts)} --text.")
    with progress_to_stderr():
        if input_path:
            with (
                stdin_as_file(config.data.format) if input_path == "-" else nullcontext(input_path) as source
            ):
                examples = read_inputs(model, source, config)
            rows = list(predict_rows(model, examples=examples, batch_size=batch_size, config=config))
        else:
            rows = list(predict_rows(model, list(texts), pairs, batch_size=batch_size, config=config))
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        click.echo(lines, nl=False)
        return
    target = Path(output)
    staging = target.with_name(f".{target.name}.tmp")
    try:
        staging.write_text(lines, encoding="utf-8")
        os.replace(staging, target)
    except OSError as error:
        raise ConfigError(f"Cannot write --output {output}: {error.strerror or error}") from None
    click.echo(f"Wrote {len(rows)} predictions to {output}", err=True)


@cli.command(
    "convert-hub",
    epilog="""
\b
Example:
  tfft convert-hub ./all-MiniLM-L6-v2 ./hub/minilm
  tfft fit --hub-url ./hub/minilm/encoder --hub-preprocess-url ./hub/minilm/preprocess --train train.tsv ...
""",
)
@click.argument("hf_model", type=click.Path())
@click.argument("output_dir", type=click.Path())
@click.option("--seq-length", type=int, default=128, show_default=True, help="Preprocessor output length.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@handle_errors
def convert_hub(hf_model, output_dir, seq_length, overwrite):
    """Write a Hugging Face BERT checkpoint as TF Hub encoder + preprocessor SavedModels."""
    from tfft.backbones.hf import resolve_hf_source
    from tfft.backbones.hub_convert import convert_hf_to_hub

    result = convert_hf_to_hub(
        resolve_hf_source(hf_model), output_dir, seq_length=seq_length, overwrite=overwrite
    )
    click.echo(json.dumps({"encoder": str(result.encoder_dir), "preprocess": str(result.preprocess_dir)}))


cli.add_command(export)
cli.add_command(inspect)
cli.add_command(report)
cli.add_command(doctor)
cli.add_command(tasks)
add_verbosity_options(cli)

if __name__ == "__main__":  # pragma: no cover
    cli()
