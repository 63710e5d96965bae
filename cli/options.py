"""Command-line options generated from the configuration dataclasses.

Every field of :class:`tfft.config.RunConfig`'s sections, and of each registered task's
options class, becomes one option: ``--field-name`` (or the field's ``flag``), with the
field's help, choices and default. ``fit`` offers all of them, grouped by section in
``--help`` (one group per task for the task options); ``evaluate`` and ``predict`` offer
the fields whose ``commands`` name them. Defaults are shown in the help but the options
default to None, so that what a user did not type leaves ``--config`` values alone.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable

import click

from tfft.config import SECTIONS
from tfft.options import field_type
from tfft.tasks import options_class, task_names

#: section -> heading in ``--help``
HEADINGS = {
    "data": "Data",
    "model": "Model",
    "train": "Training",
    "runtime": "Runtime",
    "export": "Export",
}


class SuggestingChoice(click.Choice):
    """A :class:`click.Choice` whose error adds the closest choice: ``Did you mean 'classify'?``"""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as error:
            choices = [str(choice) for choice in self.choices]
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
            if not close:
                raise
            self.fail(f"{error.message} Did you mean {close[0]!r}?", param, ctx)


class ConfigOption(click.Option):
    """An option that knows its configuration key (``section.field``) and help group."""

    def __init__(self, *args, key: str, group: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.key = key
        self.group = group


class GroupedCommand(click.Command):
    """A command whose ``--help`` lists its options in groups (data, model, task, ...)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Argument):
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                groups.setdefault(getattr(param, "group", "Options"), []).append(record)
        for heading, records in groups.items():
            with formatter.section(heading):
                formatter.write_dl(records)


def _fields(command: str) -> Iterable[tuple[str, dataclasses.Field, str]]:
    """``(section, field, group heading)`` for every configuration field ``command`` offers;
    a task option that several tasks declare comes once, its heading naming them all."""
    for section, group_cls in SECTIONS.items():
        if section == "task":
            yield from _task_fields(command)
            continue
        for field in dataclasses.fields(group_cls):
            if command == "fit" or command in field.metadata.get("commands", ()):
                yield section, field, HEADINGS[section]


def _task_fields(command: str) -> Iterable[tuple[str, dataclasses.Field, str]]:
    """One option per task option name; tasks may give it different help texts or defaults
    (the option defaults to None, so each task's own default applies), never another type."""
    owners: dict[str, list[str]] = {}
    fields: dict[str, dataclasses.Field] = {}
    helps: dict[str, dict[str, str]] = {}
    defaults: dict[str, dict[str, list[str]]] = {}
    for name in task_names():
        for field in dataclasses.fields(options_class(name)):
            if command != "fit" and command not in field.metadata.get("commands", ()):
                continue
            known = fields.setdefault(field.name, field)
            if field_type(known) is not field_type(field):
                raise TypeError(f"task option {field.name!r} has another type in task {name!r}")
            defaults.setdefault(field.name, {}).setdefault(str(field.default), []).append(name)
            owners.setdefault(field.name, [])
            if name not in owners[field.name]:
                owners[field.name].append(name)
            helps.setdefault(field.name, {}).setdefault(field.metadata["help"], name)
    for key, field in fields.items():
        tasks = owners[key]
        if len(helps[key]) > 1:  # different help per task: say which is which
            text = " ".join(f"{task}: {help}" for help, task in helps[key].items())
            field = _with_help(field, text)
        if len(defaults[key]) > 1:  # different defaults per task: list them
            shown = "; ".join(f"{', '.join(names)}: {value}" for value, names in defaults[key].items())
            field = _with_help(field, f"{field.metadata['help']}  [default: {shown}]", show_default=False)
        yield "task", field, f"Task options: {', '.join(tasks)}"


def _with_help(field: dataclasses.Field, text: str, **metadata) -> dataclasses.Field:
    copy = dataclasses.field(default=field.default, metadata={**field.metadata, "help": text, **metadata})
    copy.name, copy.type = field.name, field.type
    return copy


def _help(field: dataclasses.Field) -> str:
    text = field.metadata.get("help", "")
    if field.metadata.get("show_default", True) and field.default is not None:
        default = field.default
        if isinstance(default, bool):
            return text if not default else f"{text}  [default: on]"
        text = f"{text}  [default: {default}]"
    return text


def option_flag(field: dataclasses.Field) -> str:
    """The command-line flag of a configuration field: its ``flag`` (``--on/--off`` for
    switches), else ``--field-name``."""
    return field.metadata.get("flag") or f"--{field.name.replace('_', '-')}"


def config_options(command: str) -> list[click.Option]:
    """The generated options of ``command`` (``fit``, ``evaluate`` or ``predict``)."""
    options = []
    seen: dict[str, str] = {}
    for section, field, group in _fields(command):
        kind = field_type(field)
        flag = option_flag(field)
        if seen.setdefault(flag, f"{section}.{field.name}") != f"{section}.{field.name}":
            raise TypeError(f"option {flag} is declared twice: {seen[flag]} and {section}.{field.name}")
        decls = [flag, f"{section}__{field.name}"]
        kwargs = {"default": None, "help": _help(field)}
        if "/" in flag:
            kwargs["is_flag"] = True
        elif kind is bool:
            kwargs.update(is_flag=True, flag_value=True)
        elif section == "model" and field.name == "task":
            kwargs["type"] = SuggestingChoice(task_names())
        elif field.metadata.get("choices"):
            kwargs["type"] = SuggestingChoice([str(choice) for choice in field.metadata["choices"]])
        else:
            kwargs["type"] = kind
        options.append(ConfigOption(decls, key=f"{section}.{field.name}", group=group, **kwargs))
    return options


def with_config_options(command: str):
    """Decorator: add the generated options of ``command`` to a click command."""

    def decorate(function):
        function.__click_params__ = getattr(function, "__click_params__", []) + list(
            reversed(config_options(command))
        )
        return function

    return decorate


def overrides(values: dict) -> dict:
    """``{"section.field": value}`` from a command's generated option values (removed from
    ``values``); the other values stay."""
    found = {}
    for name in [name for name in values if "__" in name]:
        section, field = name.split("__", 1)
        found[f"{section}.{field}"] = values.pop(name)
    return found
