"""DP-SGD on the real MiniLM: dev accuracy, epsilon and the cost of a private step.

Two kinds of contenders, each in its own process:

- **fits**: one ``tfft.pipeline.run_fit`` (what ``tfft fit`` runs) on the same SST-2 rows,
  epochs, expected batch size and maximum length: without DP, and with DP-SGD
  (``--dp-target-epsilon`` 1, 3 and 8 at delta 1e-5, Poisson sampling), on LoRA rank 8 or
  a frozen backbone (``--lr``, ``--dp-lr``, ``--clip``, ``--seed`` set the learning rates,
  the clip and the seed). Each row gives dev accuracy, epsilon reached (RDP and PLD), sigma,
  and the training step time (mean over steps after each epoch's first; a DP batch holds
  ``capacity`` rows).
- **step**: the DP/non-DP step-time ratio *on the same batch*: copies of one model, one
  compiled with Keras' step and others with the DP step (real SST-2 rows, float32, XLA),
  timed in alternating phases of ``--per-phase`` steps; the best phase of each counts.
  ``step-lora`` (LoRA rank 8, ``--batch-size`` rows), ``step-full`` (all 22.7M parameters,
  ``--full-batch`` rows) and ``step-poisson`` (LoRA rank 8, a Poisson batch of
  ``--capacity`` rows of which ``--batch-size`` are sampled and the rest filler: the non-DP
  step on the sampled rows, the DP step over all rows as before, and the chunked DP step
  for each of ``--chunks``).

::

    .venv/bin/python benchmarks/privacy.py                       # everything (long on 2 cores)
    .venv/bin/python benchmarks/privacy.py --only step-poisson --batch-size 32 --capacity 80 \
        --chunks 8,16 --repeats 2 --per-phase 3                  # the README's step figures
    .venv/bin/python benchmarks/privacy.py --only step-full --full-batch 16 --repeats 2 --per-phase 2
    .venv/bin/python benchmarks/privacy.py --only "no-dp lora,dp eps=8 lora,dp eps=3 lora,dp eps=1 lora" \
        --train-rows 4000 --epochs 1 --dev-rows 872 --batch-size 128 --lr 2e-3 --dp-lr 2e-3 --clip 0.1
    .venv/bin/python benchmarks/privacy.py \
        --only "no-dp frozen,dp eps=8 frozen,dp eps=3 frozen,dp eps=1 frozen" \
        --train-rows 20000 --epochs 2 --batch-size 512 --lr 2e-3 --dp-lr 2e-3 --clip 3   # the run that learns
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _child import add_run_arguments, parse_contender_args, run_fresh_child, step_timer_class

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
LORA = {"model.lora_rank": 8}
FROZEN = {"model.freeze_backbone": True}
EPSILONS = (8.0, 3.0, 1.0)
#: fit contenders: name -> (model overrides, DP target epsilon or None); the learning rates,
#: clip and seed come from the command line (:func:`fit_overrides`)
FITS = {
    "no-dp full": ({}, None),
    "no-dp lora": (LORA, None),
    **{f"dp eps={eps:g} lora": (LORA, eps) for eps in EPSILONS},
    "no-dp frozen": (FROZEN, None),
    **{f"dp eps={eps:g} frozen": (FROZEN, eps) for eps in EPSILONS},
}


def fit_overrides(args: argparse.Namespace, name: str) -> dict:
    """The run-configuration overrides (dotted keys, as ``load_config`` takes) of a fit contender."""
    model, epsilon = FITS[name]
    overrides = {**model, "train.seed": args.seed}
    if epsilon is None:
        if args.lr is not None:
            overrides["train.learning_rate"] = args.lr
        return overrides
    return {
        **overrides,
        "train.dp_l2_clip": args.clip,
        "train.dp_delta": 1e-5,
        "train.dp_target_epsilon": epsilon,
        "train.learning_rate": args.dp_lr,
    }


STEPS = ("step-lora", "step-full", "step-poisson")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, DATA)
    parser.add_argument("--batch-size", type=int, default=64, help="Batch size (expected, with DP).")
    parser.add_argument("--full-batch", type=int, default=16, help="Batch of the step-full timing.")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="Timing phases per step contender.")
    parser.add_argument(
        "--lr", type=float, default=None, help="Learning rate without DP (default: tfft's for the model)."
    )
    parser.add_argument("--dp-lr", type=float, default=2e-3, help="Learning rate with DP.")
    parser.add_argument(
        "--clip",
        type=float,
        default=3.0,
        help="DP clip C (--dp-l2-clip); 3 is near the real MiniLM's median per-example gradient norm.",
    )
    parser.add_argument("--seed", type=int, default=42, help="Training seed of the fits.")
    parser.add_argument("--per-phase", type=int, default=5, help="Steps per timing phase.")
    parser.add_argument(
        "--capacity",
        type=int,
        default=80,
        help="step-poisson: rows of the Poisson batch (B of them sampled).",
    )
    parser.add_argument(
        "--chunks", default="8,16", help="step-poisson: chunk sizes of the per-example pass to time."
    )
    parser.add_argument("--only", default=",".join([*FITS, *STEPS]), help="Comma-separated contenders.")
    parser.add_argument("--json", dest="json_path", default=None, help="Also write the rows here.")
    parser.add_argument(
        "--export-root",
        default=None,
        help="Keep each fit's export in EXPORT_ROOT/<contender> (e.g. for slices).",
    )
    args = parse_contender_args(parser, argv, [*FITS, *STEPS])
    args.chunks = [int(chunk) for chunk in str(args.chunks).split(",") if chunk.strip()]
    return args


def slug(name: str) -> str:
    """A folder name for a contender: ``dp eps=8 lora`` -> ``dp-eps8-lora``."""
    return name.replace(" ", "-").replace("=", "")


def fit_child(args: argparse.Namespace) -> dict:
    """One fit contender in this process."""
    from tfft.config import load_config
    from tfft.pipeline import run_fit

    folder = Path(args.out).parent
    config = load_config(
        None,
        {
            "model.hf_model": args.hf_model,
            "data.train": args.train,
            "data.eval": args.dev,
            "data.text_column": "sentence",
            "data.max_train_examples": args.train_rows,
            "data.max_eval_examples": args.dev_rows,
            "data.max_length": args.max_length,
            "train.epochs": args.epochs,
            "train.batch_size": args.batch_size,
            "export.run_dir": str(folder / "run"),
            **(
                {}
                if args.export_root is None
                else {"export.export_dir": str(Path(args.export_root) / slug(args.child))}
            ),
            **fit_overrides(args, args.child),
        },
    )
    timer = step_timer_class()()
    result = run_fit(config, verbose=0, callbacks=[timer])
    summary = json.loads((result.run_dir / "summary.json").read_text())
    privacy = summary.get("privacy") or {}
    return {
        "contender": args.child,
        "learning_rate": config.train.learning_rate,
        "clip": privacy.get("clip"),
        "seed": args.seed,
        "accuracy": result.metrics.get("accuracy"),
        "steps": summary["optimizer_steps"],
        "step_seconds": timer.seconds / timer.steps if timer.steps else None,
        "epsilon_rdp": privacy.get("epsilon_rdp"),
        "epsilon_pld": privacy.get("epsilon_pld"),
        "sigma": privacy.get("noise_multiplier"),
        "capacity": privacy.get("capacity"),
        "sampling_rate": privacy.get("sampling_rate"),
        "precision": summary["runtime"].get("precision"),
        "xla": summary["runtime"].get("xla"),
        "export": None if result.export_path is None else str(result.export_path),
    }


def step_child(args: argparse.Namespace) -> dict:
    """Step times on one batch, alternating phases (see the module docstring)."""
    import csv
    import dataclasses

    import numpy as np

    import tfft
    from tfft.config import TrainConfig
    from tfft.keras import keras
    from tfft.privacy import PrivacyPlan
    from tfft.train import compile_model

    lora = args.child != "step-full"
    batch_size = args.full_batch if args.child == "step-full" else args.batch_size
    poisson = args.child == "step-poisson"
    # a Poisson batch: `capacity` rows, the first `batch_size` sampled, the rest filler (weight 0)
    rows_in_batch = args.capacity if poisson else batch_size
    with open(args.train, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[:rows_in_batch]
    texts, labels = [row["sentence"] for row in rows], [row["label"] for row in rows]
    dp = PrivacyPlan(
        clip=1.0, noise_multiplier=1.0, batch_size=batch_size, train_rows=2000, delta=1e-5, planned_steps=100
    )
    if poisson:  # contender -> (DP plan or None, rows of its batch)
        contenders = {
            f"no-DP, {batch_size} rows": (None, batch_size),
            f"DP, all {rows_in_batch} rows (before)": (dataclasses.replace(dp, chunk_rows=0), rows_in_batch),
            **{
                f"DP, chunks of {chunk} (after)": (dataclasses.replace(dp, chunk_rows=chunk), rows_in_batch)
                for chunk in args.chunks
            },
        }
    else:
        contenders = {"no-DP": (None, batch_size), "DP": (dp, batch_size)}
    models = []
    for privacy, size in contenders.values():
        keras.utils.set_random_seed(0)
        model = tfft.build_model(
            hf_model=args.hf_model, label_names=["0", "1"], lora={"rank": 8} if lora else None
        )
        config = TrainConfig(batch_size=batch_size, learning_rate=1e-4)
        compile_model(model, config, total_steps=1000, xla=True, privacy=privacy)
        data = tfft.make_dataset(
            model, texts[:size], labels[:size], batch_size=size, max_length=args.max_length
        )
        x, y = next(iter(data))[:2]
        weights = (np.arange(size) < batch_size).astype(np.float32)
        batch = (x, y, weights)
        for _ in range(2):  # trace and warm up
            model.train_on_batch(*batch)
        models.append((model, batch))
    best = [float("inf")] * len(models)
    per_phase = args.per_phase
    for _ in range(args.repeats):
        for which, (model, batch) in enumerate(models):
            started = time.perf_counter()
            for _ in range(per_phase):
                model.train_on_batch(*batch)
            best[which] = min(best[which], (time.perf_counter() - started) / per_phase)
    trainable = int(sum(v.shape.num_elements() for v in models[0][0].trainable_variables))
    return {
        "contender": args.child,
        "batch": batch_size,
        "length": int(models[0][1][0]["input_ids"].shape[1]),
        "trainable": trainable,
        "seconds": dict(zip(contenders, best)),
        "step_seconds": best[0],
        "dp_step_seconds": best[-1],
        "ratio": best[-1] / best[0],
    }


def run_contender(args: argparse.Namespace, name: str, folder: Path) -> dict:
    """``name`` in a fresh process; its row, with the child's peak RSS (MiB)."""
    flags = []
    for flag in ("hf_model", "train", "dev", "train_rows", "dev_rows", "epochs", "batch_size", "full_batch"):
        flags += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    flags += ["--max-length", str(args.max_length), "--repeats", str(args.repeats)]
    flags += ["--per-phase", str(args.per_phase), "--capacity", str(args.capacity)]
    flags += ["--dp-lr", str(args.dp_lr), "--clip", str(args.clip), "--seed", str(args.seed)]
    if args.lr is not None:
        flags += ["--lr", str(args.lr)]
    flags += ["--chunks", ",".join(str(chunk) for chunk in args.chunks)]
    if args.export_root is not None:
        flags += ["--export-root", str(Path(args.export_root).resolve())]
    child = run_fresh_child(__file__, name, folder, flags)
    if child.exit_code != 0:
        return {"contender": name, "failed": f"exit {child.exit_code}: {child.stderr_tail(600)}"}
    return child.row()


