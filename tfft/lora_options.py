"""The settings of low-rank adapters (LoRA) and the rule that one way to freeze is chosen.

Stdlib only, like :mod:`tfft.config`, which declares ``ModelConfig``'s ``lora_*`` options
from :class:`LoraConfig`'s fields; :mod:`tfft.backbones.lora` builds the adapters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tfft.errors import ConfigError
from tfft.options import check_fields, fraction, option, positive

#: layer roles ``--lora-targets`` names (see :mod:`tfft.backbones.lora` for each family's layers)
LORA_ROLES = ("query", "key", "value", "attention_output", "intermediate", "output")


def lora_roles(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated layer roles among :data:`LORA_ROLES`, at least one, as a tuple.

    Raises:
        ConfigError: an empty list or an unknown role (the message names the known ones).
    """
    roles = tuple(dict.fromkeys(role.strip() for role in str(value).split(",")))
    unknown = [role for role in roles if role not in LORA_ROLES]
    if not roles or unknown:
        raise ConfigError(
            f"`{name}` must be comma-separated layer roles among {', '.join(LORA_ROLES)}. "
            f"Received: {name}={value!r}"
        )
    return roles


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    """Low-rank adapters (LoRA) on a Hugging Face backbone; see :mod:`tfft.backbones.lora`.

    Each targeted projection ``y = W x + b`` becomes ``y = W x + b + (alpha / rank) B A dropout(x)``
    with ``A`` random and ``B`` zero, so the model starts equal to the base; the backbone is frozen.
    """

    rank: int = option(8, "Rank r of the adapters.", check=positive)
    alpha: float = option(16.0, "LoRA scale alpha (the update is scaled by alpha / rank).", check=positive)
    dropout: float = option(0.0, "Dropout on the LoRA adapters' input.", check=fraction)
    targets: str = option(
        "query,value", f"Comma-separated layer roles LoRA adapts: {', '.join(LORA_ROLES)}.", check=lora_roles
    )

    def __post_init__(self):
        check_fields(self)

    @property
    def roles(self) -> tuple[str, ...]:
        """The targeted roles, in the order given."""
        return lora_roles("lora_targets", self.targets)

    @property
    def scale(self) -> float:
        """``alpha / rank``, the factor of the adapters' update."""
        return self.alpha / self.rank

    @classmethod
    def of(cls, value: LoraConfig | Mapping[str, Any] | None) -> LoraConfig | None:
        """A :class:`LoraConfig` from itself, a mapping (``{"rank": 8, ...}``) or None (no LoRA).

        Raises:
            ConfigError: a key that is no LoRA setting, or a value out of range.
        """
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"`lora` must be a LoraConfig, a dict or None. Received: lora={value!r}")
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ConfigError(f"`lora` takes no key(s) {', '.join(unknown)}. Known: {', '.join(known)}")
        return cls(**value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_one_way_to_freeze(
    freeze_backbone: bool, train_top_layers: int | None, lora_rank: int | None
) -> None:
    """``freeze_backbone``, ``train_top_layers`` and LoRA (which freezes the backbone too)
    exclude each other.

    Raises:
        ConfigError: more than one of them is given.
    """
    given = {"freeze_backbone": freeze_backbone or None, "train_top_layers": train_top_layers}
    given["lora_rank"] = lora_rank
    given = {name: value for name, value in given.items() if value is not None}
    if len(given) > 1:
        received = ", ".join(f"{name}={value!r}" for name, value in given.items())
        raise ConfigError(
            f"Give only one of --freeze-backbone, --train-top-layers and --lora-rank. Received: {received}"
        )
