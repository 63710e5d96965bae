"""Bias reports end to end on a tiny model: ``data_report.json`` from ``tfft fit`` and
``tfft evaluate --slice-column/--slice-by`` checked against per-row predictions."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from click.testing import CliRunner

from tfft_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def grouped(tiny_sentiment, tmp_path_factory):
    """The tiny sentiment data with a `group` column (a, b, c by row), one train row repeated."""
    folder = tmp_path_factory.mktemp("grouped")
    rows = tiny_sentiment["rows"]
    paths = {}
    for name, part in (("train.tsv", rows[:64] + rows[:1]), ("dev.tsv", rows[64:])):
        lines = ["sentence\tlabel\tgroup"]
        lines += [f"{text}\t{label}\t{'abc'[i % 3]}" for i, (text, label) in enumerate(part)]
        (folder / name).write_text("\n".join(lines) + "\n")
        paths[name.split(".")[0]] = folder / name
    return paths


@pytest.fixture(scope="module")
def fitted(tiny_bert_dir, grouped, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bias_fit")
    result = run(
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--train",
        grouped["train"],
        "--eval",
        grouped["dev"],
        "--text-column",
        "sentence",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--max-length",
        "8",
        "--no-xla",
        "--run-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "export",
    )
    assert result.exit_code == 0, result.output
    return tmp_path


def test_fit_writes_data_report(fitted, grouped):
    report = json.loads((fitted / "run" / "data_report.json").read_text())
    texts = [line.split("\t")[0] for line in grouped["train"].read_text().splitlines()[1:]]
    dev_texts = [line.split("\t")[0] for line in grouped["dev"].read_text().splitlines()[1:]]
    counts = Counter(texts)
    train = report["train"]
    assert train["rows"] == 65
    assert train["duplicates"]["texts"] == sum(1 for n in counts.values() if n > 1)
    assert train["duplicates"]["extra_rows"] == len(texts) - len(counts)
    first = train["duplicates"]["examples"][0]
    assert first["count"] == max(counts.values())
    assert first["rows"][0] == f"{grouped['train']}:{texts.index(first['text']) + 2}"  # header is line 1
    assert train["lengths"]["unit"] == "tokens"
    # "the movie was good": 4 words -> [CLS] + 4 pieces + [SEP] = 6 tokens (all words are in the vocab)
    assert train["lengths"]["min"] == 6
    assert train["lengths"]["truncated"] == {"rows": 0, "share": 0.0, "lower_bound": False}
    assert sum(train["labels"]["counts"].values()) == 65
    assert report["leakage"]["rows"] == sum(1 for text in dev_texts if text in counts)
    assert report["findings"][0].startswith("train: 65 rows")


def test_evaluate_slices_match_per_row_predictions(fitted, grouped):
    export = fitted / "export"
    result = run(
        "evaluate", export, "--data", grouped["dev"], "--text-column", "sentence",
        "--slice-column", "group", "--slice-by", "length", "--slice-by", "label", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    slices = metrics["slices"]
    assert slices["headline"] == "accuracy"
    assert slices["overall"]["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"])
    assert list(slices["slicings"]) == ["group", "length", "label"]

    out = fitted / "pred.jsonl"
    result = run("predict", export, "--input", grouped["dev"], "--text-column", "sentence", "--output", out)
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line)["label"] for line in out.read_text().splitlines()]
    lines = grouped["dev"].read_text().splitlines()[1:]
    gold = [line.split("\t")[1] for line in lines]
    groups = [line.split("\t")[2] for line in lines]
    by_group = defaultdict(list)
    for p, g, key in zip(predicted, gold, groups, strict=True):
        by_group[key].append(p == g)
    got = {s["key"]: s for s in slices["slicings"]["group"]["slices"]}
    assert set(got) == {"a", "b", "c"}
    overall = float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))
    for key, hits in by_group.items():
        assert got[key]["count"] == len(hits)
        assert got[key]["metrics"]["accuracy"] == pytest.approx(np.mean(hits))
        assert got[key]["gap"]["accuracy"] == pytest.approx(np.mean(hits) - overall)
        low, high = got[key]["interval"]
        assert 0 <= low <= high <= 1
    labels = {s["key"]: s["count"] for s in slices["slicings"]["label"]["slices"]}
    assert labels == {name: gold.count(name) for name in set(gold)}
    worst = slices["slicings"]["group"]["worst"]
    assert worst["accuracy"] == pytest.approx(min(np.mean(h) for h in by_group.values()))

    table = run(
        "evaluate", export, "--data", grouped["dev"], "--text-column", "sentence", "--slice-column", "group"
    )  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "by group" in table.output and "worst:" in table.output and "95% CI" in table.output


def test_missing_slice_column_names_file_and_columns(fitted, grouped):
    result = CliRunner().invoke(
        cli,
        ["evaluate", str(fitted / "export"), "--data", str(grouped["dev"]), "--text-column", "sentence",
         "--slice-column", "region"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"{grouped['dev']}: no column `region` (--slice-column)" in result.output
    assert "sentence, label, group" in result.output or "sentence" in result.output