def number(value, form: str) -> str:
    return "-" if value is None else format(value, form)


def tables(rows: list[dict]) -> list[str]:
    """The fit and step rows as Markdown tables."""
    lines = []
    fits = [row for row in rows if row["contender"] in FITS and "failed" not in row]
    if fits:
        lines += [
            "| contender | lr | dev acc | epsilon RDP / PLD | sigma | batch rows | step s | peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in fits:
            epsilon = (
                "-"
                if row["sigma"] is None
                else f"{number(row['epsilon_rdp'], '.2f')} / {number(row['epsilon_pld'], '.2f')}"
            )
            lines.append(
                f"| {row['contender']} | {row['learning_rate']:g} | {row['accuracy']:.4f} | {epsilon} | "
                f"{number(row['sigma'], '.3f')} | {row['capacity'] or '-'} | "
                f"{number(row['step_seconds'], '.3f')} | {row['peak_rss_mib']:,.0f} |"
            )
    steps = [row for row in rows if row["contender"] in STEPS and "failed" not in row]
    if any(row["contender"] != "step-poisson" for row in steps):
        lines += [
            "",
            "| same batch | rows x length | trainable | step s | DP step s | DP / non-DP | peak RSS MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in steps:
            if row["contender"] == "step-poisson":
                continue
            lines.append(
                f"| {row['contender']} | {row['batch']} x {row['length']} | {row['trainable']:,} | "
                f"{row['step_seconds']:.3f} | {row['dp_step_seconds']:.3f} | {row['ratio']:.2f}x | "
                f"{row['peak_rss_mib']:,.0f} |"
            )
    for row in steps:
        if row["contender"] != "step-poisson":
            continue
        base = row["step_seconds"]
        lines += [
            "",
            f"| Poisson batch, B = {row['batch']}, length {row['length']} | step s | / no-DP |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {value:.3f} | {value / base:.2f}x |" for name, value in row["seconds"].items()]
    for row in rows:
        if "failed" in row:
            lines.append(f"{row['contender']} failed: {row['failed']}")
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.child:
        row = fit_child(args) if args.child in FITS else step_child(args)
        Path(args.out).write_text(json.dumps(row))
        return [row]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfft-privacy-") as tmp:
        for index, name in enumerate(args.only):
            folder = Path(tmp) / str(index)
            folder.mkdir()
            row = run_contender(args, name, folder)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n".join(tables(rows)))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
