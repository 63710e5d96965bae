"""Ctrl-C and SIGTERM during ``tfft fit``: a clean stop with a backup, exit 130/143, the
command that resumes, and a resumed run that ends with every optimizer step.

Real processes (``python -m tfft_cli.main``): signals, exit codes and stderr as a shell sees them.
"""

from __future__ import annotations

import json
import random
import shlex
import signal
import subprocess
import sys
import time

import pytest

from tfft.errors import Interrupted
from tfft.folders import INTERRUPTED, plan_run_dir, run_state
from tfft.interrupt import FINISHING, TRAINING, stop_on_signals


def _write_data(folder):
    """Enough rows for a few hundred steps of batch 2: time to send a signal mid-training."""
    rng = random.Random(1)
    lines = ["sentence\tlabel"]
    for _ in range(400):
        good = rng.random() < 0.5
        lines.append(f"the film was {rng.choice(['good', 'fun'] if good else ['bad', 'dull'])}\t{int(good)}")
    (folder / "train.tsv").write_text("\n".join(lines) + "\n")
    (folder / "dev.tsv").write_text("\n".join(lines[:41]) + "\n")


def _start(args):
    return subprocess.Popen(
        [sys.executable, "-m", "tfft_cli.main", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.long  # about 70 s each; the phases and handlers are tested in-process by default
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_then_the_printed_command_resumes(tiny_bert_dir, tmp_path, signum, code):
    _write_data(tmp_path)
    run_dir = tmp_path / "run"
    args = ["fit", "--hf-model", tiny_bert_dir, "--train", tmp_path / "train.tsv"]
    args += ["--eval", tmp_path / "dev.tsv"]
    args += ["--text-column", "sentence", "--epochs", "2", "--batch-size", "2", "--no-xla"]
    args += ["--backup-every-steps", "5", "--run-dir", run_dir]
    process = _start(args)
    deadline = time.monotonic() + 300
    while not list((run_dir / "backup").rglob("*.index")):  # training has started
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)

    assert process.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == INTERRUPTED and summary["signal"] == signal.Signals(signum).name
    resume = f"tfft fit --config {run_dir / 'config.yaml'} --run-dir {run_dir}"
    assert stderr.strip().splitlines()[-1].endswith(f"Resume with: {resume}")
    assert summary["resume"] == resume
    assert list((run_dir / "backup").rglob("*.index"))
    assert run_state(run_dir) == INTERRUPTED
    stopped_at = summary["optimizer_steps"]

    resumed = subprocess.run(
        [sys.executable, "-m", "tfft_cli.main", *shlex.split(resume)[1:], "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from the backup" in resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    # 400 rows in batches of 2; without XLA each token length is a bucket of its own, so two
    # lengths with odd counts (here 201 and 199 rows) give one partial batch each: 201 steps.
    assert summary["steps_per_epoch"] in (200, 201)
    assert summary["optimizer_steps"] == 2 * summary["steps_per_epoch"] > stopped_at
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    assert [epoch["epoch"] for epoch in epochs] == [1, 2]


def test_signal_phases_and_handlers_restored():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as request:
        with pytest.raises(Interrupted) as caught:  # preparing: at once
            request.handle(signal.SIGTERM)
        assert caught.value.exit_code == 143 and caught.value.run_dir is None
        request.phase = TRAINING
        request.handle(signal.SIGINT)  # noted; training stops after the step
        assert request.signum == signal.SIGINT
        with pytest.raises(Interrupted):  # a second signal: at once
            request.handle(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before
    with stop_on_signals() as request:
        request.phase = FINISHING
        request.handle(signal.SIGINT)  # finish the export first
        assert request.signum == signal.SIGINT


def test_interrupted_run_with_other_settings_is_refused_with_the_resume_command(tmp_path):
    from tfft.config import RunConfig

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = RunConfig.from_dict({"export": {"run_dir": str(run_dir)}, "train": {"epochs": 3}})
    saved.save(run_dir / "config.yaml")
    (run_dir / "summary.json").write_text(json.dumps({"status": INTERRUPTED}))
    config = RunConfig.from_dict({"export": {"run_dir": str(run_dir)}, "train": {"epochs": 2}})
    with pytest.raises(Exception, match=r"interrupted run with other settings .* Resume it with: tfft fit"):
        plan_run_dir(config)
    same = RunConfig.from_dict({"export": {"run_dir": str(run_dir)}, "train": {"epochs": 3}})
    assert plan_run_dir(same).replace is False
