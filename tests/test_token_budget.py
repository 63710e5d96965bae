"""Token-budget batching (``--batch-tokens``, :mod:`tfft.token_budget`) on tiny models."""

from __future__ import annotations

import json
import random
import signal
import textwrap

import numpy as np
import pytest
from helpers import (
    ENGLISH,
    GERMAN,
    printed_json,
    run_python,
    tiny_run_config,
    write_german_bert,
    write_tiny_bert,
    write_tiny_gpt2_lm,
)

import tfft
from tfft.config import load_config
from tfft.errors import ConfigError
from tfft.preprocess import Batching, bucket_lengths, token_dataset, training_steps
from tfft.token_budget import budget_lengths, plan_batches
from tfft.tokenization import Encoded

FILLER = ["the", "movie", "film", "was", "plot"]  # one word piece each (tests/helpers.py WORDS)


def varied_lengths(rows: int, seed: int = 0) -> np.ndarray:
    """Lengths like SST-2's: many short rows, a long tail."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(2.4, 0.7, size=rows).astype(int) + 2, 3, 64)


def encoded_rows(lengths) -> Encoded:
    """Rows whose token ids name them: row i is ``1000 * i + 1 ... 1000 * i + n``."""
    ids = [np.arange(1, n + 1, dtype=np.int32) + 1000 * i for i, n in enumerate(lengths)]
    return Encoded(ids, [np.zeros(n, np.int32) for n in lengths])


def varied_file(path, rows: int, seed: int = 0):
    rng = random.Random(seed)
    lines = ["sentence\tlabel"]
    for length in varied_lengths(rows, seed):
        positive = rng.random() < 0.5
        word = rng.choice(["good", "great"] if positive else ["bad", "awful"])
        words = [word if i % 3 == 0 else rng.choice(FILLER) for i in range(max(int(length) - 2, 1))]
        lines.append(" ".join(words) + f"\t{'pos' if positive else 'neg'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bucket_grid_is_fine_and_ends_at_max_length():
    grid = budget_lengths(128)
    assert grid[:8] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert grid[8:12] == [20, 24, 28, 32]
    assert all(length % 8 == 0 for length in grid if length >= 32)
    assert grid[-1] == 128 and budget_lengths(100)[-2:] == [96, 100]


@pytest.mark.parametrize("budget", [64, 200, 1024])
def test_plan_keeps_every_row_once_within_the_budget(budget):
    lengths = varied_lengths(700)
    plan = plan_batches(lengths, budget, budget_lengths(64))
    assert sorted(plan.slots.tolist()) == list(range(700))  # each position once
    assert plan.sizes.sum() == 700 and plan.steps == len(plan.lengths)
    assert np.all(plan.sizes * plan.lengths <= budget)
    # Each batch's padded length holds its longest row (rows sorted by bucket).
    sorted_lengths = np.sort(np.asarray(budget_lengths(64))[plan.bucket_of])
    edges = np.cumsum(plan.sizes)[:-1]
    for batch, positions in enumerate(np.split(plan.slots, edges)):
        assert sorted_lengths[positions].max() == plan.lengths[batch]
    # The plan depends on the lengths only, not on their order.
    shuffled = plan_batches(np.random.default_rng(3).permutation(lengths), budget, budget_lengths(64))
    assert shuffled.steps == plan.steps and shuffled.token_slots == plan.token_slots


def test_budget_below_the_longest_row_names_the_option():
    with pytest.raises(ConfigError, match=r"--batch-tokens .*40 tokens.*batch_tokens=32"):
        plan_batches([5, 38], 32, budget_lengths(64))


def test_token_budget_epochs_hold_every_row_once_reshuffled_and_seeded():
    lengths = varied_lengths(400)
    encoded, labels = encoded_rows(lengths), np.arange(400)
    budget = Batching(batch_tokens=256)
    data = token_dataset(
        encoded, labels, batch_size=16, max_length=64, training=True, seed=5, batching=budget
    )
    again = token_dataset(
        encoded, labels, batch_size=16, max_length=64, training=True, seed=5, batching=budget
    )
    plan = plan_batches(lengths, 256, budget_lengths(64))
    assert int(data.cardinality()) == plan.steps
    epochs = []
    for _ in range(2):
        seen = []
        for features, targets, weights in data:
            rows, length = features["input_ids"].shape
            assert rows * length <= 256 and rows == len(targets)
            assert np.all(weights.numpy() == 1.0)  # no filler rows
            ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
            for row, label in zip(ids, targets.numpy()):  # features and label of one row travel together
                real = row[row > 0]
                np.testing.assert_array_equal(real, np.arange(1, lengths[label] + 1) + 1000 * label)
            assert mask.sum() == sum(lengths[t] for t in targets.numpy())
            seen += targets.numpy().tolist()
        assert sorted(seen) == list(range(400))  # no row lost or repeated
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    first = [targets.numpy().tolist() for _, targets, _ in again]
    assert sum(first, []) == epochs[0]  # the same seed gives the same first epoch


def test_token_budget_pads_less_than_fixed_batches():
    lengths = varied_lengths(600)
    encoded, labels = encoded_rows(lengths), np.zeros(600, np.int32)

    def share(data):
        slots = sum(int(np.prod(f["input_ids"].shape)) for f, _, _ in data)
        return 1.0 - lengths.sum() / slots

    fixed = share(token_dataset(encoded, labels, batch_size=32, max_length=64, training=True, seed=0))
    budget = share(
        token_dataset(
            encoded,
            labels,
            batch_size=32,
            max_length=64,
            training=True,
            seed=0,
            batching=Batching(batch_tokens=1024),
        )
    )
    assert budget < 0.5 * fixed, (budget, fixed)  # 600 rows: 14% vs 43%
    assert (
        training_steps(lengths, 32, bucket_lengths(64))
        > plan_batches(lengths, 1024, budget_lengths(64)).steps
    )


def test_loss_is_the_mean_per_row_in_batches_of_many_short_or_few_long_rows(tiny_bert_dir):
    """A batch of many short rows and one of few long rows each give the mean of their rows'
    own losses (per example, not per token)."""
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="classify", label_names=["neg", "pos"])
    model.compile(loss=tfft.loss_for(model), jit_compile=False)
    texts = ["good"] * 12 + ["the movie was long and the plot was boring but the actor was great fun"] * 2
    texts = [f"{text} {i}" for i, text in enumerate(texts)]
    labels = ["pos", "neg"] * 7
    data = tfft.make_dataset(model, texts, labels, training=True, seed=0, batch_tokens=48, max_length=24)
    batches = list(data)
    assert {int(f["input_ids"].shape[0]) for f, _, _ in batches} >= {2}  # the long rows: a batch of 2
    assert max(int(f["input_ids"].shape[0]) for f, _, _ in batches) >= 6  # short rows: many per batch
    for features, targets, weights in batches:
        batch_loss = model.test_on_batch(features, targets, sample_weight=weights)
        rows = []
        for i in range(len(targets)):
            one = {name: value[i : i + 1] for name, value in features.items()}
            rows.append(model.test_on_batch(one, targets[i : i + 1], sample_weight=weights[i : i + 1]))
        assert batch_loss == pytest.approx(float(np.mean(rows)), rel=1e-4)


def test_fit_with_a_token_budget_schedule_steps_and_metrics(tiny_bert_dir, tmp_path):
    """steps_per_epoch is the plan's batch count (summary, schedule, optimizer steps agree),
    the last step runs at the schedule's end value, and the tiny model learns."""
    train = varied_file(tmp_path / "train.tsv", 160)
    config = tiny_run_config(
        tiny_bert_dir,
        {"train": train},
        {
            "data.eval": varied_file(tmp_path / "dev.tsv", 60, seed=1),
            "train.batch_tokens": 256,
            "train.epochs": 3,
            "train.learning_rate": 2e-3,
            "train.log_every_steps": 1,
            "data.max_length": 32,
            "export.run_dir": tmp_path / "run",
        },
    )
    result = tfft.run_fit(config, verbose=0)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="classify", label_names=["neg", "pos"])
    lengths = model.tfft_spec.backbone.encoder.encode(
        [line.split("\t")[0] for line in train.read_text().splitlines()[1:]], None, 32
    ).lengths()
    steps = plan_batches(lengths, 256, budget_lengths(32)).steps
    assert summary["steps_per_epoch"] == steps
    assert summary["optimizer_steps"] == 3 * steps
    assert summary["runtime"]["xla"] is False
    history = [json.loads(line) for line in (result.run_dir / "history.jsonl").read_text().splitlines()]
    assert history[-1]["step"] == 3 * steps
    total, warmup = 3 * steps, round(0.1 * 3 * steps)
    assert history[-1]["learning_rate"] == pytest.approx(2e-3 / (total - warmup), rel=1e-5)
    assert sum(line["examples"] for line in history) == 3 * 160  # every row once per epoch
    losses = summary["history"]["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    assert summary["eval"]["accuracy"] >= 0.75, (summary["eval"], summary["history"])  # "good"/"bad" decide
    saved = load_config(result.run_dir / "config.yaml")
    assert saved.train.batch_tokens == 256 and saved.runtime.xla is False


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"runtime.xla": True}, r"--batch-tokens does not combine with --xla.*batch_tokens=64, xla=True"),
        (
            {"train.dp_l2_clip": 1.0, "train.dp_noise_multiplier": 1.0},
            r"--batch-tokens .*DP-SGD.*dp_l2_clip=1.0",
        ),
        ({"train.grad_accum_steps": 2}, r"--batch-tokens .*--grad-accum-steps.*grad_accum_steps=2"),
    ],
)
def test_settings_that_need_fixed_batches_refuse_it(
    settings, message, tiny_bert_dir, tiny_sentiment, tmp_path
):
    with pytest.raises(ConfigError, match=message):
        config = tiny_run_config(
            tiny_bert_dir,
            tiny_sentiment,
            {"train.batch_tokens": 64, "export.run_dir": tmp_path / "run", **settings},
        )
        tfft.run_fit(config, verbose=0)
    assert not (tmp_path / "run").exists()


