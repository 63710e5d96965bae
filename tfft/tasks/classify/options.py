"""Options of ``--task classify``."""

from __future__ import annotations

import dataclasses

from tfft.errors import ConfigError
from tfft.options import TaskOptions, option


def label_name_map(name: str, value: str) -> dict[str, str]:
    """``--label-names 0=negative,1=positive`` as ``{"0": "negative", "1": "positive"}``.

    Raises:
        ConfigError: not comma-separated ``LABEL=NAME`` pairs, or a label or name twice.
    """
    pairs = [part.split("=", 1) for part in str(value).split(",")]
    if any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise ConfigError(
            f"`{name}` must be comma-separated LABEL=NAME pairs, e.g. 0=negative,1=positive. "
            f"Received: {name}={value!r}"
        )
    mapping = {label.strip(): text.strip() for label, text in pairs}
    if len(mapping) != len(pairs) or len(set(mapping.values())) != len(pairs):
        raise ConfigError(
            f"`{name}` names each label once, each with another name. Received: {name}={value!r}"
        )
    return mapping


@dataclasses.dataclass(frozen=True)
class ClassifyOptions(TaskOptions):
    class_weights: str | None = option(
        None, "Weigh classes by inverse frequency in the loss.", choices=("auto",), show_default=False
    )
    label_names: str | None = option(
        None,
        "Names for the labels of the data, e.g. 0=negative,1=positive: the model and its outputs use them.",
        check=label_name_map,
        show_default=False,
    )


OPTIONS = ClassifyOptions
