"""Tests of named-entity recognition: CoNLL/JSONL reading, alignment, entities, metrics."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import SHARED_DATA, tiny_vocab, write_tiny_roberta

from tfft.config import RunConfig
from tfft.data.conll import (
    TaggedExamples,
    detect_scheme,
    read_conll,
    read_tagged,
    sort_tags,
    split_words,
    tag_ids,
)
from tfft.errors import ConfigError, DataError
from tfft.tasks.ner.entities import chunk_spans, chunks, entities, tag_tables
from tfft.tasks.ner.metrics import EntityF1, class_weights, entity_metrics
from tfft.tasks.ner.task import TASK
from tfft.tasks.ner.words import IGNORE, pack_words, word_predictions
from tfft.words import split_words as split_words_graph

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
BIOES = ["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"]


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return str(path)


# --- reading --------------------------------------------------------------------------------------


def test_conll_tabs_crlf_docstart_and_rows(tmp_path):
    content = (
        "\ufeff-DOCSTART-\tO\r\n\r\nEU\tB-ORG\r\nrejects\tO\r\n\r\n\r\nPeter\tB-PER\r\nBlackburn\tI-PER\r\n"
    )
    examples = read_conll(write(tmp_path, "train.txt", content))
    assert examples.words == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert examples.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert examples.rows == [3, 7]
    assert examples.texts == ["EU rejects", "Peter Blackburn"]
    assert examples.spans[1] == [(0, 5), (6, 15)]
    assert examples.where(1, 1) == f"{examples.source}:8"


def test_conll_multi_column_spaces_and_tag_column(tmp_path):
    content = (
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"
        "-DOCSTART- -X- -X- O\nGerman JJ B-NP B-MISC\n"
    )
    path = write(tmp_path, "train.conll", content)
    assert read_conll(path).tags == [["B-ORG", "O"], ["B-MISC"]]
    assert read_conll(path, tag_column=2).tags == [["B-NP", "B-VP"], ["B-NP"]]
    assert read_conll(path, labelled=False).tags is None
    assert read_conll(path, labelled=False).words == [["EU", "rejects"], ["German"]]
    assert len(read_conll(path, max_examples=1)) == 1


def test_jsonl_tokens_and_tags(tmp_path):
    lines = [
        json.dumps({"tokens": ["Hello", "Paris"], "tags": ["O", "B-LOC"]}),
        "",
        json.dumps({"words": ["Bob"], "labels": ["S-PER"], "id": 3}),
    ]
    path = write(tmp_path, "data.jsonl", "\n".join(lines[:2]) + "\n")
    examples = read_tagged(path)
    assert examples.words == [["Hello", "Paris"]] and examples.tags == [["O", "B-LOC"]]
    assert examples.rows == [1] and examples.where(0, 1) == f"{path}:1: word 2"
    other = read_tagged(write(tmp_path, "o.jsonl", lines[2]), tokens_field="words", tags_field="labels")
    assert other.tags == [["S-PER"]]


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("a.txt", "EU\tB-ORG\nrejects\n", {}, r"a.txt:2: no tag after the word 'rejects'"),
        ("a.txt", "EU\tX-ORG\n", {}, r"a.txt:1: tag \(column 2\) 'X-ORG' has an unknown prefix 'X'"),
        ("a.txt", "EU\tB-\n", {}, r"a.txt:1: tag \(column 2\) 'B-' has no entity type"),
        ("a.txt", "EU\tORG\n", {}, r"a.txt:1: tag \(column 2\) 'ORG' is neither O nor PREFIX-TYPE"),
        ("a.txt", "EU NNP B-ORG\nx O\n", {"tag_column": 2}, r"a.txt:2: no tag column 3 \(--tag-column\)"),
        ("a.txt", "EU\tB-ORG\t\n", {}, r"a.txt:1: the tag \(column 3\) is empty"),
        ("a.txt", "\n-DOCSTART-\n\n", {}, r"a.txt: no sentences found"),
        ("a.txt", b"EU\tB-ORG\n\xff\tO\n", {}, r"a.txt:2: the line is not valid UTF-8 \(byte 0xff\)"),
        (
            "a.jsonl",
            '{"tokens": ["a", "b"], "tags": ["O"]}\n',
            {},
            r"a.jsonl:1: field `tags` has 1 tags but `tokens` has 2 words",
        ),
        ("a.jsonl", '{"tokens": ["a"], "tags": ["Q-X"]}\n', {}, r"a.jsonl:1: field `tags` item 1, tag 'Q-X'"),
        ("a.jsonl", '{"tokens": "a b", "tags": ["O"]}\n', {}, r"a.jsonl:1: field `tokens` must be a list"),
        (
            "a.jsonl",
            '{"tokens": ["a", 3], "tags": ["O", "O"]}\n',
            {},
            r"a.jsonl:1: field `tokens` item 2 is 3",
        ),
        (
            "a.jsonl",
            '{"tokens": ["a", " "], "tags": ["O", "O"]}\n',
            {},
            r"a.jsonl:1: field `tokens` item 2 is empty",
        ),
        ("a.jsonl", '\n{"text": "a"}\n', {}, r"a.jsonl:2: no field `tokens`. Keys found: text"),
        ("a.jsonl", "[1]\n", {}, r"a.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_input_names_file_line_and_field(tmp_path, name, content, kwargs, message):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=message) as error:
        read_tagged(path, **kwargs)
    assert "\n" not in str(error.value)


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(DataError, match=r"No such file: .*nope.txt \(--train\)"):
        read_tagged(tmp_path / "nope.txt", option="--train")
    path = write(tmp_path, "a.txt", "EU\tO\n")
    with pytest.raises(ConfigError, match="max_examples"):
        read_tagged(path, max_examples=0)
    with pytest.raises(DataError, match="the word column"):
        read_tagged(path, tag_column=0)


def test_unknown_tag_at_evaluation_names_the_line(tmp_path):
    examples = read_conll(write(tmp_path, "dev.txt", "a\tO\n\nb\tO\nc\tB-FOO\n"))
    assert tag_ids(examples.select([0]), TAGS) == [[0]]
    with pytest.raises(
        DataError, match=r"dev.txt:4: tag 'B-FOO' was never seen in training. Known tags: O, B-LOC"
    ):
        tag_ids(examples, TAGS)


def test_scheme_detection_and_tag_order():
    assert detect_scheme([["B-PER", "I-PER", "O", "B-LOC"]]) == "IOB2"
    assert detect_scheme([["O", "I-PER", "I-PER", "B-PER"]]) == "IOB1"
    assert detect_scheme([["I-PER", "I-LOC"]]) == "IOB1"
    assert detect_scheme([["B-PER", "E-PER", "S-LOC"]]) == "BIOES"
    assert detect_scheme([["O"]]) == "IOB2"
    assert sort_tags(["I-PER", "O", "B-PER", "S-LOC", "E-PER"]) == ["O", "S-LOC", "B-PER", "I-PER", "E-PER"]


def test_select_take_split_are_deterministic():
    words = [[f"w{i}", "x"] for i in range(10)]
    examples = TaggedExamples(words=words, tags=[["O", "O"]] * 10, source="m", rows=list(range(1, 30, 3)))
    rest, held = examples.split(0.3, seed=1)
    assert len(held) == 3 and len(rest) == 7
    assert sorted(rest.rows + held.rows) == examples.rows and rest.rows == sorted(rest.rows)
    again_rest, again_held = examples.split(0.3, seed=1)
    assert held.words == again_held.words and rest.texts == again_rest.texts
    assert examples.take(2).words == words[:2]
    with pytest.raises(ConfigError, match="between 0 and 1"):
        examples.split(1.0, seed=0)
    with pytest.raises(ConfigError, match="cannot hold out"):
        examples.take(1).split(0.5, seed=0)


@pytest.mark.skipif(not (SHARED_DATA / "conll2003").is_dir(), reason="needs ../shared/data/conll2003")
def test_real_conll2003_reads():
    examples = read_conll(SHARED_DATA / "conll2003" / "valid.txt")
    assert len(examples) == 3250
    assert detect_scheme(examples.tags) == "IOB2"
    assert sort_tags(examples.tag_counts()) == [
        "O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"
    ]  # fmt: skip


# --- raw text -> words ----------------------------------------------------------------------------

VARIED = [
    "Hello, New York!",
    'U.S. troops in Bône, Côte d\'Ivoire — 1996-08-22 ("quoted")',
    "",
    "   \t ",
    "a\u200bb \u200b c\ufffd",
    "東京は日本の首都です。Tokyo",
    "tab\tsep\r\nline  x\u3000y\xa0z",
    "emoji 😀 ok 👍🏽!",
    "nul\x00in\x01side",
    "$5+3=8 ~ `q` |p| ^_^ <a href>",
    "Zoë's naïve café; ß ﬁ ΑΘΗΝΑ",
]


def test_split_words_keeps_offsets():
    assert split_words("Hello, New York!") == [
        ("Hello", 0, 5), (",", 5, 6), ("New", 7, 10), ("York", 11, 15), ("!", 15, 16)
    ]  # fmt: skip
    for text in VARIED:
        for word, start, end in split_words(text):
            assert text[start:end] == word and word.strip() == word
    assert [w for w, _, _ in split_words("a\u200bb \u200b c")] == ["a\u200bb", "c"]


def test_split_words_graph_matches_python():
    # Every character of the Basic Multilingual Plane (where Python's and RE2's Unicode
    # tables agree) between letters, plus varied text.
    chars = [chr(c) for c in range(1, 0x10000) if not 0xD800 <= c <= 0xDFFF]
    texts = VARIED + [" ".join(f"a{c}b" for c in chars[i : i + 2000]) for i in range(0, len(chars), 2000)]
    words, starts, ends = split_words_graph(tf.constant(texts))
    for text, w, s, e in zip(texts, words.to_list(), starts.to_list(), ends.to_list(), strict=True):
        got = [
            (word.decode("utf-8").replace("\x01", "\x00"), a, b) for word, a, b in zip(w, s, e, strict=True)
        ]
        want = [(word.replace("\x01", "\x00"), a, b) for word, a, b in split_words(text)]
        assert got == want, text[:80]


# --- entities and metrics -------------------------------------------------------------------------


def random_tags(rng: random.Random, names: list[str], count: int) -> list[list[str]]:
    return [[rng.choice(names) for _ in range(rng.randint(0, 12))] for _ in range(count)]


def test_chunks_follow_seqeval_for_every_scheme():
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(0)
    for tags in random_tags(rng, BIOES, 2000):
        assert chunks(tags) == get_entities(tags)
    assert chunks(["B-PER", None, "I-PER"]) == [("PER", 0, 0), ("PER", 2, 2)]


def test_graph_chunks_match_python():
    rng = random.Random(1)
    ids = [[BIOES.index(t) for t in tags] for tags in random_tags(rng, BIOES, 300)]
    prefixes, kinds, types = tag_tables(BIOES)
    ragged = tf.ragged.constant(ids, dtype=tf.int32, ragged_rank=1)
    prefix = tf.ragged.map_flat_values(tf.gather, tf.constant(prefixes), ragged).to_tensor(0)
    kind = tf.ragged.map_flat_values(tf.gather, tf.constant(kinds), ragged).to_tensor(-1)
    starts, last = (t.numpy() for t in chunk_spans(prefix, kind))
    for row, sentence in enumerate(ids):
        got = [(types[kind.numpy()[row, j]], j, int(last[row, j])) for j in np.flatnonzero(starts[row])]
        assert got == chunks([BIOES[t] for t in sentence])


def test_entity_metrics_are_seqeval_figures():
    from seqeval.metrics import f1_score

    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-PER"]]
    metrics = entity_metrics(true, pred)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(f1_score(true, pred))
    assert metrics["per_type"]["LOC"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert metrics["per_type"]["PER"]["precision"] == 0.5
    assert metrics["entities"] == 3 and metrics["token_accuracy"] == pytest.approx(4 / 6)
    empty = entity_metrics([["O"]], [["O"]])
    assert empty["f1"] == 0.0 and empty["per_type"] == {}


def test_keras_entity_f1_equals_seqeval():
    from seqeval.metrics import f1_score

    rng = random.Random(2)
    true = random_tags(rng, BIOES, 200)
    pred = [[rng.choice(BIOES) for _ in tags] for tags in true]
    # Word tags on the first piece of each word; other pieces -100, as the dataset lays them out.
    labels = [[v for t in tags for v in (BIOES.index(t), IGNORE)] for tags in true]
    guesses = [[v for t in tags for v in (BIOES.index(t), 0)] for tags in pred]
    y_true = tf.ragged.constant(labels, dtype=tf.int32, ragged_rank=1).to_tensor(IGNORE)
    logits = tf.one_hot(tf.ragged.constant(guesses, dtype=tf.int32, ragged_rank=1).to_tensor(0), len(BIOES))
    metric = EntityF1(BIOES)
    metric.update_state(y_true[:100], logits[:100])
    metric.update_state(y_true[100:], logits[100:])
    assert float(metric.result()) == pytest.approx(f1_score(true, pred), abs=1e-6)


def test_entities_have_character_offsets():
    text = "Yesterday, Angela Merkel visited New York."
    examples = TaggedExamples.from_texts([text], source="--text")
    words = examples.words[0]
    assert words == ["Yesterday", ",", "Angela", "Merkel", "visited", "New", "York", "."]
    tags = ["O", "O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC", None]
    scores = [1.0, 1.0, 0.9, 0.7, 1.0, 0.8, 0.6, 0.0]
    found = entities(tags, scores, text, examples.spans[0])
    assert found == [
        {"text": "Angela Merkel", "type": "PER", "start": 11, "end": 24, "score": pytest.approx(0.8)},
        {"text": "New York", "type": "LOC", "start": 33, "end": 41, "score": pytest.approx(0.7)},
    ]
    for entity in found:
        assert text[entity["start"] : entity["end"]] == entity["text"]


def test_class_weights_inverse_frequency():
    weights = class_weights({"O": 80, "B-PER": 15, "I-PER": 5}, ["O", "B-PER", "I-PER", "B-LOC"])
    assert weights.tolist() == pytest.approx([100 / (4 * 80), 100 / (4 * 15), 100 / (4 * 5), 1.0])


# --- alignment ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """The tiny vocabulary as a Hugging Face tokenizer and as an in-graph WordPiece encoder."""
    import transformers

    from tfft.tokenization import GraphTextEncoder, HFTextEncoder, SequenceTemplate, WordPieceGraphTokenizer

    folder = tmp_path_factory.mktemp("vocab")
    vocab = tiny_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    hf = HFTextEncoder(transformers.BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True))
    template = SequenceTemplate.bert(vocab.index("[CLS]"), vocab.index("[SEP]"), vocab.index("[PAD]"))
    graph = GraphTextEncoder(WordPieceGraphTokenizer(vocab, lower_case=True), template)
    return {"hf": hf, "graph": graph}


@pytest.mark.parametrize("kind", ["hf", "graph"])
def test_first_piece_carries_the_label(encoders, kind):
    encoder = encoders[kind]
    sentences = [["the", "movie", "xyz", "was"], ["great"]]
    packed = pack_words(encoder, sentences, max_length=32)
    pieces = encoder.tokenize_words(["the", "movie", "xyz", "was", "great"])
    assert [len(p) for p in pieces] == [1, 1, 3, 1, 1]  # xyz -> x ##y ##z
    cls_id, sep_id = encoder.template.prefix[0], encoder.template.suffix[0]
    assert packed.input_ids[0].tolist() == [cls_id, *np.concatenate(pieces[:4]).tolist(), sep_id]
    assert packed.positions[0].tolist() == [1, 2, 3, 6]
    assert packed.truncated.tolist() == [0, 0]
    labels, weights = packed.token_labels(
        [[0, 3, 4, 0], [1]], tag_weights=np.array([0.5, 2, 1, 1, 3], np.float32)
    )
    assert labels[0].tolist() == [-100, 0, 3, 4, -100, -100, 0, -100]
    assert weights[0].tolist() == [0, 0.5, 1, 3, 0, 0, 0.5, 0]
    assert labels[1].tolist() == [-100, 1, -100]


def test_truncation_counts_cut_words(encoders):
    encoder = encoders["hf"]
    # Budget 6 pieces: "the"(1) "xyz"(3) "movie"(1) "abc"(3: first piece fits at 5) "was"(cut) "fun"(cut)
    packed = pack_words(encoder, [["the", "xyz", "movie", "abc", "was", "fun"]], max_length=8)
    assert len(packed.input_ids[0]) == 8
    assert packed.positions[0].tolist() == [1, 2, 5, 6, -1, -1]
    assert packed.truncated.tolist() == [2]
    tag_ids_, scores = word_predictions(np.eye(8, 5)[None][0], packed.positions[0])
    assert tag_ids_.tolist()[-2:] == [-1, -1] and scores.tolist()[-2:] == [0.0, 0.0]
    with pytest.raises(ConfigError, match="max_length"):
        pack_words(encoder, [["the"]], max_length=2)


def test_hf_and_graph_encoders_pack_alike(encoders):
    sentences = [split_words(text) for text in VARIED + ["The movie was GREAT, fun & boring!"]]
    words = [[w for w, _, _ in s] for s in sentences]
    hf = pack_words(encoders["hf"], words, max_length=24)
    graph = pack_words(encoders["graph"], words, max_length=24)
    for a, b in zip(hf.input_ids, graph.input_ids, strict=True):
        assert a.tolist() == b.tolist()
    assert [p.tolist() for p in hf.positions] == [p.tolist() for p in graph.positions]
    assert hf.truncated.tolist() == graph.truncated.tolist()


# --- the task: training, export, command line -----------------------------------------------------

PEOPLE = ["bob", "alice", "carol"]
PLACES = ["paris", "london", "rome"]
FILLER = ["the", "movie", "was", "good", "in", "day"]


def synthetic_sentences(count: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """A learnable tagging task: two-word people, one-word places, filler words."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words, tags = [], []
        for _ in range(rng.randint(2, 6)):
            draw = rng.random()
            if draw < 0.2:
                words += [rng.choice(PEOPLE), rng.choice(PEOPLE)]
                tags += ["B-PER", "I-PER"]
            elif draw < 0.4:
                words.append(rng.choice(PLACES))
                tags.append("B-LOC")
            else:
                words.append(rng.choice(FILLER))
                tags.append("O")
        sentences.append((words, tags))
    return sentences


