"""Data readers: CSV, TSV, JSON Lines and TFDS sources -> validated text examples."""

from tfft.data.readers import LabelSet, TableSpec, TextExamples, read_examples

__all__ = ["LabelSet", "TableSpec", "TextExamples", "read_examples"]
