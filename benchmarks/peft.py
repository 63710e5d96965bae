"""Parameter-efficient fine-tuning on the real MiniLM: full fine-tuning, LoRA and freezing.

Every contender is one ``tfft.pipeline.run_fit`` (what ``tfft fit`` runs) in its own
process, on the same SST-2 rows, epochs, batch size and maximum length, with tfft's
defaults otherwise (precision, XLA, optimizer). The parent takes each child's peak RSS
from ``os.wait4`` (that child alone). Steps/s counts training steps only: the time from
the end of each epoch's first step to the end of its last (no start-up, tracing of the
first step, evaluation or export), so it is exposed to whatever else runs on the machine
meanwhile; a second phase (``--timing-rounds``, :func:`run_timing`) therefore times all
models in one process, alternating short phases, best round kept. Dev accuracy is on the
first ``--dev-rows`` rows of ``dev.tsv`` (a fixed subset, the same for all)::

    .venv/bin/python benchmarks/peft.py                      # all contenders, ~15 min
    .venv/bin/python benchmarks/peft.py --only full,lora-qv --train-rows 500
    .venv/bin/python benchmarks/peft.py --rows earlier.json   # step-time phase only, same table

Contenders (``--only``): see :data:`CONTENDERS`. Without ``@rate`` in its name a contender
trains at tfft's default rate for its kind (``tfft.config.default_learning_rate``: 1e-3 for
LoRA and a frozen backbone, ``LEARNING_RATE`` for full fine-tuning); the ``@1e-3`` names fix
1e-3, the rate the LoRA paper and PEFT's examples use. The table gives the rate each used.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _child import add_run_arguments, parse_contender_args, run_fresh_child, step_timer_class

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
ALL_LAYERS = "query,key,value,attention_output,intermediate,output"

#: name -> extra run-configuration overrides (dotted keys, as ``tfft.config.load_config`` takes)
CONTENDERS = {
    "full": {},
    "lora-qv": {"model.lora_rank": 8, "model.lora_targets": "query,value"},
    "lora-qv@1e-3": {"model.lora_rank": 8, "model.lora_targets": "query,value", "train.learning_rate": 1e-3},
    "lora-all": {"model.lora_rank": 8, "model.lora_targets": ALL_LAYERS},
    "lora-all@1e-3": {"model.lora_rank": 8, "model.lora_targets": ALL_LAYERS, "train.learning_rate": 1e-3},
    "frozen": {"model.freeze_backbone": True},
    "frozen@1e-3": {"model.freeze_backbone": True, "train.learning_rate": 1e-3},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, DATA)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--only", default=",".join(CONTENDERS), help="Comma-separated contenders.")
    parser.add_argument(
        "--timing-rounds",
        type=int,
        default=5,
        help="Step-time phase: rounds of alternating contenders in one process, best kept (0: skip).",
    )
    parser.add_argument(
        "--timing-steps", type=int, default=10, help="Training steps per contender and round."
    )
    parser.add_argument("--json", dest="json_path", default=None, help="Also write the rows here.")
    parser.add_argument(
        "--rows",
        default=None,
        help="Take the training rows from an earlier --json file; run the step-time phase.",
    )
    return parse_contender_args(parser, argv, list(CONTENDERS))


def overrides(args: argparse.Namespace, name: str, folder: Path) -> dict:
    """The run configuration of contender ``name`` as ``load_config`` overrides."""
    return {
        "model.hf_model": args.hf_model,
        "data.train": args.train,
        "data.eval": args.dev,
        "data.text_column": "sentence",
        "data.label_column": "label",
        "data.max_train_examples": args.train_rows,
        "data.max_eval_examples": args.dev_rows,
        "data.max_length": args.max_length,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "export.run_dir": str(folder / "run"),
        "export.export_dir": str(folder / "export"),
        **CONTENDERS[name],
    }


def run_child(args: argparse.Namespace) -> None:
    """One contender in this process; its measurements go to ``args.out`` as JSON."""
    from tfft.config import load_config
    from tfft.pipeline import run_fit

    class StepTimer(step_timer_class()):
        """Training-step time after each epoch's first step; the backbone's own size."""

        backbone = 0

        def on_train_begin(self, logs=None):
            layer = self.model.tfft_spec.backbone.model
            self.backbone = sum(w.shape.num_elements() for w in layer.weights if "/lora/" not in w.name)

    folder = Path(args.out).parent
    config = load_config(None, overrides(args, args.child, folder))
    timer = StepTimer()
    result = run_fit(config, verbose=0, callbacks=[timer])
    summary = json.loads((result.run_dir / "summary.json").read_text())
    adapters = result.run_dir / "adapters.weights.h5"
    row = {
        "contender": args.child,
        "learning_rate": summary["learning_rate"],  # the rate used (the default when none was given)
        "accuracy": result.metrics.get("accuracy"),
        "trainable": summary["parameters"]["trainable"],
        "backbone": timer.backbone,
        "steps_per_second": timer.steps / timer.seconds if timer.seconds else None,
        "timed_steps": timer.steps,
        "export_bytes": folder_bytes(result.export_path),
        "adapter_bytes": adapters.stat().st_size if adapters.is_file() else None,
        "precision": summary["runtime"].get("precision"),
    }
    Path(args.out).write_text(json.dumps(row))


def run_timing(args: argparse.Namespace) -> None:
    """Step time of each contender's model, comparable on a shared machine.

    All models are built in this one process; each runs ``--timing-steps`` training steps on
    the same cached batches in turn, for ``--timing-rounds`` rounds after a warm-up round
    (which traces every batch shape), and each keeps its best round. Load from other
    processes then hits all contenders alike, and the best round is the least disturbed.
    The learning rate does not change the step: ``name@rate`` contenders share their
    model's figure.
    """
    from tfft.config import load_config
    from tfft.datasets import run_dataset, training_compilation
    from tfft.execution import runtime
    from tfft.pipeline import build_run_model, read_train_eval
    from tfft.tasks import get_task
    from tfft.train import compile_model

    folder = Path(args.out).parent
    names = list(dict.fromkeys(name.split("@")[0] for name in args.only))
    base = load_config(None, overrides(args, names[0], folder))
    train, _ = read_train_eval(base)
    settings = get_task(base.model.task).settings_from_data(train, base)
    steps = args.timing_steps
    with runtime(base.runtime) as chosen:
        contenders = {}
        for name in names:
            config = load_config(None, overrides(args, name, folder))
            with chosen.strategy.scope():
                model = build_run_model(config, settings)
            xla, fixed_shapes = training_compilation(config, chosen, model)
            compile_model(model, config.train, total_steps=1000, xla=xla)
            batches = run_dataset(model, train, config, training=True, fixed_shapes=fixed_shapes)
            batches = batches.take(steps).cache().repeat()
            contenders[name] = (model.make_train_function(), iter(batches))
        best = dict.fromkeys(names, float("inf"))
        for round_index in range(args.timing_rounds + 1):  # round 0: warm-up
            for name, (function, batches) in contenders.items():
                started = time.perf_counter()
                for _ in range(steps):
                    logs = function(batches)
                float(logs["loss"])
                if round_index:
                    best[name] = min(best[name], time.perf_counter() - started)
    rates = {name: steps / seconds for name, seconds in best.items()}
    Path(args.out).write_text(
        json.dumps({"steps_per_second": rates, "xla": xla, "precision": chosen.precision})
    )


def folder_bytes(path) -> int | None:
    if path is None:
        return None
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def run_contender(args: argparse.Namespace, name: str, folder: Path) -> dict:
    """``name`` in a fresh process; its row with the child's peak RSS (MiB)."""
    extra = []
    flags = ("hf_model", "train", "dev", "train_rows", "dev_rows", "epochs", "batch_size", "max_length")
    for flag in (*flags, "timing_rounds", "timing_steps"):
        extra += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    extra += ["--only", ",".join(args.only)]
    child = run_fresh_child(__file__, name, folder, extra)
    if child.exit_code != 0:
        raise SystemExit(f"{name} failed (exit {child.exit_code}):\n{child.stderr_tail(3000)}")
    return child.row()


