"""Tests of tfft.data.readers: CSV/TSV/JSONL/TFDS readers, TextExamples and LabelSet."""

import json
from pathlib import Path

import pytest
from helpers import run_python

from tfft.data import LabelSet, TableSpec, TextExamples, read_examples
from tfft.errors import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

SST2 = TableSpec(text_column="sentence", label_column="label")
PAIRS = TableSpec(text_column="premise", text_pair_column="hypothesis", label_column="label")


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    """Write ``content`` (str as UTF-8, newlines untranslated) to tmp_path/name; return the path."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return str(path)


def examples(n: int) -> TextExamples:
    return TextExamples(
        texts=[f"text {i}" for i in range(n)],
        pairs=None,
        labels=[str(i % 2) for i in range(n)],
        source="mem.tsv",
        rows=list(range(2, n + 2)),
    )


# --- happy paths ---------------------------------------------------------------------------


def test_tsv_keeps_quotes_and_strips_fields(tmp_path):
    path = write(tmp_path, "train.tsv", 'sentence\tlabel\n"unbalanced quote \t1\nit\'s "fine" \t 0 \n')
    result = read_examples(path, SST2)
    assert result.texts == ['"unbalanced quote', 'it\'s "fine"']
    assert result.labels == ["1", "0"]
    assert result.pairs is None
    assert result.rows == [2, 3]
    assert result.source == path


def test_csv_quoting_multiline_record_and_row_numbers(tmp_path):
    content = 'text,label\n"hello, world",pos\n"two\nlines ""quoted""",neg\nplain,pos\n'
    result = read_examples(write(tmp_path, "train.csv", content), TableSpec(label_column="label"))
    assert result.texts == ["hello, world", 'two\nlines "quoted"', "plain"]
    assert result.labels == ["pos", "neg", "pos"]
    assert result.rows == [2, 3, 5]


def test_jsonl_values_blank_lines_and_rows(tmp_path):
    lines = [
        {"text": "a", "label": 1, "extra": [1, 2]},
        {"text": "b", "label": True},
        {"text": 7, "label": 1.0},
        {"text": "d", "label": 0.25},
        {"text": "e", "label": -3},
    ]
    content = "\n".join(json.dumps(line) for line in lines[:2]) + "\n\n  \n"
    content += "\n".join(json.dumps(line) for line in lines[2:]) + "\n"
    result = read_examples(write(tmp_path, "train.jsonl", content), TableSpec(label_column="label"))
    assert result.texts == ["a", "b", "7", "d", "e"]
    assert result.labels == ["1", "1", "1", "0.25", "-3"]
    assert result.rows == [1, 2, 5, 6, 7]
    # Strings and numbers in one label column: a typo or a merged file, not a label set.
    mixed = content + json.dumps({"text": "f", "label": "positive"}) + "\n"
    with pytest.raises(
        DataError, match=r"train\.jsonl:8: column `label` holds a string .* line 1 holds a number"
    ):
        read_examples(write(tmp_path, "train.jsonl", mixed), TableSpec(label_column="label"))


def test_pairs_with_string_labels(tmp_path):
    content = (
        "premise,hypothesis,label,idx\n"
        "A man sleeps.,Someone rests.,entailment,0\n"
        "It rains.,It is dry.,contradiction,1\n"
    )
    result = read_examples(write(tmp_path, "pairs.csv", content), PAIRS)
    assert result.texts == ["A man sleeps.", "It rains."]
    assert result.pairs == ["Someone rests.", "It is dry."]
    assert result.labels == ["entailment", "contradiction"]


def test_unlabelled_data_has_no_labels(tmp_path):
    result = read_examples(write(tmp_path, "predict.tsv", "sentence\nfirst\nsecond\n"), TableSpec("sentence"))
    assert result.labels is None and result.pairs is None
    assert result.texts == ["first", "second"]


def test_bom_and_crlf(tmp_path):
    content = "\ufeffsentence\tlabel\r\ngood film\t1\r\nbad film\t0\r\n"
    result = read_examples(write(tmp_path, "bom.tsv", content), SST2)
    assert result.texts == ["good film", "bad film"]
    assert result.labels == ["1", "0"]
    csv_result = read_examples(write(tmp_path, "bom.csv", content.replace("\t", ",")), SST2)
    assert csv_result.labels == ["1", "0"]


@pytest.mark.parametrize("name", ["data.tab", "data.TSV", "data.ndjson", "data.json", "data.csv"])
def test_format_from_extension(tmp_path, name):
    if name.endswith((".json", ".ndjson")):
        content = '{"text": "hi"}\n'
    else:
        content = "text\nhi\n"
    assert read_examples(write(tmp_path, name, content), TableSpec()).texts == ["hi"]


