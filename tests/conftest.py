"""Shared fixtures: tiny random Hugging Face models built on the spot; no network."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import write_tiny_bert, write_tiny_text_embedding

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def no_dropout_bert(tiny_bert_dir, tmp_path_factory) -> Path:
    """The tiny BERT without dropout, so two forward passes (or micro-batches and one big batch) agree."""
    folder = tmp_path_factory.mktemp("bert_no_dropout") / "bert"
    shutil.copytree(tiny_bert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def tiny_sentiment(tmp_path_factory) -> dict:
    """A small learnable sentiment task as TSV files."""
    import random

    rng = random.Random(0)
    good = ["good", "great", "fun", "love"]
    bad = ["bad", "awful", "boring", "hate"]
    rows = []
    for _ in range(96):
        positive = rng.random() < 0.5
        word = rng.choice(good if positive else bad)
        rows.append((f"the {rng.choice(['movie', 'film', 'plot'])} was {word}", "pos" if positive else "neg"))
    folder = tmp_path_factory.mktemp("sentiment")
    for name, part in (("train.tsv", rows[:64]), ("dev.tsv", rows[64:])):
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in part]
        (folder / name).write_text("\n".join(lines) + "\n")
    return {"train": folder / "train.tsv", "dev": folder / "dev.tsv", "rows": rows}


@pytest.fixture(scope="session")
def tiny_text_embedding_dir(tmp_path_factory) -> Path:
    return write_tiny_text_embedding(tmp_path_factory.mktemp("hub_text") / "embedding")


@pytest.fixture(scope="session")
def tiny_hub_bert(tmp_path_factory, tiny_bert_dir):
    """The tiny BERT converted to TF Hub encoder + preprocessor SavedModels."""
    from tfft.backbones.hub_convert import convert_hf_to_hub

    return convert_hf_to_hub(tiny_bert_dir, tmp_path_factory.mktemp("hub") / "tiny", seq_length=32)
