"""Every configuration option of ``tfft fit`` reaches the resolved configuration.

Table-driven from the option declarations (tfft.config sections and each task's options
class): for each generated ``--option`` a value other than its default is typed on the
command line, parsed by click, turned into overrides, loaded, written as config.yaml and
read back. A new declared option without plumbing fails here. No TensorFlow, no training.
"""

from __future__ import annotations

import dataclasses

import click
import pytest

from tfft.config import SECTIONS, load_config
from tfft.errors import ConfigError
from tfft.options import field_type
from tfft.tasks import options_class, task_names
from tfft_cli.main import cli
from tfft_cli.options import ConfigOption, overrides

CANDIDATES = {
    int: [3, 2, 1, 7, 100],
    float: [0.25, 0.5, 2.0, 1e-3, 7.0],
    str: ["text", "auto", "sentence", "label", "a,b", "8"],
}

#: options whose values the generic candidates cannot guess
VALUES = {
    "model.task": "regress",
    "model.lora_targets": "query,key,value",
    "task.label_names": "0=negative,1=positive",
    "task.template": "Q: {prompt}\\nA:",
    "train.batch_tokens": 2048,  # a token budget (rows x padded length); unset = --batch-size rows
    "train.learning_rate": "auto",  # a number or auto (a range test picks it)
}
#: options that are only valid with a partner option (the error names the partner)
PARTNERS = {
    "task.response_column": {"task.prompt_column": "prompt"},
    "train.dp_l2_clip": {"train.dp_noise_multiplier": 1.0},
    "train.dp_noise_multiplier": {"train.dp_l2_clip": 1.0},
    "train.dp_target_epsilon": {"train.dp_l2_clip": 1.0},
    "train.dp_delta": {"train.dp_l2_clip": 1.0, "train.dp_noise_multiplier": 1.0},
}


def declared_field(key: str) -> tuple[dataclasses.Field, list[str]]:
    """The field behind ``section.name`` and the tasks that accept it (all, outside ``task``)."""
    section, name = key.split(".", 1)
    if section != "task":
        return {f.name: f for f in dataclasses.fields(SECTIONS[section])}[name], task_names()
    owners = [
        task for task in task_names() if name in {f.name for f in dataclasses.fields(options_class(task))}
    ]
    field = {f.name: f for f in dataclasses.fields(options_class(owners[0]))}[name]
    return field, owners


def valid_non_default(field: dataclasses.Field, default):
    """A value that passes the field's own checks and differs from ``default``."""
    kind = field_type(field)
    if kind is bool:
        return not bool(default)
    choices = field.metadata.get("choices")
    candidates = list(choices) if choices else CANDIDATES[kind]
    for value in candidates:
        if value == default:
            continue
        try:
            if field.metadata.get("check"):
                field.metadata["check"](field.name, value)
        except ConfigError:
            continue
        return value
    raise AssertionError(f"no candidate value for {field.name}: extend CANDIDATES")


def fit_options() -> list[ConfigOption]:
    return [param for param in cli.commands["fit"].params if isinstance(param, ConfigOption)]


def test_every_declared_field_is_a_fit_option():
    keys = {option.key for option in fit_options()}
    declared = {
        f"{s}.{f.name}" for s, cls in SECTIONS.items() if s != "task" for f in dataclasses.fields(cls)
    }
    declared |= {f"task.{f.name}" for task in task_names() for f in dataclasses.fields(options_class(task))}
    assert keys == declared


def command_line(option: ConfigOption, value) -> list[str]:
    if option.is_flag:
        on, off = (option.opts + option.secondary_opts + [None])[:2]
        return [on if value else (off or pytest.fail(f"{option.opts}: no way to turn it off"))]
    return [option.opts[0], str(value)]


@pytest.mark.parametrize("option", fit_options(), ids=lambda option: option.key)
def test_option_reaches_the_resolved_config(option, tmp_path):
    field, owners = declared_field(option.key)
    section, name = option.key.split(".", 1)
    task = "classify" if "classify" in owners else owners[0]
    default = getattr(getattr(load_config(None, {"model.task": task}), section), name)
    value = VALUES.get(option.key)
    if value is None:
        value = valid_non_default(field, default)
    # Typed on the command line, parsed by click, turned into overrides:
    args = command_line(option, value)
    if option.key != "model.task":
        args += ["--task", task]
    with click.Context(cli.commands["fit"]) as ctx:
        cli.commands["fit"].parse_args(ctx, args)
        typed = overrides(dict(ctx.params))
    assert typed[option.key] == value, (args, typed[option.key])
    try:
        config = load_config(
            None, {**{k: v for k, v in typed.items() if v is not None}, **PARTNERS.get(option.key, {})}
        )
    except ConfigError as error:  # an option that needs a partner names it
        pytest.fail(f"{args}: {error}")
    assert getattr(getattr(config, section), name) == value
    # ... written as config.yaml and read back, as `tfft fit --config` and resume do.
    config.save(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert getattr(getattr(again, section), name) == value
