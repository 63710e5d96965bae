"""Byte-level BPE (GPT-2, RoBERTa, BART) as TensorFlow ops: text -> ids and ids -> text in the graph.

tensorflow-text has no BPE op, so :class:`ByteLevelBPETokenizer` rebuilds the Hugging Face
(Rust ``tokenizers``) pipeline from string, regex and lookup ops, to run inside a
``tf.function`` or a SavedModel signature with no Python at serving time:

1. **Added tokens** (``<|endoftext|>``, ``<mask>``, ...) found in the text become their own
   ids; ``lstrip``/``rstrip`` tokens swallow the whitespace beside them. The text between
   them is tokenized piece by piece, as Hugging Face does.
2. **Pre-tokenizer**: ``add_prefix_space`` adds a space to a piece that does not start with
   one; the GPT-2 regex ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``
   splits it into words. RE2 has no lookahead, so the split runs with ``\\s+$|\\s`` in place
   of ``\\s+(?!\\S)|\\s+`` and single whitespace tokens are then glued back: a whitespace run
   followed by a word becomes "the run but its last character" plus that last character
   (alone, or as the word's leading space), exactly what the lookahead gives. ``\\s`` is
   Unicode white space, as in Oniguruma (RE2's ``\\s`` is ASCII only).
3. **Bytes to symbols**: each UTF-8 byte of a word becomes GPT-2's printable stand-in
   character (:func:`bytes_to_unicode`).
4. **Merges by rank**: all words of the batch at once, as one ragged tensor in a
   ``tf.while_loop``; each step merges, in every word, the pair with the lowest rank (the
   leftmost on a tie), as the Rust BPE does. A hash table maps ``"left right"`` to the rank.
   Words are de-duplicated first.
5. **Vocabulary lookup**; a symbol outside the vocabulary becomes the unknown token (or is
   dropped when there is none, as Hugging Face does).

Special tokens around the text (``<s> ... </s>``) and truncation are the caller's
(:func:`tfft.tokenization.pack_segments` with the model's template); :meth:`encode` does
both for one segment. :meth:`detokenize` turns ids back into text like
``tokenizer.batch_decode(ids, skip_special_tokens=True)``: bytes from the symbols, invalid
UTF-8 replaced by U+FFFD.

Example (a tiny tokenizer trained on the spot)::

    from tokenizers import ByteLevelBPETokenizer as Trainer
    import transformers
    trainer = Trainer()
    trainer.train_from_iterator(["the cat sat"] * 5, vocab_size=270, min_frequency=1)
    trainer.save_model("/tmp/bpe")
    hf = transformers.GPT2TokenizerFast("/tmp/bpe/vocab.json", "/tmp/bpe/merges.txt")
    graph = ByteLevelBPETokenizer.from_hf_tokenizer(hf)
    graph.tokenize(tf.constant(["the cat"])).to_list() == [hf("the cat")["input_ids"]]  # True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import tensorflow as tf

from tfft.errors import BackboneError
from tfft.tokenization import GraphTokenizer, SequenceTemplate, pack_segments

#: Unicode white space (Oniguruma's ``\s``), as an RE2 class body.
WHITESPACE = r"\t\n\x{0B}\f\r\x{85}\p{Z}"
WS = f"[{WHITESPACE}]"
#: GPT-2's pattern with ``\s+(?!\S)|\s+`` replaced by ``\s+$|\s`` (RE2 has no lookahead).
SPLIT_PATTERN = (
    r"'s|'t|'re|'ve|'m|'ll|'d"
    rf"| ?\p{{L}}+| ?\p{{N}}+| ?[^{WHITESPACE}\p{{L}}\p{{N}}]+"
    rf"|{WS}+$|{WS}"
)
NO_RANK = 2**31 - 1


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters (the vocabulary's alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars)}


def literal_pattern(text: str) -> str:
    """An RE2 pattern matching ``text`` literally."""
    if "\\E" in text:
        return "".join("\\" + c if not c.isalnum() else c for c in text)
    return rf"\Q{text}\E"


def _without_nul(texts: tf.Tensor) -> tf.Tensor:
    """NUL stops tensorflow-text's regex split; U+0001 is in the same classes (not space, letter or digit)."""
    return tf.strings.regex_replace(texts, r"\x00", "\x01")


