"""Options of ``--task classify``."""

from __future__ import annotations

import dataclasses

from tfft.options import TaskOptions, option


@dataclasses.dataclass(frozen=True)
class ClassifyOptions(TaskOptions):
    class_weights: str | None = option(
        None, "Weigh classes by inverse frequency in the loss.", choices=("auto",), show_default=False
    )


OPTIONS = ClassifyOptions
