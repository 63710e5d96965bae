"""Hostile and broken input through `tfft fit`: one-line errors, no traceback, no output left.

One row per case: the task, the file, its content and what the message must name (the
file, the line or record, the field). Data is read and checked before any model is
loaded, so each case costs milliseconds.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tfft_cli.main import cli

NESTED = "[" * 100_000 + "]" * 100_000
SQUAD_OK = {"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": []}]}


def squad(qas: list, context: str = "Paris is in France.") -> str:
    return json.dumps(
        {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
    )


def qa(question="Where is Paris?", text="France", start=12, qid="q1") -> dict:
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


TSV = ["--text-column", "sentence", "--label-column", "label"]
# (id, extra options, file name, content, fragments the one-line message must contain)
# fmt: off
CASES = [
    # --- CSV / TSV -------------------------------------------------------------------------
    ("empty-file", TSV, "t.tsv", "", [":", "empty"]),
    ("header-only", TSV, "t.tsv", "sentence\tlabel\n", ["no examples"]),
    ("ragged-tsv", TSV, "t.tsv", "sentence\tlabel\nok\t1\nstray\ttab\t1\n", [":3:", "`label`"]),
    ("ragged-csv", TSV, "t.csv", "sentence,label\nok,1\nhello, world,1\n", [":3:", "`label`"]),
    ("duplicated-column", TSV, "t.tsv", "sentence\tlabel\tsentence\nok\t1\tok\n", [":1:", "`sentence`"]),
    ("missing-column", TSV, "t.tsv", "text\tlabel\nok\t1\n", ["`sentence`", "--text-column"]),
    ("bom-crlf-bad-utf8", TSV, "t.tsv", b"\xef\xbb\xbfsentence\tlabel\r\nok\t1\r\nok\t\xff\r\n",
     [":3:", "`label`", "UTF-8"]),
    ("nul-byte", TSV, "t.tsv", "sentence\tlabel\nnu\x00l\t1\n", [":2:", "`sentence`", "NUL"]),
    ("invalid-utf8", TSV, "t.csv", b"sentence,label\ncaf\xe9,1\n", [":2:", "`sentence`"]),
    ("utf16", TSV, "t.tsv", "sentence\tlabel\nok\t1\n".encode("utf-16"), [":1:", "UTF-16"]),
    ("csv-quoting", TSV, "t.csv", 'sentence,label\nok,1\n"never closed,1\nmore,0\n', [":3:", "quoting"]),
    ("empty-text", TSV, "t.tsv", "sentence\tlabel\nok\t1\n  \t0\n", [":3:", "`sentence`", "empty"]),
    ("single-label", TSV, "t.tsv", "sentence\tlabel\nok\t1\nfine\t1\n", ["`label`", "single label"]),
    # --- JSON Lines ------------------------------------------------------------------------
    ("jsonl-truncated", TSV, "t.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b", "lab',
     [":2:", "JSON"]),
    ("jsonl-deeply-nested", TSV, "t.jsonl", '{"sentence": "a", "label": 1, "x": ' + NESTED + "}\n",
     [":1:", "nested"]),
    ("jsonl-not-object", TSV, "t.jsonl", "[1, 2]\n", [":1:", "JSON object"]),
    ("jsonl-duplicate-key", TSV, "t.jsonl", '{"sentence": "a", "sentence": "b", "label": 1}\n',
     [":1:", "`sentence`"]),
    ("jsonl-null-label", TSV, "t.jsonl", '{"sentence": "a", "label": null}\n', [":1:", "`label`"]),
    ("jsonl-labels-mix-types", TSV, "t.jsonl",
     '{"sentence": "a", "label": 1}\n{"sentence": "b", "label": "pos"}\n', [":2:", "`label`"]),
    ("jsonl-text-is-list", TSV, "t.jsonl", '{"sentence": ["a"], "label": 1}\n', [":1:", "`sentence`"]),
    # --- regression ------------------------------------------------------------------------
    ("regress-nan", ["--task", "regress", *TSV[:2], "--label-column", "score"], "t.tsv",
     "sentence\tscore\nok\t1.5\nbad\tnan\n", [":3:", "`score`"]),
    ("regress-inf", ["--task", "regress", *TSV[:2], "--label-column", "score"], "t.tsv",
     "sentence\tscore\nok\t1.5\nbad\t-inf\n", [":3:", "`score`"]),
    ("regress-not-a-number", ["--task", "regress", *TSV[:2], "--label-column", "score"], "t.tsv",
     "sentence\tscore\nok\t1.5\nbad\tfive\n", [":3:", "`score`"]),
    ("multilabel-not-binary", ["--task", "multilabel", *TSV[:2], "--label-columns", "a,b"], "t.tsv",
     "sentence\ta\tb\nok\t1\t0\nbad\tyes\t1\n", [":3:", "`a`"]),
    # --- CoNLL -----------------------------------------------------------------------------
    ("conll-no-tag", ["--task", "ner"], "t.conll", "EU\tB-ORG\nrejects\n\n", [":2:"]),
    ("conll-bad-tag", ["--task", "ner"], "t.conll", "EU\tB-ORG\nrejects\tX-VERB\n\n", [":2:", "X-VERB"]),
    ("conll-crlf-empty-tag", ["--task", "ner"], "t.conll", "EU\tB-ORG\r\nrejects\t \r\n\r\n", [":2:"]),
    ("conll-invalid-utf8", ["--task", "ner"], "t.conll", b"EU\tB-ORG\ncaf\xe9\tO\n\n", [":2:"]),
    ("ner-jsonl-length-mismatch", ["--task", "ner"], "t.jsonl",
     '{"tokens": ["EU", "rejects"], "tags": ["B-ORG"]}\n', [":1:", "tags"]),
    # --- SQuAD JSON ------------------------------------------------------------------------
    ("squad-answer-not-at-offset", ["--task", "qa"], "t.json", squad([qa(start=3)]), ["answer"]),
    ("squad-truncated", ["--task", "qa"], "t.json", squad([qa()])[:-20], ["JSON"]),
    ("squad-missing-answers", ["--task", "qa"], "t.json", squad([{"id": "q", "question": "Where?"}]),
     ["answers"]),
    ("squad-deeply-nested", ["--task", "qa"], "t.json", '{"version": "1.1", "data": ' + NESTED + "}",
     ["nested"]),
    ("squad-not-squad", ["--task", "qa"], "t.json", '{"hello": 1}', ["data"]),
]
# fmt: on


@pytest.mark.parametrize(
    "options, name, content, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_error_and_leaves_nothing(
    tmp_path, tiny_bert_dir, options, name, content, fragments
):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    result = CliRunner().invoke(
        cli,
        [
            "fit",
            "--hf-model",
            str(tiny_bert_dir),
            "--train",
            str(path),
            *options,
            "--run-dir",
            str(run_dir),
            "--export-dir",
            str(export_dir / "m"),
        ],
    )
    output = result.output.strip()
    assert result.exit_code == 1, output
    assert output.startswith("Error: ") and "\n" not in output, output
    assert "Traceback" not in output and str(path) in output, output
    for fragment in fragments:
        assert fragment in output, (fragment, output)
    assert not run_dir.exists() and not export_dir.exists()


@pytest.mark.parametrize("name", ["long.csv", "long.tsv", "long.jsonl"])
def test_a_one_megabyte_line_is_data_not_an_error(tmp_path, name):
    from tfft.data import TableSpec, read_examples

    text = "word " * 200_000  # 1 MB on one line
    if name.endswith(".jsonl"):
        content = json.dumps({"sentence": text, "label": 1}) + "\n"
    else:
        separator = "," if name.endswith(".csv") else "\t"
        content = f"sentence{separator}label\n{text}{separator}1\nshort{separator}0\n"
    path = tmp_path / name
    path.write_text(content)
    examples = read_examples(str(path), TableSpec(text_column="sentence", label_column="label"))
    assert examples.texts == [text.strip(), "short"][: len(examples)] and examples.labels[0] == "1"
