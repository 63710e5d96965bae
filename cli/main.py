"""The ``tfft`` command line: a thin layer over the library.

Each command maps its options to one library call and turns tfft's errors into a
one-line message and exit code 1 (no traceback). TensorFlow is imported only inside
commands, so ``tfft --help`` is quick.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys

import click

EXAMPLE_FIT = """
\b
Examples:
  tfft fit --hf-model ./all-MiniLM-L6-v2 --task classify \\
      --train train.tsv --eval dev.tsv --text-column sentence --label-column label \\
      --epochs 2 --batch-size 32 --max-length 128 --export-dir saved_models/sst2
  tfft fit --hub-url ./hub/encoder --hub-preprocess-url ./hub/preprocess \\
      --train rte.tsv --eval-split 0.1 --text-column sentence1 --text-pair-column sentence2
  tfft fit --config run.yaml --epochs 3        # flags win over the file
"""


# Options that say how to read data (fit, evaluate, predict), by configuration section.
TASK_OPTIONS = ["label_columns", "label_separator", "tag_column", "question_column", "context_column"]
TASK_OPTIONS += ["answers_column", "source_column", "target_column", "source_file", "target_file"]
TASK_OPTIONS += ["source_prefix"]
READING_OPTIONS = {
    "data": ["text_column", "text_pair_column", "label_column", "data_format", "tfds_data_dir"],
    "task": TASK_OPTIONS,
}


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def handle_errors(command):
    """Turn :class:`tfft.errors.TfftError` into a one-line ``Error: ...`` and exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from tfft.errors import TfftError

        try:
            return command(*args, **kwargs)
        except TfftError as error:
            raise click.ClickException(" ".join(str(error).split())) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="tfft")
