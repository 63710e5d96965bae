"""Options of ``--task multilabel``."""

from __future__ import annotations

import dataclasses

from tfft.errors import ConfigError
from tfft.options import TaskOptions, column_names, open_fraction, option


def visible(name: str, value: str) -> None:
    if not value or value.isspace():
        raise ConfigError(f"`{name}` must be a visible character or string. Received: {name}={value!r}")


@dataclasses.dataclass(frozen=True)
class MultiLabelOptions(TaskOptions):
    label_columns: str | None = option(
        None,
        "One 0/1 column per label, comma-separated (instead of one column listing the labels).",
        check=column_names,
        commands=("evaluate",),
    )
    label_separator: str | None = option(
        None,
        "Labels in --label-column are joined by this.  [default: ,]",
        check=visible,
        commands=("evaluate",),
        show_default=False,
    )
    threshold: float = option(
        0.5, "A label is on when its probability reaches this.", check=open_fraction, saved=True
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label_columns is not None and self.label_separator is not None:
            raise ConfigError(
                "Give --label-columns (one 0/1 column per label) or --label-separator (one column "
                f"listing the labels), not both. Received: label_columns={self.label_columns!r}, "
                f"label_separator={self.label_separator!r}"
            )

    def label_column_list(self) -> tuple[str, ...] | None:
        """``label_columns`` split on commas, or None."""
        return None if self.label_columns is None else column_names("label_columns", self.label_columns)


OPTIONS = MultiLabelOptions
