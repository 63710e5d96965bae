"""benchmarks/quality.py: its readers, contenders and tables (the runs themselves are real-data jobs)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

import pytest
from helpers import REPO


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark", REPO / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def data(quality, tmp_path, monkeypatch):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.tsv").write_text('sentence\tlabel\na "quoted" film\t1\ndull\t0\nfine\t1\n')
    (tmp_path / "conll2003").mkdir()
    (tmp_path / "conll2003" / "train.txt").write_text(
        "EU\tB-ORG\r\nrejects\tO\r\n\r\nPeter\tB-PER\r\nBlackburn\tI-PER\r\n\r\n\r\nok\tO\r\n"
    )
    monkeypatch.setattr(quality, "DATA", tmp_path)
    return tmp_path


def test_readers_take_the_first_rows_unchanged(quality, data):
    texts, labels = quality.read_sst2("train", 2)
    assert texts == ['a "quoted" film', "dull"] and labels == [1, 0]
    sentences, tags = quality.read_conll("train", None)
    assert sentences == [["EU", "rejects"], ["Peter", "Blackburn"], ["ok"]]
    assert tags == [["B-ORG", "O"], ["B-PER", "I-PER"], ["O"]]
    assert quality.read_conll("train", 1) == ([["EU", "rejects"]], [["B-ORG", "O"]])


def test_contenders_and_variants(quality):
    args = argparse.Namespace(
        contenders="tfft,torch",
        variant=["lr1e-4=--learning-rate 1e-4 --precision float32"],
        torch_variant=["torch-1e-4=1e-4"],
    )
    assert quality.contenders(args) == {
        "tfft": [],
        "torch": 5e-5,
        "lr1e-4": ["--learning-rate", "1e-4", "--precision", "float32"],
        "torch-1e-4": 1e-4,
    }
    for bad in ("torch-fast", "torch-fast=fast", "=1e-4", "torch-neg=-1e-4"):
        args.torch_variant = [bad]
        with pytest.raises(SystemExit, match="--torch-variant must be NAME=LEARNING_RATE"):
            quality.contenders(args)
    args.torch_variant = []
    args.variant = ["no-flags"]
    with pytest.raises(SystemExit, match="--variant must be"):
        quality.contenders(args)
    args.contenders, args.variant = "tfft,pytorch", []
    with pytest.raises(SystemExit, match="unknown contender 'pytorch'"):
        quality.contenders(args)


def test_tfft_runs_the_cli_on_the_same_rows(quality, data, tmp_path):
    args = argparse.Namespace(rows=300, epochs=1, dev_rows=50)
    command = quality.tfft_command("sst2", args, 43, tmp_path / "run", ["--precision", "float32"])
    assert command[1:3] == ["fit", "--hf-model"]
    joined = " ".join(command)
    assert "--max-train-examples 300" in joined and "--max-eval-examples 50" in joined
    assert "--seed 43" in joined and "--batch-size 32" in joined and joined.endswith("--precision float32")


def test_table_shows_mean_spread_and_every_seed(quality, capsys):
    rows = [
        {"task": "sst2", "contender": "torch", "seed": 42 + i, "best": b, "last": b - 0.01, "seconds": 60.0}
        for i, b in enumerate((0.80, 0.82, 0.84))
    ]
    quality.print_table("sst2", rows, ["tfft", "torch"])
    out = capsys.readouterr().out
    assert "0.8200 ± 0.0200" in out and "0.8100 ± 0.0200" in out
    assert "0.8000 0.8200 0.8400" in out and "tfft " not in out
    quality.print_table("conll", rows, ["torch"])
    assert capsys.readouterr().out == ""