def cli(verbose: int) -> None:
    """Fine-tune pretrained language models (Hugging Face TF, TF Hub) with TensorFlow.

    Run `tfft COMMAND --help` for a command's options and examples.
    """
    _quiet_tensorflow()
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def data_options(command):
    """Column and format options shared by fit, evaluate and predict."""
    options = [
        click.option(
            "--label-columns",
            default=None,
            help="regress: target columns; multilabel: 0/1 columns (comma-separated).",
        ),
        click.option(
            "--label-separator", default=None, help="multilabel: labels joined by this in --label-column."
        ),
        click.option(
            "--tag-column",
            type=int,
            default=None,
            help="ner: CoNLL column of the tag (0 = the token).  [default: the last]",
        ),
        click.option(
            "--question-column", default=None, help="qa (JSON Lines): question field.  [default: question]"
        ),
        click.option(
            "--context-column", default=None, help="qa (JSON Lines): context field.  [default: context]"
        ),
        click.option(
            "--answers-column", default=None, help="qa (JSON Lines): answers field.  [default: answers]"
        ),
        click.option(
            "--source-column",
            default=None,
            help="summarize/translate: source text column.  [default: source]",
        ),
        click.option(
            "--target-column",
            default=None,
            help="summarize/translate: target text column.  [default: target]",
        ),
        click.option(
            "--source-file", default=None, help="summarize/translate: source side of parallel text files."
        ),
        click.option(
            "--target-file", default=None, help="summarize/translate: target side of parallel text files."
        ),
        click.option(
            "--source-prefix", default=None, help='summarize/translate: prefix, e.g. "summarize: ".'
        ),
        click.option("--text-column", default=None, help="Column with the text.  [default: text]"),
        click.option(
            "--text-pair-column", default=None, help="Column with the second text (sentence pairs)."
        ),
        click.option(
            "--format",
            "data_format",
            type=click.Choice(["csv", "tsv", "jsonl", "conll", "squad"]),
            default=None,
            help="File format; by default from the extension and the task.",
        ),
        click.option("--tfds-data-dir", default=None, help="TFDS data dir for tfds:NAME:SPLIT sources."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command(epilog=EXAMPLE_FIT)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file with sections data/model/train/runtime/export; flags win.",
)
@click.option(
    "--hf-model", default=None, help="Hugging Face TF checkpoint: a folder or a name in the local cache."
)
@click.option(
    "--hub-url", default=None, help="TF Hub SavedModel: https URL (via the TF Hub cache) or local folder."
)
@click.option(
    "--hub-preprocess-url", default=None, help="Preprocessor SavedModel for a BERT-style hub encoder."
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    default=None,
    help="Let --hf-model load pickle weights (pytorch_model.bin; needs torch). Only for trusted checkpoints.",
)
@click.option("--task", default=None, help="classify, regress, multilabel, ner or qa.  [default: classify]")
@click.option("--train", default=None, help="Training data: CSV, TSV or JSON Lines file, or tfds:NAME:SPLIT.")
@click.option("--eval", "eval_path", default=None, help="Evaluation data, same formats.")
@click.option("--eval-split", type=float, default=None, help="Hold out this share of --train for evaluation.")
@data_options
@click.option("--label-column", default=None, help="Column with the label.  [default: label]")
@click.option("--max-train-examples", type=int, default=None, help="Use only the first N training rows.")
@click.option("--max-eval-examples", type=int, default=None, help="Use only the first N evaluation rows.")
@click.option("--max-length", type=int, default=None, help="Longest sequence in tokens.  [default: 128]")
@click.option("--pooling", default=None, help="auto, pooler, cls, mean or last.  [default: auto]")
@click.option("--dropout", type=float, default=None, help="Dropout before the head.  [default: 0.1]")
@click.option("--threshold", type=float, default=None, help="multilabel: decision threshold.  [default: 0.5]")
@click.option(
    "--loss", type=click.Choice(["mse", "huber"]), default=None, help="regress: loss.  [default: mse]"
)
@click.option(
    "--scale-targets",
    is_flag=True,
    default=None,
    help="regress: standardize targets (stored with the model).",
)
@click.option(
    "--class-weights",
    type=click.Choice(["auto"]),
    default=None,
    help="classify, ner: weigh classes by inverse frequency.",
)
@click.option("--doc-stride", type=int, default=None, help="qa: overlap of context windows.  [default: 128]")
@click.option(
    "--max-answer-length", type=int, default=None, help="qa: longest answer in tokens.  [default: 30]"
)
@click.option(
    "--n-best", type=int, default=None, help="qa: candidate answers kept per question.  [default: 20]"
)
@click.option(
    "--allow-no-answer", is_flag=True, default=None, help="qa: questions may have no answer (SQuAD 2.0)."
)
@click.option(
    "--max-target-length", type=int, default=None, help="summarize/translate: target tokens.  [default: 128]"
)
@click.option(
    "--num-beams", type=int, default=None, help="summarize/translate: beam size.  [default: 1, greedy]"
)
@click.option(
    "--max-new-tokens", type=int, default=None, help="summarize/translate: generated tokens.  [default: 64]"
)
@click.option("--length-penalty", type=float, default=None, help="summarize/translate: beam length penalty.")
@click.option(
    "--label-smoothing",
    type=float,
    default=None,
    help="summarize/translate: share of each target token's probability spread over the vocabulary"
    " in the training loss.  [default: 0]",
)
@click.option(
    "--decoder-model",
    default=None,
    help="summarize/translate with an encoder --hf-model: the encoder checkpoint that warm-starts the decoder"
    " (its vocabulary is the target's).  [default: --hf-model]",
)
@click.option("--epochs", type=int, default=None, help="[default: 2]")
@click.option("--batch-size", type=int, default=None, help="Global batch size.  [default: 32]")
@click.option("--learning-rate", type=float, default=None, help="Peak learning rate.  [default: 5e-5]")
@click.option("--warmup-ratio", type=float, default=None, help="Share of steps to warm up.  [default: 0.1]")
@click.option(
    "--lr-schedule",
    type=click.Choice(["linear", "constant"]),
    default=None,
    help="After warm-up: decay linearly to 0, or stay constant.  [default: linear]",
)
@click.option("--weight-decay", type=float, default=None, help="AdamW weight decay.  [default: 0.01]")
@click.option(
    "--optimizer", type=click.Choice(["adamw", "adam", "sgd"]), default=None, help="[default: adamw]"
)
@click.option(
    "--early-stopping-patience",
    type=int,
    default=None,
    help="Stop after N epochs without improvement of --monitor.",
)
@click.option(
    "--monitor",
    default=None,
    help="Metric that picks the best epoch.  [default: the task's, e.g. val_accuracy]",
)
@click.option("--seed", type=int, default=None, help="Random seed.  [default: 42]")
@click.option(
    "--steps-per-execution", type=int, default=None, help="Train steps per tf.function call. [default: 1]"
)
@click.option(
    "--backup-every-steps",
    type=int,
    default=None,
    help="Back up the training state every N steps (default: every epoch), for resuming.",
)
@click.option(
    "--resume",
    is_flag=True,
    default=None,
    help="Continue the interrupted run in --run-dir (a backup there is used even without this flag).",
)
@click.option(
    "--strategy",
    type=click.Choice(["auto", "default", "mirrored", "multi-worker"]),
    default=None,
    help="tf.distribute strategy; auto = mirrored with several GPUs.  [default: auto]",
)
@click.option(
    "--xla/--no-xla",
    default=None,
    help="XLA-compile training.  [default: on, except on CPUs in bfloat16 and for hub backbones]",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "mixed_float16", "mixed_bfloat16"]),
    default=None,
    help="auto = mixed_float16 on GPUs, mixed_bfloat16 on CPUs with bf16 math, else float32. [default: auto]",
)
@click.option("--deterministic", is_flag=True, default=None, help="Enable TF op determinism.")
@click.option(
    "--run-dir",
    default=None,
    help="Run folder for config, metrics, logs, checkpoints. [default: runs/<time>]",
)
@click.option("--name", default=None, help="Export to <export-root>/<name>/<version>/ (a plain folder name).")
@click.option("--export-root", default=None, help="Serving root for --name.  [default: saved_models]")
@click.option(
    "--export-dir", default=None, help="Export here as <export-dir>/<version>/ (e.g. saved_models/sst2)."
)
@handle_errors
def fit(config_path, **options):
    """Fine-tune a backbone, evaluate each epoch, keep the best weights and export."""
    from tfft.config import load_config
    from tfft.pipeline import run_fit
    from tfft.tasks import get_task

    names = {
        "data": [
            "train",
            "eval_path",
            "text_column",
            "text_pair_column",
            "label_column",
            "data_format",
            "eval_split",
            "max_train_examples",
            "max_eval_examples",
            "max_length",
            "tfds_data_dir",
        ],
        "model": ["hf_model", "hub_url", "hub_preprocess_url", "allow_pickle", "task", "pooling", "dropout"],
        "task": TASK_OPTIONS
        + ["threshold", "loss", "scale_targets", "class_weights", "doc_stride", "max_answer_length", "n_best"]
        + ["allow_no_answer", "max_target_length", "num_beams", "max_new_tokens", "length_penalty"]
        + ["label_smoothing", "decoder_model"],
        "train": [
            "epochs",
            "batch_size",
            "learning_rate",
            "warmup_ratio",
            "lr_schedule",
            "weight_decay",
            "optimizer",
            "early_stopping_patience",
            "monitor",
            "seed",
            "steps_per_execution",
            "backup_every_steps",
            "resume",
        ],
        "runtime": ["strategy", "xla", "precision", "deterministic"],
        "export": ["export_dir", "name", "export_root", "run_dir"],
    }
    renamed = {"eval_path": "eval", "data_format": "format"}
    overrides = {
        f"{section}.{renamed.get(name, name)}": options[name]
        for section, keys in names.items()
        for name in keys
    }
    config = load_config(config_path, overrides)
    result = run_fit(config)
    headline = get_task(config.model.task).headline
    click.echo(
        json.dumps(
            {
                "run_dir": str(result.run_dir),
                "export_path": None if result.export_path is None else str(result.export_path),
                "eval": {k: v for k, v in result.metrics.items() if k in headline},
            }
        )
    )


