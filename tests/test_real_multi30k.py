"""Real data: English -> German on Multi30k (slow, ~26 min on 2 cores).

Runs ``examples/multi30k_translate.py`` with its defaults (a small Marian Transformer with random
weights and a SentencePiece vocabulary trained on the data, 6 epochs) and checks that training
takes sacreBLEU on multi30k/val from ~0 to at least 15.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import REPO, SHARED_DATA


@pytest.mark.slow
def test_multi30k_bleu_after_training(tmp_path):
    if not (SHARED_DATA / "multi30k" / "train.en").is_file():
        pytest.skip(f"Multi30k is not in {SHARED_DATA / 'multi30k'}")
    run_dir = tmp_path / "multi30k"
    command = [sys.executable, str(REPO / "examples" / "multi30k_translate.py"), "--run-dir", str(run_dir)]
    subprocess.run(command, check=True, cwd=REPO)
    report = json.loads((run_dir / "bleu.json").read_text())
    assert report["val_pairs"] == 1014
    assert report["untrained_bleu"] < 1.0
    assert report["trained_bleu"] >= 15.0, report
