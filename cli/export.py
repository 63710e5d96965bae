"""``tfft export`` (SavedModel, Hugging Face folder or adapters only) and the models the
other commands open, with LoRA adapters put back on the base by ``--adapters PATH``.

``--adapters PATH`` (``evaluate``, ``predict``, ``export``): PATH is an adapter file
(``adapters.weights.h5`` with its ``adapters.json`` beside it) or a folder holding one (a
LoRA run folder, or a ``tfft export --adapters-only`` folder). The base model is built from
the settings recorded in the run folder given as MODEL_DIR / RUN_DIR, or, without one, in
the ``config.yaml`` and ``task.json`` beside the file; the adapters and head go back on it
(see :mod:`tfft.adapters`). ``evaluate`` and ``predict`` then run on a merged export
written to a temporary folder (removed when the command ends), so they score exactly what
``tfft export`` would serve.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from tfft_cli.output import handle_errors, progress_to_stderr

ADAPTERS_HELP = (
    "LoRA adapters to put back on the base model: an adapters.weights.h5 file or a folder holding one "
    "(a LoRA run folder or an --adapters-only export). The base is built from MODEL_DIR's recorded "
    "settings when it is a run folder, else from those beside the file."
)

adapters_option = click.option("--adapters", default=None, metavar="PATH", help=ADAPTERS_HELP)


def open_model(model_dir: str | None, adapters: str | None):
    """The :class:`~tfft.exported.ExportedModel` a command reads: MODEL_DIR's export, or
    the base model with ``adapters`` exported to a temporary folder (removed on exit)."""
    from tfft.errors import ConfigError
    from tfft.pipeline import ExportedModel

    if adapters is None:
        if model_dir is None:
            raise ConfigError("Missing MODEL_DIR: give an export or run folder (or --adapters PATH).")
        return ExportedModel(model_dir)
    from tfft.adapters import RECORDED, export_with_adapters

    if model_dir is not None and not all((Path(model_dir) / name).is_file() for name in RECORDED):
        raise ConfigError(
            "With --adapters, MODEL_DIR is a LoRA run folder (its config.yaml and task.json build the base "
            "model); leave it out to use the settings beside the adapter file. "
            f"Received: MODEL_DIR={model_dir}"
        )
    scratch = Path(tempfile.mkdtemp(prefix="tfft-adapters-"))
    click.get_current_context().call_on_close(lambda: shutil.rmtree(scratch, ignore_errors=True))
    with progress_to_stderr():
        path = export_with_adapters(adapters, run_dir=model_dir, export_dir=scratch / "model")
    return ExportedModel(path)


@click.command(
    epilog="""
\b
Examples:
  tfft export runs/20261128-101500 --export-dir saved_models/sst2
  tfft export runs/lora-sst2 --adapters-only --export-dir adapters/sst2     # kilobytes, not the model
  tfft export runs/lora-sst2 --adapters adapters/sst2-v2/adapters.weights.h5
  tfft export --format hf runs/mlm-sst2 --export-dir adapted-minilm    # Hugging Face folder for --hf-model
"""
)
@click.argument("run_dir", type=click.Path())
@click.option(
    "--export-dir",
    default=None,
    help="Model folder in the serving root.  [default: the run's; --adapters-only: the run's + '-adapters']",
)
@click.option(
    "--adapters-only",
    is_flag=True,
    help="Write only the LoRA adapters and head (adapters.weights.h5, adapters.json) with the run's "
    "config.yaml and task.json, not a SavedModel.",
)
@adapters_option
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["saved-model", "hf"]),
    default="saved-model",
    show_default=True,
    help="hf: a Hugging Face checkpoint folder (config.json, tf_model.h5, tokenizer) of the fine-tuned "
    "backbone, for --hf-model  [default folder: <export root>/<run>-hf].",
)
@handle_errors
def export(run_dir, export_dir, adapters_only, adapters, export_format):
    """Export the best checkpoint of a run folder as a new SavedModel version (or its adapters)."""
    from tfft.errors import ConfigError

    with progress_to_stderr():
        if export_format == "hf":
            if adapters_only or adapters is not None:
                raise ConfigError("--format hf writes the whole backbone; no --adapters-only/--adapters.")
            from tfft.hf_export import run_export_hf

            path = run_export_hf(run_dir, export_dir)
        elif adapters_only:
            if adapters is not None:
                raise ConfigError("Give --adapters-only or --adapters, not both.")
            from tfft.adapters import export_adapters_only

            path = export_adapters_only(run_dir, export_dir)
        elif adapters is not None:
            from tfft.adapters import export_with_adapters

            path = export_with_adapters(adapters, run_dir=run_dir, export_dir=export_dir)
        else:
            from tfft.pipeline import run_export

            path = run_export(run_dir, export_dir)
    click.echo(str(path))
