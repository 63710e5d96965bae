"""Options of ``--task regress``."""

from __future__ import annotations

import dataclasses

from tfft.options import TaskOptions, column_names, option

#: ``--loss`` choices (the losses themselves are in :mod:`tfft.losses`)
REGRESSION_LOSSES = ("mse", "huber")


@dataclasses.dataclass(frozen=True)
class RegressOptions(TaskOptions):
    label_columns: str | None = option(
        None,
        "Target columns, comma-separated (one output each); default: --label-column.",
        check=column_names,
        commands=("evaluate",),
    )
    loss: str = option("mse", "Training loss.", choices=REGRESSION_LOSSES, saved=True)
    scale_targets: bool = option(
        False, "Standardize targets with the training mean and std (stored with the model)."
    )

    def label_column_list(self) -> tuple[str, ...] | None:
        """``label_columns`` split on commas, or None."""
        return None if self.label_columns is None else column_names("label_columns", self.label_columns)


OPTIONS = RegressOptions
