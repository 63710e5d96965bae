"""The command line end to end on a tiny model, and its one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from helpers import run_tfft

from tfft_cli.main import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def fit_args(tiny_bert_dir, data, tmp_path, *extra):
    return [
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--train",
        data["train"],
        "--eval",
        data["dev"],
        "--text-column",
        "sentence",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--learning-rate",
        "1e-3",
        "--no-xla",
        "--run-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "saved_models" / "sent",
        *extra,
    ]


@pytest.fixture(scope="module")
def fitted(tiny_bert_dir, tiny_sentiment, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cli_fit")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"train": {"epochs": 1, "seed": 7}, "data": {"max_length": 32}}))
    result = run(
        *fit_args(
            tiny_bert_dir,
            tiny_sentiment,
            tmp_path,
            "--config",
            config,
            "--early-stopping-patience",
            "2",
            "--json",
        )
    )
    assert result.exit_code == 0, result.output
    return tmp_path, json.loads(result.stdout)


def test_help_lists_commands_with_examples():
    result = run("--help")
    for command in ("fit", "evaluate", "predict", "export", "convert-hub"):
        assert command in result.output
    for command in ("fit", "evaluate", "predict", "export", "convert-hub"):
        assert "Example" in run(command, "--help").output


def test_fit_writes_run_folder_and_export(fitted):
    tmp_path, summary = fitted
    run_dir = tmp_path / "run"
    assert summary["export_path"] == str(tmp_path / "saved_models" / "sent" / "1")
    assert summary["eval"]["examples"] == 32
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["train"]["epochs"] == 3  # the flag wins over the file
    assert resolved["train"]["seed"] == 7  # the file wins over the default
    assert resolved["data"]["max_length"] == 32
    assert resolved["train"]["early_stopping_patience"] == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [epoch["epoch"] for epoch in metrics["epochs"]] == [1, 2, 3]
    assert {"val_accuracy", "val_macro_f1", "loss"} <= set(metrics["epochs"][0])
    assert (run_dir / "checkpoints" / "best.index").is_file()
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))
    assert json.loads((run_dir / "labels.json").read_text())["names"] == ["neg", "pos"]


def test_evaluate_and_predict_on_the_export(fitted, tiny_sentiment):
    tmp_path, summary = fitted
    result = run(
        "evaluate",
        tmp_path / "saved_models" / "sent",
        "--data",
        tiny_sentiment["dev"],
        "--text-column",
        "sentence",
        "--json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["examples"] == 32
    assert metrics["accuracy"] == pytest.approx(summary["eval"]["accuracy"], abs=1e-6)
    assert set(metrics["per_class"]) == {"neg", "pos"}

    result = run("predict", tmp_path / "run", "--text", "the movie was great", "--text", "boring")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["text"] for row in rows] == ["the movie was great", "boring"]
    for row in rows:
        assert row["label"] in ("neg", "pos")
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    out = tmp_path / "pred.jsonl"
    result = run(
        "predict",
        summary["export_path"],
        "--input",
        tiny_sentiment["dev"],
        "--text-column",
        "sentence",
        "--output",
        out,
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 32


def test_export_command_adds_a_version(fitted):
    tmp_path, _ = fitted
    result = run("export", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(str(tmp_path / "saved_models" / "sent" / "2"))


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


BAD_INPUTS = {
    "missing file": (lambda d: {"train": d / "nope.tsv"}, "No such file"),
    "missing column": (
        lambda d: {"train": write(d / "t.tsv", "text\tlabel\nfun\t1\nbad\t0\n")},
        "no column `sentence`",
    ),
    "empty text": (
        lambda d: {"train": write(d / "t.tsv", "sentence\tlabel\nfun\t1\n \t0\n")},
        "t.tsv:3: column `sentence` is empty",
    ),
    "missing label": (
        lambda d: {"train": write(d / "t.tsv", "sentence\tlabel\nfun\t1\nbad\t\n")},
        "t.tsv:3: column `label` is empty",
    ),
    "unseen eval label": (
        lambda d: {
            "train": write(d / "t.tsv", "sentence\tlabel\nfun\t1\nbad\t0\n"),
            "eval": write(d / "e.tsv", "sentence\tlabel\nok\t2\n"),
        },
        "e.tsv:2: label '2' in column `label` was never seen in training",
    ),
    "not utf-8": (
        lambda d: {"train": write(d / "t.tsv", "sentence\tlabel\ncaf\xe9\t1\n", "latin-1")},
        "t.tsv:2: column `sentence` is not valid UTF-8",
    ),
    "single label": (
        lambda d: {"train": write(d / "t.tsv", "sentence\tlabel\nfun\t1\nbad\t1\n")},
        "single label",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_error(case, tmp_path, tiny_bert_dir):
    make, message = BAD_INPUTS[case]
    paths = make(tmp_path)
    args = [
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--text-column",
        "sentence",
        "--train",
        paths["train"],
        "--run-dir",
        tmp_path / "run",
    ]
    if "eval" in paths:
        args += ["--eval", paths["eval"]]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_options_and_backbones(tmp_path, tiny_bert_dir, tiny_sentiment):
    base = ["--train", tiny_sentiment["train"], "--text-column", "sentence", "--run-dir", tmp_path / "run"]
    cases = [
        (["--hf-model", tmp_path], "config.json"),  # a folder without a model
        ([], "exactly one backbone"),
        (["--hf-model", tiny_bert_dir, "--eval-split", "1.5"], "eval_split"),
    ]
    weights_missing = tmp_path / "no_weights"
    weights_missing.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (weights_missing / name).write_bytes((tiny_bert_dir / name).read_bytes())
    cases.append((["--hf-model", weights_missing], "weights"))
    blocker = write(tmp_path / "blocker", "a file")
    cases.append(
        (["--hf-model", tiny_bert_dir, "--export-dir", blocker / "sst2"], "Cannot write the export folder")
    )
    # --task is a choice of the registered tasks: a usage error that lists them
    result = CliRunner().invoke(cli, ["fit", *map(str, base), "--task", "summarize-the-universe"])
    assert result.exit_code == 2 and "is not one of 'classify', 'regress'" in result.output, result.output
    for extra, message in cases:
        result = CliRunner().invoke(cli, ["fit", *map(str, base + extra)])
        assert result.exit_code == 1, (extra, result.output)
        assert message in result.output, (extra, result.output)
        assert "Traceback" not in result.output


def test_errors_reach_the_shell_without_traceback(tmp_path):
    process = run_tfft("evaluate", tmp_path, "--data", tmp_path / "x.tsv", timeout=120)
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith("Error: ")


def test_hub_encoder_fit_in_a_fresh_process(tiny_hub_bert, tiny_sentiment, tmp_path):
    """A new process (nothing imported beforehand) can load hub preprocessors and train."""
    process = run_tfft(
        "fit",
        "--json",
        "--hub-url",
        tiny_hub_bert.encoder_dir,
        "--hub-preprocess-url",
        tiny_hub_bert.preprocess_dir,
        "--train",
        tiny_sentiment["train"],
        "--eval-split",
        "0.25",
        "--text-column",
        "sentence",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--run-dir",
        tmp_path / "run",
        "--export-dir",
        tmp_path / "saved_models" / "hub",
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout)
    assert result["eval"]["examples"] == 16
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["runtime"]["xla"] is False  # off by default for hub backbones
    assert summary["runtime"]["precision"] == "float32"  # the SavedModel computes in float32 anyway
    assert (tmp_path / "saved_models" / "hub" / "1" / "saved_model.pb").is_file()