def test_explicit_format_overrides_extension(tmp_path):
    path = write(tmp_path, "data.txt", "text\tlabel\nhi, there\t1\n")
    assert read_examples(path, TableSpec(label_column="label", format="tsv")).texts == ["hi, there"]
    with pytest.raises(DataError, match=r"data\.txt: cannot tell the format"):
        read_examples(path, TableSpec())


def test_max_examples_stops_before_later_errors(tmp_path):
    path = write(tmp_path, "train.tsv", "sentence\tlabel\na\t1\nb\t0\n\t1\n")
    assert read_examples(path, SST2, max_examples=2).texts == ["a", "b"]
    with pytest.raises(DataError, match=r"train\.tsv:4: column `sentence` is empty"):
        read_examples(path, SST2, max_examples=3)
    with pytest.raises(ConfigError, match="max_examples"):
        read_examples(path, SST2, max_examples=0)


def test_reader_does_not_import_tfds():
    code = "import sys, tfft.data; print('tensorflow_datasets' in sys.modules, 'tensorflow' in sys.modules)"
    result = run_python(code)
    assert result.stdout.split() == ["False", "False"]


# --- malformed input -----------------------------------------------------------------------

# One row per case: (id, file name, content, spec, line, column, fragment of the message).
# fmt: off
MALFORMED = [
    ("tsv-empty-text", "train.tsv", "sentence\tlabel\nok\t1\n  \t0\n", SST2, 3, "sentence", "is empty"),
    ("tsv-empty-label", "train.tsv", "sentence\tlabel\nok\t \n", SST2, 2, "label", "is empty"),
    ("tsv-too-few", "train.tsv", "sentence\tlabel\nok\t1\nno label\n", SST2, 3, "label", "found 1"),
    ("tsv-too-many", "train.tsv", "sentence\tlabel\nstray\ttab\t1\n", SST2, 2, "label", "found 3"),
    ("tsv-nul", "train.tsv", "sentence\tlabel\nnu\x00l\t1\n", SST2, 2, "sentence", "NUL byte"),
    ("tsv-latin1", "train.tsv", b"sentence\tlabel\nok\t1\ncaf\xe9\t0\n", SST2, 3, "sentence", "byte 0xe9"),
    ("tsv-bom-crlf-latin1", "dev.tsv", b"\xef\xbb\xbfsentence\tlabel\r\nok\t1\r\nok\t\xff\r\n", SST2, 3,
     "label", "not valid UTF-8"),
    ("tsv-duplicate-header", "train.tsv", "sentence\tlabel\tsentence\nok\t1\tok\n", SST2, 1,
     "sentence", "appears twice"),
    ("csv-unclosed-quote", "train.csv", 'sentence,label\nok,1\n"never closed,1\nmore,0\n', SST2, 3,
     "sentence", "malformed CSV quoting"),
    ("csv-text-after-quote", "train.csv", 'sentence,label\nok,"1"x\n', SST2, 2,
     "label", "malformed CSV quoting"),
    ("csv-ragged", "train.csv", "sentence,label\nhello, world,1\n", SST2, 2,
     "label", "expected 2 comma-separated"),
    ("csv-crlf-empty-label", "train.csv", "sentence,label\r\nok,1\r\nok,\r\n", SST2, 3, "label", "is empty"),
    ("csv-empty-pair", "pairs.csv", "premise,hypothesis,label\na,b,1\nc,  ,0\n", PAIRS, 3,
     "hypothesis", "is empty"),
    ("jsonl-missing-key", "train.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b"}\n', SST2, 2,
     "label", "Keys found: sentence"),
    ("jsonl-null-label", "train.jsonl", '{"sentence": "a", "label": null}\n', SST2, 1, "label", "is null"),
    ("jsonl-list-text", "train.jsonl", '{"sentence": ["a"], "label": 1}\n', SST2, 1, "sentence", "is a list"),
    ("jsonl-object-text", "train.jsonl", '{"sentence": {"a": 1}, "label": 1}\n', SST2, 1,
     "sentence", "is an object"),
    ("jsonl-nan-label", "train.jsonl", '{"sentence": "a", "label": NaN}\n', SST2, 1, "label", "nan"),
    ("jsonl-duplicate-key", "train.jsonl", '{"sentence": "a", "sentence": "b", "label": 1}\n', SST2, 1,
     "sentence", "appears twice"),
    ("jsonl-escaped-nul", "train.jsonl", '{"sentence": "a\\u0000b", "label": 1}\n', SST2, 1,
     "sentence", "NUL byte"),
    ("jsonl-empty-after-blank-lines", "train.jsonl", '\n\n{"sentence": " ", "label": 1}\n', SST2, 3,
     "sentence", "is empty"),
    ("jsonl-latin1", "train.jsonl", b'{"sentence": "caf\xe9", "label": 1}\n', SST2, 1,
     "sentence", "not valid UTF-8"),
]
# fmt: on