def conll_text(sentences, extra_columns: bool = False) -> str:
    blocks = []
    for words, tags in sentences:
        if extra_columns:
            blocks.append("".join(f"{w} NN {t} X\n" for w, t in zip(words, tags, strict=True)))
        else:
            blocks.append("".join(f"{w}\t{t}\n" for w, t in zip(words, tags, strict=True)))
    return "-DOCSTART-\tO\n\n" + "\n".join(blocks)


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("ner_data")
    sentences = synthetic_sentences(240)
    train, dev = sentences[:192], sentences[192:]
    (folder / "train.txt").write_text(conll_text(train))
    (folder / "train4.conll").write_text(conll_text(train, extra_columns=True).replace("\n", "\r\n"))
    (folder / "dev.txt").write_text(conll_text(dev))
    lines = [json.dumps({"tokens": w, "tags": t}) for w, t in dev]
    (folder / "dev.jsonl").write_text("\n".join(lines) + "\n")
    return {"folder": folder, "train": train, "dev": dev}


NER_TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
MAX_LENGTH = 24


def fit_briefly(model, sentences, epochs: int, learning_rate: float = 3e-3):
    import tfft
    from tfft.keras import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=tfft.loss_for(model),
        weighted_metrics=tfft.metrics_for(model),
    )
    data = tfft.make_dataset(
        model,
        [w for w, _ in sentences],
        [t for _, t in sentences],
        batch_size=16,
        max_length=MAX_LENGTH,
        training=True,
        seed=0,
    )
    return model.fit(data, epochs=epochs, verbose=0)


