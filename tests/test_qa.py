"""Extractive question answering: SQuAD reader, windows, span decoding, EM/F1, the task end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED_DATA, write_tiny_roberta

from tfft.data.squad import Answer, read_qa_examples
from tfft.errors import ConfigError, DataError
from tfft.tasks.qa.decode import decode_spans, graph_decode
from tfft.tasks.qa.metrics import exact_match, f1, normalize_answer, squad_metrics
from tfft.tasks.qa.task import TASK, prepare
from tfft.tasks.qa.windows import TokenizedText, WindowPlan, graph_windows, make_windows, tokenize_texts

CONTEXT_1 = "Denver Broncos won Super Bowl 50. The game was played in Santa Clara, California."
CONTEXT_2 = "The Panthers lost. Cam Newton was the quarterback of the Panthers in 2015."


def squad_document(**overrides) -> dict:
    """A small, valid SQuAD v1.1 document: two articles, three questions."""
    document = {
        "version": "1.1",
        "data": [
            {
                "title": "Super_Bowl_50",
                "paragraphs": [
                    {
                        "context": CONTEXT_1,
                        "qas": [
                            {
                                "id": "q1",
                                "question": " Who won Super Bowl 50? ",
                                "answers": [
                                    {"text": "Denver Broncos", "answer_start": 0},
                                    {"text": "Broncos", "answer_start": 7},
                                ],
                            },
                            {
                                "id": "q2",
                                "question": "Where was the game played?",
                                "answers": [{"text": "Santa Clara, California", "answer_start": 57}],
                            },
                        ],
                    }
                ],
            },
            {
                "title": "Panthers",
                "paragraphs": [
                    {
                        "context": CONTEXT_2,
                        "qas": [
                            {
                                "id": "q3",
                                "question": "Who was the quarterback?",
                                "answers": [{"text": "Cam Newton", "answer_start": 19}],
                            }
                        ],
                    }
                ],
            },
        ],
    }
    document.update(overrides)
    return document


def write_json(tmp_path: Path, document, name: str = "data.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def write_jsonl(tmp_path: Path, records: list, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    return path


# --- reader ---------------------------------------------------------------------------------


def test_reads_squad_json(tmp_path):
    examples = read_qa_examples(write_json(tmp_path, squad_document()))
    assert len(examples) == 3
    assert examples.questions[0] == "Who won Super Bowl 50?"
    assert examples.contexts[1] == CONTEXT_1
    assert examples.answers[0] == (Answer("Denver Broncos", 0), Answer("Broncos", 7))
    assert examples.answers[1][0].end == 80
    assert examples.ids == ["q1", "q2", "q3"]
    assert examples.rows == [1, 2, 3]
    assert examples.locations[2].endswith("data.json: data[1].paragraphs[0].qas[0]")
    assert len(examples.article_names()) == 2


def test_reads_json_lines_in_both_answer_layouts(tmp_path):
    records = [
        {
            "id": "a",
            "question": "Who won?",
            "context": CONTEXT_1,
            "answers": [{"text": "Broncos", "answer_start": 7}],
        },
        {"question": "Who?", "context": CONTEXT_2, "answers": {"text": ["Cam Newton"], "answer_start": [19]}},
    ]
    for name in ("data.jsonl", "lines.json"):  # a .json file with one object per line is JSON Lines
        examples = read_qa_examples(write_jsonl(tmp_path, records, name))
        assert examples.answers == [(Answer("Broncos", 7),), (Answer("Cam Newton", 19),)]
        assert examples.ids == ["a", "line 2"]
        assert examples.rows == [1, 2]
    # Other field names, and unlabelled reading ignores answers.
    renamed = [{"q": "Who won?", "passage": CONTEXT_1}]
    examples = read_qa_examples(
        write_jsonl(tmp_path, renamed), labelled=False, question_field="q", context_field="passage"
    )
    assert examples.answers is None and examples.questions == ["Who won?"]


def test_max_examples_stops_early(tmp_path):
    examples = read_qa_examples(write_json(tmp_path, squad_document()), max_examples=2)
    assert examples.ids == ["q1", "q2"]


def _answer(document, article=0, qa_index=0):
    return document["data"][article]["paragraphs"][0]["qas"][qa_index]


def test_answer_not_at_its_offset_names_file_record_and_field(tmp_path):
    document = squad_document()
    _answer(document, 0, 1)["answers"][0]["answer_start"] = 56
    with pytest.raises(DataError) as error:
        read_qa_examples(write_json(tmp_path, document))
    message = str(error.value)
    assert "data.json: data[0].paragraphs[0].qas[1] (id 'q2'): field `answers[0].text`" in message
    assert "is not at answer_start 56" in message and "occurs at offset 57" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda qa_: qa_.pop("answers"), "field `answers` is missing"),
        (lambda qa_: qa_.update(answers=[]), "field `answers` is empty"),
        (
            lambda qa_: qa_.update(answers=[{"text": "Broncos"}]),
            "answers[0]: field `answer_start` is missing",
        ),
        (
            lambda qa_: qa_.update(answers=[{"text": "Broncos", "answer_start": "7"}]),
            "`answers[0].answer_start`",
        ),
        (lambda qa_: qa_.update(answers=[{"text": "x", "answer_start": 500}]), "must start between 0 and"),
        (lambda qa_: qa_.update(answers=[{"text": "  ", "answer_start": 0}]), "`answers[0].text` is empty"),
        (lambda qa_: qa_.update(question=""), "field `question` is empty"),
        (lambda qa_: qa_.update(question=3), "field `question` is the number 3"),
        (lambda qa_: qa_.update(is_impossible=True, answers=[]), "pass --allow-no-answer"),
        (lambda qa_: qa_.update(is_impossible="yes"), "field `is_impossible` is a string"),
        (lambda qa_: qa_.update(id="q2"), "question id 'q2' was already used at"),
    ],
)
def test_bad_squad_records(tmp_path, change, expected):
    document = squad_document()
    change(_answer(document, 0, 0))
    with pytest.raises(DataError) as error:
        read_qa_examples(write_json(tmp_path, document))
    message = str(error.value)
    assert expected in message
    assert message.startswith(str(tmp_path / "data.json") + ": data[")
    assert "\n" not in message


def test_bad_squad_structure(tmp_path):
    document = squad_document()
    document["data"][1]["paragraphs"][0]["context"] = "   "
    with pytest.raises(DataError, match=r"data\[1\]\.paragraphs\[0\]: field `context` is empty"):
        read_qa_examples(write_json(tmp_path, document))
    with pytest.raises(
        DataError, match=r'expected SQuAD JSON, an object \{"data": \[articles\]\}; found a list'
    ):
        read_qa_examples(write_json(tmp_path, [1, 2]))
    with pytest.raises(DataError, match=r"data\[0\]: field `paragraphs` is missing"):
        read_qa_examples(write_json(tmp_path, {"data": [{"title": "x"}]}))


def test_truncated_and_deeply_nested_json(tmp_path):
    text = json.dumps(squad_document(), indent=1)
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(DataError) as error:
        read_qa_examples(path)
    assert str(error.value).startswith(f"{path}:")
    assert "not valid JSON" in str(error.value) and "truncated" in str(error.value)
    deep = tmp_path / "deep.json"
    deep.write_text('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataError, match="nested too deeply"):
        read_qa_examples(deep)
    with pytest.raises(DataError, match="No such file"):
        read_qa_examples(tmp_path / "missing.json", option="--train")
    bad_bytes = tmp_path / "latin1.json"
    bad_bytes.write_bytes(b'{"data": []}\n\xe9')
    with pytest.raises(DataError, match=r"latin1.json:2: not valid UTF-8 \(byte 0xe9\)"):
        read_qa_examples(bad_bytes)


def test_bad_json_lines(tmp_path):
    good = {"question": "Who won?", "context": CONTEXT_1, "answers": [{"text": "Broncos", "answer_start": 7}]}
    path = write_jsonl(tmp_path, [good, {"question": "Who?", "context": CONTEXT_1}])
    with pytest.raises(DataError, match=r"data.jsonl:2: field `answers` is missing"):
        read_qa_examples(path)
    path = write_jsonl(tmp_path, [{**good, "answers": {"text": ["Broncos"], "answer_start": [8]}}])
    with pytest.raises(
        DataError, match=r"data.jsonl:1: field `answers.text\[0\]` 'Broncos' is not at answer_start\[0\] 8"
    ):
        read_qa_examples(path)
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good)[:30] + "\n")
    with pytest.raises(DataError, match=r"broken.jsonl:2: not valid JSON"):
        read_qa_examples(path)


def test_unanswerable_questions_with_allow_no_answer(tmp_path):
    document = squad_document()
    _answer(document, 0, 1).update(is_impossible=True, answers=[], plausible_answers=[])
    examples = read_qa_examples(write_json(tmp_path, document), allow_no_answer=True)
    assert examples.answers[1] == ()
    _answer(document, 0, 1)["answers"] = [{"text": "Santa Clara", "answer_start": 57}]
    with pytest.raises(DataError, match="is_impossible` is true but `answers` holds 1 answer"):
        read_qa_examples(write_json(tmp_path, document), allow_no_answer=True)


def test_split_keeps_articles_whole(tmp_path):
    records = []
    for article in range(10):
        for question in range(article + 1):  # articles of different sizes
            records.append(
                {
                    "id": f"{article}-{question}",
                    "title": f"article {article}",
                    "question": f"question {question}?",
                    "context": f"context of article {article}",
                    "answers": [{"text": "article", "answer_start": 11}],
                }
            )
    examples = read_qa_examples(write_jsonl(tmp_path, records))
    rest, held = examples.split(0.3, seed=1)
    assert len(rest) + len(held) == len(examples) == 55
    assert not set(rest.articles) & set(held.articles)
    assert abs(len(held) - 0.3 * 55) <= 5
    assert examples.split(0.3, seed=1)[1].ids == held.ids
    assert {tuple(examples.split(0.3, seed=s)[1].ids) for s in range(5)} != {tuple(held.ids)}
    assert rest.rows == sorted(rest.rows)
    one_article = examples.select([0])
    with pytest.raises(ConfigError, match="all 1 questions belong to one article"):
        one_article.split(0.5, seed=0)


def test_real_squad_file_reads_and_splits_by_article():
    path = SHARED_DATA / "squad" / "train.json"
    if not path.exists():
        pytest.skip(f"the shared SQuAD data is not at {path}")
    examples = read_qa_examples(path)
    assert len(examples) == 3939 and len(examples.article_names()) == 17
    rest, held = examples.split(0.2, seed=0)
    assert not set(rest.articles) & set(held.articles)


# --- metrics --------------------------------------------------------------------------------


def test_official_normalization_and_scores():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert exact_match("the Broncos.", "Broncos") == 1.0
    assert f1("Denver Broncos", "the Broncos") == pytest.approx(2 / 3)
    assert f1("Santa Clara", "Santa Clara, California") == pytest.approx(0.8)
    assert f1("nothing", "Broncos") == 0.0
    metrics = squad_metrics(
        ["Denver Broncos", "Santa Clara", "Newton"],
        [["Broncos", "Denver Broncos"], ["Santa Clara, California"], ["Cam Newton"]],
    )
    assert metrics["exact_match"] == pytest.approx(100 / 3)
    assert metrics["f1"] == pytest.approx(100 * (1 + 0.8 + 2 / 3) / 3)
    assert metrics["examples"] == 3
    # SQuAD 2.0: no reference answer -> only the empty prediction is right.
    metrics = squad_metrics(["", "x", "Broncos"], [[], [], ["Broncos"]])
    assert metrics["exact_match"] == pytest.approx(200 / 3)
    assert metrics["no_answer_exact_match"] == 50.0 and metrics["has_answer_f1"] == 100.0


# --- words, windows and decoding --------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    import transformers
    from helpers import tiny_vocab

    from tfft.tokenization import HFTextEncoder

    folder = tmp_path_factory.mktemp("qa_vocab")
    (folder / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    return HFTextEncoder(transformers.BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True))


def test_word_spans_map_pieces_to_characters(encoder):
    text = "Café déjà-vu:\u00a0日本 costs £5\t(naïve) 🙂 end."
    (tokens,) = tokenize_texts(encoder, [text])
    words = sorted({(int(s), int(e)) for s, e in zip(tokens.starts, tokens.ends, strict=True)})
    assert [text[s:e] for s, e in words] == [
        "Café", "déjà", "-", "vu", ":", "日", "本", "costs", "£5", "(", "naïve", ")", "🙂", "end", ".",
    ]  # fmt: skip
    assert len(tokens.ids) == len(tokens.starts) >= len(words)
    # The in-graph tokenizer gives the same pieces.
    from tfft.tokenization import GraphTextEncoder

    graph = GraphTextEncoder(encoder.graph_tokenizer(), encoder.template)
    (same,) = tokenize_texts(graph, [text])
    np.testing.assert_array_equal(same.ids, tokens.ids)
    np.testing.assert_array_equal(same.starts, tokens.starts)


def test_window_plan():
    from tfft.tokenization import SequenceTemplate

    template = SequenceTemplate.bert(2, 3, 0)
    plan = WindowPlan(template, max_length=32, doc_stride=5)
    assert (plan.budget, plan.question_cap, plan.min_room) == (29, 14, 15)
    assert plan.room(4) == 25
    assert plan.window_starts(25, 4) == [0]
    assert plan.window_starts(26, 4) == [0, 20]
    assert plan.window_starts(70, 4) == [0, 20, 40, 60]  # windows overlap by 5 pieces
    with pytest.raises(ConfigError, match=r"`doc_stride` .* = 15\. .*Received: doc_stride=15"):
        WindowPlan(template, max_length=32, doc_stride=15)
    with pytest.raises(ConfigError, match="too short"):
        WindowPlan(template, max_length=4, doc_stride=0)


def _long_examples() -> tuple[list[str], list[str], list[tuple[Answer, ...]]]:
    filler = "the movie was good and the plot was fun . "
    context = filler * 6 + "it was Jordan Smith who won the race in 1999 . " + filler * 6
    start = context.index("Jordan Smith")
    year = context.index("1999")
    questions = ["who won the race ?", "when was the race ?", "what was fun ?"]
    answers = [
        (Answer("Jordan Smith", start),),
        (Answer("1999", year), Answer("in 1999", year - 3)),
        (Answer("the plot", context.index("the plot")),),
    ]
    return questions, [context] * 3, answers


def test_windows_label_the_answer_and_decode_back(encoder):
    questions, contexts, answers = _long_examples()
    plan = WindowPlan(encoder.template, max_length=48, doc_stride=10)
    context_tokens = tokenize_texts(encoder, contexts)
    windows = make_windows(plan, tokenize_texts(encoder, questions), context_tokens, answers)
    counts = np.bincount(windows.example)
    assert (counts > 2).all()  # long contexts: several windows each
    assert max(windows.lengths()) <= 48
    # Consecutive windows share exactly doc_stride context pieces.
    first = windows.example == 0
    starts, lengths = windows.context_start[first], windows.context_length[first]
    assert ((starts[:-1] + lengths[:-1]) - starts[1:] == 10).all()
    assert starts[-1] + lengths[-1] == len(context_tokens[0])
    # Labels: the window that holds the answer points at it, the others at [CLS].
    for w in range(len(windows)):
        s, e = windows.start_positions[w], windows.end_positions[w]
        if s == 0:
            assert e == 0
            continue
        first_piece = windows.context_start[w] + s - windows.context_offset[w]
        last_piece = windows.context_start[w] + e - windows.context_offset[w]
        tokens = context_tokens[windows.example[w]]
        text = contexts[0][tokens.starts[first_piece] : tokens.ends[last_piece]]
        assert text == answers[windows.example[w]][0].text
    assert (np.bincount(windows.example, weights=windows.start_positions > 0) >= 1).all()
    # Logits that peak at the labels decode to the reference answers.
    length = max(windows.lengths())
    rows = np.arange(len(windows))
    start_logits, end_logits = np.zeros([len(windows), length]), np.zeros([len(windows), length])
    start_logits[rows, windows.start_positions] = 9.0
    end_logits[rows, windows.end_positions] = 9.0
    spans = decode_spans(
        windows, start_logits, end_logits, contexts, context_tokens, max_answer_length=15, n_best=3
    )
    assert [best[0].text for best in spans] == ["Jordan Smith", "1999", "the plot"]
    assert all(contexts[0][s.start : s.end] == s.text for best in spans for s in best)
    assert all(len({(s.start, s.end) for s in best}) == len(best) == 3 for best in spans)
    assert all(best[0].logit >= best[1].logit >= best[2].logit for best in spans)
    assert (
        squad_metrics([b[0].text for b in spans], [[a.text for a in ans] for ans in answers])["f1"] == 100.0
    )


def test_decoding_rules():
    from tfft.tokenization import SequenceTemplate

    context = "a b c d e f"
    tokens = TokenizedText(
        ids=np.arange(6, dtype=np.int32), starts=np.arange(0, 12, 2), ends=np.arange(1, 12, 2)
    )
    question = TokenizedText(ids=np.array([7], np.int32), starts=np.zeros(1), ends=np.ones(1))
    plan = WindowPlan(SequenceTemplate.bert(2, 3, 0), max_length=32, doc_stride=2)
    windows = make_windows(plan, [question], [tokens])
    assert windows.context_offset[0] == 3  # [CLS] q [SEP]
    start = np.full([1, 10], -5.0)
    end = np.full([1, 10], -5.0)
    start[0, 1] = 20.0  # the question token: never an answer
    start[0, 4] = 3.0  # "b"
    end[0, 3] = 4.0  # "a" ends before "b" starts: invalid
    end[0, 8] = 2.5  # "f": 5 pieces from "b"
    end[0, 6] = 1.0  # "d"
    decode = lambda **kw: decode_spans(windows, start, end, [context], [tokens], **kw)  # noqa: E731
    assert decode(max_answer_length=5, n_best=1)[0][0].text == "b c d e f"
    assert decode(max_answer_length=4, n_best=1)[0][0].text == "b c d"
    best = decode(max_answer_length=4, n_best=1)[0][0]
    assert (best.start, best.end) == (2, 7)
    p_start = np.exp(3.0) / np.exp(start[0]).sum()
    p_end = np.exp(1.0) / np.exp(end[0]).sum()
    assert best.score == pytest.approx(p_start * p_end)
    # The empty answer wins only with allow_no_answer and a [CLS] score above the best span.
    start[0, 0] = end[0, 0] = 3.0
    assert decode(max_answer_length=4, n_best=1)[0][0].text == "b c d"
    no_answer = decode(max_answer_length=4, n_best=2, allow_no_answer=True)[0]
    assert [(s.text, s.start, s.end) for s in no_answer] == [("", -1, -1), ("b c d", 2, 7)]


def test_graph_windows_and_decoding_match_python(encoder):
    import tensorflow as tf

    filler = "the movie was good and the plot was fun . "
    contexts = [
        filler * 6 + "Café déjà-vu 日本 🙂 Jordan Smith won in 1999 . " + filler * 4,
        "short one .",
        " \t ",
        "naïve café, " * 3,
    ]
    questions = ["who won the race ?", "what ?", "no context?", "a long question with many words " * 4]
    plan = WindowPlan(encoder.template, max_length=48, doc_stride=10)
    context_tokens = tokenize_texts(encoder, contexts)
    windows = make_windows(plan, tokenize_texts(encoder, questions), context_tokens)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def in_graph(questions, contexts):
        return graph_windows(encoder.graph_tokenizer(), plan, questions, contexts, type_id=1)

    graph = in_graph(tf.constant(questions), tf.constant(contexts))
    ids = graph["features"]["input_ids"].numpy()
    types = graph["features"]["token_type_ids"].numpy()
    assert len(ids) == len(windows) > len(contexts)
    for w, (row, type_row) in enumerate(zip(windows.input_ids, windows.token_type_ids, strict=True)):
        np.testing.assert_array_equal(ids[w, : len(row)], row)
        np.testing.assert_array_equal(types[w, : len(row)], type_row)
        assert (ids[w, len(row) :] == encoder.template.pad_id).all()
    for key in ("example", "context_offset", "context_start", "context_length"):
        np.testing.assert_array_equal(graph[key].numpy(), getattr(windows, key))
    rng = np.random.default_rng(0)
    for _ in range(10):
        start, end = (rng.normal(size=ids.shape).astype(np.float32) for _ in range(2))
        start[:, 0] += 3 * rng.normal()
        for allow in (False, True):
            expected = decode_spans(
                windows, start, end, contexts, context_tokens, max_answer_length=7, allow_no_answer=allow
            )
            got = graph_decode(
                graph, start, end, tf.constant(contexts), max_answer_length=7, allow_no_answer=allow
            )
            for i, (best, *_) in enumerate(expected):
                assert got["answer"][i].numpy().decode() == best.text
                assert (int(got["start"][i]), int(got["end"][i])) == (best.start, best.end)
                assert float(got["score"][i]) == pytest.approx(best.score, rel=1e-4)
    assert expected[2][0].text == "" and expected[0][0].text


# --- the task end to end (tiny models) ----------------------------------------------------------

NAMES = ["jordan", "alex", "sam", "kim", "lee", "pat", "max", "quinn"]
FILLER = ["the movie was good .", "the plot was fun .", "it was a very boring night .", "love this film ."]


def synthetic_squad(seed: int, articles: int, questions: int) -> dict:
    """Articles of paragraphs whose answer (a name) sits among filler sentences."""
    import random

    rng = random.Random(seed)
    data = []
    for a in range(articles):
        paragraphs = []
        for p in range(questions):
            name = rng.choice(NAMES)
            before = " ".join(rng.choice(FILLER) for _ in range(rng.randint(0, 8)))
            after = " ".join(rng.choice(FILLER) for _ in range(rng.randint(0, 8)))
            context = f"{before} It was {name.title()} who won the race. {after}".strip()
            start = context.index(name.title())
            qas = [
                {
                    "id": f"{seed}-{a}-{p}",
                    "question": "Who won the race?",
                    "answers": [{"text": name.title(), "answer_start": start}],
                }
            ]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article {seed}-{a}", "paragraphs": paragraphs})
    return {"version": "1.1", "data": data}


@pytest.fixture(scope="module")
def qa_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("qa_data")
    train = folder / "train.json"
    train.write_text(json.dumps(synthetic_squad(0, articles=4, questions=12)))
    dev = folder / "dev.jsonl"
    records = [
        {"id": qa_["id"], "question": qa_["question"], "context": p["context"], "answers": qa_["answers"]}
        for article in synthetic_squad(1, articles=2, questions=8)["data"]
        for p in article["paragraphs"]
        for qa_ in p["qas"]
    ]
    dev.write_text("".join(json.dumps(record) + "\n" for record in records))
    return {"train": train, "dev": dev, "dev_records": records}


def long_inputs() -> tuple[list[str], list[str]]:
    """Questions whose contexts need several windows at max_length 48, plus odd text."""
    contexts = [
        " ".join(FILLER * 3) + " It was Kim who won the race. " + " ".join(FILLER * 2),
        "Café déjà-vu: 日本 🙂 — It was Sam who won (in 1999)! " + " ".join(FILLER * 3),
        "Short context.",
    ]
    return ["Who won the race?", "who won?", "What is it?"], contexts


def _assert_export_matches_model(task, model, export_path, questions, contexts, max_length):
    from tfft.exported import ExportedModel

    examples = task.examples_from_cli(questions, contexts)
    expected = task.predict_model(model, examples, max_length)
    exported = ExportedModel(export_path)
    rows = list(task.predict_export(exported, examples))
    assert [row["id"] for row in rows] == ["1", "2", "3"]
    for row, (best, *_), context in zip(rows, expected, contexts, strict=True):
        assert (row["answer"], row["start"], row["end"]) == (best.text, best.start, best.end)
        assert row["answer"] == context[row["start"] : row["end"]]
        assert row["score"] == pytest.approx(best.score, rel=1e-3, abs=1e-6)
    return exported


def run_cli(*args):
    from click.testing import CliRunner

    from tfft_cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.long  # about 50 s; the export's answers equal Python's in the default suite
def test_fit_evaluate_predict_through_the_cli(tiny_bert_dir, qa_files, tmp_path):
    result = run_cli(
        "fit", "--json", "--hf-model", tiny_bert_dir, "--task", "qa", "--train", qa_files["train"],
        "--eval", qa_files["dev"], "--max-length", 48, "--doc-stride", 8, "--epochs", 2,
        "--batch-size", 16, "--learning-rate", "3e-3", "--no-xla", "--precision", "float32",
        "--run-dir", tmp_path / "run",
        "--export-dir", tmp_path / "export",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert set(summary["eval"]) == {"examples", "exact_match", "f1"} and summary["eval"]["examples"] == 16
    assert 0.0 <= summary["eval"]["exact_match"] <= summary["eval"]["f1"] <= 100.0
    run_summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    losses = run_summary["history"]["loss"]
    assert losses[-1] < losses[0]
    assert "val_span_accuracy" in run_summary["history"]
    task_file = json.loads((tmp_path / "run" / "task.json").read_text())
    assert task_file["settings"]["doc_stride"] == 8 and task_file["settings"]["labels"] == []

    result = run_cli("evaluate", summary["export_path"], "--data", qa_files["dev"], "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["exact_match"] == pytest.approx(summary["eval"]["exact_match"])
    assert metrics["f1"] == pytest.approx(summary["eval"]["f1"])
    result = run_cli("evaluate", summary["export_path"], "--data", qa_files["dev"])
    assert "exact_match" in result.output and "f1" in result.output

    question, context = qa_files["dev_records"][0]["question"], qa_files["dev_records"][0]["context"]
    result = run_cli("predict", summary["export_path"], "--text", question, "--text-pair", context)
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines()]
    assert row["question"] == question and row["answer"] == context[row["start"] : row["end"]]
    assert 0.0 < row["score"] <= 1.0

    out = tmp_path / "predictions.jsonl"
    result = run_cli("predict", tmp_path / "run", "--input", qa_files["dev"], "--output", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == [record["id"] for record in qa_files["dev_records"]]
    references = [[a["text"] for a in record["answers"]] for record in qa_files["dev_records"]]
    assert squad_metrics([row["answer"] for row in rows], references)["f1"] == pytest.approx(metrics["f1"])

    # The export answers long contexts (several windows each) exactly as the trained model.
    # (float32: in mixed_bfloat16, logits move by ~1% with the padding and batch shapes.)
    import tfft

    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="qa", settings=task_file["settings"])
    model.load_weights(str(tmp_path / "run" / "checkpoints" / "best")).expect_partial()
    questions, contexts = long_inputs()
    examples = TASK.examples_from_cli(questions, contexts)
    plan = TASK.plan(model.tfft_spec.backbone.encoder, model.tfft_spec.settings, 48)
    windows = prepare(model.tfft_spec.backbone.encoder, plan, examples, labelled=False).windows
    assert np.bincount(windows.example)[:2].min() >= 3
    _assert_export_matches_model(TASK, model, summary["export_path"], questions, contexts, 48)


def _fit_briefly(model, questions, contexts, answers, max_length):
    import tfft

    data = tfft.make_dataset(
        model, questions, answers, contexts, batch_size=8, max_length=max_length, training=True, seed=0
    )
    model.compile(optimizer="adam", loss=tfft.loss_for(model), weighted_metrics=tfft.metrics_for(model))
    return model.fit(data, epochs=1, verbose=0)


def _training_lists(qa_files):
    examples = read_qa_examples(qa_files["train"])
    answers = [
        {"text": [a.text for a in answers], "answer_start": [a.start for a in answers]}
        for answers in examples.answers
    ]
    return examples.questions, examples.contexts, answers


def test_python_api_with_a_hub_encoder_and_export_equals_python(tiny_hub_bert, qa_files, tmp_path):
    import tfft

    model = tfft.build_model(
        hub_url=str(tiny_hub_bert.encoder_dir),
        hub_preprocess_url=str(tiny_hub_bert.preprocess_dir),
        task="qa",
        doc_stride=8,
        max_answer_length=12,
    )
    assert model.tfft_spec.settings["max_answer_length"] == 12
    history = _fit_briefly(model, *_training_lists(qa_files), max_length=48)
    assert np.isfinite(history.history["loss"]).all()
    path = tfft.export_saved_model(model, tmp_path / "hub_qa", max_length=48)
    questions, contexts = long_inputs()
    exported = _assert_export_matches_model(TASK, model, path, questions, contexts, 48)
    assert exported.encoder is None  # raw text in: the windows are cut in the graph
    signature = exported.loaded.signatures["serving_default"]
    assert set(signature.structured_outputs) == {"answer", "start", "end", "score"}


def test_byte_level_bpe_exports_raw_text(tmp_path):
    import tfft

    folder = tmp_path / "roberta"
    write_tiny_roberta(folder)
    model = tfft.build_model(hf_model=str(folder), task="qa", doc_stride=8)
    path = tfft.export_saved_model(model, tmp_path / "bpe_qa", max_length=48)
    questions, contexts = long_inputs()
    exported = _assert_export_matches_model(TASK, model, path, questions, contexts, 48)
    assert exported.encoder is None  # raw text in: tfft.text.bpe tokenizes the words in the graph
    assert set(exported.loaded.signatures) == {"serving_default", "predict_ids"}
    outputs = exported.loaded.signatures["serving_default"].structured_outputs
    assert set(outputs) == {"answer", "start", "end", "score"}


def test_task_errors(tiny_bert_dir, tiny_text_embedding_dir, qa_files, tmp_path):
    import tfft

    with pytest.raises(ConfigError, match="has no labels"):
        tfft.build_model(hf_model=str(tiny_bert_dir), task="qa", num_labels=2)
    with pytest.raises(ConfigError, match="takes no option\\(s\\) n_best_size. Known: doc_stride"):
        tfft.build_model(hf_model=str(tiny_bert_dir), task="qa", n_best_size=3)
    with pytest.raises(ConfigError, match="--text QUESTION --text-pair CONTEXT"):
        TASK.examples_from_cli(["who won?"], None)
    with pytest.raises(ConfigError, match="token-level tasks"):
        tfft.build_model(hub_url=str(tiny_text_embedding_dir), task="qa")
    model = tfft.build_model(hf_model=str(tiny_bert_dir), task="qa", doc_stride=30)
    with pytest.raises(ConfigError, match="`doc_stride`"):
        tfft.make_dataset(model, ["who?"], None, ["a context"], max_length=48)
    with pytest.raises(DataError, match=r"labels\[0\]: answer 0 'x' is not at answer_start 0"):
        tfft.make_dataset(
            model, ["who?"], [{"text": ["x"], "answer_start": [0]}], ["a context"], max_length=128
        )
    bad = tmp_path / "bad.json"
    document = synthetic_squad(2, articles=1, questions=2)
    document["data"][0]["paragraphs"][1]["qas"][0]["answers"][0]["answer_start"] += 1
    bad.write_text(json.dumps(document))
    result = run_cli(
        "fit", "--hf-model", tiny_bert_dir, "--task", "qa", "--train", bad, "--max-length", 48,
        "--doc-stride", 8, "--run-dir", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"{bad}: data[0].paragraphs[1].qas[0] (id '2-0-1'): field `answers[0].text`" in result.output
    result = run_cli(
        "fit", "--hf-model", tiny_bert_dir, "--task", "qa", "--train", qa_files["train"],
        "--format", "csv", "--run-dir", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 1 and "use squad or jsonl" in result.output
