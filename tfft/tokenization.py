"""Text to token ids: Python tokenizers for training, in-graph tokenizers for export.

Every backbone comes with a :class:`TextEncoder`. It turns a batch of texts (and optional
second segments) into *unpadded* token ids with the model's special tokens, truncated to
``max_length`` the way Hugging Face's ``longest_first`` strategy does. Padding and length
bucketing happen later, in tf.data (:mod:`tfft.preprocess`).

Where the vocabulary allows it (WordPiece, ALBERT-style SentencePiece, byte-level BPE of
GPT-2 / RoBERTa / BART), the encoder also offers a :class:`GraphTokenizer`: the same
tokenization as TensorFlow ops (tensorflow-text; :mod:`tfft.text.bpe` for byte-level BPE),
used by exported SavedModels so that they take raw text.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.errors import BackboneError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SequenceTemplate:
    """Where a model's special tokens go around one or two segments.

    One segment becomes ``prefix + a + suffix``; two become
    ``prefix + a + middle + b + suffix``. Token type ids are 0 up to and including
    ``middle`` and ``pair_type_id`` from ``b`` on.
    """

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    pad_id: int
    pair_type_id: int = 1

    def num_special(self, pair: bool) -> int:
        """How many special tokens one example gets."""
        extra = len(self.middle) if pair else 0
        return len(self.prefix) + len(self.suffix) + extra

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SequenceTemplate:
        return cls(
            prefix=tuple(data["prefix"]),
            middle=tuple(data["middle"]),
            suffix=tuple(data["suffix"]),
            pad_id=int(data["pad_id"]),
            pair_type_id=int(data.get("pair_type_id", 1)),
        )

    @classmethod
    def bert(cls, cls_id: int, sep_id: int, pad_id: int) -> SequenceTemplate:
        """``[CLS] a [SEP] b [SEP]``, the BERT layout."""
        return cls(prefix=(cls_id,), middle=(sep_id,), suffix=(sep_id,), pad_id=pad_id)


def truncated_lengths(len_a: tf.Tensor, len_b: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Segment lengths after Hugging Face ``longest_first`` truncation (fast tokenizers).

    When both segments do not fit in ``budget``, the shorter one keeps
    ``max(budget - longer, budget // 2)`` tokens at most and the longer one the rest; on
    a tie the first segment counts as the shorter one. This is what the Rust tokenizers
    do (the slow Python tokenizers split ties the other way round).
    """
    first_shorter = len_a <= len_b
    shorter = tf.where(first_shorter, len_a, len_b)
    longer = tf.where(first_shorter, len_b, len_a)
    keep_shorter = tf.minimum(shorter, tf.maximum(budget - longer, budget // 2))
    keep_longer = tf.minimum(longer, budget - keep_shorter)
    keep_a = tf.where(first_shorter, keep_shorter, keep_longer)
    keep_b = tf.where(first_shorter, keep_longer, keep_shorter)
    return keep_a, keep_b


def _head(ragged: tf.RaggedTensor, lengths: tf.Tensor) -> tf.RaggedTensor:
    """The first ``lengths[i]`` values of each row."""
    positions = tf.ragged.range(ragged.row_lengths())
    return tf.ragged.boolean_mask(ragged, positions < tf.expand_dims(lengths, 1))


def pack_segments(
    first: tf.RaggedTensor,
    second: tf.RaggedTensor | None,
    template: SequenceTemplate,
    max_length: int,
) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """Truncate and add special tokens, in the graph.

    Args:
        first: ``[batch, (tokens)]`` int ids of the first segments, without special tokens.
        second: the same for second segments, or None.
        template: where the special tokens go.
        max_length: the longest packed sequence, special tokens included.

    Returns:
        ``(input_ids, token_type_ids)`` as int32 ragged tensors ``[batch, (length)]``.
    """
    first = tf.cast(first, tf.int32)
    batch = first.nrows()

    def specials(ids: tuple[int, ...]) -> tf.RaggedTensor:
        row = tf.constant(ids, dtype=tf.int32, shape=[len(ids)])
        return tf.RaggedTensor.from_tensor(tf.tile(tf.expand_dims(row, 0), [batch, 1]))

    budget = max_length - template.num_special(second is not None)
    if second is None:
        first = _head(first, tf.minimum(first.row_lengths(), budget))
        ids = tf.concat([specials(template.prefix), first, specials(template.suffix)], axis=1)
        return ids, tf.zeros_like(ids)

    second = tf.cast(second, tf.int32)
    keep_a, keep_b = truncated_lengths(first.row_lengths(), second.row_lengths(), budget)
    head_a = tf.concat([specials(template.prefix), _head(first, keep_a), specials(template.middle)], axis=1)
    tail_b = tf.concat([_head(second, keep_b), specials(template.suffix)], axis=1)
    ids = tf.concat([head_a, tail_b], axis=1)
    types = tf.concat([tf.zeros_like(head_a), tf.ones_like(tail_b) * template.pair_type_id], axis=1)
    return ids, types


def to_dense_inputs(ids: tf.RaggedTensor, types: tf.RaggedTensor, pad_id: int, length=None) -> dict:
    """Pad packed ids to a dense ``{input_ids, attention_mask, token_type_ids}`` batch."""
    shape = None if length is None else [None, length]
    return {
        "input_ids": ids.to_tensor(default_value=pad_id, shape=shape),
        "attention_mask": tf.ones_like(ids).to_tensor(default_value=0, shape=shape),
        "token_type_ids": types.to_tensor(default_value=0, shape=shape),
    }


class GraphTokenizer(tf.Module):
    """Strings to word-piece ids (no special tokens) with TensorFlow ops.

    Subclasses implement :meth:`tokenize`; instances are tracked inside exported
    SavedModels, so their vocabulary travels with the model.
    """

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:  # pragma: no cover - abstract
        raise NotImplementedError


class WordPieceGraphTokenizer(GraphTokenizer):
    """BERT-style basic tokenization plus WordPiece, via ``tensorflow_text.BertTokenizer``.

    Args:
        vocab: the vocabulary, index = token id.
        lower_case: lower-case and strip accents first (uncased BERT checkpoints).
        unknown_token: the vocabulary's unknown-word token.
    """

    def __init__(self, vocab: Sequence[str], lower_case: bool, unknown_token: str = "[UNK]"):
        super().__init__()
        import tensorflow_text as text

        if unknown_token not in vocab:
            raise BackboneError(f"The WordPiece vocabulary has no unknown token {unknown_token!r}.")
        self.lower_case = lower_case
        initializer = tf.lookup.KeyValueTensorInitializer(
            keys=tf.constant(list(vocab)),
            values=tf.range(len(vocab), dtype=tf.int64),
        )
        self._table = tf.lookup.StaticHashTable(initializer, default_value=vocab.index(unknown_token))
        # Casing is done here rather than by BertTokenizer(lower_case=True), which case-folds
        # (ß -> ss) where Hugging Face lower-cases.
        self._tokenizer = text.BertTokenizer(
            self._table,
            lower_case=False,
            normalization_form=None,
            unknown_token=unknown_token,
            token_out_type=tf.int64,
        )

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """Hugging Face ``BertNormalizer``: clean control characters, lower-case, strip accents."""
        import tensorflow_text as text

        # As tokenizers' BertNormalizer: white space of any kind becomes " "; control, format and
        # private-use characters go (RE2 has no class for unassigned code points).
        texts = tf.strings.regex_replace(texts, r"[\t\n\r\p{Zs}\p{Zl}\p{Zp}]", " ")
        texts = tf.strings.regex_replace(texts, r"[\p{Cc}\p{Cf}\p{Co}\x{FFFD}]", "")
        if self.lower_case:
            texts = tf.strings.lower(texts, encoding="utf-8")
            texts = text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        return texts

    def tokenize_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Word-piece ids grouped by word: int32 ``[batch, (words), (pieces)]``."""
        return tf.cast(self._tokenizer.tokenize(self.normalize(texts)), tf.int32)

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return self.tokenize_words(texts).merge_dims(-2, -1)


#: What Python's ``str.strip()`` strips (tfft's readers strip every text before tokenizing).
_PYTHON_SPACE = (
    r"[\t\n\x{b}\f\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)
#: Stands in for NUL while lower-casing: ``tf.strings.lower`` stops at a NUL character.
_NUL_STAND_IN = "\U0010fffd"


def strip_like_python(texts: tf.Tensor) -> tf.Tensor:
    """``texts`` without the leading and trailing characters Python's ``str.strip()`` removes."""
    return tf.strings.regex_replace(texts, f"^{_PYTHON_SPACE}+|{_PYTHON_SPACE}+$", "")


#: A text whose normalized form ends in white space: one of the characters SentencePiece's
#: nmt_nfkc rules map to a space, then only characters those rules delete (ASCII controls).
#: Read off the Hugging Face ALBERT normalizer code point by code point; characters that
#: become a space through NFKD and accent stripping (``´``, ``¨``, ...) are caught by
#: testing the normalized text too.
_ENDS_IN_SPACE = (
    r"(?s).*[\t\n\f\r \x{a0}\x{1680}\x{2000}-\x{200c}\x{200e}\x{200f}\x{2028}\x{2029}\x{202f}"
    r"\x{205f}\x{3000}\x{feff}][\x{1}-\x{8}\x{b}\x{e}-\x{1f}\x{7f}]*"
)


class SentencePieceGraphTokenizer(GraphTokenizer):
    """SentencePiece (ALBERT-style) with the Hugging Face preprocessing, via tensorflow-text.

    The ids are those of tfft's Python path: the text stripped as Python strips it (tfft's
    readers do), then Hugging Face's fast ALBERT tokenizer. That tokenizer, unlike
    SentencePiece, keeps a final ``▁`` piece when the normalized text still ends in white
    space (``"a \x03"``, ``"a´"``); the graph adds it too. tests/test_sentencepiece_graph.py
    compares the two on generated text.

    Args:
        model_proto: the serialized SentencePiece model (``spiece.model``).
        lower_case: lower-case first (``do_lower_case``).
        keep_accents: keep accents; otherwise NFKD and strip them.
        remove_space: strip and collapse runs of whitespace.
    """

    def __init__(self, model_proto: bytes, lower_case: bool, keep_accents: bool, remove_space: bool):
        super().__init__()
        import tensorflow_text as text

        self.lower_case = lower_case
        self.keep_accents = keep_accents
        self.remove_space = remove_space
        self._tokenizer = text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)
        self._space_id = int(self._tokenizer.string_to_id("\u2581").numpy())

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        import tensorflow_text as text

        if self.remove_space:
            texts = tf.strings.strip(tf.strings.regex_replace(texts, r"\s+", " "))
        texts = tf.strings.regex_replace(texts, "``|''", '"')
        if not self.keep_accents:
            texts = text.normalize_utf8(texts, "NFKD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        if self.lower_case:
            texts = tf.strings.regex_replace(texts, "\x00", _NUL_STAND_IN)
            texts = tf.strings.lower(texts, encoding="utf-8")
            texts = tf.strings.regex_replace(texts, _NUL_STAND_IN, "\x00")
        return texts

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        texts = strip_like_python(texts)
        normalized = self.normalize(texts)
        ids = self._tokenizer.tokenize(normalized)
        # Ends in white space after normalization: the text itself ("a \x03") or through NFKD ("a´").
        trailing = tf.strings.regex_full_match(texts, _ENDS_IN_SPACE) | tf.strings.regex_full_match(
            normalized, _ENDS_IN_SPACE
        )
        space = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(trailing, tf.int64))], tf.constant(self._space_id, ids.dtype)),
            tf.cast(trailing, tf.int64),
        )
        return tf.concat([ids, space], axis=1)