@pytest.fixture(scope="module")
def hf_tagger(tiny_bert_dir, ner_files, tmp_path_factory):
    """A tiny BERT tagger trained through the Python API, and its export."""
    import tfft
    from tfft.exported import ExportedModel
    from tfft.keras import keras

    keras.utils.set_random_seed(0)
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="ner", label_names=NER_TAGS)
    history = fit_briefly(model, ner_files["train"], epochs=6)
    path = tfft.export_saved_model(
        model, tmp_path_factory.mktemp("ner_export") / "tagger", max_length=MAX_LENGTH
    )
    return model, ExportedModel(path), history


def dev_examples(ner_files) -> TaggedExamples:
    dev = ner_files["dev"]
    return TaggedExamples(
        words=[w for w, _ in dev], tags=[t for _, t in dev], source="dev", rows=list(range(len(dev)))
    )


TEXTS = [
    "bob alice went to paris, the movie was good",
    "Zoë & 東京: carol bob  in\u3000london!",
    "",
    "rome",
    # Longer than MAX_LENGTH pieces: its last words are cut and reported.
    "the day " + " ".join(["alice carol in london"] * 4) + " and rome",
]


def assert_export_matches_model(model, exported, texts=TEXTS):
    task = TASK
    examples = TaggedExamples.from_texts(texts, source="--text")
    in_python = task.predict_model(model, examples, max_length=MAX_LENGTH)
    served = list(task.predict_export(exported, examples))
    assert len(served) == len(texts)
    for text, spans, python, export in zip(texts, examples.spans, in_python, served, strict=True):
        want = entities(python["tags"], python["scores"], text, spans)
        assert [(e["text"], e["type"], e["start"], e["end"]) for e in export["entities"]] == [
            (e["text"], e["type"], e["start"], e["end"]) for e in want
        ]
        assert [e["score"] for e in export["entities"]] == pytest.approx([e["score"] for e in want], abs=1e-4)
        assert export["truncated_words"] == python["truncated_words"]
        for entity in export["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["text"]
    return in_python, served


def test_api_training_learns_the_tags(hf_tagger, ner_files):
    from tfft.config import RunConfig

    model, _, history = hf_tagger
    assert history.history["loss"][-1] < history.history["loss"][0]
    metrics = TASK.evaluate_model(model, dev_examples(ner_files), RunConfig())
    assert metrics["f1"] > 0.6, metrics
    assert set(metrics["per_type"]) == {"LOC", "PER"}
    assert metrics["examples"] == 48 and metrics["words"] == sum(len(w) for w, _ in ner_files["dev"])


def test_export_matches_python_prediction(hf_tagger, ner_files):
    model, exported, _ = hf_tagger
    _, served = assert_export_matches_model(model, exported)
    assert set(exported.loaded.signatures) == {"serving_default", "predict_words", "predict_ids"}
    assert served[-1]["truncated_words"] > 0  # the long text lost words, and says so
    assert served[2] == {"text": "", "entities": [], "truncated_words": 0}
    # Pre-split words through predict_words: the same tags as the in-memory model.
    examples = dev_examples(ner_files)
    from_export = TASK.evaluate_export(exported, examples)
    from tfft.config import RunConfig

    assert from_export == TASK.evaluate_model(model, examples, RunConfig(data=_data_config(MAX_LENGTH)))
    rows = list(TASK.predict_export(exported, examples.take(3)))
    python_rows = TASK.predict_model(model, examples.take(3), max_length=MAX_LENGTH)
    assert [row["tags"] for row in rows] == [row["tags"] for row in python_rows]
    assert rows[0]["words"] == examples.words[0]


def test_evaluation_orders_sentences_by_length_with_the_same_metrics(hf_tagger, ner_files, monkeypatch):
    """predict_model batches the sentences shortest first (in tokens) and answers in input
    order; evaluate_export sends them ordered by characters (its metrics do not depend on
    the order). Both give exactly what the sentences one by one give."""
    from tfft.config import RunConfig, TrainConfig
    from tfft.tasks.ner.serving import export_word_rows
    from tfft.tasks.ner.task import _metrics

    model, exported, _ = hf_tagger
    examples = dev_examples(ner_files)
    assert examples.texts != sorted(examples.texts, key=len)  # the input order is not by length
    alone = [
        TASK.predict_model(model, examples.select([i]), max_length=MAX_LENGTH)[0]
        for i in range(len(examples))
    ]
    longest = []
    predict_on_batch = type(model).predict_on_batch

    def recording(self, features):
        longest.append(int(features["attention_mask"].numpy().sum(axis=1).max()))
        return predict_on_batch(self, features)

    monkeypatch.setattr(type(model), "predict_on_batch", recording)
    batched = TASK.predict_model(model, examples, batch_size=5, max_length=MAX_LENGTH)
    assert longest == sorted(longest) and len(set(longest)) > 1 and len(longest) == 10
    assert [row["tags"] for row in batched] == [row["tags"] for row in alone]
    for row, one in zip(batched, alone, strict=True):
        assert row["scores"] == pytest.approx(one["scores"], abs=1e-5)
    config = RunConfig(data=_data_config(MAX_LENGTH), train=TrainConfig(batch_size=5))
    assert TASK.evaluate_model(model, examples, config) == _metrics(examples, alone)
    export_alone = [next(export_word_rows(exported, examples.select([i]), 1)) for i in range(len(examples))]
    assert TASK.evaluate_export(exported, examples, batch_size=5) == _metrics(examples, export_alone)


def _data_config(max_length):
    from tfft.config import DataConfig

    return DataConfig(max_length=max_length)


def test_serving_signatures_outputs(hf_tagger):
    _, exported, _ = hf_tagger
    out = exported.loaded.signatures["serving_default"](text=tf.constant(["bob alice in paris", ""]))
    assert out["entity_text"].shape[0] == 2 and out["num_entities"].numpy()[1] == 0
    count = int(out["num_entities"].numpy()[0])
    assert out["entity_start"].numpy()[0, count:].tolist() == [-1] * (out["entity_start"].shape[1] - count)
    words = exported.loaded.signatures["predict_words"](
        words=tf.constant([["bob", "alice", "in", "paris"], ["rome", "", "", ""]]),
        num_words=tf.constant([4, 1]),
    )
    assert words["tags"].shape == (2, 4) and words["tags"].numpy()[1, 1:].tolist() == [b"", b"", b""]
    assert words["truncated_words"].numpy().tolist() == [0, 0]


def test_class_weights_weigh_tokens(tiny_bert_dir, ner_files):
    import tfft
    from tfft.config import load_config

    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="ner", label_names=NER_TAGS)
    examples = dev_examples(ner_files)
    config = load_config(None, {"task.class_weights": "auto"})
    data = TASK.dataset(
        model, examples, batch_size=64, max_length=MAX_LENGTH, training=True, seed=0, config=config
    )
    expected = class_weights(examples.tag_counts(), NER_TAGS)
    for _, labels, weights in data:
        labels, weights = labels.numpy(), weights.numpy()
        real = labels >= 0
        real &= weights > 0
        assert np.allclose(weights[real], expected[labels[real]])
        assert (weights[labels < 0] == 0).all()


