"""The in-graph byte-level BPE tokenizer gives the Hugging Face tokenizers' ids, and decodes back."""

from __future__ import annotations

import pytest
import tensorflow as tf
import transformers
from helpers import BPE_CORPUS, write_bpe_tokenizer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tfft.errors import BackboneError
from tfft.text.bpe import ByteLevelBPETokenizer
from tfft.tokenization import HFTextEncoder

# Text built from the hard parts: Unicode white space of every kind, letters in several
# scripts, CJK, emoji (with joiners and modifiers), digits, contractions, punctuation.
FRAGMENTS = [
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\u00a0",
    "\u3000",
    "\u2028",
    "\x0b",
    "\x85",
    "\x00",
    "'s",
    "'t",
    "'re",
    "'ve",
    "'m",
    "'ll",
    "'d",
    "'S",
    "don't",
    "we'll",
    "'",
    "the",
    "cat",
    "Héllo",
    "wörld",
    "naïve",
    "Ελληνικά",
    "текст",
    "你好",
    "世界",
    "東京",
    "한국어",
    "🙂",
    "🎉",
    "👍🏽",
    "👨‍👩‍👧",
    "🇩🇪",
    "\u0301",
    "\u200d",
    "0",
    "42",
    "1234567890",
    "3.14",
    "1,000",
    "²",
    "Ⅻ",
    ".",
    ",",
    "!?",
    "...",
    "--",
    "$",
    "@#",
    "(",
    ")",
    "\\",
    '"',
    "supercalifragilisticexpialidocious",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]
TEXT = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
)
TEXTS = st.lists(TEXT, min_size=1, max_size=12)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
EDGE_CASES = ["", " ", "   ", "a  b", "a\t\tb", "a \tb", "x\n", "end   ", "  lead", "it's 's x's", "1 22 333"]


def _load(tmp_path_factory, family: str, add_prefix_space: bool):
    folder = write_bpe_tokenizer(
        tmp_path_factory.mktemp(f"bpe_{family}"), family, add_prefix_space=add_prefix_space
    )
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    graph = ByteLevelBPETokenizer.from_hf_tokenizer(hf)
    tokenize = tf.function(graph.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    detokenize = tf.function(graph.detokenize, input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
    return hf, graph, tokenize, detokenize


@pytest.fixture(scope="module", params=[("gpt2", False), ("roberta", False), ("bart", True)], ids=str)
def bpe(request, tmp_path_factory):
    return _load(tmp_path_factory, *request.param)


def _python_ids(hf, texts):
    return [hf(text, add_special_tokens=False)["input_ids"] for text in texts]


@SETTINGS
@given(texts=TEXTS)
@example(texts=EDGE_CASES)
@example(texts=BPE_CORPUS)
def test_ids_equal_the_python_tokenizer_and_decode_back(bpe, texts):
    hf, _, tokenize, detokenize = bpe
    expected = _python_ids(hf, texts)
    assert tokenize(tf.constant(texts)).to_list() == expected
    decoded = [text.decode("utf-8") for text in detokenize(tf.ragged.constant(expected, tf.int32)).numpy()]
    assert decoded == [hf.decode(ids, skip_special_tokens=True) for ids in expected]
    prefix = " " if hf.add_prefix_space else ""
    assert decoded == [text if text.startswith(" ") or not text else prefix + text for text in texts]


def test_special_tokens_in_the_text_and_around_it(bpe):
    hf, graph, tokenize, _ = bpe
    special = [hf.eos_token, hf.bos_token, getattr(hf, "mask_token", None) or hf.eos_token]
    texts = [f"a {special[0]} b", f"{special[1]}x  {special[2]} y{special[0]}", f"no specials {special[2]}"]
    assert tokenize(tf.constant(texts)).to_list() == _python_ids(hf, texts)
    template = HFTextEncoder(hf).template
    for max_length in (4, 64):
        ids = graph.encode(tf.constant(texts), template, max_length).to_list()
        assert ids == hf(texts, truncation=True, max_length=max_length)["input_ids"]


def test_detokenize_replaces_broken_utf8_like_hugging_face(bpe):
    hf, graph, _, _ = bpe
    emoji = hf("🎉🙂", add_special_tokens=False)["input_ids"]
    byte_ids = [hf.convert_tokens_to_ids(hf.convert_ids_to_tokens(i)) for i in emoji]
    cut = [byte_ids[:1], byte_ids[1:], byte_ids[::-1]]
    decoded = [text.decode("utf-8") for text in graph.detokenize(tf.ragged.constant(cut, tf.int32)).numpy()]
    assert decoded == [hf.decode(ids) for ids in cut]


def test_runs_in_a_saved_model_signature(bpe, tmp_path):
    hf, graph, _, _ = bpe
    module = tf.Module()
    module.tokenizer = graph
    module.tokenize = tf.function(
        lambda text: {"ids": graph.tokenize(text).to_tensor(-1)},
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path / "bpe"), signatures={"serving_default": module.tokenize})
    del module
    import tensorflow_text  # noqa: F401  (the regex split op)

    loaded = tf.saved_model.load(str(tmp_path / "bpe"))
    texts = ["it's 你好 🙂  ok", "", "x"]
    ids = loaded.signatures["serving_default"](text=tf.constant(texts))["ids"].numpy().tolist()
    assert [[i for i in row if i >= 0] for row in ids] == _python_ids(hf, texts)


def test_not_byte_level_bpe_gives_none(tiny_bert_dir):
    assert (
        ByteLevelBPETokenizer.from_hf_tokenizer(
            transformers.AutoTokenizer.from_pretrained(str(tiny_bert_dir))
        )
        is None
    )


def test_from_files_matches_and_names_a_bad_merges_line(tmp_path):
    folder = write_bpe_tokenizer(tmp_path / "gpt2", "gpt2")
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    graph = ByteLevelBPETokenizer.from_files(
        folder / "vocab.json", folder / "merges.txt", special_tokens=["<|endoftext|>"]
    )
    texts = ["it's 2024<|endoftext|>你好", "  tabs\t\tend  "]
    assert graph.tokenize(tf.constant(texts)).to_list() == _python_ids(hf, texts)
    (tmp_path / "bad.txt").write_text("#version: 0.2\nĠ t\nthree parts here\n")
    with pytest.raises(BackboneError, match=r"bad.txt:3: .*Received: 'three parts here'"):
        ByteLevelBPETokenizer.from_files(folder / "vocab.json", tmp_path / "bad.txt")
    with pytest.raises(BackboneError, match=r"missing from the vocabulary. Received: \['<nope>'\]"):
        ByteLevelBPETokenizer.from_files(
            folder / "vocab.json", folder / "merges.txt", special_tokens=["<nope>"]
        )
