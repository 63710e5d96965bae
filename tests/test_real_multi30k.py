"""Real data: English -> German on Multi30k (slow, ~30 min on 2 cores for the shared training).

Runs ``examples/multi30k_translate.py`` with its defaults (a small Marian Transformer with random
weights and a SentencePiece vocabulary trained on the data, 6 epochs, lr 7e-4, batch 32) and
``--export-dir``, the README's recipe ("Summarization and translation", "Real data"). The
figures must be within 2 BLEU of the README's (tests/readme_claims.py): greedy sacreBLEU on
all 1,014 val pairs in memory, the same through ``tfft evaluate`` on the export, and beam
search with 4 beams on the same checkpoint. The training runs once per session for both tests;
each test also runs alone (``pytest -m slow tests/test_real_multi30k.py::NAME``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SHARED_DATA, auto_report, run_example
from readme_claims import check

from tfft_cli.main import cli

pytestmark = pytest.mark.slow
MULTI30K = SHARED_DATA / "multi30k"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """The example's run folder and its bleu.json report, after training and exporting."""
    if not (MULTI30K / "train.en").is_file():
        pytest.skip(f"Multi30k is not in {MULTI30K}")
    pytest.importorskip("sentencepiece", reason="the example trains a SentencePiece vocabulary")
    root = tmp_path_factory.mktemp("multi30k")
    run_dir = root / "multi30k"
    report = run_example("multi30k_translate.py", run_dir, root / "saved_models" / "en-de", "bleu.json")
    print("multi30k", json.dumps(report))
    return run_dir, report


def test_multi30k_bleu_in_memory_and_through_the_export(trained):
    _, report = trained
    assert report["val_pairs"] == 1014 and report["train_pairs"] == 29000
    assert report["untrained_bleu"] < 1.0
    check("multi30k.bleu", report["trained_bleu"])
    val = f"{MULTI30K / 'val.en'},{MULTI30K / 'val.de'}"
    evaluated = CliRunner().invoke(
        cli, ["evaluate", report["export_path"], "--data", val, "--json"], catch_exceptions=False
    )
    assert evaluated.exit_code == 0, evaluated.output
    exported = json.loads(evaluated.output)
    print("multi30k export", {k: exported[k] for k in ("examples", "bleu")})
    assert exported["examples"] == 1014
    check("multi30k.export.bleu", exported["bleu"])


def test_multi30k_beam_search_bleu(trained):
    """``--num-beams 4`` on the run's best checkpoint (the README: "on the same checkpoint")."""
    from tfft.pipeline import load_run_model
    from tfft.tasks import get_task

    run_dir, _ = trained
    config, model = load_run_model(run_dir)
    task = get_task("translate")
    val = task.read(config.data.eval, config, option="--eval")
    generated = task.generate(
        model,
        val.sources,
        batch_size=config.train.batch_size,
        max_length=config.data.max_length,
        xla=config.runtime.xla,
        num_beams=4,
    )
    metrics = task.metrics(generated, val.targets)
    print("multi30k beam 4", {k: metrics[k] for k in ("examples", "bleu")})
    assert metrics["examples"] == 1014
    check("multi30k.beam4.bleu", metrics["bleu"])


def test_multi30k_learning_rate_auto(tmp_path):
    """The example's recipe with ``--learning-rate auto`` in place of the tuned 7e-4 (issue 17)."""
    if not (MULTI30K / "train.en").is_file():
        pytest.skip(f"Multi30k is not in {MULTI30K}")
    pytest.importorskip("sentencepiece", reason="the example trains a SentencePiece vocabulary")
    run_dir = tmp_path / "multi30k"
    report = run_example("multi30k_translate.py", run_dir, None, "bleu.json", "--learning-rate", "auto")
    auto = auto_report(run_dir, {"bleu": report["trained_bleu"]}, ("bleu",))
    check("multi30k.auto.bleu", auto["bleu"])