def test_hub_encoder_through_api(tiny_hub_bert, ner_files):
    import tfft

    model = tfft.build_model(
        hub_url=str(tiny_hub_bert.encoder_dir),
        hub_preprocess_url=str(tiny_hub_bert.preprocess_dir),
        task="ner",
        label_names=NER_TAGS,
    )
    history = fit_briefly(model, ner_files["train"][:64], epochs=2)
    assert history.history["loss"][1] < history.history["loss"][0]
    rows = TASK.predict_model(model, TaggedExamples.from_texts(TEXTS, "--text"), max_length=MAX_LENGTH)
    assert [len(row["tags"]) for row in rows] == [len(split_words(text)) for text in TEXTS]
    assert rows[-1]["truncated_words"] > 0 and rows[-1]["tags"][-1] is None


def test_byte_level_bpe_tokenizes_in_the_graph(ner_files, tmp_path):
    import tfft

    folder = tmp_path / "roberta"
    write_tiny_roberta(folder)
    model = tfft.build_model(hf_model=str(folder), task="ner", label_names=NER_TAGS)
    fit_briefly(model, ner_files["train"][:32], epochs=1)
    from tfft.exported import ExportedModel

    exported = ExportedModel(tfft.export_saved_model(model, tmp_path / "bpe_tagger", max_length=MAX_LENGTH))
    assert_export_matches_model(model, exported, [t for t in TEXTS if t.isascii()])
    assert exported.encoder is None  # raw text in: tfft.text.bpe tokenizes each word as " " + word
    assert set(exported.loaded.signatures) == {"serving_default", "predict_words", "predict_ids"}