def test_raw_text_backbones_refuse_it(tiny_text_embedding_dir, tiny_sentiment):
    model = tfft.build_model(
        hub_url=str(tiny_text_embedding_dir), task="classify", label_names=["neg", "pos"]
    )
    with pytest.raises(ConfigError, match=r"--batch-tokens needs a backbone whose tokenizer tfft runs"):
        tfft.make_dataset(model, ["good", "bad"], ["pos", "neg"], training=True, batch_tokens=64)


def test_api_checks_the_budget(tiny_bert_dir):
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="classify", label_names=["neg", "pos"])
    with pytest.raises(ConfigError, match=r"`batch_tokens` must be a positive int. Received: batch_tokens=0"):
        tfft.make_dataset(model, ["good"], ["pos"], training=True, batch_tokens=0)
    evaluation = tfft.make_dataset(model, ["good"] * 5, ["pos"] * 5, batch_size=2, batch_tokens=8)
    assert [int(f["input_ids"].shape[0]) for f, _, _ in evaluation] == [2, 2, 1]  # evaluation: batch_size


def test_ner_batches_keep_tokens_and_labels_together(tiny_bert_dir):
    words = [["w"] * n for n in varied_lengths(120, seed=2) // 2 + 1]
    tags = [["O"] * len(row) for row in words]
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="ner", label_names=["O", "B-X"])
    data = tfft.make_dataset(model, words, tags, training=True, seed=0, batch_tokens=128, max_length=48)
    rows = 0
    for features, labels, weights in data:
        assert np.prod(features["input_ids"].shape) <= 128
        assert labels.shape == weights.shape == features["input_ids"].shape
        assert weights.numpy().sum() == (labels.numpy() >= 0).sum()  # one weight per labelled word
        rows += labels.shape[0]
    assert rows == 120


