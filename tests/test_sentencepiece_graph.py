"""In-graph SentencePiece gives the Python tokenizer's ids, on generated text (property tests).

Tiny SentencePiece models are trained here on text with accents, Greek, Cyrillic, CJK,
numbers (with commas: Hugging Face's ALBERT converter lowers the score of pieces such as
"3,") and white space of several kinds, then wrapped the two ways tfft runs SentencePiece in
the graph: ALBERT-style (tfft.tokenization.SentencePieceGraphTokenizer, Hugging Face's
normalization redone in TensorFlow) and T5-style (tfft.backbones.graph_text, the model's own
normalization). The Python side is tfft's Python path: the text stripped as its readers
strip it (``str.strip()``), then the Hugging Face tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
import transformers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfft.backbones.graph_text import SentencePieceGraphTokenizer as T5GraphTokenizer
from tfft.backbones.graph_text import graph_source_tokenizer
from tfft.tokenization import GraphTextEncoder, HFTextEncoder, SentencePieceGraphTokenizer

spm = pytest.importorskip("sentencepiece", reason="sentencepiece trains the tiny vocabularies")

CORPUS = [
    "The movie was good, 3.14 and $5! It's ``quoted'' and ''so on''.",
    "Café déjà vu — naïve façade, ÅNGSTRÖM ß İstanbul",
    "中文字符 测试 东京 大阪 日本語のテキスト",
    "Ωμέγα άλφα Привет мир ёлка",
    "numbers 12345 67 890 1,000 3,5 and 7, 8, 9, 10,000,000",
    "tabs\tand  spaces\u3000ideographic\xa0no-break",
    "ＦＵＬＬ width １２３ emoji 😀 ok",
    "UPPER lower MiXeD under_score and-dash #tag @user",
]
SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
WHITE = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", " \t ", "\xa0", "\u3000", "\u2009", "\u2028", "\x0b"])
WORDS = st.sampled_from(["good", "Café", "naïve", "中文", "東京", "Ωμέγα", "Привет", "´", "¨", "``", "''"])
NUMBERS = st.from_regex(r"[0-9]{1,4}([,.][0-9]{1,3})*,?", fullmatch=True)
#: Varied text: words, numbers and white-space runs glued together, or any Unicode at all.
VARIED = st.lists(WORDS | NUMBERS | WHITE, max_size=12).map("".join) | st.text(
    st.characters(blacklist_categories=("Cs",)), max_size=40
)


def stripped(texts: list[str] | None) -> list[str] | None:
    return None if texts is None else [text.strip() for text in texts]


def train(folder: Path, **layout) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20),
        model_prefix=str(folder / "spiece"),
        vocab_size=120,
        model_type="unigram",
        character_coverage=1.0,
        minloglevel=2,
        **layout,
    )
    return folder / "spiece.model"


@pytest.fixture(scope="module")
def albert_model(tmp_path_factory) -> Path:
    return train(
        tmp_path_factory.mktemp("albert"),
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
    )


@pytest.fixture(scope="module", params=["uncased", "cased"])
def albert(request, albert_model):
    """(Python encoder, in-graph encoder) of an ALBERT tokenizer, lower-casing or not."""
    cased = request.param == "cased"
    tokenizer = transformers.AlbertTokenizerFast(
        vocab_file=str(albert_model), do_lower_case=not cased, keep_accents=cased
    )
    python = HFTextEncoder(tokenizer)
    graph = python.graph_tokenizer()
    assert isinstance(graph, SentencePieceGraphTokenizer)
    return python, GraphTextEncoder(graph, python.template)


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    """(Hugging Face T5 tokenizer, its in-graph source tokenizer), as the Multi30k example builds them."""
    model = train(tmp_path_factory.mktemp("t5"), pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    tokenizer = transformers.T5TokenizerFast(vocab_file=str(model), extra_ids=0, add_prefix_space=True)
    graph = graph_source_tokenizer(HFTextEncoder(tokenizer))
    assert isinstance(graph, T5GraphTokenizer)
    return tokenizer, graph


@SETTINGS
@given(texts=st.lists(VARIED, min_size=1, max_size=6), pairs=st.booleans())
def test_albert_in_graph_ids_equal_the_python_ids(albert, texts, pairs):
    python, graph = albert
    second = list(reversed(texts)) if pairs else None
    expected = python.encode(stripped(texts), stripped(second), 64)
    got = graph.encode(texts, second, 64)
    for row, (want, have) in enumerate(zip(expected.input_ids, got.input_ids, strict=True)):
        assert list(have) == list(want), (texts[row], second[row] if second else None)


@SETTINGS
@given(texts=st.lists(VARIED, min_size=1, max_size=6))
def test_t5_in_graph_ids_equal_the_python_ids(t5, texts):
    tokenizer, graph = t5
    expected = tokenizer(stripped(texts), add_special_tokens=False)["input_ids"]
    got = graph.tokenize(tf.constant(texts)).to_list()
    for text, want, have in zip(texts, expected, got, strict=True):
        assert have == want, text


@pytest.mark.parametrize("text", ["good \x03", "good\u200b", "good´", "good\t\x03", "中文 \ufeff"])
def test_white_space_left_after_stripping_gives_hugging_faces_extra_piece(albert, text):
    """Hugging Face's fast ALBERT tokenizer keeps a final "▁" for white space that survives
    Python's strip() ("\x03" is no white space to Python, "´" becomes one only through NFKD);
    SentencePiece alone would drop it, the graph adds it back."""
    python, graph = albert
    want = list(python.encode([text], None, 16).input_ids[0])
    assert list(graph.encode([text], None, 16).input_ids[0]) == want
    if python.tokenizer.do_lower_case or text != "good´":  # cased, NFKC keeps the accent: "good ́"
        assert want[-2] == python.tokenizer.convert_tokens_to_ids("▁")


@pytest.mark.parametrize("text", ["good ", "good\n", "\tgood\xa0\u3000", "good\x1c", "\n"])
def test_white_space_python_strips_is_stripped_in_the_graph(albert, text):
    python, graph = albert
    want = list(python.encode([text.strip()], None, 16).input_ids[0])
    assert list(graph.encode([text], None, 16).input_ids[0]) == want
    assert python.tokenizer.convert_tokens_to_ids("▁") not in want[-2:]


@pytest.mark.parametrize("text", ["good\x00movie", "\x00", "GOOD\x00 Movie\x00"])
def test_nul_characters_are_read_past(albert, text):
    """``tf.strings.lower`` stops at NUL; the graph lower-cases around it, as Python does."""
    python, graph = albert
    want = list(python.encode([text], None, 16).input_ids[0])
    assert list(graph.encode([text], None, 16).input_ids[0]) == want
