"""Bias reports without a model: slice metrics and bootstrap intervals against an independent
reference, slice keys, the data report's numbers on handmade files, and ``tfft inspect``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import run_python

from tfft.config import load_config
from tfft.data import TableSpec, read_examples
from tfft.errors import ConfigError, DataError
from tfft.reports.data import data_report
from tfft.reports.predictions import check_sliceable, label_keys, quantile_keys, slicings_for, word_lengths
from tfft.reports.reading import read_for_report, table_spec
from tfft.reports.slices import Bootstrap, format_slices, slice_report
from tfft_cli.main import cli


def accuracy(gold, predicted):
    return {"accuracy": float(np.mean(np.asarray(gold) == np.asarray(predicted["label"])))}


def reference_interval(hits: list[bool], resamples: int, seed: int) -> list[float]:
    """The documented rule, written out: one generator per slice, n draws per resample."""
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(resamples):
        picks = rng.integers(0, len(hits), len(hits))
        scores.append(sum(hits[i] for i in picks) / len(hits))
    return [float(np.percentile(scores, 2.5)), float(np.percentile(scores, 97.5))]


def test_slice_report_matches_a_reference_computation():
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, 200)
    predicted = np.where(rng.random(200) < 0.7, gold, rng.integers(0, 3, 200))
    groups = [["north", "south", "east"][i] for i in rng.integers(0, 3, 200)]
    report = slice_report(
        gold, {"label": predicted}, {"region": groups}, accuracy, "accuracy",
        bootstrap=Bootstrap(200, 0.95, 11),
    )  # fmt: skip
    overall = sum(int(g == p) for g, p in zip(gold, predicted, strict=True)) / 200
    assert report["overall"]["metrics"]["accuracy"] == pytest.approx(overall)
    hits_all = [bool(g == p) for g, p in zip(gold, predicted, strict=True)]
    assert report["overall"]["interval"] == pytest.approx(reference_interval(hits_all, 200, 11))
    slices = report["slicings"]["region"]["slices"]
    assert [s["key"] for s in slices] == ["east", "north", "south"]
    expected = {}
    for entry in slices:
        hits = [h for h, key in zip(hits_all, groups, strict=True) if key == entry["key"]]
        expected[entry["key"]] = sum(hits) / len(hits)
        assert entry["count"] == len(hits)
        assert entry["metrics"]["accuracy"] == pytest.approx(expected[entry["key"]])
        assert entry["gap"]["accuracy"] == pytest.approx(expected[entry["key"]] - overall)
        assert entry["interval"] == pytest.approx(reference_interval(hits, 200, 11))
    worst = min(expected, key=expected.get)
    assert report["slicings"]["region"]["worst"]["key"] == worst
    lines = format_slices(report)
    assert any(line.startswith("  worst: " + worst) for line in lines)


def test_slice_report_lower_is_better_and_undefined_metrics():
    gold = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = {"score": np.array([1.0, 2.5, 3.0, 6.0])}

    def metric(g, p):
        errors = (p["score"] - g) ** 2
        constant = len(set(g.tolist())) < 2
        return {"mse": float(errors.mean()), "pearson": None if constant else 1.0}

    report = slice_report(
        gold, predicted, {"k": ["x", "x", "y", "y"]}, metric, "mse", ["mse", "pearson"],
        bootstrap=Bootstrap(50), higher_is_better=False,
    )  # fmt: skip
    worst = report["slicings"]["k"]["worst"]
    assert worst["key"] == "y" and worst["mse"] == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="slicing `k` has 3 keys for 4 rows"):
        slice_report(gold, predicted, {"k": ["x", "x", "y"]}, metric, "mse")


def test_quantile_and_label_keys():
    # quartile cut points (numpy "lower") 2, 3, 5 -> buckets <=2, 3, 4-5, >5
    assert quantile_keys([1, 2, 3, 3, 4, 5, 8, 9], "words") == [
        "Q1 1-2 words", "Q1 1-2 words", "Q2 3-3 words", "Q2 3-3 words",
        "Q3 4-5 words", "Q3 4-5 words", "Q4 8-9 words", "Q4 8-9 words",
    ]  # fmt: skip
    assert set(quantile_keys([5, 5, 5], "words")) == {"Q1 5-5 words"}
    assert word_lengths(["a b", "c"], ["d e f", "g"]) == [5, 2]
    assert label_keys("classify", {"labels": ["neg", "pos"]}, np.array([1, 0])) == ["pos", "neg"]
    assert label_keys("multilabel", {"labels": ["a", "b"]}, np.array([[1.0, 1.0], [0.0, 0.0]])) == [
        "a+b",
        "(none)",
    ]
    assert label_keys("regress", {"labels": ["score"]}, np.array([[0.5], [4.0]]))[0].startswith("Q1 0.5")


def test_slice_columns_are_read_with_file_line_errors(tmp_path):
    path = tmp_path / "dev.jsonl"
    rows = [{"text": "a b", "label": "x", "src": "web"}, {"text": "c", "label": "y", "src": ""}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = TableSpec("text", label_column="label", extra_columns=("src", "label"))
    examples = read_examples(str(path), spec)
    assert examples.extra_values == [("web", "x"), ("", "y")]
    settings = {"labels": ["x", "y"]}
    slicings = slicings_for(examples, np.array([0, 1]), settings, "classify", ["src"], ["length"])
    assert slicings["src"] == ["web", "(empty)"]
    assert examples.select([1]).extra_values == [("", "y")]
    with pytest.raises(DataError, match=r"dev.jsonl:1: no column `region` \(--slice-column\). Keys found: "):
        read_examples(str(path), TableSpec("text", label_column="label", extra_columns=("region",)))
    tsv = tmp_path / "dev.tsv"
    tsv.write_text("text\tlabel\na\tx\n")
    with pytest.raises(DataError, match=r"dev.tsv: no column `region` .*Columns found: text, label"):
        read_examples(str(tsv), TableSpec("text", label_column="label", extra_columns=("region",)))


def test_slices_are_refused_for_tasks_without_them():
    class Ner:
        name = "ner"
        slice_metric = None

    with pytest.raises(ConfigError, match="not available for --task ner yet"):
        check_sliceable(Ner())


def write(path, header, rows):
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(row) for row in rows]) + "\n")
    return path


@pytest.fixture
def handmade(tmp_path):
    """8 pos / 2 neg (ratio 4), one text three times (one with another label), one near-empty
    text, one row of 12 words; the eval file repeats two training texts."""
    train = write(
        tmp_path / "train.tsv",
        ["sentence", "label"],
        [
            ("good film", "pos"),
            ("good film", "pos"),
            ("bad", "neg"),
            ("good film", "neg"),
            ("ok", "pos"),
            ("one two three four five six seven eight nine ten eleven twelve", "pos"),
            ("fine", "pos"),
            ("nice", "pos"),
            ("lovely", "pos"),
            ("great", "pos"),
        ],
    )
    dev = write(
        tmp_path / "dev.tsv",
        ["sentence", "label"],
        [("bad", "neg"), ("brand new", "pos"), ("good film", "pos"), ("x", "neg")],
    )
    return train, dev


def test_data_report_numbers(handmade):
    train_path, dev_path = handmade
    spec = TableSpec("sentence", label_column="label")
    report = data_report(read_examples(str(train_path), spec), read_examples(str(dev_path), spec), "classify",
                         max_length=10)  # fmt: skip
    train = report["train"]
    assert train["labels"]["counts"] == {"pos": 8, "neg": 2}
    assert train["labels"]["imbalance_ratio"] == 4.0
    dup = train["duplicates"]
    assert (dup["texts"], dup["extra_rows"], dup["conflicting_labels"]) == (1, 2, 1)
    assert dup["examples"][0]["rows"] == [f"{train_path}:2", f"{train_path}:3", f"{train_path}:5"]
    lengths = train["lengths"]
    assert lengths["unit"] == "words"
    assert (lengths["min"], lengths["median"], lengths["max"]) == (1, 1.0, 12)
    assert lengths["p95"] == pytest.approx(np.percentile([2, 2, 1, 2, 1, 12, 1, 1, 1, 1], 95))
    assert lengths["truncated"] == {"rows": 1, "share": 0.1, "lower_bound": True}
    assert train["near_empty"]["rows"] == 1 and train["near_empty"]["examples"][0]["row"] == f"{train_path}:6"
    assert report["eval"]["near_empty"]["rows"] == 1
    leak = report["leakage"]
    assert (leak["rows"], leak["share"], leak["distinct_texts"]) == (2, 0.5, 2)
    assert leak["examples"][0] == {"text": "bad", "eval": f"{dev_path}:2", "train": f"{train_path}:4"}
    findings = report["findings"]
    assert any("imbalance ratio 4.00" in line and "--class-weights auto" in line for line in findings)
    assert any(line.startswith("leakage: 2 eval rows (50.0%)") for line in findings)


def test_data_report_multilabel_columns_and_regress_targets(tmp_path):
    rows = [("t1", "1", "0"), ("t2", "1", "1"), ("t3", "1", "0")]
    path = write(tmp_path / "ml.tsv", ["text", "a", "b"], rows)
    config = load_config(None, {"model.task": "multilabel", "task.label_columns": "a,b"})
    report = data_report(read_for_report(str(path), config, "TRAIN"), None, "multilabel")
    assert report["train"]["labels"]["counts"] == {"a": 3, "b": 1}
    assert report["leakage"] is None and report["eval"] is None
    path = write(tmp_path / "reg.tsv", ["text", "label"], [("t1", "1.5"), ("t2", "3"), ("t3", "oops")])
    config = load_config(None, {"model.task": "regress"})
    with pytest.raises(DataError, match=r"reg.tsv:4: column `label` holds 'oops'"):
        data_report(read_for_report(str(path), config, "TRAIN"), None, "regress")


@pytest.mark.parametrize(
    "task, options",
    [
        ("classify", {"data.text_pair_column": "b"}),
        ("regress", {"task.label_columns": "x,y"}),
        ("regress", {}),
        ("multilabel", {"task.label_separator": "|"}),
        ("multilabel", {"task.label_columns": "x,y"}),
    ],
)
def test_inspect_reads_the_columns_its_task_reads(task, options):
    from tfft.tasks import get_task

    config = load_config(None, {"model.task": task, **options})
    assert table_spec(config) == get_task(task).table_spec(config, labelled=True)


def test_inspect_command_without_tensorflow(handmade):
    train_path, dev_path = handmade
    code = (
        "import sys; from click.testing import CliRunner; from tfft_cli.main import cli; "
        f"r = CliRunner().invoke(cli, ['inspect', {str(train_path)!r}, '--eval', {str(dev_path)!r}, "
        "'--text-column', 'sentence', '--max-length', '10']); "
        "print(r.output); print('TF', 'tensorflow' in sys.modules); sys.exit(r.exit_code)"
    )
    result = run_python(code, timeout=120)
    lines = [line for line in result.stdout.splitlines() if not line.startswith("INFO ")]
    assert lines[-1] == "TF False"
    assert lines[0] == f"train: 10 rows from {train_path}"
    assert "train: labels pos 8, neg 2; imbalance ratio 4.00" in lines[1]
    assert any("1 duplicated texts (2 extra rows, 1 of them with different labels)" in line for line in lines)
    assert any("at least 1 rows (10.0%) longer than --max-length 10" in line for line in lines)

    result = CliRunner().invoke(
        cli, ["inspect", str(train_path), "--text-column", "sentence", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert json.loads(result.output)["train"]["rows"] == 10
    result = CliRunner().invoke(cli, ["inspect", str(train_path), "--text-column", "text"])
    assert result.exit_code == 1 and "no column `text` (--text-column)" in result.output


def test_inspect_other_tasks_reports_texts_only(tmp_path):
    conll = tmp_path / "train.conll"
    conll.write_text("EU B-ORG\nrejects O\n\nPeter B-PER\n\nEU B-ORG\nrejects O\n\n")
    args = ["inspect", str(conll), "--task", "ner", "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["train"]["labels"] is None
    assert report["train"]["duplicates"]["examples"][0]["rows"] == [f"{conll}:1", f"{conll}:6"]
    assert "train: label distribution not computed for --task ner" in report["findings"]
