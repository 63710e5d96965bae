"""Exports that explain themselves: the model card, the saved_model_cli command it gives,
the trained columns as defaults of evaluate/predict, and predict reading stdin."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import tiny_run_config

import tfft
from tfft_cli.main import cli
from tfft_cli.output import sniff_format


@pytest.fixture(scope="module")
def exported(tiny_bert_dir, tiny_sentiment, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("card")
    settings = {
        "data.eval": tiny_sentiment["dev"],
        "train.epochs": 1,
        "train.learning_rate": 1e-3,
        "export.run_dir": tmp_path / "run",
        "export.export_dir": tmp_path / "saved_models" / "sent",
        "runtime.xla": False,
    }
    result = tfft.run_fit(tiny_run_config(tiny_bert_dir, tiny_sentiment, settings), verbose=0)
    return result.export_path


def test_every_export_has_a_model_card(exported, tiny_sentiment):
    card = (exported / "README.md").read_text()
    metadata = json.loads((exported / "assets.extra" / "tfft.json").read_text())
    assert metadata["data"]["text_column"] == "sentence" and metadata["data"]["train_examples"] == 64
    assert metadata["training"]["epochs"] == 1 and metadata["versions"]["tensorflow"].startswith("2.")
    for text in ("# classify model", "`neg`", "`pos`", "accuracy", "sentence", "learning_rate", "tensorflow"):
        assert text in card, text
    assert str(tiny_sentiment["train"]) in card
    assert "curl -s -X POST localhost:8501/v1/models/m:predict" in card
    assert "prediction_service_pb2_grpc" in card and "import tensorflow_text" in card
    assert f'tf.saved_model.load("{exported}")' in card


def test_the_saved_model_cli_command_of_the_card_works(exported):
    card = (exported / "README.md").read_text()
    block = re.search(r"```bash\n(python -c .*?saved_model_cli.*?)\n```", card, re.S).group(1)
    command = shlex.split(block.replace("\\\n", " "))
    assert command[0] == "python"
    process = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "Result for output key label:" in process.stdout and "probabilities" in process.stdout


def test_evaluate_and_predict_default_to_the_trained_columns(exported, tiny_sentiment):
    # trained with --text-column sentence: no column option needed
    result = CliRunner().invoke(
        cli, ["evaluate", str(exported), "--data", str(tiny_sentiment["dev"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["examples"] == 32


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_predict_reads_stdin(exported, fmt):
    if fmt == "tsv":
        data = "sentence\tlabel\nthe film was fun\tpos\nthe plot was bad\tneg\n"
    else:
        data = '{"sentence": "the film was fun"}\n{"sentence": "the plot was bad"}\n'
    result = CliRunner().invoke(cli, ["predict", str(exported), "--input", "-"], input=data)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["text"] for row in rows] == ["the film was fun", "the plot was bad"]
    assert all(row["label"] in ("neg", "pos") for row in rows)


def test_sniff_format():
    assert sniff_format('{"text": "a"}\n') == "jsonl"
    assert sniff_format("text\tlabel\na\t1\n") == "tsv"
    assert sniff_format("text,label\na,1\n") == "csv"


def test_label_names_name_integer_labels_in_exports_and_outputs(tiny_bert_dir, tiny_sentiment, tmp_path):
    for name in ("train", "dev"):
        text = tiny_sentiment[name].read_text().replace("\tpos\n", "\t1\n").replace("\tneg\n", "\t0\n")
        (tmp_path / f"{name}.tsv").write_text(text)
    export = tmp_path / "saved_models" / "named"
    args = [
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--train",
        tmp_path / "train.tsv",
        "--eval",
        tmp_path / "dev.tsv",
    ]
    args += ["--text-column", "sentence", "--epochs", "1", "--no-xla", "--run-dir", tmp_path / "run"]
    args += ["--label-names", "0=negative,1=positive", "--export-dir", export]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    metadata = json.loads((export / "1" / "assets.extra" / "tfft.json").read_text())
    assert metadata["labels"] == ["negative", "positive"]
    assert "`negative`" in (export / "1" / "README.md").read_text()

    predicted = CliRunner().invoke(cli, ["predict", str(export), "--text", "the film was fun"])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout.splitlines()[-1])["label"] in ("negative", "positive")
    # the raw 0/1 labels of new data are named as in training
    evaluated = CliRunner().invoke(
        cli, ["evaluate", str(export), "--data", str(tmp_path / "dev.tsv"), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["examples"] == 32


@pytest.mark.parametrize("value", ["0=negative,1", "0=a,1=a", "=x"])
def test_bad_label_names_name_the_option_and_value(value):
    from tfft.config import load_config
    from tfft.errors import ConfigError

    with pytest.raises(ConfigError, match=r"`label_names` .*Received: label_names="):
        load_config(None, {"task.label_names": value})