@pytest.mark.parametrize(
    "name, content, spec, line, column, fragment",
    [case[1:] for case in MALFORMED],
    ids=[c[0] for c in MALFORMED],
)
def test_malformed_input_names_file_line_and_column(tmp_path, name, content, spec, line, column, fragment):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        read_examples(path, spec)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert f"`{column}`" in message
    assert fragment in message
    assert "\n" not in message


def test_missing_column_lists_columns_found(tmp_path):
    path = write(tmp_path, "train.tsv", "sentence\tlabel\nok\t1\n")
    with pytest.raises(DataError) as info:
        read_examples(path, TableSpec(text_column="sentense", label_column="label"))
    assert str(info.value) == f"{path}: no column `sentense` (--text-column). Columns found: sentence, label"


def test_missing_file_and_directory(tmp_path):
    missing = str(tmp_path / "nope.tsv")
    with pytest.raises(DataError) as info:
        read_examples(missing, SST2, option="--train")
    assert str(info.value) == f"No such file: {missing} (--train)"
    with pytest.raises(DataError, match="is a directory"):
        read_examples(str(tmp_path), SST2)


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("empty.tsv", "", "the file is empty"),
        ("blank.csv", "\r\n\n", "the file is empty"),
        ("header.tsv", "sentence\tlabel\n", "no examples found"),
        ("header.csv", "sentence,label\n\n\n", "no examples found"),
        ("empty.jsonl", "\n \n", "no examples found"),
    ],
)
def test_empty_file_or_header_only(tmp_path, name, content, fragment):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        read_examples(path, SST2)
    assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("[1, 2]\n", "expected a JSON object"),
        ('"just a string"\n', "expected a JSON object"),
        ('{\n  "sentence": "pretty-printed"\n}\n', "not valid JSON"),
    ],
)
def test_jsonl_line_that_is_not_an_object(tmp_path, content, fragment):
    path = write(tmp_path, "train.jsonl", content)
    with pytest.raises(DataError) as info:
        read_examples(path, SST2)
    assert str(info.value).startswith(f"{path}:1: ") and fragment in str(info.value)


def test_utf16_file(tmp_path):
    path = write(tmp_path, "utf16.tsv", "sentence\tlabel\nok\t1\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"utf16\.tsv:1: the file is UTF-16"):
        read_examples(path, SST2)


def test_table_spec_validation():
    with pytest.raises(ConfigError, match="format"):
        TableSpec(format="xml")
    with pytest.raises(ConfigError, match="text_column"):
        TableSpec(text_column="")
    with pytest.raises(ConfigError, match="name the same column"):
        TableSpec(text_column="text", label_column="text")


# --- TextExamples --------------------------------------------------------------------------


def test_take_and_select():
    data = examples(5)
    assert data.take(2).texts == ["text 0", "text 1"] and data.take(2).rows == [2, 3]
    assert len(data.take(99)) == 5
    picked = data.select([4, 0])
    assert picked.texts == ["text 4", "text 0"] and picked.labels == ["0", "0"] and picked.rows == [6, 2]
    assert picked.source == "mem.tsv"


def test_split_is_deterministic_by_seed():
    data = examples(100)
    rest, held = data.split(0.1, seed=0)
    assert (len(rest), len(held)) == (90, 10)
    assert sorted(rest.rows + held.rows) == data.rows
    assert rest.rows == sorted(rest.rows) and held.rows == sorted(held.rows)
    again_rest, again_held = data.split(0.1, seed=0)
    assert (again_rest.rows, again_held.rows) == (rest.rows, held.rows)
    assert data.split(0.1, seed=1)[1].rows != held.rows
    assert held.rows != data.rows[:10]  # shuffled, not the first rows


def test_split_holds_out_at_least_one_and_rejects_bad_fractions():
    rest, held = examples(3).split(0.01, seed=0)
    assert (len(rest), len(held)) == (2, 1)
    for fraction in (0, 1, 1.5, -0.1):
        with pytest.raises(ConfigError, match="fraction"):
            examples(10).split(fraction, seed=0)
    with pytest.raises(ConfigError, match="mem.tsv: cannot hold out"):
        examples(1).split(0.5, seed=0)


# --- LabelSet ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, names",
    [
        (["10", "2", "-1", "2", "0"], ("-1", "0", "2", "10")),
        (["positive", "negative", "positive"], ("negative", "positive")),
        (["1", "b", "10", "2"], ("1", "10", "2", "b")),  # not all integers: string order
    ],
)
def test_label_set_ordering(labels, names):
    assert LabelSet.from_labels(labels).names == names


