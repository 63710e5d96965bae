"""Multi-label classification (``--task multilabel``): reading label lists and 0/1 columns,
targets, metrics, loss, serving selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfft.data import TableSpec, TextExamples, read_examples
from tfft.errors import ConfigError, DataError
from tfft.losses import multilabel_loss
from tfft.tasks.multilabel.labels import (
    binary_columns,
    label_names_from_lists,
    multi_hot,
    multi_hot_from_api,
    parse_binary,
)
from tfft.tasks.multilabel.metrics import MultiLabelF1, check_threshold, multilabel_metrics
from tfft.tasks.multilabel.task import select_labels

LISTS = TableSpec("text", label_column="tags", label_separator=",", allow_empty_label_list=True)
COLUMNS = TableSpec("text", label_columns=("toxic", "insult", "threat"))


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    return str(path)


# --- reading -------------------------------------------------------------------------------


def test_separated_labels_in_csv_tsv_and_jsonl(tmp_path):
    csv_path = write(tmp_path, "t.csv", 'text,tags\nfirst,"sports, politics"\nsecond,\nthird,10\n')
    result = read_examples(csv_path, LISTS)
    assert result.labels is None
    assert result.label_lists == [("sports", "politics"), (), ("10",)]
    assert result.label_columns == ("tags",)
    tsv = read_examples(
        write(tmp_path, "t.tsv", "text\ttags\na\tx|y\n"),
        TableSpec("text", label_column="tags", label_separator="|"),
    )
    assert tsv.label_lists == [("x", "y")]
    jsonl = write(
        tmp_path,
        "t.jsonl",
        '{"text": "a", "tags": ["x", "3"]}\n{"text": "b", "tags": []}\n{"text": "c", "tags": "y,z"}\n',
    )
    assert read_examples(jsonl, LISTS).label_lists == [("x", "3"), (), ("y", "z")]


def test_blank_separator_splits_on_whitespace(tmp_path):
    spec = TableSpec("text", label_column="tags", label_separator=" ")
    path = write(tmp_path, "t.tsv", "text\ttags\na\t x   y \n")
    assert read_examples(path, spec).label_lists == [("x", "y")]


def test_zero_one_columns(tmp_path):
    path = write(tmp_path, "t.csv", "text,toxic,insult,threat,other\na,1,0,0,x\nb,0,True,1.0,y\n")
    result = read_examples(path, COLUMNS)
    assert result.labels is None and result.label_columns == ("toxic", "insult", "threat")
    assert result.label_lists == [("1", "0", "0"), ("0", "True", "1.0")]
    np.testing.assert_array_equal(
        binary_columns(result, ["toxic", "insult", "threat"]), [[1, 0, 0], [0, 1, 1]]
    )
    jsonl = write(tmp_path, "t.jsonl", '{"text": "a", "toxic": true, "insult": 0, "threat": 1.0}\n')
    np.testing.assert_array_equal(
        binary_columns(read_examples(jsonl, COLUMNS), COLUMNS.label_columns), [[1, 0, 1]]
    )


# One row per case: (id, file name, content, spec, line, column, fragment of the message).
# fmt: off
MALFORMED = [
    ("empty-item", "t.csv", 'text,tags\na,x\nb,"x,,y"\n', LISTS, 3, "tags", "empty label (item 2 of 3"),
    ("trailing-separator", "t.csv", 'text,tags\nb,"x,"\n', LISTS, 2, "tags", "empty label (item 2 of 2"),
    ("duplicate", "t.tsv", "text\ttags\nb\tx,y,x\n", LISTS, 2, "tags", "lists label 'x' twice"),
    ("empty-not-allowed", "t.tsv", "text\ttags\na\tx\nb\t \n",
     TableSpec("text", label_column="tags", label_separator=","), 3, "tags", "at least one label"),
    ("json-empty-not-allowed", "t.jsonl", '{"text": "a", "tags": []}\n',
     TableSpec("text", label_column="tags", label_separator=","), 1, "tags", "at least one label"),
    ("json-null-item", "t.jsonl", '{"text": "a", "tags": ["x", null]}\n', LISTS, 1, "tags",
     "an item of the list in column `tags` is null"),
    ("json-mixed-list", "t.jsonl", '{"text": "a", "tags": ["x", 3]}\n', LISTS, 1, "tags",
     "lists strings and numbers"),
    ("json-list-then-number", "t.jsonl", '{"text": "a", "tags": ["x"]}\n{"text": "b", "tags": []}\n'
     '{"text": "c", "tags": 3}\n', LISTS, 3, "tags", "but line 1 holds a string"),
    ("json-nested-list", "t.jsonl", '{"text": "a", "tags": [["x"]]}\n', LISTS, 1, "tags", "is a list"),
    ("json-list-without-separator", "t.jsonl", '{"text": "a", "toxic": [1], "insult": 0, "threat": 0}\n',
     COLUMNS, 1, "toxic", "is a list"),
    ("zero-one-empty", "t.csv", "text,toxic,insult,threat\na,1,,0\n", COLUMNS, 2, "insult", "is empty"),
    ("zero-one-missing", "t.tsv", "text\ttoxic\tinsult\na\t1\t0\n", COLUMNS, None, "threat",
     "(--label-columns)"),
]
# fmt: on


@pytest.mark.parametrize(
    "name, content, spec, line, column, fragment", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_label_lists(tmp_path, name, content, spec, line, column, fragment):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        read_examples(path, spec)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
    assert f"`{column}`" in message and fragment in message and "\n" not in message


def test_zero_one_column_holding_yes(tmp_path):
    path = write(tmp_path, "t.csv", "text,toxic,insult,threat\na,1,0,0\nb,0,yes,0\n")
    with pytest.raises(DataError) as info:
        binary_columns(read_examples(path, COLUMNS), COLUMNS.label_columns)
    assert str(info.value) == (
        f"{path}:3: column `insult` holds 'yes'; a label column (--label-columns) must hold 0 or 1."
    )


@pytest.mark.parametrize("value", ["2", "-1", "0.5", "yes", "no", "", "01x"])
def test_parse_binary_rejects(value):
    with pytest.raises(DataError, match="must hold 0 or 1"):
        parse_binary(value, "f:2", "c")


def test_table_spec_label_options():
    with pytest.raises(ConfigError, match="not both"):
        TableSpec("t", label_column="a", label_columns=("b",))
    with pytest.raises(ConfigError, match="at least one column"):
        TableSpec("t", label_columns=())
    with pytest.raises(ConfigError, match="sequence of column names"):
        TableSpec("t", label_columns="a,b")
    with pytest.raises(ConfigError, match="name the same column"):
        TableSpec("t", label_columns=("a", "t"))
    with pytest.raises(ConfigError, match="not set"):
        TableSpec("t", label_separator=",")
    with pytest.raises(ConfigError, match="non-empty string"):
        TableSpec("t", label_column="a", label_separator="")
    assert TableSpec("t", label_columns=["a", "b"]).label_columns == ("a", "b")  # list -> tuple, hashable


def test_select_and_split_keep_label_lists():
    data = TextExamples(
        texts=[f"t{i}" for i in range(10)],
        pairs=None,
        labels=None,
        source="m.tsv",
        rows=list(range(2, 12)),
        label_lists=[(str(i),) for i in range(10)],
        label_columns=("tags",),
    )
    rest, held = data.split(0.3, seed=0)
    assert len(held) == 3 and held.label_lists == [(str(row - 2),) for row in held.rows]
    assert rest.label_columns == held.label_columns == ("tags",)
    with pytest.raises(ValueError, match="label_lists has 1 items"):
        TextExamples(texts=["a", "b"], pairs=None, labels=None, source="m", rows=[1, 2], label_lists=[()])


def test_tfds_sequence_feature_as_label_list(tmp_path_factory):
    tfds = pytest.importorskip("tensorflow_datasets")

    class TfftTags(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "text": tfds.features.Text(),
                "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=["art", "war", "sea"])),
            }
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            yield 0, {"text": "a", "tags": ["sea", "art"]}
            yield 1, {"text": "b", "tags": []}

    data_dir = str(tmp_path_factory.mktemp("tfds_tags"))
    TfftTags(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    result = read_examples("tfds:tfft_tags:train", LISTS, data_dir=data_dir)
    assert sorted(result.label_lists) == [(), ("sea", "art")]
    with pytest.raises(DataError, match="feature `tags` is Sequence"):
        read_examples("tfds:tfft_tags:train", TableSpec("text", label_column="tags"), data_dir=data_dir)


# --- targets -------------------------------------------------------------------------------


def test_label_names_and_multi_hot(tmp_path):
    train = read_examples(write(tmp_path, "t.csv", 'text,tags\na,"b,a"\nb,\nc,c\n'), LISTS)
    names = label_names_from_lists(train)
    assert names == ("a", "b", "c")
    np.testing.assert_array_equal(multi_hot(train, names), [[1, 1, 0], [0, 0, 0], [0, 0, 1]])
    numeric = read_examples(write(tmp_path, "n.csv", 'text,tags\na,"10,2"\nb,1\n'), LISTS)
    assert label_names_from_lists(numeric) == ("1", "2", "10")
    dev = read_examples(write(tmp_path, "d.csv", 'text,tags\na,a\nb,"a,z"\n'), LISTS)
    with pytest.raises(DataError) as info:
        multi_hot(dev, names)
    assert (
        str(info.value)
        == f"{dev.source}:3: label 'z' in column `tags` was never seen in training. Known labels: a, b, c"
    )
    none = read_examples(write(tmp_path, "e.csv", "text,tags\na,\n"), LISTS)
    with pytest.raises(DataError, match="lists no label in any of the 1 rows"):
        label_names_from_lists(none)


def test_binary_columns_must_match_the_model():
    examples = TextExamples(
        texts=["a"],
        pairs=None,
        labels=None,
        source="d.csv",
        rows=[2],
        label_lists=[("1", "0")],
        label_columns=("x", "y"),
    )
    with pytest.raises(DataError, match="model's labels are the columns x, z"):
        binary_columns(examples, ["x", "z"])


def test_multi_hot_from_api():
    names = ["a", "b", "c"]
    targets = multi_hot_from_api([["c", "a"], [], [0, 1, 1], np.array([1.0, 0.0, 0.0])], names)
    np.testing.assert_array_equal(targets, [[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 0, 0]])
    for bad, fragment in [
        (["q"], "not one of the model's labels"),
        ([1, 0], "needs 3 values"),
        ("a", "string"),
    ]:
        with pytest.raises(DataError, match=fragment):
            multi_hot_from_api([bad], names)


# --- metrics, loss, serving ----------------------------------------------------------------


def test_multilabel_metrics_known_values():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]])
    scores = np.array([[0.9, 0.6, 0.1], [0.5, 0.2, 0.0], [0.1, 0.1, 0.2], [0.3, 0.8, 0.1]])
    metrics = multilabel_metrics(targets, scores, ["a", "b", "c"], threshold=0.5)
    # predicted (>= 0.5): [a, b], [a], [], [b]; a: tp 2; b: tp 1, fp 1, fn 1; c: nothing
    assert metrics["per_label"]["a"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 2,
        "predicted": 2,
    }
    assert metrics["per_label"]["b"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "support": 2,
        "predicted": 2,
    }
    assert metrics["per_label"]["c"]["support"] == 0 and metrics["per_label"]["c"]["f1"] == 0.0
    assert metrics["micro_precision"] == 0.75 and metrics["micro_recall"] == 0.75
    assert metrics["micro_f1"] == pytest.approx(0.75)
    assert metrics["macro_f1"] == pytest.approx(0.75)  # c neither occurs nor is predicted: left out
    assert metrics["exact_match"] == 0.5 and metrics["examples"] == 4
    stricter = multilabel_metrics(targets, scores, ["a", "b", "c"], threshold=0.55)
    assert stricter["per_label"]["a"]["recall"] == 0.5 and stricter["threshold"] == 0.55
    json.dumps(metrics)


def test_metrics_match_sklearn_definitions_when_available():
    metrics_module = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, [200, 5])
    scores = np.clip(targets * 0.4 + rng.random([200, 5]) * 0.7, 0, 1)
    ours = multilabel_metrics(targets, scores, list("abcde"), 0.5)
    predicted = scores >= 0.5
    assert ours["micro_f1"] == pytest.approx(metrics_module.f1_score(targets, predicted, average="micro"))
    assert ours["macro_f1"] == pytest.approx(metrics_module.f1_score(targets, predicted, average="macro"))


def test_streaming_f1_matches_final_metrics_and_ignores_filler():
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 2, [30, 4]).astype(np.float32)
    targets[:, 3] = 0  # a label that never occurs
    logits = rng.normal(size=[30, 4]).astype(np.float32) + (targets - 0.5) * 2
    logits[:, 3] = -10.0  # ... and is never predicted
    threshold = 0.7
    micro, macro = MultiLabelF1(4, threshold, "micro"), MultiLabelF1(4, threshold, "macro")
    for metric in (micro, macro):
        junk = np.ones([6, 4], np.float32)
        metric.update_state(
            np.concatenate([targets, junk * 0]),
            np.concatenate([logits, junk * 10]),
            sample_weight=np.concatenate([np.ones(30), np.zeros(6)]),
        )
    expected = multilabel_metrics(targets, 1 / (1 + np.exp(-logits)), list("abcd"), threshold)
    assert float(micro.result()) == pytest.approx(expected["micro_f1"], rel=1e-6)
    assert float(macro.result()) == pytest.approx(expected["macro_f1"], rel=1e-6)
    assert MultiLabelF1.from_config(macro.get_config()).threshold == threshold
    with pytest.raises(ConfigError, match="micro or macro"):
        MultiLabelF1(2, average="weighted")


def test_loss_is_mean_binary_cross_entropy_over_real_rows():
    loss = multilabel_loss()
    targets = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    logits = tf.constant([[2.0, -1.0], [0.0, 0.0], [-50.0, -50.0]])

    def bce(y, x):
        p = 1 / (1 + np.exp(-x))
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    expected = np.mean([bce(1, 2.0), bce(0, -1.0), bce(0, 0.0), bce(1, 0.0)])
    assert float(loss(targets, logits, sample_weight=tf.constant([1.0, 1.0, 0.0]))) == pytest.approx(
        expected, rel=1e-5
    )
    assert float(loss(targets[:2], logits[:2])) == pytest.approx(expected, rel=1e-5)


def test_select_labels_orders_by_score_and_pads():
    answers = select_labels(
        tf.constant([[0.2, 0.9, 0.6], [0.1, 0.1, 0.1], [0.5, 0.5, 0.7]]), ["a", "b", "c"], 0.5
    )
    assert answers["labels"].numpy().tolist() == [[b"b", b"c", b""], [b"", b"", b""], [b"c", b"a", b"b"]]
    assert answers["label_mask"].numpy().tolist() == [[True, True, False], [False] * 3, [True] * 3]
    np.testing.assert_allclose(answers["scores"].numpy()[0], [0.2, 0.9, 0.6])


@pytest.mark.parametrize("value", [0, 1, -0.1, 1.5, True, "0.5"])
def test_threshold_must_be_between_0_and_1(value):
    with pytest.raises(ConfigError, match="threshold"):
        check_threshold(value)
    assert check_threshold(None) == 0.5 and check_threshold(0.3) == 0.3


# --- the task end to end on a tiny model ---------------------------------------------------

GOOD = ["good", "great", "fun", "love"]
BAD = ["bad", "awful", "boring", "hate"]
NEUTRAL = ["cafe", "day", "night"]
NAMES = ["film", "negative", "positive"]


@pytest.fixture(scope="module")
def tiny_tags(tmp_path_factory) -> dict:
    """Texts tagged film / positive / negative (any number of them, none for some)."""
    import random

    rng = random.Random(0)
    rows = []
    for _ in range(96):
        subject = rng.choice(["movie", "film", "plot"])
        kind = rng.choice(["good", "bad", "neutral"])
        word = rng.choice({"good": GOOD, "bad": BAD, "neutral": NEUTRAL}[kind])
        tags = (["film"] if subject in ("movie", "film") else []) + {
            "good": ["positive"],
            "bad": ["negative"],
        }.get(kind, [])
        rows.append((f"the {subject} was {word}", tags))
    folder = tmp_path_factory.mktemp("tags")
    for name, part in (("train", rows[:64]), ("dev", rows[64:])):
        lines = ["sentence\ttags"] + [f"{text}\t{'|'.join(tags)}" for text, tags in part]
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n")
        lines = ["sentence,positive,negative,film"] + [
            f"{text},{int('positive' in tags)},{int('negative' in tags)},{int('film' in tags)}"
            for text, tags in part
        ]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return {"folder": folder, "rows": rows}


def cli(*args):
    from click.testing import CliRunner

    from tfft_cli.main import cli as app

    return CliRunner().invoke(app, [str(a) for a in args])


def fit_args(backbone: list, train: Path, dev: Path, tmp_path: Path, *extra) -> list:
    return [
        "fit",
        "--json",
        *backbone,
        "--task",
        "multilabel",
        "--train",
        train,
        "--eval",
        dev,
        "--text-column",
        "sentence",
        "--epochs",
        "8",
        "--batch-size",
        "8",
        "--learning-rate",
        "2e-2",
        "--max-length",
        "32",
        "--no-xla",
        "--run-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "saved_models" / "tags",
        *extra,
    ]


@pytest.fixture(scope="module")
def fitted_lists(tiny_bert_dir, tiny_tags, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("multilabel_cli")
    folder = tiny_tags["folder"]
    args = fit_args(
        ["--hf-model", tiny_bert_dir],
        folder / "train.tsv",
        folder / "dev.tsv",
        tmp_path,
        "--label-column",
        "tags",
        "--label-separator",
        "|",
        "--threshold",
        "0.4",
    )
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return tmp_path, json.loads(result.output.strip().splitlines()[-1])


def test_cli_fit_on_label_lists(fitted_lists):
    tmp_path, summary = fitted_lists
    assert set(summary["eval"]) == {"examples", "micro_f1", "macro_f1", "exact_match"}
    assert summary["eval"]["examples"] == 32
    assert summary["eval"]["micro_f1"] > 0.75, summary  # learnable from the words
    epochs = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert {"loss", "micro_f1", "macro_f1", "val_loss", "val_micro_f1", "val_macro_f1"} <= set(epochs[0])
    settings = json.loads((tmp_path / "run" / "task.json").read_text())["settings"]
    assert settings == {"labels": NAMES, "threshold": 0.4, "label_separator": "|"}
    metadata = json.loads((Path(summary["export_path"]) / "assets.extra" / "tfft.json").read_text())
    assert metadata["task"] == "multilabel" and metadata["settings"] == settings


def test_cli_evaluate_and_predict_use_the_stored_threshold_and_format(fitted_lists, tiny_tags):
    _, summary = fitted_lists
    export = summary["export_path"]
    # No --label-separator: the one the model was trained with is used again.
    result = cli(
        "evaluate",
        export,
        "--data",
        tiny_tags["folder"] / "dev.tsv",
        "--text-column",
        "sentence",
        "--label-column",
        "tags",
        "--json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["threshold"] == 0.4 and set(metrics["per_label"]) == set(NAMES)
    for key in ("micro_f1", "macro_f1", "exact_match"):
        assert metrics[key] == pytest.approx(summary["eval"][key], abs=1e-6)
    from tfft.tasks.multilabel.task import TASK

    lines = TASK.format_metrics(metrics)
    assert lines[0] == "threshold    0.4" and len(lines) == 4 + len(NAMES)
    result = cli("predict", export, "--text", "the film was great", "--text", "the plot was cafe")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    for row in rows:
        assert set(row["scores"]) == set(NAMES)
        chosen = sorted(
            (name for name, p in row["scores"].items() if p >= 0.4), key=lambda n: -row["scores"][n]
        )
        assert row["labels"] == chosen


def test_cli_zero_one_columns_on_a_hub_text_embedding(tiny_text_embedding_dir, tiny_tags, tmp_path):
    folder = tiny_tags["folder"]
    args = fit_args(
        ["--hub-url", tiny_text_embedding_dir],
        folder / "train.csv",
        folder / "dev.csv",
        tmp_path,
        "--label-columns",
        "positive,negative,film",
    )
    result = cli(*args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    settings = json.loads((tmp_path / "run" / "task.json").read_text())["settings"]
    assert settings == {
        "labels": ["positive", "negative", "film"],
        "threshold": 0.5,
        "label_columns": "positive,negative,film",
    }
    result = cli(
        "evaluate",
        summary["export_path"],
        "--data",
        folder / "dev.csv",
        "--text-column",
        "sentence",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["micro_f1"] == pytest.approx(summary["eval"]["micro_f1"], abs=1e-6)
    output = tmp_path / "predictions.jsonl"
    args = ["--input", folder / "dev.csv", "--text-column", "sentence", "--output", output]
    result = cli("predict", summary["export_path"], *args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 32 and rows[0]["text"] == tiny_tags["rows"][64][0]
    assert set(rows[0]["scores"]) == {"positive", "negative", "film"}


def test_targets_from_either_format_for_the_same_model(tiny_tags):
    from tfft.tasks.multilabel.task import TASK

    folder = tiny_tags["folder"]
    lists = read_examples(
        str(folder / "dev.tsv"),
        TableSpec("sentence", label_column="tags", label_separator="|", allow_empty_label_list=True),
    )
    columns = read_examples(
        str(folder / "dev.csv"), TableSpec("sentence", label_columns=("positive", "negative", "film"))
    )
    settings = {"labels": NAMES, "threshold": 0.5}
    np.testing.assert_array_equal(TASK.targets(settings, lists), TASK.targets(settings, columns))
    assert TASK.targets(settings, lists).sum() == sum(len(tags) for _, tags in tiny_tags["rows"][64:])


@pytest.mark.parametrize(
    "train, extra, message",
    [
        (
            "sentence,a,b\nx,1,0\ny,0,yes\n",
            ["--label-columns", "a,b"],
            "train.csv:3: column `b` holds 'yes'; a label column (--label-columns) must hold 0 or 1.",
        ),
        ('sentence,tags\nx,a\ny,"a,,b"\n', [], "train.csv:3: column `tags` has an empty label (item 2 of 3"),
        ("sentence,tags\nx,\ny,\n", [], "column `tags` lists no label in any of the 2 rows"),
        ("sentence,a,b\nx,1,0\n", ["--label-columns", "a,b", "--label-separator", ";"], "not both"),
        ("sentence,tags\nx,a\n", ["--loss", "huber"], "does not apply to --task multilabel"),
    ],
)
def test_cli_bad_labels_are_one_line_errors(tiny_bert_dir, tmp_path, train, extra, message):
    path = tmp_path / "train.csv"
    path.write_text(train)
    result = cli(
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--task",
        "multilabel",
        "--train",
        path,
        "--text-column",
        "sentence",
        "--label-column",
        "tags",
        "--run-dir",
        tmp_path / "run",
        *extra,
    )
    assert result.exit_code == 1, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_unknown_label_in_eval_data(tiny_bert_dir, tmp_path):
    (tmp_path / "train.csv").write_text('sentence,tags\nx,a\ny,"a,b"\n')
    (tmp_path / "dev.csv").write_text('sentence,tags\nx,a\ny,"b,c"\n')
    result = cli(
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--task",
        "multilabel",
        "--train",
        tmp_path / "train.csv",
        "--eval",
        tmp_path / "dev.csv",
        "--text-column",
        "sentence",
        "--label-column",
        "tags",
        "--run-dir",
        tmp_path / "run",
    )
    assert result.exit_code == 1, result.output
    assert (
        f"{tmp_path / 'dev.csv'}:3: label 'c' in column `tags` was never seen in training. Known labels: a, b"
        in (result.output)
    )


@pytest.mark.long  # the HF-backbone export test stays in the default suite
def test_api_hub_encoder_export_matches_keras(tiny_hub_bert, tmp_path):
    import tensorflow_text  # noqa: F401 - in-graph tokenizer ops for reloading exports

    import tfft
    from tfft.keras import keras

    texts = [
        "the movie was good",
        "The FILM was awful!",
        "great fun, love it",
        "boring plot...",
        "café night",
    ]
    labels = [["film", "positive"], ["film", "negative"], ["positive"], [], [0, 0, 0]]
    model = tfft.build_model(
        hub_url=str(tiny_hub_bert.encoder_dir),
        hub_preprocess_url=str(tiny_hub_bert.preprocess_dir),
        task="multilabel",
        label_names=NAMES,
        threshold=0.45,
    )
    assert model.tfft_spec.settings == {"labels": NAMES, "threshold": 0.45}
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=tfft.loss_for(model),
        weighted_metrics=tfft.metrics_for(model),
    )
    history = model.fit(
        tfft.make_dataset(model, texts, labels, batch_size=4, training=True, seed=0), epochs=1, verbose=0
    )
    assert {"loss", "micro_f1", "macro_f1"} <= set(history.history)
    scores = tf.sigmoid(model.predict(tfft.make_dataset(model, texts, batch_size=4), verbose=0)).numpy()
    path = tfft.export_saved_model(model, tmp_path / "m")
    served = tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(texts))
    assert set(served) == {"labels", "label_mask", "scores"}
    np.testing.assert_allclose(served["scores"].numpy(), scores, atol=1e-4)
    for row in range(len(texts)):
        mask = served["label_mask"].numpy()[row]
        got = [label.decode() for label in served["labels"].numpy()[row][mask]]
        assert sorted(got) == sorted(name for name, p in zip(NAMES, scores[row]) if p >= 0.45)
        assert all(label == b"" for label in served["labels"].numpy()[row][~mask])


def test_api_arguments(tiny_bert_dir):
    import tfft

    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="multilabel", num_labels=2)
    assert model.tfft_spec.settings == {"labels": ["0", "1"], "threshold": 0.5}
    for kwargs, fragment in [
        (dict(num_labels=0), "at least 1"),
        (dict(num_labels=2, threshold=1.0), "threshold"),
        (dict(num_labels=2, loss="mse"), "loss"),
        (dict(label_names=["a", "a"]), "unique"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            tfft.build_model(hf_model=str(tiny_bert_dir), task="multilabel", **kwargs)
    with pytest.raises(DataError, match="not one of the model's labels"):
        tfft.make_dataset(model, ["good"], [["2"]], batch_size=1)
