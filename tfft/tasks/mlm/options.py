"""Options of ``--task mlm`` (no TensorFlow).

Documents are read from ``--text-column`` of a table (the data section's option) or from a
``.txt`` file (one document per line, or blank-line separated with
``--blank-line-documents``). The masking settings are saved with the model.
"""

from __future__ import annotations

import dataclasses

from tfft.options import TaskOptions, option


def _probability(name: str, value: float) -> None:
    """``0 < value <= 1``."""
    from tfft.errors import ConfigError

    if not 0 < value <= 1:
        raise ConfigError(f"`{name}` must be in (0, 1]. Received: {name}={value!r}")


@dataclasses.dataclass(frozen=True)
class MaskedLMOptions(TaskOptions):
    mask_probability: float = option(
        0.15,
        "Share of the words masked in each row (whole words; of their tokens 80% [MASK], 10% random, "
        "10% unchanged), drawn afresh every epoch.",
        check=_probability,
        saved=True,
    )
    blank_line_documents: bool = option(
        False,
        "Plain .txt files: documents are separated by blank lines (default: one document per line).",
        flag="--blank-line-documents/--line-documents",
        commands=("evaluate",),
    )


OPTIONS = MaskedLMOptions
