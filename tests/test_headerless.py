"""Headerless CSV/TSV files (AG News, TREC style) read with ``--columns``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tfft.config import DataConfig, load_config
from tfft.data import TableSpec, read_examples
from tfft.errors import ConfigError, DataError
from tfft_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def headerless(tmp_path):
    """TREC style: label first, then the text; no header row."""
    tsv = tmp_path / "trec.tsv"
    tsv.write_text(
        "DESC\tHow did serfdom develop in Russia ?\nENTY\tWhat films featured the character Popeye ?\n"
    )
    csv = tmp_path / "ag.csv"
    csv.write_text(
        '3,"Wall St. Bears Claw Back","Short-sellers, Wall Street\'s dwindling band, see green."\n'
        '4,"Carlyle Looks Toward Commercial Aerospace","Private investment firm"\n'
    )
    return {"tsv": tsv, "csv": csv}


def test_tsv_without_header_reads_every_row(headerless):
    spec = TableSpec("text", label_column="label", header=("label", "text"))
    examples = read_examples(headerless["tsv"], spec)
    assert examples.texts == [
        "How did serfdom develop in Russia ?",
        "What films featured the character Popeye ?",
    ]
    assert examples.labels == ["DESC", "ENTY"] and examples.rows == [1, 2]


def test_csv_without_header_keeps_quoting(headerless):
    spec = TableSpec("description", label_column="class", header=("class", "title", "description"))
    examples = read_examples(headerless["csv"], spec)
    assert examples.texts[0] == "Short-sellers, Wall Street's dwindling band, see green."
    assert examples.labels == ["3", "4"]


def test_wrong_field_count_names_file_row_and_counts(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a fine film\t1\na dull film\t0\textra\n")
    spec = TableSpec("text", label_column="label", header=("text", "label"))
    with pytest.raises(DataError) as error:
        read_examples(path, spec)
    assert str(error.value).startswith(
        f"{path}:2: expected 2 tab-separated fields named by --columns text,label, found 3"
    )
    path.write_text("a fine film\t1\njust text\n")
    with pytest.raises(DataError, match=rf"{path}:2: .*found 1: column `label` is missing"):
        read_examples(path, spec)


def test_columns_must_name_the_columns_read(headerless):
    spec = TableSpec("sentence", label_column="label", header=("label", "text"))
    with pytest.raises(DataError, match=r"\(--columns label,text\): no column `sentence` \(--text-column\)"):
        read_examples(headerless["tsv"], spec)


def test_a_header_row_with_columns_is_refused(tmp_path):
    path = tmp_path / "with_header.tsv"
    path.write_text("text\tlabel\ngood\t1\n")
    with pytest.raises(DataError, match=rf"{path}:1: the first row is a header .* drop --columns"):
        read_examples(path, TableSpec("text", label_column="label", header=("text", "label")))


def test_data_as_first_row_without_columns_suggests_columns(headerless):
    with pytest.raises(DataError) as error:
        read_examples(headerless["tsv"], TableSpec("text", label_column="label"))
    message = str(error.value)
    assert message.startswith(f"{headerless['tsv']}: no column `text` (--text-column).")
    assert "looks like data, not a header" in message
    assert message.endswith("--columns text,label")


def test_a_real_header_gets_no_columns_hint(tmp_path):
    path = tmp_path / "named.tsv"
    path.write_text("sentence\tlabel\ngood\t1\n")
    with pytest.raises(DataError) as error:
        read_examples(path, TableSpec("text", label_column="label"))
    assert "--columns" not in str(error.value)


def test_columns_with_json_lines_is_an_error(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "good", "label": "1"}) + "\n")
    with pytest.raises(DataError, match="JSON Lines file names them with its keys"):
        read_examples(path, TableSpec("text", label_column="label", header=("text", "label")))


def test_data_config_columns_from_flags_and_yaml(tmp_path):
    assert DataConfig(columns="label, text").header() == ("label", "text")
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("data:\n  columns: [label, text]\n  text_column: text\n")
    assert load_config(yaml_file).data.header() == ("label", "text")
    with pytest.raises(ConfigError, match="`columns` names column `text` twice"):
        DataConfig(columns="text,label,text")
    with pytest.raises(ConfigError, match="`columns` must be comma-separated column names"):
        DataConfig(columns="text,,label")


def test_tasks_that_read_header_rows_only_refuse_columns():
    from tfft.tasks import get_task

    config = load_config(None, {"model.task": "qa", "data.columns": "question,context"})
    with pytest.raises(ConfigError, match="--columns .* is not supported by --task qa"):
        get_task("qa").check_headerless(config)


def test_inspect_reads_a_headerless_file(headerless):
    result = run("inspect", headerless["tsv"], "--columns", "label,text", "--text-column", "text", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["train"]["rows"] == 2


def test_inspect_without_columns_suggests_them(headerless):
    result = run("inspect", headerless["tsv"])
    assert result.exit_code == 1
    assert "looks like data, not a header" in result.output and "--columns" in result.output


def test_fit_evaluate_predict_with_columns(tiny_bert_dir, tiny_sentiment, tmp_path):
    def without_header(name):
        path = tmp_path / f"{name}.tsv"
        lines = tiny_sentiment[name].read_text().splitlines()[1:]  # drop "sentence\tlabel"
        path.write_text("".join(f"{line.split(chr(9))[1]}\t{line.split(chr(9))[0]}\n" for line in lines))
        return path

    train, dev = without_header("train"), without_header("dev")
    common = ("--columns", "label,sentence", "--text-column", "sentence")
    result = run(
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--train",
        train,
        "--eval",
        dev,
        *common,
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
        "--json",
    )
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.stdout)
    assert fitted["eval"]["examples"] == 32
    evaluated = run("evaluate", tmp_path / "export", "--data", dev, *common, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["examples"] == 32
    texts = tmp_path / "texts.tsv"
    texts.write_text("x\tthe film was great\nx\tthe plot was awful\n")
    predicted = run("predict", tmp_path / "export", "--input", texts, "--columns", "id,sentence")
    assert predicted.exit_code == 0, predicted.output
    assert len(predicted.stdout.splitlines()) == 2
