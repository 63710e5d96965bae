"""Text <-> ids in the TensorFlow graph for seq2seq exports.

The serving graph of a seq2seq model tokenizes the source and decodes the generated ids
with TensorFlow ops, where the tokenizers allow it:

- source side: the backbone encoder's own graph tokenizer (WordPiece, ...), or
  :class:`SentencePieceGraphTokenizer` for T5-style SentencePiece (ids are the model's ids);
- target side: :class:`WordPieceDetokenizer` or :class:`SentencePieceDetokenizer`, which
  reproduce ``tokenizer.batch_decode(skip_special_tokens=True)`` including Hugging Face's
  cleanup of spaces before punctuation.

:func:`graph_source_tokenizer` and :func:`graph_detokenizer` return None for tokenizers
only Python can run (remapped SentencePiece such as Marian's). Byte-level BPE (BART) runs
both ways with :class:`tfft.text.bpe.ByteLevelBPETokenizer`.
"""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from tfft.tokenization import HFTextEncoder, strip_like_python

# The cleanup the Rust WordPiece decoder applies (tokenizers/src/decoders/wordpiece.rs), in order,
# to each token on its own (with its leading space), not to the joined text: so "wasn ' t"
# stays as it is, while "bushes ." becomes "bushes.".
WORDPIECE_CLEANUP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" do not", " don't"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)
# transformers' PreTrainedTokenizerBase.clean_up_tokenization, in order.
HF_CLEANUP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


class GraphDetokenizer(tf.Module):
    """Generated ids to text with TensorFlow ops, as ``tokenizer.batch_decode(skip_special_tokens=True)``."""

    def __init__(self, special_ids: list[int], cleanup: tuple[tuple[str, str], ...]):
        super().__init__()
        self.special_ids = tf.constant(sorted(set(special_ids)) or [-1], tf.int32)
        self.cleanup = cleanup

    def _keep(self, ids: tf.Tensor) -> tf.RaggedTensor:
        ids = tf.cast(ids, tf.int32)
        special = tf.reduce_any(tf.equal(ids[..., None], self.special_ids), axis=-1)
        return tf.ragged.boolean_mask(ids, tf.logical_not(special))

    def _clean(self, texts: tf.Tensor) -> tf.Tensor:
        for old, new in self.cleanup:
            texts = tf.strings.regex_replace(texts, _literal(old), _replacement(new))
        return texts

    def detokenize(self, ids: tf.Tensor) -> tf.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _literal(text: str) -> str:
    return "".join("\\" + c if not c.isalnum() and c != " " else c for c in text)


def _replacement(text: str) -> str:
    return text.replace("\\", "\\\\")


class WordPieceDetokenizer(GraphDetokenizer):
    """WordPiece as the Rust decoder: each token after the first gets a leading space, or loses
    its ``##`` prefix (a continuation); ``token_cleanup`` applies to each token on its own, then
    ``cleanup`` (transformers' ``clean_up_tokenization``, when on) to the joined text."""

    def __init__(self, vocab: list[str], special_ids, prefix: str, cleanup, token_cleanup=()):
        super().__init__(special_ids, cleanup)
        self.vocab = tf.constant(vocab)
        self.prefix = prefix
        self.token_cleanup = token_cleanup

    def detokenize(self, ids):
        kept = self._keep(ids)
        tokens = tf.gather(self.vocab, kept.flat_values)
        first = tf.equal(tf.ragged.range(kept.row_lengths()).flat_values, 0)
        continued = tf.strings.regex_full_match(tokens, _literal(self.prefix) + "(?s).*")
        glued = tf.strings.regex_replace(tokens, "^" + _literal(self.prefix), "", replace_global=False)
        tokens = tf.where(first, tokens, tf.where(continued, glued, tf.strings.join([" ", tokens])))
        for old, new in self.token_cleanup:
            tokens = tf.strings.regex_replace(tokens, _literal(old), _replacement(new))
        texts = tf.strings.reduce_join(kept.with_flat_values(tokens), axis=-1, separator="")
        return self._clean(texts)


