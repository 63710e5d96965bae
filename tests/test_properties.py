"""Property-based tests: any Unicode text goes through the readers and the token pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import transformers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfft.data import TableSpec, read_examples
from tfft.errors import DataError
from tfft.preprocess import bucket_lengths, token_dataset
from tfft.tokenization import GraphTextEncoder, HFTextEncoder

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def encoders(tiny_bert_dir):
    python = HFTextEncoder(transformers.AutoTokenizer.from_pretrained(str(tiny_bert_dir)))
    return python, GraphTextEncoder(python.graph_tokenizer(), python.template)


@SETTINGS
@given(texts=st.lists(TEXT, min_size=1, max_size=8))
def test_jsonl_reader_round_trips_or_names_the_line(tmp_path_factory, texts):
    path = tmp_path_factory.mktemp("prop") / "data.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(texts)))
    try:
        examples = read_examples(str(path), TableSpec(label_column="label"))
    except DataError as error:
        message = str(error)
        assert "\n" not in message and message.startswith(f"{path}:")
        return
    assert examples.texts == [t.strip() for t in texts]
    assert all(examples.texts)


@SETTINGS
@given(
    texts=st.lists(TEXT, min_size=1, max_size=6), pairs=st.booleans(), max_length=st.sampled_from([8, 16, 40])
)
def test_any_text_tokenizes_pads_and_masks_consistently(encoders, texts, pairs, max_length):
    python, graph = encoders
    second = list(reversed(texts)) if pairs else None
    encoded = python.encode(texts, second, max_length)
    in_graph = graph.encode(texts, second, max_length)  # must not crash on any input
    assert all(len(ids) <= max_length for ids in in_graph.input_ids)
    labels = np.arange(len(texts), dtype=np.int32)
    for training in (True, False):
        batches = list(
            token_dataset(encoded, labels, batch_size=4, max_length=max_length, training=training, seed=0)
        )
        seen = 0
        for features, y, w in batches:
            ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
            assert ids.shape == mask.shape == features["token_type_ids"].shape
            assert ids.shape[1] in bucket_lengths(max_length)
            real = w.numpy() > 0
            for row, label in zip(mask[real], y.numpy()[real]):
                length = len(encoded.input_ids[label])
                assert row.sum() == length and row[:length].all()
            assert np.all(ids[mask == 0] == python.template.pad_id)
            seen += int(real.sum())
        assert seen == len(texts)


# Letters (Latin with accents, Greek, Cyrillic, CJK), digits, punctuation, white space of
# several kinds, control, format and private-use characters: the two tokenizers must agree.
COMMON_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    | st.characters(min_codepoint=0xC0, max_codepoint=0x24F)
    | st.characters(min_codepoint=0x391, max_codepoint=0x3C9)
    | st.characters(min_codepoint=0x410, max_codepoint=0x44F)
    | st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80)
    | st.sampled_from("\t\n\xa0\u2009\u2028\x0b\u200d\U000f0000"),
    max_size=200,
)


@SETTINGS
@given(
    texts=st.lists(COMMON_TEXT, min_size=1, max_size=6),
    pairs=st.booleans(),
    max_length=st.sampled_from([8, 16, 40]),
)
def test_in_graph_wordpiece_ids_equal_the_python_tokenizer_ids(encoders, texts, pairs, max_length):
    """The exported model's in-graph tokenizer gives the ids training used."""
    python, graph = encoders
    second = list(reversed(texts)) if pairs else None
    expected = python.encode(texts, second, max_length)
    in_graph = graph.encode(texts, second, max_length)
    for row, (want, got) in enumerate(zip(expected.input_ids, in_graph.input_ids, strict=True)):
        assert list(got) == list(want), (texts[row], second[row] if second else None)


@pytest.mark.parametrize(
    "char",
    ["\U000f0000", "\xa0", "\u2009", "\u2028", "\x0b", "\u200d", "\x85"],
    ids=["private-use", "no-break-space", "thin-space", "line-separator", "vertical-tab", "zwj", "nel"],
)
def test_in_graph_wordpiece_treats_rare_characters_like_python(encoders, char):
    python, graph = encoders
    text = f"good {char} film"
    in_graph, expected = graph.encode([text], None, 16), python.encode([text], None, 16)
    assert list(in_graph.input_ids[0]) == list(expected.input_ids[0])
