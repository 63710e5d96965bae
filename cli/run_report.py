"""``tfft report RUN_DIR``: a run folder's training in a few lines, and ``training.png`` redrawn.

Reads only the run folder (:mod:`tfft.reports.training`): no TensorFlow, no network, so a
copied folder works anywhere.
"""

from __future__ import annotations

import json

import click

from tfft_cli.output import handle_errors


@click.command(
    epilog="""
\b
Examples:
  tfft report runs/20261128-101500
  tfft report runs/20261128-101500 --output curves.png
  tfft report runs/20261128-101500 --json --no-picture
"""
)
@click.argument("run_dir", type=click.Path())
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Picture path.  [default: RUN_DIR/training.png]",
)
@click.option("--no-picture", is_flag=True, help="Print the summary only; draw nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the records (per step and per epoch) as JSON.")
@handle_errors
def report(run_dir, output, no_picture, as_json):
    """Summarize a run folder and redraw its training.png (loss, learning rate, speed, eval)."""
    from tfft.reports.training import draw_training, read_run, summary_lines

    run = read_run(run_dir)
    picture = None if no_picture else draw_training(run_dir, output)
    if as_json:
        click.echo(json.dumps({**run, "picture": None if picture is None else str(picture)}, indent=2))
        return
    extra = [("picture", str(picture) if picture is not None else "none: no step or epoch recorded yet")]
    click.echo("\n".join(summary_lines(run, [] if no_picture else extra)))