class SentencePieceDetokenizer(GraphDetokenizer):
    """SentencePiece models whose ids are the tokenizer's ids (T5-style)."""

    def __init__(self, model_proto: bytes, size: int, special_ids, cleanup):
        super().__init__(special_ids, cleanup)
        import tensorflow_text as text

        self.size = size
        self._tokenizer = text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)

    def detokenize(self, ids):
        kept = self._keep(ids)
        kept = tf.ragged.boolean_mask(kept, kept < self.size)
        return self._clean(self._tokenizer.detokenize(kept))


class SentencePieceGraphTokenizer(tf.Module):
    """Source-side SentencePiece (T5-style: ids are the model's ids), no extra preprocessing."""

    def __init__(self, model_proto: bytes):
        super().__init__()
        import tensorflow_text as text

        self._tokenizer = text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)

    def tokenize(self, texts):
        # Stripped as tfft's readers strip source texts (SentencePiece alone keeps, e.g., U+0085).
        return self._tokenizer.tokenize(strip_like_python(texts))


def t5_style_sentencepiece(tokenizer) -> bytes | None:
    """The SentencePiece model of a tokenizer whose ids are exactly the SentencePiece ids, else None."""
    vocab_file = getattr(tokenizer, "vocab_file", None)
    if not vocab_file or not str(vocab_file).endswith(".model") or not Path(vocab_file).is_file():
        return None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    if (spec.get("model") or {}).get("type") != "Unigram":
        return None
    try:
        import sentencepiece
    except ImportError:
        return None
    processor = sentencepiece.SentencePieceProcessor(model_file=str(vocab_file))
    vocab = tokenizer.get_vocab()
    for index in range(processor.get_piece_size()):
        if vocab.get(processor.id_to_piece(index)) != index:
            return None
    if (spec.get("normalizer") or {}).get("type") not in (None, "Precompiled", "Sequence"):
        return None
    if getattr(tokenizer, "do_lower_case", False):
        return None
    return Path(vocab_file).read_bytes()


def graph_source_tokenizer(encoder: HFTextEncoder):
    """An in-graph tokenizer for the source side, or None (byte-level BPE, remapped ids, ...)."""
    graph = encoder.graph_tokenizer()
    if graph is not None:
        return graph
    proto = t5_style_sentencepiece(encoder.tokenizer)
    return None if proto is None else SentencePieceGraphTokenizer(proto)


def graph_detokenizer(encoder: HFTextEncoder):
    """An in-graph decoder for the target side (``detokenize(ids) -> text``), or None when only Python can."""
    tokenizer = encoder.tokenizer
    special = list(tokenizer.all_special_ids)
    python_cleanup = HF_CLEANUP if getattr(tokenizer, "clean_up_tokenization_spaces", False) else ()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    decoder = spec.get("decoder") or {}
    wordpiece = encoder.wordpiece_settings()
    if wordpiece is not None and decoder.get("type") == "WordPiece":
        token_cleanup = WORDPIECE_CLEANUP if decoder.get("cleanup", True) else ()
        prefix = decoder.get("prefix", "##")
        return WordPieceDetokenizer(wordpiece["vocab"], special, prefix, python_cleanup, token_cleanup)
    if decoder.get("type") == "ByteLevel":
        from tfft.text.bpe import ByteLevelBPETokenizer

        return ByteLevelBPETokenizer.from_hf_tokenizer(tokenizer)
    proto = t5_style_sentencepiece(tokenizer)
    if proto is not None and decoder.get("type") == "Metaspace":
        import sentencepiece

        size = sentencepiece.SentencePieceProcessor(model_proto=proto).get_piece_size()
        return SentencePieceDetokenizer(proto, size, special, python_cleanup)
    return None