def run_cli(*args):
    from click.testing import CliRunner

    from tfft_cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def cli_fit(source_args, ner_files, tmp_path, *extra):
    folder = ner_files["folder"]
    return run_cli(
        "fit",
        "--json",
        "--task",
        "ner",
        *source_args,
        "--train",
        folder / "train.txt",
        "--eval",
        folder / "dev.txt",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--learning-rate",
        "3e-3",
        "--max-length",
        MAX_LENGTH,
        "--no-xla",
        "--run-dir",
        tmp_path / "run",
        *extra,
    )


@pytest.mark.long  # the HF-backbone CLI test stays in the default suite
def test_cli_fit_evaluate_predict_with_hub_encoder(tiny_hub_bert, ner_files, tmp_path):
    folder = ner_files["folder"]
    source = ["--hub-url", tiny_hub_bert.encoder_dir]  # tokenized by the vocab file it carries
    result = cli_fit(source, ner_files, tmp_path, "--export-dir", tmp_path / "saved_models" / "tagger")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert {"precision", "recall", "f1", "truncated_words"} <= set(summary["eval"])
    metrics = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "val_entity_f1" in metrics["history"]
    export = tmp_path / "saved_models" / "tagger"

    result = run_cli("evaluate", export, "--data", folder / "dev.jsonl", "--json")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    assert evaluated["task"] == "ner" and evaluated["f1"] == pytest.approx(summary["eval"]["f1"])
    result = run_cli("predict", export, "--text", "bob alice went to paris", "--text", "rome")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [row["text"] for row in rows] == ["bob alice went to paris", "rome"]
    for row in rows:
        for entity in row["entities"]:
            assert row["text"][entity["start"] : entity["end"]] == entity["text"]
            assert entity["type"] in ("LOC", "PER") and 0 < entity["score"] <= 1

    result = run_cli("predict", export, "--input", folder / "dev.txt")
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert len(rows) == 48 and rows[0]["words"] == ner_files["dev"][0][0]
    assert len(rows[0]["tags"]) == len(rows[0]["words"])


