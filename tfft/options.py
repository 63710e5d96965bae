"""Declaring settings once: a dataclass field carries its default, help and checks.

Every setting of a run is a field of a frozen dataclass: the sections of
:class:`tfft.config.RunConfig` and each task's options class (``tfft/tasks/<task>/options.py``).
:func:`option` attaches what the command line needs (help text, choices, which commands
read it), so the CLI (``cli/options.py``) is generated from the dataclasses and a new setting
is one field. The ``check_*`` helpers give every range check the same message shape.
Nothing here imports TensorFlow.

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class ToyOptions(TaskOptions):
...     width: int = option(4, "Width of the toy.", check=positive, saved=True)
>>> ToyOptions(width=0)
Traceback (most recent call last):
...
tfft.errors.ConfigError: `width` must be > 0. Received: width=0
>>> ToyOptions.from_api({"height": 2}, task="toy")
Traceback (most recent call last):
...
tfft.errors.ConfigError: task='toy' takes no option(s) height. Known: width
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any

from tfft.errors import ConfigError

#: commands whose command line offers a setting besides ``fit``
READERS = ("evaluate", "predict")
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def option(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    check: Callable[[str, Any], None] | None = None,
    flag: str | None = None,
    commands: tuple[str, ...] = (),
    saved: bool = False,
    show_default: bool = True,
) -> Any:
    """A dataclass field with what the command line and the checks need.

    Args:
        default: the default value.
        help: one line for ``--help``.
        choices: the allowed values (checked, and offered as a click choice).
        check: ``check(name, value)`` raising :class:`ConfigError`, e.g. :func:`positive`;
            skipped for ``None``.
        flag: the command-line spelling when it is not ``--field-name``, e.g. ``"--xla/--no-xla"``.
        commands: the commands besides ``fit`` that offer it (``"evaluate"``, ``"predict"``).
        saved: a task option that travels with the model (in its settings and export).
        show_default: append ``[default: ...]`` to the help.
    """
    metadata = {
        "help": help,
        "choices": choices,
        "check": check,
        "flag": flag,
        "commands": commands,
        "saved": saved,
        "show_default": show_default,
    }
    return dataclasses.field(default=default, metadata=metadata)


def positive(name: str, value: float) -> None:
    """``value > 0``."""
    if value <= 0:
        raise ConfigError(f"`{name}` must be > 0. Received: {name}={value!r}")


def non_negative(name: str, value: float) -> None:
    """``value >= 0``."""
    if value < 0:
        raise ConfigError(f"`{name}` must be >= 0. Received: {name}={value!r}")


def fraction(name: str, value: float) -> None:
    """``0 <= value < 1``."""
    if not 0 <= value < 1:
        raise ConfigError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")


def open_fraction(name: str, value: float) -> None:
    """``0 < value < 1``."""
    if not 0 < value < 1:
        raise ConfigError(f"`{name}` must be between 0 and 1. Received: {name}={value!r}")


def column_names(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated column names (none empty), as a tuple."""
    columns = tuple(column.strip() for column in str(value).split(","))
    if not all(columns):
        raise ConfigError(f"`{name}` must be comma-separated column names. Received: {name}={value!r}")
    return columns


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(
            f"`{name}` must be one of {', '.join(map(str, choices))}. Received: {name}={value!r}"
        )


def check_type(name: str, value: Any, kind: type) -> None:
    """``value`` is of the field's type (an int is a float too; a bool is no number)."""
    kinds = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}[kind]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kinds):
        noun = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]
        raise ConfigError(f"`{name}` must be {noun}. Received: {name}={value!r}")


def check_fields(instance: Any) -> None:
    """Check each field's type, ``choices`` and ``check`` (call it from ``__post_init__``)."""
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if value is None:
            continue
        kinds = _declared_types(field)
        if len(kinds) > 1:  # e.g. ``float | str`` (a rate or "auto"): its ``check`` decides
            if not any(_is_kind(value, kind) for kind in kinds):
                check_type(field.name, value, kinds[0])
        else:
            check_type(field.name, value, field_type(field))
        if field.metadata.get("choices"):
            check_choice(field.name, value, field.metadata["choices"])
        if field.metadata.get("check"):
            field.metadata["check"](field.name, value)


def _declared_types(field: dataclasses.Field) -> list[type]:
    """The known types a field is declared with, ``None`` left out (``float | str`` gives two)."""
    declared = field.type
    if not isinstance(declared, str):
        kinds = [kind for kind in typing.get_args(declared) or (declared,) if kind is not type(None)]
        return [kind for kind in kinds if kind in _TYPES.values()] or [str]
    names = [part.strip() for part in declared.split("|") if part.strip() != "None"]
    return [_TYPES[name] for name in names if name in _TYPES] or [str]


def _is_kind(value: Any, kind: type) -> bool:
    """``value`` passes :func:`check_type` for ``kind``."""
    try:
        check_type("value", value, kind)
    except ConfigError:
        return False
    return True


def field_type(field: dataclasses.Field) -> type:
    """The Python type of a field declared ``int``, ``float | None``, ``str | None``, ..."""
    declared = field.type
    if not isinstance(declared, str):  # a module without ``from __future__ import annotations``
        kinds = [kind for kind in typing.get_args(declared) or (declared,) if kind is not type(None)]
        return kinds[0] if len(kinds) == 1 and kinds[0] in _TYPES.values() else str
    names = [part.strip() for part in declared.split("|") if part.strip() != "None"]
    return _TYPES.get(names[0], str) if len(names) == 1 else str


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """Base of the task options classes: each field is one option (:func:`option`).

    Subclasses are frozen dataclasses; the values are checked on construction.
    """

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def saved_names(cls) -> tuple[str, ...]:
        """Options that travel with a model (its settings), in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("saved"))

    def saved(self) -> dict[str, Any]:
        """The options that travel with the model, as JSON-able settings."""
        return {name: getattr(self, name) for name in self.saved_names()}

    @classmethod
    def pick(cls, settings: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
        """``names`` from a model's saved ``settings``; models saved before an option existed
        get its default."""
        defaults = cls()
        return {name: settings.get(name, getattr(defaults, name)) for name in names}

    @classmethod
    def from_api(cls, options: Mapping[str, Any], task: str) -> TaskOptions:
        """Options from :func:`tfft.build_model` keyword arguments (only the saved ones).

        Raises:
            ConfigError: a keyword the task does not take, or a value out of range.
        """
        known = cls.saved_names()
        unknown = sorted(set(options) - set(known))
        if unknown:
            listed = f" Known: {', '.join(known)}" if known else ""
            raise ConfigError(f"task={task!r} takes no option(s) {', '.join(unknown)}.{listed}")
        return cls(**options)
