"""Options of ``--task ner``."""

from __future__ import annotations

import dataclasses

from tfft.options import TaskOptions, option


@dataclasses.dataclass(frozen=True)
class NerOptions(TaskOptions):
    tag_column: int | None = option(
        None,
        "CoNLL column of the tag (0 = the token).  [default: the last]",
        commands=("evaluate", "predict"),
        show_default=False,
    )
    tokens_field: str = option("tokens", "JSON Lines field with the words.", commands=("evaluate", "predict"))
    tags_field: str = option("tags", "JSON Lines field with the tags.", commands=("evaluate",))
    class_weights: str | None = option(
        None, "Weigh tags by inverse frequency in the loss.", choices=("auto",), show_default=False
    )


OPTIONS = NerOptions
