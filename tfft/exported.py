"""Exports loaded back for prediction and evaluation (``tfft predict``, ``tfft evaluate``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfft.data import LabelSet
from tfft.errors import DataError, ExportError
from tfft.export import load_metadata, resolve_export
from tfft.preprocess import by_length
from tfft.tasks import get_task
from tfft.tokenization import HFTextEncoder


class ExportedModel:
    """A tfft export: the SavedModel, its metadata and its task.

    Args:
        path: a version folder, a model folder (its latest version) or a run folder.

    Attributes:
        path: the version folder.
        metadata: ``assets.extra/tfft.json``.
        settings: the task settings the model was trained with.
        task: the :class:`~tfft.tasks.base.Task`.
        loaded: the loaded SavedModel.
        encoder: a Python :class:`~tfft.tokenization.TextEncoder` when the export's
            tokenizer does not run in the graph, or when the export ships it anyway
            (causal-lm, mlm), else None. Loaded when first used: the raw-text paths of
            exports whose tokenizer runs in the graph never load it.
    """

    def __init__(self, path: str | os.PathLike):
        import tensorflow_text  # noqa: F401 - registers the ops of in-graph tokenizers

        self.path = resolve_export(path)
        self.metadata = load_metadata(self.path)
        self.task = get_task(self.metadata.get("task", "classify"))
        self.settings = self.metadata.get("settings") or {"labels": self.metadata.get("labels", [])}
        self.pair = bool(self.metadata.get("pair"))
        try:
            self.loaded = tf.saved_model.load(str(self.path))
        except Exception as error:  # noqa: BLE001
            raise ExportError(
                f"{self.path}: cannot load the SavedModel: {str(error).splitlines()[0]}"
            ) from None
        self._encoder = None
        if not self.metadata.get("in_graph_tokenizer"):
            self._encoder = self._python_encoder()

    def _python_encoder(self) -> HFTextEncoder:
        from transformers import AutoTokenizer

        return HFTextEncoder(AutoTokenizer.from_pretrained(str(self.path / "assets.extra" / "tokenizer")))

    @property
    def encoder(self) -> HFTextEncoder | None:
        """The Python tokenizer in ``assets.extra/tokenizer/`` (loaded on first use), or None."""
        if self._encoder is None and (self.path / "assets.extra" / "tokenizer").is_dir():
            self._encoder = self._python_encoder()
        return self._encoder

    def with_settings(self, **settings) -> ExportedModel:
        """The same export (nothing reloaded) with some settings replaced, e.g. the generation
        options ``tfft predict`` was given; ``metadata["settings"]`` keeps the exported ones."""
        if all(self.settings.get(key) == value for key, value in settings.items()):
            return self
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.settings = {**self.settings, **settings}
        return copy

    @property
    def max_length(self) -> int:
        return int(self.metadata["max_length"])

    def check_pairs(self, pairs: Sequence[str] | None) -> None:
        if self.pair and pairs is None:
            raise DataError(
                f"{self.path} is a sentence-pair model: give the second texts too (--text-pair-column)."
            )
        if not self.pair and pairs is not None:
            raise DataError(f"{self.path} reads single texts, but second texts were given.")

    def run_sequence(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> dict[str, np.ndarray]:
        """Answers of a sequence-level export for all texts, batch by batch (NumPy; strings
        decoded), in the texts' order. The batches hold rows of similar length (each is padded
        to its longest row): :func:`tfft.preprocess.by_length`."""
        self.check_pairs(pairs)
        order = by_length(texts, pairs)
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            chunk = [texts[i] for i in rows]
            chunk_pairs = None if pairs is None else [pairs[i] for i in rows]
            for name, value in self._call_sequence(chunk, chunk_pairs).items():
                array = value.numpy()
                if array.dtype == object:
                    array = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array)
                parts.setdefault(name, []).append(array)
        if not parts:  # no texts: empty outputs with the right trailing shapes
            outputs = self.loaded.signatures["serving_default"].structured_outputs
            return {
                name: np.zeros(
                    [0, *spec.shape[1:]], object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
                )
                for name, spec in outputs.items()
            }
        inverse = np.argsort(order)
        return {name: np.concatenate(values)[inverse] for name, values in parts.items()}

    def _call_sequence(self, texts, pairs) -> dict:
        if self.encoder is None:
            kwargs = {"text": tf.constant(texts, tf.string)}
            if pairs is not None:
                kwargs["text_pair"] = tf.constant(pairs, tf.string)
            return self.loaded.signatures["serving_default"](**kwargs)
        encoded = self.encoder.encode(texts, pairs, self.max_length)
        length = max(len(ids) for ids in encoded.input_ids)
        pad_id = self.encoder.template.pad_id

        def padded(rows, value):
            return tf.constant(
                np.stack([np.pad(row, (0, length - len(row)), constant_values=value) for row in rows]),
                tf.int32,
            )

        return self.loaded.signatures["predict_ids"](
            input_ids=padded(encoded.input_ids, pad_id),
            attention_mask=padded([np.ones_like(r) for r in encoded.input_ids], 0),
            token_type_ids=padded(encoded.token_type_ids, 0),
        )


class ExportedClassifier(ExportedModel):
    """A classification export: raw text in, labels and probabilities out."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        if self.task.name != "classify":
            raise ExportError(f"{self.path} is a {self.task.name!r} model, not a classifier.")

    @property
    def labels(self):
        return LabelSet(self.settings["labels"])

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64) -> dict:
        """``{"label": [...], "label_id": array, "probabilities": array}`` for the texts."""
        answers = self.run_sequence(texts, pairs, batch_size)
        return {
            "label": list(answers["label"]),
            "label_id": answers["label_id"],
            "probabilities": answers["probabilities"],
        }