RESUME_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import tfft
    from tfft.keras import keras

    model_dir, train, run_dir, kill_at = sys.argv[1:]

    class KillAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)

    config = tfft.load_config(None, {
        "model.hf_model": model_dir, "data.train": train, "data.text_column": "sentence",
        "data.max_length": 32, "train.epochs": 2, "train.batch_tokens": 256, "train.learning_rate": 1e-3,
        "train.backup_every_steps": 2, "train.log_every_steps": 1, "export.run_dir": run_dir,
    })
    result = tfft.run_fit(config, verbose=0, callbacks=[KillAt()] if int(kill_at) else [])
    summary = json.load(open(result.run_dir / "summary.json"))
    print(json.dumps({"steps": summary["optimizer_steps"], "per_epoch": summary["steps_per_epoch"]}))
""")


@pytest.mark.long  # two training processes: about 2 minutes on a shared 2-core machine
def test_killed_token_budget_run_resumes_from_its_backup(tiny_bert_dir, tmp_path):
    """SIGKILL in the second epoch, then the same command: the run ends after 2 epochs of
    the planned batches, its last step at the schedule's end value."""
    train = varied_file(tmp_path / "train.tsv", 120)
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="classify", label_names=["neg", "pos"])
    texts = [line.split("\t")[0] for line in train.read_text().splitlines()[1:]]
    per_epoch = plan_batches(
        model.tfft_spec.backbone.encoder.encode(texts, None, 32).lengths(), 256, budget_lengths(32)
    ).steps

    def run(kill_at):
        args = [tiny_bert_dir, train, tmp_path / "run", kill_at]
        return run_python(RESUME_SCRIPT, *args, exit_code=-signal.SIGKILL if kill_at else 0)

    run(per_epoch + per_epoch // 2 + 1)
    assert list((tmp_path / "run" / "backup").rglob("*.index"))
    assert printed_json(run(0)) == {"steps": 2 * per_epoch, "per_epoch": per_epoch}
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    total, warmup = 2 * per_epoch, round(0.1 * 2 * per_epoch)
    assert history[-1]["step"] == total
    assert history[-1]["learning_rate"] == pytest.approx(1e-3 / (total - warmup), rel=1e-5)


def test_seq2seq_batches_fit_both_sides_in_the_budget(tmp_path):
    encoder, decoder = (
        write_tiny_bert(tmp_path / "encoder", layers=1),
        write_german_bert(tmp_path / "decoder"),
    )
    model = tfft.build_model(
        hf_model=str(encoder), task="translate", decoder_model=str(decoder), max_new_tokens=8
    )
    sources = [" ".join(ENGLISH[i % len(ENGLISH)].split()[: 1 + i % 7]) for i in range(60)]
    targets = [GERMAN[i % len(GERMAN)] for i in range(60)]
    data = tfft.make_dataset(model, sources, targets, training=True, seed=0, batch_tokens=96, max_length=32)
    weights_total = 0.0
    for features, labels, weights in data:
        rows = features["input_ids"].shape[0]
        assert rows * max(features["input_ids"].shape[1], labels.shape[1]) <= 96
        assert features["decoder_input_ids"].shape == labels.shape == weights.shape
        weights_total += float(weights.numpy().sum())
    encoded = model.tfft_spec.task_object.encode_targets(model, targets)
    assert weights_total == sum(len(row) for row in encoded)  # every target token once


def test_tasks_that_build_their_own_batches_refuse_it(tmp_path):
    from tfft.datasets import run_dataset

    gpt2 = write_tiny_gpt2_lm(tmp_path / "gpt2")
    model = tfft.build_model(hf_model=str(gpt2), task="causal-lm")
    refused = "does not apply to task 'causal-lm'"
    with pytest.raises(ConfigError, match=rf"`batch_tokens` {refused}.*use `batch_size`"):
        tfft.make_dataset(model, ["a b c"], training=True, batch_tokens=64)
    settings = {"model.hf_model": str(gpt2), "model.task": "causal-lm", "train.batch_tokens": 64}
    with pytest.raises(ConfigError, match=rf"--batch-tokens {refused}.*use --batch-size"):
        run_dataset(model, [], load_config(None, settings), training=True)


def test_dry_run_counts_token_budget_batches(tiny_bert_dir, tmp_path):
    from tfft.dry_run import run_dry

    train = varied_file(tmp_path / "train.tsv", 60)
    settings = {"data.max_length": 16, "train.epochs": 2, "train.batch_tokens": 256}  # few buckets to time
    report = run_dry(tiny_run_config(tiny_bert_dir, {"train": train}, settings), steps=1)
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="classify", label_names=["neg", "pos"])
    texts = [line.split("\t")[0] for line in train.read_text().splitlines()[1:]]
    plan = plan_batches(
        model.tfft_spec.backbone.encoder.encode(texts, None, 16).lengths(), 256, budget_lengths(16)
    )
    assert (
        report["time"]["steps_per_epoch"] == plan.steps == sum(report["time"]["batches_per_bucket"].values())
    )
    assert report["padding"]["token_slots"] == plan.token_slots and report["runtime"]["xla"] is False
    memory = report["memory"]
    assert memory["activation_batch"] == 256 // memory["activation_length"]


def test_qa_windows_are_token_budget_batches(tiny_bert_dir):
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="qa", doc_stride=8)
    rng = random.Random(0)
    contexts = [" ".join(rng.choice(FILLER) for _ in range(rng.randint(3, 40))) + " good" for _ in range(40)]
    questions = ["what was it"] * 40
    answers = [{"text": ["good"], "answer_start": [len(c) - 4]} for c in contexts]

    def windows(data):
        shapes = [tuple(f["input_ids"].shape) for f, _, w in data]
        rows = sum(int((w.numpy() > 0).sum()) for _, _, w in data)
        return shapes, rows

    shapes, rows = windows(
        tfft.make_dataset(
            model, questions, answers, contexts, training=True, seed=0, batch_tokens=128, max_length=32
        )
    )
    assert all(r * length <= 128 for r, length in shapes)
    assert (
        rows
        == windows(tfft.make_dataset(model, questions, answers, contexts, training=True, max_length=32))[1]
    )
