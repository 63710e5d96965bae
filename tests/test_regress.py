"""Regression (``--task regress``): float targets, scaling, metrics, losses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfft.data import TableSpec, TextExamples, read_examples
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.losses import regression_loss
from tfft.tasks.regress.metrics import Pearson, average_ranks, pearson, regression_metrics, spearman
from tfft.tasks.regress.targets import TargetScaler, parse_target, parse_targets
from tfft.tasks.regress.task import Rescale, regression_output


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    return str(path)


# --- targets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, value",
    [
        ("3.8", 3.8),
        ("-1", -1.0),
        ("+.5", 0.5),
        ("2.", 2.0),
        ("1e-3", 0.001),
        ("-2.5E+2", -250.0),
        (" 4 ", 4.0),
    ],
)
def test_parse_target_accepts_decimal_numbers(raw, value):
    assert parse_target(raw, "f.tsv:2", "score") == value


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("n/a", "not a number"),
        ("", "not a number"),
        ("1_000", "not a number"),  # float() would accept it
        ("0x10", "not a number"),
        ("nan", "must be finite"),
        ("-Infinity", "must be finite"),
        ("inf", "must be finite"),
        ("1e999", "does not fit in float32"),
        ("4e38", "does not fit in float32"),
    ],
)
def test_parse_target_rejects_non_finite_and_non_numbers(raw, fragment):
    with pytest.raises(DataError) as info:
        parse_target(raw, "f.tsv:7", "score")
    message = str(info.value)
    assert message.startswith("f.tsv:7: column `score` holds ") and fragment in message


def test_parse_targets_from_one_and_several_columns(tmp_path):
    path = write(tmp_path, "train.tsv", "s1\ts2\tscore\tother\na\tb\t3.8\t-1\nc\td\t0\t2.5e1\n")
    one = read_examples(path, TableSpec("s1", "s2", label_column="score"))
    np.testing.assert_array_equal(parse_targets(one), np.array([[3.8], [0.0]], np.float32))
    assert parse_targets(one).dtype == np.float32
    both = read_examples(path, TableSpec("s1", label_columns=("score", "other")))
    assert both.labels is None and both.label_lists == [("3.8", "-1"), ("0", "2.5e1")]
    np.testing.assert_allclose(parse_targets(both), [[3.8, -1.0], [0.0, 25.0]])


@pytest.mark.parametrize(
    "name, content, spec, line, column, fragment",
    [
        (
            "train.tsv",
            "s\tscore\na\t1\nb\tabc\n",
            TableSpec("s", label_column="score"),
            3,
            "score",
            "not a number",
        ),
        ("train.csv", "s,x,y\na,1,2\nb,3,NaN\n", TableSpec("s", label_columns=("x", "y")), 3, "y", "finite"),
        ("train.csv", "s,x,y\na,1,\n", TableSpec("s", label_columns=("x", "y")), 2, "y", "is empty"),
        (
            "train.jsonl",
            '{"s": "a", "score": "inf"}\n',
            TableSpec("s", label_column="score"),
            1,
            "score",
            "finite",
        ),
        (
            "train.jsonl",
            '{"s": "a", "score": Infinity}\n',
            TableSpec("s", label_column="score"),
            1,
            "score",
            "inf",
        ),
        (
            "train.jsonl",
            '{"s": "a", "score": null}\n',
            TableSpec("s", label_column="score"),
            1,
            "score",
            "null",
        ),
    ],
)
def test_bad_targets_name_file_line_and_column(tmp_path, name, content, spec, line, column, fragment):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        parse_targets(read_examples(path, spec))
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and f"`{column}`" in message and fragment in message
    assert "\n" not in message


def test_jsonl_numbers_round_trip_as_targets(tmp_path):
    path = write(tmp_path, "t.jsonl", '{"s": "a", "y": 0.1}\n{"s": "b", "y": 3}\n{"s": "c", "y": -2.5e-7}\n')
    targets = parse_targets(read_examples(path, TableSpec("s", label_column="y")))
    np.testing.assert_array_equal(targets[:, 0], np.array([0.1, 3.0, -2.5e-7], np.float32))


def test_unlabelled_examples_have_no_targets():
    examples = TextExamples(texts=["a"], pairs=None, labels=None, source="x.tsv", rows=[2])
    with pytest.raises(DataError, match="x.tsv: these examples have no targets"):
        parse_targets(examples)


# --- target scaling ------------------------------------------------------------------------


def test_target_scaler_standardizes_and_inverts():
    targets = np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]])
    scaler = TargetScaler.fit(targets)
    assert scaler.mean == (2.0, 10.0)
    assert scaler.std == (pytest.approx(np.sqrt(8 / 3)), 1.0)  # constant target: std 1
    scaled = scaler.transform(targets)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, 0].std(), 1.0)
    np.testing.assert_allclose(scaler.inverse(scaled), targets, atol=1e-12)
    again = TargetScaler.from_json(json.loads(json.dumps(scaler.to_json())))
    assert again == scaler


def test_target_scaler_rejects_bad_values():
    with pytest.raises(ConfigError, match="positive stds"):
        TargetScaler((0.0,), (0.0,))
    with pytest.raises(ConfigError, match="one mean and one std"):
        TargetScaler((0.0, 1.0), (1.0,))
    with pytest.raises(ConfigError, match="must be"):
        TargetScaler.from_json({"mean": [1.0]})


# --- metrics -------------------------------------------------------------------------------


def test_average_ranks_and_spearman_with_ties():
    assert average_ranks(np.array([2.0, 1.0, 2.0, 2.0, 0.5])).tolist() == [4.0, 2.0, 4.0, 4.0, 1.0]
    assert average_ranks(np.array([])).tolist() == []
    # Monotone but not linear: Spearman 1, Pearson below 1.
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert pearson(x, x**3) < 0.99
    assert pearson(x, -2 * x + 1) == pytest.approx(-1.0)
    assert pearson(x, np.ones(4)) is None and spearman(np.ones(1), np.ones(1)) is None


def test_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 300).astype(float)  # many ties
    y = x + rng.normal(0, 2, 300)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, rel=1e-12)


def test_regression_metrics_known_values():
    targets = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    predictions = np.array([[1.0, 1.0], [3.0, -1.0], [5.0, 2.0]])
    metrics = regression_metrics(targets, predictions, ["a", "b"])
    assert metrics["examples"] == 3
    assert metrics["per_target"]["a"]["mse"] == pytest.approx(5 / 3)
    assert metrics["per_target"]["a"]["mae"] == pytest.approx(1.0)
    assert metrics["per_target"]["a"]["pearson"] == pytest.approx(np.corrcoef([1, 3, 5], [1, 2, 3])[0, 1])
    assert metrics["per_target"]["a"]["spearman"] == pytest.approx(1.0)
    assert metrics["per_target"]["b"]["pearson"] is None  # constant target
    assert metrics["mse"] == pytest.approx((0 + 1 + 4 + 1 + 1 + 4) / 6)
    assert metrics["mae"] == pytest.approx((0 + 1 + 2 + 1 + 1 + 2) / 6)
    assert metrics["pearson"] == pytest.approx(metrics["per_target"]["a"]["pearson"])  # mean of defined ones
    json.dumps(metrics)  # JSON-ready


def test_streaming_pearson_matches_numpy_and_ignores_filler_rows():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=[40, 2])
    guess = truth + rng.normal(scale=[0.5, 2.0], size=[40, 2])
    metric = Pearson(2)
    for start in range(0, 40, 16):  # batches of 16 with the last one padded by zero-weight junk
        part_t, part_g = truth[start : start + 16], guess[start : start + 16]
        filler = 16 - len(part_t)
        weights = np.concatenate([np.ones(len(part_t)), np.zeros(filler)])
        part_t = np.concatenate([part_t, np.full([filler, 2], 100.0)])
        part_g = np.concatenate([part_g, np.full([filler, 2], -100.0)])
        metric.update_state(part_t, part_g, sample_weight=weights)
    expected = np.mean([np.corrcoef(truth[:, i], guess[:, i])[0, 1] for i in range(2)])
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    metric.reset_state()
    assert float(metric.result()) == 0.0


# --- losses and head -----------------------------------------------------------------------


def test_mse_loss_over_real_rows_and_scaled_residuals():
    loss = regression_loss("mse")
    y = tf.constant([[1.0], [2.0], [0.0]])
    pred = tf.constant([[2.0], [4.0], [50.0]])
    weights = tf.constant([1.0, 1.0, 0.0])
    assert float(loss(y, pred, sample_weight=weights)) == pytest.approx((1 + 4) / 2)
    assert float(loss(y[:2], pred[:2])) == pytest.approx(2.5)
    scaled = regression_loss("mse", std=[2.0])
    assert float(scaled(y, pred, sample_weight=weights)) == pytest.approx((0.25 + 1) / 2)
    two = regression_loss("mse", std=[1.0, 10.0])
    value = two(tf.constant([[0.0, 0.0]]), tf.constant([[1.0, 10.0]]))
    assert float(value) == pytest.approx(1.0)  # mean over targets of standardized squares


def test_huber_loss_values():
    loss = regression_loss("huber")
    y = tf.constant([[0.0], [0.0]])
    pred = tf.constant([[0.5], [3.0]])
    assert float(loss(y, pred)) == pytest.approx((0.5 * 0.25 + (3 - 0.5)) / 2)
    with pytest.raises(ConfigError, match="must be one of mse, huber"):
        regression_loss("mae")


def test_rescale_head_outputs_in_original_scale_and_float32():
    scaler = TargetScaler((10.0, -1.0), (2.0, 0.5))
    layer = Rescale(scaler.mean, scaler.std)
    np.testing.assert_allclose(layer(tf.constant([[1.0, 2.0]])).numpy(), [[12.0, 0.0]])
    assert Rescale.from_config(layer.get_config()).mean == [10.0, -1.0]
    inputs = keras.Input([4])
    outputs = regression_output(inputs, 2, 0.0, scaler)
    model = keras.Model(inputs, outputs)
    dense = model.get_layer("regressor")
    dense.set_weights([np.zeros([4, 2]), np.array([1.0, -2.0])])
    np.testing.assert_allclose(model(np.zeros([1, 4])).numpy(), [[12.0, -2.0]])
    assert model.output.dtype == tf.float32


# --- the task end to end on a tiny model ---------------------------------------------------

GOOD = ["good", "great", "fun", "love"]
BAD = ["bad", "awful", "boring", "hate"]


@pytest.fixture(scope="module")
def tiny_scores(tmp_path_factory) -> dict:
    """Sentence pairs scored 0..5 by how many of the two texts are positive, plus a second target."""
    import random

    rng = random.Random(0)
    rows = []
    for _ in range(96):
        first, second = rng.random() < 0.5, rng.random() < 0.5
        s1 = f"the {rng.choice(['movie', 'film'])} was {rng.choice(GOOD if first else BAD)}"
        s2 = f"it was {rng.choice(GOOD if second else BAD)}"
        score = 0.5 + 2 * (first + second) + rng.uniform(-0.3, 0.3)
        rows.append((s1, s2, round(score, 3), round(10.0 - score, 3)))
    folder = tmp_path_factory.mktemp("scores")
    for name, part in (("train.tsv", rows[:64]), ("dev.tsv", rows[64:])):
        lines = ["s1\ts2\tscore\tdistance"] + ["\t".join(map(str, row)) for row in part]
        (folder / name).write_text("\n".join(lines) + "\n")
    return {"train": folder / "train.tsv", "dev": folder / "dev.tsv", "rows": rows}


def cli(*args):
    from click.testing import CliRunner

    from tfft_cli.main import cli as app

    return CliRunner().invoke(app, [str(a) for a in args])


def fit_args(backbone: list, data: dict, tmp_path: Path, *extra) -> list:
    return [
        "fit",
        "--json",
        *backbone,
        "--task",
        "regress",
        "--train",
        data["train"],
        "--eval",
        data["dev"],
        "--text-column",
        "s1",
        "--text-pair-column",
        "s2",
        "--epochs",
        "8",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-2",
        "--max-length",
        "32",
        "--no-xla",
        "--run-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "saved_models" / "scores",
        *extra,
    ]


@pytest.fixture(scope="module")
def fitted_pairs(tiny_bert_dir, tiny_scores, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("regress_cli")
    result = cli(
        *fit_args(
            ["--hf-model", tiny_bert_dir], tiny_scores, tmp_path, "--label-column", "score", "--scale-targets"
        )
    )
    assert result.exit_code == 0, result.output
    return tmp_path, json.loads(result.output.strip().splitlines()[-1])


def test_cli_fit_learns_scaled_pair_scores(fitted_pairs, tiny_scores):
    tmp_path, summary = fitted_pairs
    assert set(summary["eval"]) == {"examples", "mse", "mae", "pearson", "spearman"}
    assert summary["eval"]["examples"] == 32
    # Learnable: the score follows the sentiment words (dev variance is about 2).
    assert summary["eval"]["pearson"] > 0.8 and summary["eval"]["mse"] < 1.8, summary
    epochs = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert {"loss", "mae", "pearson", "val_loss", "val_mae", "val_pearson"} <= set(epochs[0])
    settings = json.loads((tmp_path / "run" / "task.json").read_text())["settings"]
    train_scores = np.array([row[2] for row in tiny_scores["rows"][:64]])
    assert settings["labels"] == ["score"] and settings["loss"] == "mse"
    assert settings["scaler"]["mean"] == [pytest.approx(train_scores.mean())]
    assert settings["scaler"]["std"] == [pytest.approx(train_scores.std())]
    metadata = json.loads((Path(summary["export_path"]) / "assets.extra" / "tfft.json").read_text())
    assert metadata["task"] == "regress" and metadata["settings"] == settings


def test_cli_evaluate_and_predict_in_the_original_scale(fitted_pairs, tiny_scores):
    tmp_path, summary = fitted_pairs
    export = summary["export_path"]
    result = cli(
        "evaluate",
        export,
        "--data",
        tiny_scores["dev"],
        "--text-column",
        "s1",
        "--text-pair-column",
        "s2",
        "--label-column",
        "score",
        "--json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    for key in ("mse", "mae", "pearson", "spearman"):
        assert metrics[key] == pytest.approx(summary["eval"][key], abs=1e-4)
    from tfft.tasks.regress.task import TASK

    lines = TASK.format_metrics(metrics)  # what `tfft evaluate` prints without --json
    assert lines[2] == f"pearson   {metrics['pearson']:.4f}" and len(lines) == 4
    result = cli(
        "predict",
        export,
        "--text",
        "the movie was great",
        "--text-pair",
        "it was fun",
        "--text",
        "the film was awful",
        "--text-pair",
        "it was boring",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [row["text_pair"] for row in rows] == ["it was fun", "it was boring"]
    high, low = rows[0]["score"], rows[1]["score"]
    # In the original 0..5 scale around the training mean (2.5), not standardized around 0.
    assert isinstance(high, float) and high > low and 1.5 < (high + low) / 2 < 3.5


def test_cli_several_targets_with_huber_on_a_hub_text_embedding(
    tiny_text_embedding_dir, tiny_scores, tmp_path
):
    args = fit_args(
        ["--hub-url", tiny_text_embedding_dir],
        tiny_scores,
        tmp_path,
        "--label-columns",
        "score,distance",
        "--loss",
        "huber",
    )
    result = cli(*args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    settings = json.loads((tmp_path / "run" / "task.json").read_text())["settings"]
    assert settings == {
        "labels": ["score", "distance"],
        "loss": "huber",
        "scaler": None,
        "label_columns": "score,distance",
    }
    # evaluate reads the same target columns by default
    result = cli(
        "evaluate",
        summary["export_path"],
        "--data",
        tiny_scores["dev"],
        "--text-column",
        "s1",
        "--text-pair-column",
        "s2",
        "--json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert set(metrics["per_target"]) == {"score", "distance"}
    assert metrics["mse"] == pytest.approx(summary["eval"]["mse"], rel=1e-4)
    result = cli(
        "predict", summary["export_path"], "--text", "the film was fun", "--text-pair", "it was good"
    )
    assert set(json.loads(result.output)["score"]) == {"score", "distance"}


@pytest.mark.parametrize(
    "rows, extra, message",
    [
        (["a\tb\t1.5", "c\td\tabc"], [], "train.tsv:3: column `score` holds 'abc', not a number."),
        (
            ["a\tb\t1.5", "c\td\tnan"],
            [],
            "train.tsv:3: column `score` holds 'nan'; regression targets must be finite",
        ),
        (["a\tb\t2", "c\td\t2"], [], "column `score` has the same value (2) in all 2 training rows"),
        (["a\tb\t1", "c\td\t2"], ["--label-separator", ","], "--label-separator is for --task multilabel"),
    ],
)
def test_cli_bad_targets_are_one_line_errors(tiny_bert_dir, tmp_path, rows, extra, message):
    train = tmp_path / "train.tsv"
    train.write_text("s1\ts2\tscore\n" + "\n".join(rows) + "\n")
    result = cli(
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--task",
        "regress",
        "--train",
        train,
        "--text-column",
        "s1",
        "--text-pair-column",
        "s2",
        "--label-column",
        "score",
        "--run-dir",
        tmp_path / "run",
        *extra,
    )
    assert result.exit_code == 1, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_api_export_matches_keras_for_scaled_multi_target_model(tiny_bert_dir, tmp_path):
    import tensorflow_text  # noqa: F401 - in-graph tokenizer ops for reloading exports

    import tfft
    from tfft.exported import ExportedModel

    texts = [
        "the movie was good",
        "The FILM was awful!",
        "great fun, love it",
        "boring plot...",
        "café night",
    ]
    targets = [[4.0, 10.0], [1.0, 30.0], [4.5, 12.0], [0.5, 25.0], [2.0, 20.0]]
    scaler = TargetScaler.fit(np.array(targets))
    model = tfft.build_model(
        hf_model=str(tiny_bert_dir),
        task="regress",
        label_names=["stars", "price"],
        target_scaler=scaler,
        loss="huber",
    )
    assert model.output_shape == (None, 2)
    assert model.tfft_spec.settings == {
        "labels": ["stars", "price"],
        "loss": "huber",
        "scaler": scaler.to_json(),
    }
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=tfft.loss_for(model),
        weighted_metrics=tfft.metrics_for(model),
    )
    history = model.fit(
        tfft.make_dataset(model, texts, targets, batch_size=4, training=True, seed=0), epochs=1, verbose=0
    )
    assert {"loss", "mae", "pearson"} <= set(history.history)
    expected = model.predict(tfft.make_dataset(model, texts, batch_size=4), verbose=0)
    # The scaler puts untrained outputs near the training mean, in the original scale.
    assert np.all(np.abs(expected.mean(axis=0) - scaler.mean) < 3 * np.asarray(scaler.std))
    path = tfft.export_saved_model(model, tmp_path / "m")
    loaded = tf.saved_model.load(str(path))
    served = loaded.signatures["serving_default"](text=tf.constant(texts))
    assert set(served) == {"score"}
    np.testing.assert_allclose(served["score"].numpy(), expected, atol=1e-4)
    exported = ExportedModel(path)
    rows = list(exported.task.predict_export(exported, exported.task.examples_from_cli(texts, None)))
    assert rows[0]["score"] == {
        "stars": pytest.approx(float(expected[0, 0]), abs=1e-4),
        "price": pytest.approx(float(expected[0, 1]), abs=1e-4),
    }


def test_api_arguments(tiny_bert_dir):
    import tfft

    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="regress", num_labels=1)
    assert model.tfft_spec.settings == {"labels": ["score"], "loss": "mse", "scaler": None}
    assert tfft.build_model(
        hf_model=str(tiny_bert_dir), task="regress", num_labels=3
    ).tfft_spec.label_names == ("score_0", "score_1", "score_2")
    data = tfft.make_dataset(model, ["good", "bad"], [1.5, -2], batch_size=2)
    _, targets, _ = next(iter(data))
    np.testing.assert_array_equal(targets.numpy(), [[1.5], [-2.0]])
    for labels, fragment in [
        ([1.0, float("nan")], "labels[1]: regression targets must be finite"),
        (["x", "y"], "must be numbers"),
        ([[1.0, 2.0]] * 2, "1 number(s) per example"),
    ]:
        with pytest.raises(
            DataError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
        ):
            tfft.make_dataset(model, ["good", "bad"], labels, batch_size=2)
    for kwargs, fragment in [
        (dict(num_labels=0), "at least 1"),
        (dict(num_labels=1, loss="mae"), "mse, huber"),
        (dict(num_labels=1, threshold=0.5), "threshold"),
        (dict(num_labels=2, target_scaler={"mean": [0.0], "std": [1.0]}), "1 target"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            tfft.build_model(hf_model=str(tiny_bert_dir), task="regress", **kwargs)
