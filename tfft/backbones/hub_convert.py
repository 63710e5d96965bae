"""Write a Hugging Face BERT checkpoint as a TF Hub BERT encoder + preprocessor pair.

The two SavedModels have the interface of the tfhub.dev BERT models
(``bert_en_uncased_L-12_H-768_A-12`` and ``bert_en_uncased_preprocess``), so code written for
TF Hub runs on any local BERT-family checkpoint, offline.

Encoder (``<output_dir>/encoder``), a reusable SavedModel::

    encoder = hub.KerasLayer(str(export.encoder_dir), trainable=True)  # hub wants a str, not a Path
    outputs = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    outputs["pooled_output"]     # [batch, hidden] float32 (also under "default")
    outputs["sequence_output"]   # [batch, seq, hidden]
    outputs["encoder_outputs"]   # list, one [batch, seq, hidden] per transformer layer

Inputs are int32 (not int64) ``[batch, seq]`` of any batch size and length (up to the model's
``max_position_embeddings``). ``training=True`` turns dropout on. The object also carries
``variables``, ``trainable_variables``, ``regularization_losses`` (empty), ``vocab_file``
(an asset) and ``do_lower_case`` (a bool variable).

Preprocessor (``<output_dir>/preprocess``)::

    preprocess = hub.load(str(export.preprocess_dir))
    preprocess(tf.constant(["a sentence"]))                 # dict of int32 [batch, seq_length]
    tokens = preprocess.tokenize(tf.constant(["a", "b"]))   # int32 ragged [batch, (words), (pieces)]
    preprocess.tokenize.get_special_tokens_dict()           # vocab_size, start_of_sequence_id, ...
    preprocess.bert_pack_inputs([tokens, tokens], seq_length=64)  # one or two segments

``bert_pack_inputs`` takes one or two rank-3 ragged segments (as ``tokenize`` returns them)
and any ``seq_length``; left out, it is the ``seq_length`` given at conversion. Pairs are
truncated like Hugging Face's ``longest_first``, so the ids equal the HF tokenizer's.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import tensorflow as tf

from tfft.backbones.hf_weights import load_hf_tf_model
from tfft.errors import BackboneError, ConfigError, ExportError
from tfft.tokenization import (
    HFTextEncoder,
    SequenceTemplate,
    WordPieceGraphTokenizer,
    pack_segments,
    to_dense_inputs,
)

logger = logging.getLogger(__name__)

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
HF_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MIN_SEQ_LENGTH = 3  # the special tokens of a sentence pair: [CLS] a [SEP] b [SEP]


@dataclasses.dataclass(frozen=True)
class HubExport:
    """Where :func:`convert_hf_to_hub` wrote the two SavedModels."""

    encoder_dir: Path
    preprocess_dir: Path


def convert_hf_to_hub(
    hf_model: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    seq_length: int = 128,
    overwrite: bool = False,
) -> HubExport:
    """Convert a local Hugging Face BERT-family checkpoint to TF Hub encoder + preprocessor SavedModels.

    The checkpoint must be a WordPiece model whose TF model takes ``input_ids``,
    ``attention_mask`` and ``token_type_ids`` and has a pooler (BERT and its clones:
    MiniLM, ...). Everything is written to a temporary folder beside ``output_dir`` and
    renamed into place at the end, so ``output_dir`` is either complete or untouched.

    Args:
        hf_model: a folder with ``config.json``, tokenizer files and ``model.safetensors``
            (PyTorch or TF format, possibly sharded) or ``tf_model.h5``.
        output_dir: the folder to create; it receives ``encoder/`` and ``preprocess/``.
        seq_length: the preprocessor's default packed length (``__call__`` and
            ``bert_pack_inputs`` without ``seq_length``).
        overwrite: replace an existing non-empty ``output_dir``.

    Returns:
        The paths of the two SavedModels.

    Raises:
        BackboneError: the checkpoint cannot be loaded or is not a BERT-style WordPiece model.
        ConfigError: ``seq_length`` is out of range.
        ExportError: ``output_dir`` exists, is not empty and ``overwrite`` is False.

    Example:
        >>> export = convert_hf_to_hub("tiny-bert", "tiny-hub", seq_length=16)  # doctest: +SKIP
        >>> encoder = hub.KerasLayer(str(export.encoder_dir), trainable=True)  # doctest: +SKIP
        >>> preprocess = hub.KerasLayer(str(export.preprocess_dir))  # doctest: +SKIP
        >>> encoder(preprocess(tf.constant(["hello world"])))["pooled_output"].shape  # doctest: +SKIP
        TensorShape([1, 32])
    """
    source = Path(hf_model)
    target = Path(output_dir)
    if isinstance(seq_length, bool) or not isinstance(seq_length, int) or seq_length < MIN_SEQ_LENGTH:
        raise ConfigError(
            f"`seq_length` must be an integer >= {MIN_SEQ_LENGTH}. Received: seq_length={seq_length!r}"
        )
    _check_target(target, source, overwrite)

    model, tokenizer = load_hf_tf_model(source)
    settings, template, special = _wordpiece_layout(tokenizer, model.config, source)
    _check_encoder(model, template, source)
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions is not None and seq_length > max_positions:
        raise ConfigError(
            f"`seq_length` must be at most the model's max_position_embeddings ({max_positions}). "
            f"Received: seq_length={seq_length}"
        )

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        vocab_file = staging / "vocab" / "vocab.txt"
        vocab_file.parent.mkdir()
        vocab_file.write_text("".join(token + "\n" for token in settings["vocab"]), encoding="utf-8")
        lower_case = settings["lower_case"]

        encoder = _HubEncoder(model, vocab_file, lower_case)
        tf.saved_model.save(encoder, str(staging / "encoder"))
        graph_tokenizer = WordPieceGraphTokenizer(settings["vocab"], lower_case, settings["unknown_token"])
        preprocessor = _HubPreprocessor(
            graph_tokenizer, template, special, seq_length, vocab_file, lower_case
        )
        tf.saved_model.save(preprocessor, str(staging / "preprocess"))
        shutil.rmtree(staging / "vocab")
        _move_into_place(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Wrote TF Hub encoder and preprocessor for %s to %s", source, target)
    return HubExport(encoder_dir=target / "encoder", preprocess_dir=target / "preprocess")


def _check_target(target: Path, source: Path, overwrite: bool) -> None:
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise ExportError(
                f"`output_dir` exists and is not a folder. Received: output_dir={str(target)!r}"
            )
        if any(target.iterdir()) and not overwrite:
            raise ExportError(
                "`output_dir` exists and is not empty; pass overwrite=True to replace it. "
                f"Received: output_dir={str(target)!r}"
            )
    resolved_target = target.resolve()
    resolved_source = source.resolve()
    if resolved_target == resolved_source or resolved_target in resolved_source.parents:
        raise ExportError(
            "`output_dir` must not be the checkpoint folder or contain it. "
            f"Received: output_dir={str(target)!r}, hf_model={str(source)!r}"
        )


def _move_into_place(staging: Path, target: Path, overwrite: bool) -> None:
    """Rename the finished export to ``target``, replacing an empty (or, with overwrite, any) folder."""
    if not target.exists():
        staging.rename(target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        staging.rename(target)
        return
    if not overwrite:  # appeared while converting
        raise ExportError(
            "`output_dir` exists and is not empty; pass overwrite=True to replace it. "
            f"Received: output_dir={str(target)!r}"
        )
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _wordpiece_layout(tokenizer, config, source: Path) -> tuple[dict, SequenceTemplate, dict]:
    """WordPiece settings, the BERT packing template and the TF Hub special-tokens dict."""
    encoder = HFTextEncoder(tokenizer)
    settings = encoder.wordpiece_settings()
    if settings is None:
        raise BackboneError(
            f"{source}: only BERT-style WordPiece tokenizers can be converted to TF Hub format. "
            f"Received: tokenizer={type(tokenizer).__name__}"
        )
    ids = sorted(tokenizer.get_vocab().values())
    if ids != list(range(len(ids))):
        raise BackboneError(
            f"{source}: the tokenizer's token ids are not contiguous from 0; cannot write vocab.txt."
        )
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is not None and len(ids) > vocab_size:
        raise BackboneError(
            f"{source}: the tokenizer has {len(ids)} tokens but the model only {vocab_size} embeddings."
        )
    special = {
        "vocab_size": len(ids),
        "start_of_sequence_id": tokenizer.cls_token_id,
        "end_of_segment_id": tokenizer.sep_token_id,
        "padding_id": tokenizer.pad_token_id,
        "mask_id": tokenizer.mask_token_id,
    }
    absent = [name for name, value in special.items() if value is None]
    if absent:
        raise BackboneError(f"{source}: the tokenizer has no special token for {absent}.")
    template = encoder.template
    bert = SequenceTemplate.bert(
        special["start_of_sequence_id"], special["end_of_segment_id"], special["padding_id"]
    )
    if template != bert or not encoder.uses_token_types:
        raise BackboneError(
            f"{source}: the tokenizer does not pack inputs as [CLS] a [SEP] b [SEP] with token types. "
            f"Received: template={template}"
        )
    return settings, template, special


def _check_encoder(model, template: SequenceTemplate, source: Path) -> None:
    """The TF model must take the three BERT inputs and return a pooled output."""
    params = inspect.signature(model.call).parameters
    missing = [name for name in HF_INPUTS if name not in params]
    if missing:
        raise BackboneError(
            f"{source}: {type(model).__name__} does not take {missing}; only BERT-style encoders convert."
        )
    ids = tf.constant([[*template.prefix, *template.suffix]], tf.int32)
    outputs = model(
        input_ids=ids,
        attention_mask=tf.ones_like(ids),
        token_type_ids=tf.zeros_like(ids),
        output_hidden_states=True,
        training=False,
    )
    if getattr(outputs, "pooler_output", None) is None or getattr(outputs, "hidden_states", None) is None:
        raise BackboneError(
            f"{source}: {type(model).__name__} has no pooler output; only BERT-style encoders "
            "with a pooler convert."
        )


class _Unsaved:
    """Holds an object out of reach of SavedModel dependency tracking."""

    def __init__(self, value):
        self.value = value


class _HubEncoder(tf.Module):
    """The TF Hub BERT encoder interface over a transformers TF model."""

    # TF Hub's reusable-SavedModel API reads these as saved attributes; tf.Module's
    # properties of the same names are not saved, so they are shadowed here.
    variables = None
    trainable_variables = None

    def __init__(self, model, vocab_file: Path, lower_case: bool):
        super().__init__(name="bert_encoder")
        # The Keras model itself is not saved (its layers would be serialized one by one);
        # the traced functions capture its variables, which are tracked below.
        self._model = _Unsaved(model)
        self.variables = list(model.variables)
        self.trainable_variables = list(model.trainable_variables)
        self.regularization_losses = []
        self.vocab_file = tf.saved_model.Asset(str(vocab_file))
        self.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
        specs = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in ENCODER_INPUTS}
        for training in (False, True):
            self.__call__.get_concrete_function(specs, training=training)

    @tf.function
    def __call__(self, inputs, training=False):
        outputs = self._model.value(
            input_ids=inputs["input_word_ids"],
            attention_mask=inputs["input_mask"],
            token_type_ids=inputs["input_type_ids"],
            output_hidden_states=True,
            training=training,
        )
        return {
            "pooled_output": outputs.pooler_output,
            "default": outputs.pooler_output,
            "sequence_output": outputs.last_hidden_state,
            "encoder_outputs": list(outputs.hidden_states[1:]),
        }


class _HubTokenize(tf.Module):
    """``preprocess.tokenize``: strings to word-piece ids grouped by word."""

    def __init__(self, tokenizer: WordPieceGraphTokenizer, special: dict):
        super().__init__(name="tokenize")
        self._tokenizer = tokenizer
        self._special = dict(special)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return self._tokenizer.tokenize_words(strings)

    @tf.function(input_signature=[])
    def get_special_tokens_dict(self):
        return {name: tf.constant(value, tf.int32) for name, value in self._special.items()}


def _pack(segments, seq_length, template: SequenceTemplate) -> dict:
    """One or two tokenized segments to the dense encoder inputs of length ``seq_length``."""
    if len(segments) not in (1, 2):
        raise ValueError(f"bert_pack_inputs takes 1 or 2 segments. Received: {len(segments)} segments")
    pieces = [segment.merge_dims(-2, -1) if segment.shape.rank == 3 else segment for segment in segments]
    if isinstance(seq_length, int):
        ids, types = pack_segments(pieces[0], pieces[1] if len(pieces) == 2 else None, template, seq_length)
        dense = to_dense_inputs(ids, types, template.pad_id, seq_length)
    else:  # a scalar tensor: any length, chosen at call time
        length = tf.cast(seq_length, tf.int64)
        ids, types = pack_segments(pieces[0], pieces[1] if len(pieces) == 2 else None, template, length)
        dense = to_dense_inputs(ids, types, template.pad_id)
        extra = [[0, 0], [0, length - tf.shape(dense["input_ids"], out_type=tf.int64)[1]]]
        dense = {
            name: tf.pad(value, extra, constant_values=template.pad_id if name == "input_ids" else 0)
            for name, value in dense.items()
        }
    return {
        "input_word_ids": dense["input_ids"],
        "input_mask": dense["attention_mask"],
        "input_type_ids": dense["token_type_ids"],
    }


class _HubPreprocessor(tf.Module):
    """The TF Hub BERT preprocessor interface: ``__call__``, ``tokenize``, ``bert_pack_inputs``."""

    def __init__(
        self,
        tokenizer: WordPieceGraphTokenizer,
        template: SequenceTemplate,
        special: dict,
        seq_length: int,
        vocab_file: Path,
        lower_case: bool,
    ):
        super().__init__(name="bert_preprocess")
        self.tokenize = _HubTokenize(tokenizer, special)
        self.vocab_file = tf.saved_model.Asset(str(vocab_file))
        self.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
        self._template = template
        self._seq_length = seq_length

        def bert_pack_inputs(inputs, seq_length=seq_length):
            return _pack(list(inputs), seq_length, template)

        self.bert_pack_inputs = tf.function(bert_pack_inputs)
        for rank in (3,):
            spec = tf.RaggedTensorSpec([None] * rank, tf.int32, ragged_rank=rank - 1)
            for count in (1, 2):
                self.bert_pack_inputs.get_concrete_function([spec] * count)
                self.bert_pack_inputs.get_concrete_function(
                    [spec] * count, seq_length=tf.TensorSpec([], tf.int32)
                )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return _pack([self.tokenize(strings)], self._seq_length, self._template)
