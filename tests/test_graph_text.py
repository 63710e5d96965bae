"""In-graph decoding of generated ids (seq2seq exports) against Hugging Face's ``batch_decode``."""

from __future__ import annotations

import pytest
import tensorflow as tf
import transformers
from helpers import tiny_vocab

from tfft.backbones.graph_text import graph_detokenizer
from tfft.tokenization import HFTextEncoder

TEXTS = [
    "the movie wasn't good -- it's 3.5/10 (at best)!",
    "i'm sure they've gone, don't you think ? yes !",
    "kwan 's hopes fall ##.# percent in ####",
    "a b , c . d ' e",
    "",
]


@pytest.mark.parametrize("clean_up", [False, True])
def test_wordpiece_detokenizer_is_batch_decode(tmp_path, clean_up):
    # The Rust WordPiece decoder cleans each token on its own: "wasn ' t" keeps its spaces
    # (all-MiniLM-L6-v2 decodes so, with clean_up_tokenization_spaces off), "good ." does not.
    (tmp_path / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    tokenizer = transformers.BertTokenizerFast(
        str(tmp_path / "vocab.txt"), do_lower_case=True, clean_up_tokenization_spaces=clean_up
    )
    detokenizer = graph_detokenizer(HFTextEncoder(tokenizer))
    assert detokenizer is not None
    ids = tokenizer(text_target=TEXTS, add_special_tokens=True)["input_ids"]
    ids.append([tokenizer.convert_tokens_to_ids("##s"), tokenizer.convert_tokens_to_ids("a")])  # "##" first
    width = max(len(row) for row in ids)
    padded = tf.constant([row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids], tf.int32)
    expected = tokenizer.batch_decode(ids, skip_special_tokens=True)
    assert [text.decode("utf-8") for text in detokenizer.detokenize(padded).numpy()] == expected
    if not clean_up:
        assert expected[0].startswith("the movie wasn ' t good - - it ' s 3. 5")