def table(rows: list[dict]) -> list[str]:
    """The results as a Markdown table, with ratios to full fine-tuning where it ran."""
    full = next((row for row in rows if row["contender"] == "full"), None)
    lines = [
        "| contender | lr | dev acc | trainable (% of backbone) | peak RSS MiB | steps/s in the run "
        "| steps/s alternating | export MB | adapter file |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        share = 100 * row["trainable"] / row["backbone"]
        rss = f"{row['peak_rss_mib']:,.0f}"
        speed = f"{row['steps_per_second']:.2f}"
        alternating = row.get("alternating_steps_per_second")
        best = "-" if alternating is None else f"{alternating:.2f}"
        if full is not None and row is not full:
            rss += f" ({row['peak_rss_mib'] / full['peak_rss_mib']:.0%})"
            speed += f" ({row['steps_per_second'] / full['steps_per_second']:.2f}x)"
            if alternating is not None:
                best += f" ({alternating / full['alternating_steps_per_second']:.2f}x)"
        adapter = "-" if row["adapter_bytes"] is None else f"{row['adapter_bytes'] / 1024:,.0f} KiB"
        export = "-" if row["export_bytes"] is None else f"{row['export_bytes'] / 1e6:.1f}"
        lines.append(
            f"| {row['contender']} | {row['learning_rate']:g} | {row['accuracy']:.4f} | "
            f"{row['trainable']:,} ({share:.2f}%) | {rss} | {speed} | {best} | {export} | {adapter} |"
        )
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.child == "timing":
        run_timing(args)
        return []
    if args.child:
        run_child(args)
        return []
    rows = []
    if args.rows:
        rows = [row for row in json.loads(Path(args.rows).read_text()) if row["contender"] in args.only]
    with tempfile.TemporaryDirectory(prefix="tfft-peft-") as scratch:
        for name in [] if args.rows else args.only:
            folder = Path(scratch) / name.replace("@", "-")
            folder.mkdir()
            row = run_contender(args, name, folder)
            print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)
            rows.append(row)
        if args.timing_rounds:
            folder = Path(scratch) / "timing"
            folder.mkdir()
            timing = run_contender(args, "timing", folder)
            print(f"timing: {json.dumps(timing)}", file=sys.stderr, flush=True)
            for row in rows:
                row["alternating_steps_per_second"] = timing["steps_per_second"][
                    row["contender"].split("@")[0]
                ]
    print(
        f"{args.train_rows} SST-2 training rows, {args.epochs} epoch(s), batch {args.batch_size}, "
        f"max length {args.max_length}; dev accuracy on the first {args.dev_rows} rows of {args.dev}; "
        f"steps/s alternating: best of {args.timing_rounds} rounds of {args.timing_steps} steps per model"
    )
    print("\n".join(table(rows)))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
