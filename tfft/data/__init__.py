"""Data readers: CSV, TSV, JSON Lines and TFDS sources -> validated text examples.

Modules: :mod:`~tfft.data.readers` (:func:`read_examples`, picks the reader of a source),
:mod:`~tfft.data.table_files` (CSV/TSV/JSON Lines), :mod:`~tfft.data.tfds_source` (TFDS),
:mod:`~tfft.data.tables` (:class:`TableSpec`, :class:`TextExamples`),
:mod:`~tfft.data.labels` (:class:`LabelSet`), :mod:`~tfft.data.conll` (tagged words),
:mod:`~tfft.data.squad` (question answering), :mod:`~tfft.data.parallel` (source/target
pairs for summarization and translation), :mod:`~tfft.data.examples` (the ``Examples``
base: ``take``/``select``/``split``) and :mod:`~tfft.data.checks` (checks the readers share).
"""

from tfft.data.labels import LabelSet
from tfft.data.readers import read_examples
from tfft.data.tables import TableSpec, TextExamples

__all__ = ["LabelSet", "TableSpec", "TextExamples", "read_examples"]