def test_cli_fit_hf_model_multi_column_class_weights(tiny_bert_dir, ner_files, tmp_path):
    folder = ner_files["folder"]
    result = run_cli(
        "fit",
        "--task",
        "ner",
        "--hf-model",
        tiny_bert_dir,
        "--train",
        folder / "train4.conll",
        "--tag-column",
        "2",
        "--eval-split",
        "0.25",
        "--class-weights",
        "auto",
        "--epochs",
        "1",
        "--max-length",
        MAX_LENGTH,
        "--no-xla",
        "--run-dir",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "run" / "task.json").read_text())["settings"]
    assert settings["labels"] == ["O", "B-LOC", "B-PER", "I-PER"] and settings["tag_column"] == 2
    assert settings["scheme"] == "IOB2"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["eval_examples"] == 48 and "f1" in summary["eval"]


def test_task_errors(tiny_bert_dir, tiny_text_embedding_dir, ner_files, tmp_path):
    import tfft

    with pytest.raises(ConfigError, match="token-level tasks"):
        tfft.build_model(hub_url=str(tiny_text_embedding_dir), task="ner", label_names=NER_TAGS)
    with pytest.raises(ConfigError, match="needs `label_names`"):
        tfft.build_model(hf_model=str(tiny_bert_dir), task="ner", num_labels=5)
    with pytest.raises(ConfigError, match="'PER' is not a tag"):
        tfft.build_model(hf_model=str(tiny_bert_dir), task="ner", label_names=["O", "PER"])
    with pytest.raises(ConfigError, match="no entity tags"):
        tfft.build_model(hf_model=str(tiny_bert_dir), task="ner", label_names=["O"])
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="ner", label_names=NER_TAGS)
    with pytest.raises(DataError, match=r"labels\[1\]: 1 tags for 2 words"):
        tfft.make_dataset(model, [["bob"], ["bob", "paris"]], [["B-PER"], ["B-PER"]])
    with pytest.raises(
        DataError, match=r"labels\[0\]\[0\]: tag 'B-GPE' is not one of the model's tags: O, B-LOC"
    ):
        tfft.make_dataset(model, [["bob"]], [["B-GPE"]])
    csv = tmp_path / "train.csv"
    csv.write_text("text,label\nbob,B-PER\n")
    result = cli_fit(["--hf-model", tiny_bert_dir], ner_files, tmp_path, "--format", "csv")
    assert result.exit_code == 1 and "tagged NER data must be CoNLL or JSON Lines" in result.output
    result = run_cli(
        "fit", "--task", "ner", "--hf-model", tiny_bert_dir, "--train", ner_files["folder"] / "dev.txt",
        "--tag-column", "5", "--run-dir", tmp_path / "run2",
    )  # fmt: skip
    assert result.exit_code == 1 and "dev.txt:3: no tag column 6 (--tag-column)" in result.output