@cli.command(
    epilog="""
\b
Examples:
  tfft evaluate saved_models/sst2 --data dev.tsv --text-column sentence --label-column label
  tfft evaluate saved_models/sst2/3 --data dev.jsonl --json
"""
)
@click.argument("model_dir", type=click.Path())
@click.option(
    "--data", required=True, help="Labelled data: CSV, TSV, JSON Lines, CoNLL, SQuAD JSON or tfds:NAME:SPLIT."
)
@data_options
@click.option("--label-column", default=None, help="Column with the label.  [default: label]")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--max-examples", type=int, default=None, help="Use only the first N rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@handle_errors
def evaluate(model_dir, data, batch_size, max_examples, as_json, **options):
    """Metrics of an exported model (MODEL_DIR: version, model or run folder) on labelled data."""
    from tfft.pipeline import run_evaluate
    from tfft.tasks import get_task

    metrics = run_evaluate(
        model_dir, data, _reading_config(options), batch_size=batch_size, max_examples=max_examples
    )
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(f"model     {metrics['model']}")
    click.echo(f"data      {metrics['data']} ({metrics['examples']} examples)")
    for line in get_task(metrics["task"]).format_metrics(metrics):
        click.echo(line)


def _reading_config(options: dict):
    """A configuration holding just the reading options given to evaluate or predict."""
    from tfft.config import load_config

    overrides = {
        f"{section}.{'format' if name == 'data_format' else name}": options.get(name)
        for section, names in READING_OPTIONS.items()
        for name in names
    }
    return load_config(None, overrides)