def _shift_left(values: tf.Tensor, fill) -> tf.Tensor:
    """``values[i + 1]``, and ``fill`` for the last position."""
    return tf.concat([values[1:], [fill]], 0)[: tf.size(values)]


def _shift_right(values: tf.Tensor, fill) -> tf.Tensor:
    """``values[i - 1]``, and ``fill`` for the first position."""
    return tf.concat([[fill], values], 0)[: tf.size(values)]


class ByteLevelBPETokenizer(GraphTokenizer):
    """Hugging Face byte-level BPE as TensorFlow ops (see the module docs).

    Args:
        vocab: token -> id, as in ``vocab.json`` (byte-level symbols).
        merges: the merges in rank order, as ``(left, right)`` pairs.
        add_prefix_space: add a space before a piece that does not start with one.
        added_tokens: tokens matched in the raw text before pre-tokenization: dicts with
            ``content``, ``id`` and optional ``lstrip``, ``rstrip``, ``special``.
        unknown_token: the vocabulary's unknown token, or None (unknown symbols are dropped).
        cleanup: ``(old, new)`` replacements applied after decoding (Hugging Face's
            ``clean_up_tokenization_spaces``), in order.

    Raises:
        BackboneError: an unknown token that the vocabulary does not have.
    """

    def __init__(
        self,
        vocab: Mapping[str, int],
        merges: Sequence[tuple[str, str]],
        *,
        add_prefix_space: bool = False,
        added_tokens: Sequence[Mapping] = (),
        unknown_token: str | None = None,
        cleanup: Sequence[tuple[str, str]] = (),
    ):
        super().__init__()
        if unknown_token is not None and unknown_token not in vocab:
            raise BackboneError(
                "The byte-level BPE vocabulary has no such unknown token. "
                f"Received: unknown_token={unknown_token!r}"
            )
        self.add_prefix_space = bool(add_prefix_space)
        self.cleanup = tuple(cleanup)
        byte_chars = bytes_to_unicode()
        self._byte_chars = tf.constant([byte_chars[b] for b in range(256)])
        self._byte_values = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([bytes([b]) for b in range(256)]), tf.range(256, dtype=tf.int32)
            ),
            default_value=0,
        )
        self._ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([f"{left} {right}" for left, right in merges] or [" "]),
                tf.range(max(len(merges), 1), dtype=tf.int32) if merges else tf.constant([NO_RANK]),
            ),
            default_value=NO_RANK,
        )
        unknown_id = -1 if unknown_token is None else int(vocab[unknown_token])
        self._ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(vocab)), tf.constant([int(i) for i in vocab.values()], tf.int32)
            ),
            default_value=unknown_id,
        )
        # ids -> text: every id's symbols; byte-level characters map back to bytes.
        added = sorted(added_tokens, key=lambda token: -len(token["content"]))
        names = dict(vocab)
        for token in added:
            names.setdefault(token["content"], int(token["id"]))
        size = max(names.values()) + 1
        tokens = [""] * size
        for name, index in names.items():
            tokens[index] = name
        self._tokens = tf.constant(tokens)
        special = sorted({int(t["id"]) for t in added if t.get("special", True)})
        self._special_ids = tf.constant(special or [-1], tf.int32)
        char_bytes = {ord(char): bytes([byte]) for byte, char in byte_chars.items()}
        table_size = max(char_bytes) + 1
        self._char_bytes = tf.constant([char_bytes.get(cp, b"") for cp in range(table_size)])
        self._mapped = tf.constant([cp in char_bytes for cp in range(table_size)])
        # Added tokens in the raw text.
        self._added_pattern = "|".join(
            (f"{WS}*" if token.get("lstrip") else "")
            + literal_pattern(token["content"])
            + (f"{WS}*" if token.get("rstrip") else "")
            for token in added
        )
        if added:
            self._added_ids = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant([t["content"] for t in added]),
                    tf.constant([int(t["id"]) for t in added], tf.int32),
                ),
                default_value=-1,
            )

    @classmethod
    def from_hf_tokenizer(cls, tokenizer) -> ByteLevelBPETokenizer | None:
        """The graph twin of a Hugging Face fast tokenizer, or None when it is not plain byte-level BPE.

        Plain means: a ``BPE`` model without dropout, subword affixes or byte fallback, no
        normalizer, a ``ByteLevel`` pre-tokenizer using the GPT-2 regex, and a ``ByteLevel``
        decoder (GPT2TokenizerFast, RobertaTokenizerFast, BartTokenizerFast and kin).
        """
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        spec = json.loads(backend.to_str())
        model = spec.get("model") or {}
        pre = spec.get("pre_tokenizer") or {}
        if (
            model.get("type") != "BPE"
            or model.get("dropout")
            or model.get("continuing_subword_prefix")
            or model.get("end_of_word_suffix")
            or model.get("byte_fallback")
            or model.get("ignore_merges")
            or spec.get("normalizer")
            or pre.get("type") != "ByteLevel"
            or not pre.get("use_regex", True)
            or (spec.get("decoder") or {}).get("type") != "ByteLevel"
        ):
            return None
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        added = [
            {
                "content": t["content"],
                "id": t["id"],
                "lstrip": t.get("lstrip", False),
                "rstrip": t.get("rstrip", False),
                "special": t.get("special", False),
            }
            for t in spec.get("added_tokens") or []
        ]
        from tfft.backbones.graph_text import HF_CLEANUP

        return cls(
            model["vocab"],
            merges,
            add_prefix_space=bool(pre.get("add_prefix_space", False)),
            added_tokens=added,
            unknown_token=model.get("unk_token"),
            cleanup=HF_CLEANUP if getattr(tokenizer, "clean_up_tokenization_spaces", False) else (),
        )

    @classmethod
    def from_files(
        cls,
        vocab_json: str | Path,
        merges_txt: str | Path,
        *,
        add_prefix_space: bool = False,
        special_tokens: Sequence[str] = (),
        unknown_token: str | None = None,
    ) -> ByteLevelBPETokenizer:
        """Build from ``vocab.json`` and ``merges.txt``; ``special_tokens`` are matched in the text.

        Raises:
            BackboneError: a file that cannot be read, a malformed merges line, or a special
                token missing from the vocabulary.
        """
        try:
            vocab = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
            lines = Path(merges_txt).read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError) as error:
            raise BackboneError(f"Cannot read the BPE files {vocab_json}, {merges_txt}: {error}") from None
        merges = []
        for number, line in enumerate(lines, 1):
            if (number == 1 and line.startswith("#version")) or not line.strip():
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise BackboneError(
                    f"{merges_txt}:{number}: a merge is two symbols separated by a space. Received: {line!r}"
                )
            merges.append((parts[0], parts[1]))
        missing = [token for token in special_tokens if token not in vocab]
        if missing:
            raise BackboneError(
                f"{vocab_json}: special tokens missing from the vocabulary. Received: {missing}"
            )
        added = [{"content": token, "id": vocab[token], "special": True} for token in special_tokens]
        return cls(
            vocab, merges, add_prefix_space=add_prefix_space, added_tokens=added, unknown_token=unknown_token
        )

    # --- text -> ids ------------------------------------------------------------------------

    def split_words(self, pieces: tf.Tensor) -> tf.RaggedTensor:
        """The GPT-2 pre-tokenizer: ``[n]`` strings -> ``[n, (words)]`` strings."""
        import tensorflow_text as text

        if self.add_prefix_space:
            starts_with_space = tf.strings.substr(pieces, 0, 1) == " "
            pieces = tf.where(starts_with_space | (pieces == ""), pieces, " " + pieces)
        tokens, begins, ends = text.regex_split_with_offsets(
            _without_nul(pieces), SPLIT_PATTERN, SPLIT_PATTERN
        )
        flat = tokens.flat_values
        rows = tokens.value_rowids()
        whitespace_only = tf.strings.regex_full_match(flat, f"{WS}+")
        starts_with_ws = tf.strings.regex_full_match(flat, f"(?s){WS}.*")
        same_as_next = tf.equal(_shift_left(rows, -1), rows)
        after_ws = _shift_right(whitespace_only & same_as_next, False)
        before_ws = _shift_left(starts_with_ws, False) & same_as_next
        # a lone whitespace token joins the one before it, unless it is the last of its run
        # and a word follows (then it stands alone, as (?!\S) leaves it).
        glue = whitespace_only & after_ws & before_ws
        first = tf.logical_not(glue)
        last = _shift_left(first, True) | tf.logical_not(same_as_next)
        begin = tf.boolean_mask(begins.flat_values, first)
        end = tf.boolean_mask(ends.flat_values, last)
        word_rows = tf.boolean_mask(rows, first)
        words = tf.strings.substr(tf.gather(pieces, word_rows), begin, end - begin)
        return tf.RaggedTensor.from_value_rowids(
            words, word_rows, nrows=tf.shape(pieces, out_type=tf.int64)[0]
        )

    def _symbols(self, words: tf.Tensor) -> tf.RaggedTensor:
        """``[n]`` words -> ``[n, (symbols)]``: one byte-level character per UTF-8 byte."""
        raw = tf.strings.bytes_split(words)
        return raw.with_flat_values(tf.gather(self._byte_chars, self._byte_values.lookup(raw.flat_values)))

    def _merge(self, symbols: tf.RaggedTensor) -> tf.RaggedTensor:
        """Apply the merges by rank to every word at once."""

        def step(values, splits, _):
            rows = tf.ragged.row_splits_to_segment_ids(splits, out_type=tf.int32)
            count = tf.size(values)
            nrows = tf.size(splits) - 1
            left_rows = rows[:-1]
            ranks = self._ranks.lookup(values[:-1] + " " + values[1:])
            ranks = tf.where(tf.equal(left_rows, rows[1:]), ranks, NO_RANK)
            best_rank = tf.math.unsorted_segment_min(ranks, left_rows, nrows)
            candidate = (ranks < NO_RANK) & tf.equal(ranks, tf.gather(best_rank, left_rows))
            positions = tf.range(tf.maximum(count - 1, 0))
            best_pos = tf.math.unsorted_segment_min(tf.where(candidate, positions, count), left_rows, nrows)
            chosen = candidate & tf.equal(positions, tf.gather(best_pos, left_rows))
            chosen_here = tf.concat([chosen, [False]], 0)[:count]
            merged = tf.where(chosen_here, values + tf.concat([values[1:], [""]], 0)[:count], values)
            keep = tf.logical_not(tf.concat([[False], chosen], 0)[:count])
            values = tf.boolean_mask(merged, keep)
            lengths = splits[1:] - splits[:-1] - tf.cast(best_pos < count, splits.dtype)
            splits = tf.concat([[0], tf.cumsum(lengths)], 0)
            return values, splits, tf.reduce_any(chosen)

        values, splits, _ = tf.while_loop(
            lambda values, splits, go: go,
            step,
            (symbols.flat_values, symbols.row_splits, tf.constant(True)),
            shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([])),
        )
        return tf.RaggedTensor.from_row_splits(values, splits, validate=False)

    def tokenize_pieces(self, pieces: tf.Tensor) -> tf.RaggedTensor:
        """Text without added tokens: ``[n]`` strings -> int32 ``[n, (ids)]``."""
        words = self.split_words(pieces)
        unique, index = tf.unique(words.flat_values)
        symbols = self._merge(self._symbols(unique))
        ids = self._ids.lookup(symbols.flat_values)
        known = ids >= 0
        per_unique = tf.ragged.boolean_mask(symbols.with_flat_values(ids), symbols.with_flat_values(known))
        per_word = tf.gather(per_unique, index)
        return tf.RaggedTensor.from_row_splits(per_word, words.row_splits, validate=False).merge_dims(1, 2)

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Texts ``[batch]`` -> int32 ids ``[batch, (tokens)]``, no special tokens around them."""
        texts = tf.convert_to_tensor(texts, tf.string)
        if not self._added_pattern:
            return self.tokenize_pieces(texts)
        import tensorflow_text as text

        pieces, begins, ends = text.regex_split_with_offsets(
            _without_nul(texts), self._added_pattern, self._added_pattern
        )
        piece_rows = pieces.value_rowids()
        flat = tf.strings.substr(
            tf.gather(texts, piece_rows), begins.flat_values, ends.flat_values - begins.flat_values
        )
        is_added = tf.strings.regex_full_match(_without_nul(flat), f"(?s){self._added_pattern}")
        content = tf.strings.regex_replace(flat, f"^{WS}+|{WS}+$", "")
        added_ids = self._added_ids.lookup(content)
        is_added &= added_ids >= 0
        plain = self.tokenize_pieces(tf.where(is_added, "", flat))
        specials = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(added_ids, is_added), tf.cast(is_added, tf.int64)
        )
        per_piece = tf.concat([plain, specials], axis=1)
        return pieces.with_flat_values(per_piece).merge_dims(1, 2)

    def encode(self, texts: tf.Tensor, template: SequenceTemplate, max_length: int) -> tf.RaggedTensor:
        """Ids with the model's special tokens, truncated to ``max_length`` (one segment)."""
        ids, _ = pack_segments(self.tokenize(texts), None, template, max_length)
        return ids

    # --- ids -> text ------------------------------------------------------------------------

    def detokenize(self, ids) -> tf.Tensor:
        """Ids ``[batch, length]`` (dense or ragged) -> text, as ``batch_decode(skip_special_tokens=True)``.

        Ids outside the vocabulary are skipped.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        ids = tf.cast(ids, tf.int32)
        special = tf.reduce_any(tf.equal(ids.flat_values[:, None], self._special_ids), axis=-1)
        valid = (ids.flat_values >= 0) & (ids.flat_values < tf.size(self._tokens)) & tf.logical_not(special)
        kept = tf.ragged.boolean_mask(ids, ids.with_flat_values(valid))
        joined = tf.strings.reduce_join(tf.gather(self._tokens, kept), axis=-1)
        chars = tf.strings.unicode_decode(joined, "UTF-8")
        points = chars.flat_values
        inside = points < tf.size(self._mapped)
        mapped = tf.gather(self._mapped, tf.where(inside, points, 0)) & inside
        own = tf.strings.unicode_encode(tf.expand_dims(points, -1), "UTF-8")
        pieces = tf.where(mapped, tf.gather(self._char_bytes, tf.where(inside, points, 0)), own)
        raw = tf.strings.reduce_join(chars.with_flat_values(pieces), axis=-1)
        texts = tf.strings.unicode_transcode(
            raw, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD, replace_control_characters=False
        )
        for old, new in self.cleanup:
            texts = tf.strings.regex_replace(texts, literal_pattern(old), new.replace("\\", "\\\\"))
        return texts


class WordStartTokenizer(GraphTokenizer):
    """Words tokenized as if they stood mid-sentence (``" " + word``), as
    :meth:`tfft.tokenization.HFTextEncoder.tokenize_words` does for word-level tasks."""

    def __init__(self, tokenizer: ByteLevelBPETokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def tokenize(self, words: tf.Tensor) -> tf.RaggedTensor:
        return self.tokenizer.tokenize(" " + tf.convert_to_tensor(words, tf.string))