class HubPreprocessorTokenizer(GraphTokenizer):
    """The ``tokenize`` part of a TF Hub BERT preprocessor SavedModel."""

    def __init__(self, preprocessor):
        super().__init__()
        self.preprocessor = preprocessor

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        pieces = self.preprocessor.tokenize(texts)
        if pieces.shape.rank == 3:
            pieces = pieces.merge_dims(-2, -1)
        return tf.cast(pieces, tf.int32)


@dataclasses.dataclass
class Encoded:
    """Unpadded token ids of a batch of examples (one int32 array per example)."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64)


def _rows(ragged: tf.RaggedTensor) -> list[np.ndarray]:
    values = ragged.flat_values.numpy()
    return np.split(values, ragged.row_splits.numpy()[1:-1])


class TextEncoder:
    """Tokenizes text for one backbone; subclasses choose how.

    Attributes:
        template: where the special tokens go.
        uses_token_types: whether the backbone takes ``token_type_ids``.
    """

    template: SequenceTemplate
    uses_token_types: bool = True

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int) -> Encoded:
        """Token ids with special tokens, truncated to ``max_length``."""
        raise NotImplementedError

    def graph_tokenizer(self) -> GraphTokenizer | None:
        """The in-graph equivalent of :meth:`encode` before packing, or None."""
        return None

    def graph_word_tokenizer(self) -> GraphTokenizer | None:
        """The in-graph equivalent of :meth:`tokenize_words` (one word per string), or None."""
        return self.graph_tokenizer()

    def tokenize_words(self, words: Sequence[str]) -> list[np.ndarray]:
        """Word-piece ids of each word on its own (no special tokens), for word-level tasks.

        A word that yields no pieces (e.g. only control characters) gets an empty array.
        """
        raise NotImplementedError

    def describe(self) -> dict:
        """What to record about this tokenizer in run folders and exports."""
        return {"kind": type(self).__name__, "template": self.template.to_json()}


class GraphTextEncoder(TextEncoder):
    """Runs a :class:`GraphTokenizer` eagerly, in chunks, and packs with the template."""

    def __init__(self, tokenizer: GraphTokenizer, template: SequenceTemplate, chunk_size: int = 2048):
        self._tokenizer = tokenizer
        self.template = template
        self.chunk_size = chunk_size

    def graph_tokenizer(self) -> GraphTokenizer:
        return self._tokenizer

    def encode(self, texts, pairs, max_length) -> Encoded:
        ids: list[np.ndarray] = []
        types: list[np.ndarray] = []
        for start in range(0, len(texts), self.chunk_size):
            stop = start + self.chunk_size
            first = self._tokenizer.tokenize(tf.constant(list(texts[start:stop])))
            second = None if pairs is None else self._tokenizer.tokenize(tf.constant(list(pairs[start:stop])))
            chunk_ids, chunk_types = pack_segments(first, second, self.template, max_length)
            ids.extend(_rows(chunk_ids))
            types.extend(_rows(chunk_types))
        return Encoded(ids, types)

    def tokenize_words(self, words: Sequence[str]) -> list[np.ndarray]:
        pieces: list[np.ndarray] = []
        for start in range(0, len(words), self.chunk_size):
            chunk = list(words[start : start + self.chunk_size])
            if chunk:
                pieces.extend(_rows(self._tokenizer.tokenize(tf.constant(chunk))))
        return [row.astype(np.int32) for row in pieces]


class HFTextEncoder(TextEncoder):
    """A Hugging Face (fast) tokenizer; its WordPiece vocabulary also runs in the graph."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.template = self._template(tokenizer)
        self.uses_token_types = "token_type_ids" in tokenizer.model_input_names
        self._graph: GraphTokenizer | None = None

    @staticmethod
    def _template(tokenizer) -> SequenceTemplate:
        first, second = -1, -2  # sentinels that no vocabulary uses
        single = tokenizer.build_inputs_with_special_tokens([first])
        pair = tokenizer.build_inputs_with_special_tokens([first], [second])
        try:
            types = tokenizer.create_token_type_ids_from_sequences([first], [second])
            pair_type_id = int(types[pair.index(second)])
        except (NotImplementedError, ValueError):
            pair_type_id = 0
        pad_id = tokenizer.pad_token_id
        if pad_id is None:  # GPT-2 and other decoders: padding is masked anyway
            pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        template = SequenceTemplate(
            prefix=tuple(single[: single.index(first)]),
            middle=tuple(pair[pair.index(first) + 1 : pair.index(second)]),
            suffix=tuple(pair[pair.index(second) + 1 :]),
            pad_id=int(pad_id),
            pair_type_id=pair_type_id,
        )
        if tuple(single[single.index(first) + 1 :]) != template.suffix:
            raise BackboneError(
                f"Unsupported special-token layout for {type(tokenizer).__name__}: "
                f"single={single}, pair={pair}."
            )
        if "token_type_ids" not in tokenizer.model_input_names:
            template = dataclasses.replace(template, pair_type_id=0)
        return template

    def encode(self, texts, pairs, max_length) -> Encoded:
        batch = self.tokenizer(
            list(texts),
            None if pairs is None else list(pairs),
            truncation="longest_first",
            max_length=max_length,
            add_special_tokens=True,
            return_token_type_ids=True,
            return_attention_mask=False,
        )
        ids = [np.asarray(row, dtype=np.int32) for row in batch["input_ids"]]
        types = [np.asarray(row, dtype=np.int32) for row in batch["token_type_ids"]]
        if not self.uses_token_types:
            types = [np.zeros_like(row) for row in ids]
        return Encoded(ids, types)

    def tokenize_words(self, words: Sequence[str]) -> list[np.ndarray]:
        """Word-piece ids of each word on its own, as if the word stood mid-sentence.

        Byte-level BPE (GPT-2, RoBERTa, BART) marks a word start with a space, and Hugging
        Face refuses pre-split words when such a tokenizer was loaded with
        ``add_prefix_space=False``. So each word is tokenized as ``" " + word``: the ids are
        the same whether the tokenizer was loaded with ``add_prefix_space`` True or False.
        Hugging Face gives every fast tokenizer ``add_prefix_space`` (False unless set), so
        WordPiece and SentencePiece words get the space too; their pre-tokenizers drop it.
        """
        if not words:
            return []
        prefix_space = getattr(self.tokenizer, "add_prefix_space", None) is not None
        batch = self.tokenizer(
            [f" {word}" for word in words] if prefix_space else list(words),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [np.asarray(row, dtype=np.int32) for row in batch["input_ids"]]

    def wordpiece_settings(self) -> dict | None:
        """Vocabulary and casing of a WordPiece tokenizer, or None for other models."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        spec = json.loads(backend.to_str())
        model = spec.get("model") or {}
        if model.get("type") != "WordPiece":
            return None
        normalizer = spec.get("normalizer") or {}
        if normalizer.get("type") != "BertNormalizer":
            return None
        lower = bool(normalizer.get("lowercase", False))
        strip_accents = normalizer.get("strip_accents")
        if strip_accents is not None and strip_accents != lower:
            return None  # casing and accent stripping that tensorflow-text cannot mirror
        vocab = [token for token, _ in sorted(self.tokenizer.get_vocab().items(), key=lambda item: item[1])]
        return {"vocab": vocab, "lower_case": lower, "unknown_token": model.get("unk_token", "[UNK]")}

    def sentencepiece_settings(self) -> dict | None:
        """Model file and preprocessing of an ALBERT-style SentencePiece tokenizer, or None."""
        vocab_file = getattr(self.tokenizer, "vocab_file", None)
        if not vocab_file or not str(vocab_file).endswith(".model") or not Path(vocab_file).is_file():
            return None
        if not all(
            hasattr(self.tokenizer, name) for name in ("do_lower_case", "keep_accents", "remove_space")
        ):
            return None  # other SentencePiece tokenizers (T5, XLNet) preprocess differently
        return {
            "model_proto": Path(vocab_file).read_bytes(),
            "lower_case": bool(self.tokenizer.do_lower_case),
            "keep_accents": bool(self.tokenizer.keep_accents),
            "remove_space": bool(self.tokenizer.remove_space),
        }

    def graph_tokenizer(self) -> GraphTokenizer | None:
        if self._graph is None:
            wordpiece = self.wordpiece_settings()
            if wordpiece is not None:
                self._graph = WordPieceGraphTokenizer(**wordpiece)
            else:
                sentencepiece = self.sentencepiece_settings()
                if sentencepiece is not None:
                    self._graph = SentencePieceGraphTokenizer(**sentencepiece)
                else:
                    from tfft.text.bpe import ByteLevelBPETokenizer

                    self._graph = ByteLevelBPETokenizer.from_hf_tokenizer(self.tokenizer)
        return self._graph

    def graph_word_tokenizer(self) -> GraphTokenizer | None:
        """Byte-level BPE tokenizes each word as ``" " + word`` (see :meth:`tokenize_words`)."""
        from tfft.text.bpe import ByteLevelBPETokenizer, WordStartTokenizer

        graph = self.graph_tokenizer()
        return WordStartTokenizer(graph) if isinstance(graph, ByteLevelBPETokenizer) else graph

    def describe(self) -> dict:
        in_graph = self.graph_tokenizer() is not None  # cached: no second pass over the vocabulary
        return {**super().describe(), "tokenizer_class": type(self.tokenizer).__name__, "in_graph": in_graph}