@cli.command(
    epilog="""
\b
Examples:
  tfft predict saved_models/sst2 --text "a gripping, funny film" --text "dull"
  tfft predict saved_models/sst2 --input dev.tsv --text-column sentence --output predictions.jsonl
"""
)
@click.argument("model_dir", type=click.Path())
@click.option("--text", "texts", multiple=True, help="A text (ner: a sentence; qa: a question). Repeatable.")
@click.option(
    "--text-pair",
    "text_pairs",
    multiple=True,
    help="Its second text, for pair models (qa: the context). Repeatable.",
)
@click.option("--input", "input_path", default=None, help="A file of inputs (the formats of --data).")
@data_options
@click.option(
    "--output", type=click.Path(dir_okay=False), default=None, help="Write JSON Lines here (default: stdout)."
)
@click.option("--batch-size", type=int, default=64, show_default=True)
@handle_errors
def predict(model_dir, texts, text_pairs, input_path, output, batch_size, **options):
    """The task's answers from an exported model, as JSON Lines."""
    from tfft.errors import ConfigError
    from tfft.pipeline import ExportedModel, predict_rows, read_inputs

    if bool(texts) == bool(input_path):
        raise ConfigError(
            "Give texts with --text (repeatable) or a file with --input, not both and not neither."
        )
    model = ExportedModel(model_dir)
    if input_path:
        examples = read_inputs(model, input_path, _reading_config(options))
        rows = list(predict_rows(model, examples=examples, batch_size=batch_size))
    else:
        pairs = list(text_pairs) or None
        if pairs is not None and len(pairs) != len(texts):
            raise ConfigError(f"--text-pair was given {len(pairs)} times for {len(texts)} --text.")
        rows = list(predict_rows(model, list(texts), pairs, batch_size=batch_size))
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        click.echo(lines, nl=False)
        return
    from pathlib import Path

    target = Path(output)
    staging = target.with_name(f".{target.name}.tmp")
    try:
        staging.write_text(lines, encoding="utf-8")
        os.replace(staging, target)
    except OSError as error:
        raise ConfigError(f"Cannot write --output {output}: {error.strerror or error}") from None
    click.echo(f"Wrote {len(rows)} predictions to {output}", err=True)


@cli.command(
    epilog="""
\b
Example:
  tfft export runs/20261128-101500 --export-dir saved_models/sst2
"""
)
@click.argument("run_dir", type=click.Path())
@click.option("--export-dir", default=None, help="Model folder in the serving root.  [default: the run's]")
@handle_errors
def export(run_dir, export_dir):
    """Export the best checkpoint of a run folder as a new SavedModel version."""
    from tfft.pipeline import run_export

    click.echo(str(run_export(run_dir, export_dir)))


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


if __name__ == "__main__":  # pragma: no cover
    cli()