def test_format_metrics_lists_types():
    metrics = {"examples": 2, "words": 6, "truncated_words": 1}
    metrics.update(
        entity_metrics(
            [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]], [["B-PER", "I-PER", "O", "O"], ["B-LOC", "O"]]
        )
    )
    lines = TASK.format_metrics(metrics)
    assert lines[0] == "precision 1.0000" and lines[2] == "f1        0.8000"
    assert "truncated words 1" in lines[3]
    assert lines[4].split()[:2] == ["LOC", "precision"] and "support 2" in lines[4]


def test_token_loss_weighs_every_word_the_same_in_any_batch():
    from tfft.losses import token_loss

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, 5, 4)), tf.float32)
    labels = tf.constant(rng.integers(0, 4, size=(3, 5)))
    # two real rows (4 and 1 labelled words) and a filler row of weight 0
    weights = tf.constant([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], tf.float32)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits).numpy()
    total = float(np.sum(nll * weights.numpy()))
    # divided by real rows x words per sentence, not by the batch's own 5 words
    np.testing.assert_allclose(float(token_loss(2.5)(labels, logits, weights)), total / (2 * 2.5), rtol=1e-6)
    np.testing.assert_allclose(float(token_loss()(labels, logits, weights)), total / 5, rtol=1e-6)
    # the sum over batches of (loss x rows) is the same however the rows are grouped
    short, long_ = (slice(1, 2), slice(0, 1))
    parts = [float(token_loss(2.5)(labels[s], logits[s], weights[s])) for s in (short, long_)]
    np.testing.assert_allclose(sum(parts), 2 * float(token_loss(2.5)(labels, logits, weights)), rtol=1e-6)


