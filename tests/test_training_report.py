"""Per-step scalars (history.jsonl, TensorBoard), training.png and ``tfft report``."""

from __future__ import annotations

import json
import struct

import pytest
from click.testing import CliRunner

from tfft_cli.main import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (after checking the signature)."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def run_dir(tiny_bert_dir, tiny_sentiment, tmp_path_factory):
    """2 epochs of 8 steps (64 rows, batch 8), scalars every 3 steps, no export."""
    folder = tmp_path_factory.mktemp("steps") / "run"
    result = run(
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--train",
        tiny_sentiment["train"],
        "--eval",
        tiny_sentiment["dev"],
        "--text-column",
        "sentence",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "16",
        "--no-xla",
        "--log-every-steps",
        "3",
        "--run-dir",
        folder,
    )
    assert result.exit_code == 0, result.output
    return folder


def read_history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_history_has_scalars_every_n_steps_and_at_epoch_ends(run_dir):
    history = read_history(run_dir)
    # every 3rd step, and each epoch's last step (8, 16)
    assert [r["step"] for r in history] == [3, 6, 8, 9, 12, 15, 16]
    assert [r["epoch"] for r in history] == [1, 1, 1, 2, 2, 2, 2]
    assert [r["examples"] for r in history] == [24, 24, 16, 8, 24, 24, 8]
    for record in history:
        assert record["loss"] > 0 and record["examples_per_second"] > 0
        assert record["tokens_per_second"] > record["examples_per_second"]  # several tokens a row


def test_history_loss_is_exact_per_window(run_dir):
    """The rows-weighted mean of an epoch's windows is Keras' epoch loss in metrics.json."""
    history = read_history(run_dir)
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    for epoch in epochs:
        lines = [r for r in history if r["epoch"] == epoch["epoch"]]
        mean = sum(r["loss"] * r["examples"] for r in lines) / sum(r["examples"] for r in lines)
        assert mean == pytest.approx(epoch["loss"], rel=1e-4)


def test_history_learning_rate_follows_the_schedule(run_dir):
    from tfft.config import LEARNING_RATE
    from tfft.train import WarmupLinearDecay

    schedule = WarmupLinearDecay(LEARNING_RATE, total_steps=16, warmup_steps=round(0.1 * 16))
    for record in read_history(run_dir):
        # the rate of the update that made this step
        assert record["learning_rate"] == pytest.approx(float(schedule(record["step"] - 1)), rel=1e-5)


def test_tensorboard_event_files_hold_the_step_scalars(run_dir):
    import tensorflow as tf

    found: dict[str, dict[int, float]] = {}
    for event_file in (run_dir / "logs" / "steps").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    history = {r["step"]: r for r in read_history(run_dir)}
    assert set(found) == {"loss", "learning_rate", "examples_per_second", "tokens_per_second"}
    for tag, values in found.items():
        assert sorted(values) == sorted(history)
        for step, value in values.items():
            assert value == pytest.approx(history[step][tag], rel=1e-5)


def test_fit_draws_training_png(run_dir):
    width, height = png_size(run_dir / "training.png")
    assert (width, height) == (1100, 720)


def test_report_summarizes_and_redraws(run_dir):
    picture = run_dir / "training.png"
    picture.unlink()
    result = run("report", run_dir)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["run", str(run_dir), "(finished)"]
    assert "16 optimizer steps in 2 epoch(s), 8 per epoch" in result.output
    assert "examples/s" in result.output and "tokens/s" in result.output
    assert any(line.startswith("epoch 2") and "val_accuracy" in line for line in lines)
    assert lines[-1].split() == ["picture", str(picture)]
    assert png_size(picture) == (1100, 720)


def test_report_json_and_output_path(run_dir, tmp_path):
    target = tmp_path / "curves.png"
    result = run("report", run_dir, "--json", "--output", target)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["step"] for r in data["steps"]] == [3, 6, 8, 9, 12, 15, 16]
    assert data["picture"] == str(target) and png_size(target)[0] == 1100


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = run("report", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path}: not a tfft run folder" in result.output
    missing = run("report", tmp_path / "nope")
    assert missing.exit_code == 1 and "no such folder" in missing.output


def test_one_epoch_run_still_draws_per_step_curves(tmp_path):
    """Drawn from the records alone (no TensorFlow): a run stopped inside its only epoch."""
    from tfft.reports.training import draw_training, read_run, summary_lines

    lines = [
        {"step": s, "epoch": 1, "loss": 0.7 / s, "learning_rate": 1e-5 * s, "seconds": 1.0, "examples": 8}
        for s in range(1, 7)
    ]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 7, "lo')
    (tmp_path / "summary.json").write_text(json.dumps({"status": "interrupted", "optimizer_steps": 6}))
    assert png_size(draw_training(tmp_path)) == (1100, 720)
    text = "\n".join(summary_lines(read_run(tmp_path)))
    assert "(interrupted)" in text and "0.7000 -> 0.1167" in text and "peak 6e-05" in text