def test_label_set_ids_and_unknown_label():
    labels = LabelSet.from_labels(["positive", "negative"])
    assert len(labels) == 2
    assert labels.ids(["positive", "negative", "positive"], "dev.tsv", [2, 3, 4]) == [1, 0, 1]
    with pytest.raises(DataError) as info:
        labels.ids(["positive", "neutral"], "dev.tsv", [16, 17])
    assert str(info.value) == (
        "dev.tsv:17: label 'neutral' in column `label` was never seen in training. "
        "Known labels: negative, positive"
    )


def test_label_set_json_round_trip():
    labels = LabelSet(["b", "a", "c"])
    assert LabelSet.from_json(json.loads(json.dumps(labels.to_json()))) == labels
    with pytest.raises(ConfigError):
        LabelSet.from_json({"labels": ["a"]})
    with pytest.raises(ConfigError, match="unique"):
        LabelSet(["a", "a"])


# --- real data -----------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is missing")
def test_real_glue_files():
    dev = read_examples(str(SHARED_DATA / "sst2" / "dev.tsv"), SST2)
    assert len(dev) == 6735
    assert LabelSet.from_labels(dev.labels).names == ("0", "1")
    rte = read_examples(
        str(SHARED_DATA / "rte" / "train.tsv"),
        TableSpec(text_column="sentence1", text_pair_column="sentence2", label_column="label"),
    )
    assert len(rte) == 2490 and len(rte.pairs) == 2490
    assert rte.rows[-1] == 2491


# --- TFDS ----------------------------------------------------------------------------------

TINY_TRAIN = [
    ("a fine film", "not_entailment", 0.5),
    ("a dull film", "entailment", 4.0),
    ("ok", "entailment", 2.0),
]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A TFDS data dir holding a tiny prepared dataset `tfft_tiny` (built offline)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    import numpy as np

    class TfftTiny(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "sentence": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=["entailment", "not_entailment"]),
                "score": np.float32,
                "tokens": tfds.features.Sequence(tfds.features.Text()),
            }
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {
                "train": self._generate_examples(TINY_TRAIN),
                "test": self._generate_examples([("unlabelled", -1, 0.0)]),
                "bad": self._generate_examples([("  ", "entailment", 0.0)]),
            }

        def _generate_examples(self, rows):
            for i, (sentence, label, score) in enumerate(rows):
                yield i, {"sentence": sentence, "label": label, "score": score, "tokens": sentence.split()}

    data_dir = tmp_path_factory.mktemp("tfds")
    TfftTiny(data_dir=str(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return str(data_dir)


def test_tfds_reads_text_and_class_label_names(tfds_dir):
    result = read_examples("tfds:tfft_tiny:train", SST2, data_dir=tfds_dir)
    assert result.source == "tfds:tfft_tiny:train"
    assert len(result) == 3 and result.rows == [1, 2, 3]
    assert sorted(zip(result.texts, result.labels, strict=True)) == sorted(
        (text, label) for text, label, _ in TINY_TRAIN
    )
    scores = read_examples(
        "tfds:tfft_tiny:train", TableSpec("sentence", label_column="score"), data_dir=tfds_dir
    )
    assert sorted(scores.labels) == ["0.5", "2", "4"]
    assert len(read_examples("tfds:tfft_tiny:train[:2]", SST2, data_dir=tfds_dir)) == 2
    assert len(read_examples("tfds:tfft_tiny:train", SST2, max_examples=1, data_dir=tfds_dir)) == 1


@pytest.mark.parametrize(
    "source, spec, fragment",
    [
        (
            "tfds:tfft_tiny:train",
            TableSpec("sentense"),
            "no column `sentense` (--text-column). Features found:",
        ),
        ("tfds:tfft_tiny:train", TableSpec("tokens"), "feature `tokens` is Sequence"),
        ("tfds:tfft_tiny:validation", SST2, "Splits found: train, test, bad"),
        ("tfds:tfft_tiny:test", SST2, "tfds:tfft_tiny:test:1: column `label` has no label"),
        ("tfds:tfft_tiny:bad", SST2, "tfds:tfft_tiny:bad:1: column `sentence` is empty."),
        ("tfds:tfft_tiny", SST2, "must look like tfds:NAME:SPLIT"),
        ("tfds:no_such_dataset_tfft:train", SST2, "no TFDS dataset named `no_such_dataset_tfft`"),
    ],
)
def test_tfds_errors(tfds_dir, source, spec, fragment):
    with pytest.raises(DataError) as info:
        read_examples(source, spec, data_dir=tfds_dir)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_tfds_not_prepared(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError) as info:
        read_examples("tfds:glue/sst2:train", SST2, data_dir=str(tmp_path))
    message = str(info.value)
    assert message.startswith("tfds:glue/sst2:train: TFDS dataset `glue/sst2` is not prepared in ")
    assert str(tmp_path) in message and "tfds build glue/sst2" in message and "TFDS_DATA_DIR" in message