def test_settings_hold_the_mean_words_per_training_sentence():
    train = TaggedExamples(
        words=[["Bob", "went"], ["to", "Paris", "today", "."], ["Rome"]],
        tags=[["B-PER", "O"], ["O", "B-LOC", "O", "O"], ["B-LOC"]],
        source="train.conll",
        rows=[1, 4, 9],
    )
    config = RunConfig.from_dict({"model": {"task": "ner"}})
    settings = TASK.settings_from_data(train, config)
    assert settings["words_per_sentence"] == round(7 / 3, 4)
    loss = TASK.loss(type("Spec", (), {"settings": settings})())
    assert loss.tokens_per_row == round(7 / 3, 4)
    # Token-budget batches hold about the same number of words each, however many sentences:
    # the loss is then the mean over the batch's own words.
    budget = RunConfig.from_dict({"model": {"task": "ner"}, "train": {"batch_tokens": 512}})
    settings = TASK.settings_from_data(train, budget)
    assert "words_per_sentence" not in settings
    assert TASK.loss(type("Spec", (), {"settings": settings})()).tokens_per_row is None
    # models built without training data (tfft.build_model) average over the batch's words
    assert TASK.loss(type("Spec", (), {"settings": {"labels": ["O", "B-LOC"]}})()).tokens_per_row is None
