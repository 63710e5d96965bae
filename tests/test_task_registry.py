"""Adding a task takes one package and one registry line; the CLI, YAML checks and API follow.

Also: the options each command offers, generated from the configuration dataclasses.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import yaml
from click.testing import CliRunner

import tfft
from tfft import tasks
from tfft.config import RunConfig
from tfft.errors import ConfigError

TOY_OPTIONS = '''
"""Options of the toy task."""
import dataclasses

from tfft.options import option, positive
from tfft.tasks.classify.options import ClassifyOptions


@dataclasses.dataclass(frozen=True)
class ToyOptions(ClassifyOptions):  # a classifier: it has the classifier's options too
    repeat: int = option(1, "Read every text this many times.", check=positive, saved=True)


OPTIONS = ToyOptions
'''

TOY_TASK = '''
"""A classifier that reads every text ``repeat`` times (a toy)."""
from tfft_toy.options import ToyOptions

from tfft.tasks.classify.task import ClassifyTask


class ToyTask(ClassifyTask):
    name = "toy"

    def read(self, source, config, **kwargs):
        examples = super().read(source, config, **kwargs)
        examples.texts = [" ".join([text] * config.task.repeat) for text in examples.texts]
        return examples

    def settings_from_data(self, train, config):
        return {**super().settings_from_data(train, config), **config.task.saved()}

    def settings_from_args(self, label_names, num_labels, options):
        options = dict(options)
        saved = ToyOptions.from_api({"repeat": options.pop("repeat", 1)}, self.name).saved()
        return {**super().settings_from_args(label_names, num_labels, options), **saved}


TASK = ToyTask()
'''


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """The package ``tfft_toy`` (options.py, task.py) registered as task ``toy``."""
    package = tmp_path / "tfft_toy"
    package.mkdir()
    (package / "__init__.py").write_text('"""The toy task."""\n')
    (package / "options.py").write_text(textwrap.dedent(TOY_OPTIONS))
    (package / "task.py").write_text(textwrap.dedent(TOY_TASK))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(tasks.REGISTRY, "toy", "tfft_toy")  # the one registry line
    yield "toy"
    for name in [name for name in sys.modules if name.startswith("tfft_toy")]:
        del sys.modules[name]


def fresh_cli():
    """The CLI generated anew from the registry (it is generated at import)."""
    import tfft_cli.main

    return importlib.reload(tfft_cli.main).cli


def test_a_registered_task_reaches_the_cli_yaml_and_api(toy_task, tiny_bert_dir, tiny_sentiment, tmp_path):
    # CLI: the task is a --task choice and its option has a help section naming it
    help_text = CliRunner().invoke(fresh_cli(), ["fit", "--help"], terminal_width=200).output
    assert "qa|summarize|translate|causal-lm|mlm|toy]" in help_text
    assert "Task options: toy:" in help_text and "--repeat INTEGER" in help_text
    assert "Task options: classify, ner, toy:" in help_text
    # YAML: validated against the toy's options
    config = RunConfig.from_dict({"model": {"task": "toy"}, "task": {"repeat": 3}})
    assert config.task.repeat == 3 and type(config.task).__name__ == "ToyOptions"
    with pytest.raises(
        ConfigError,
        match="unknown key\\(s\\) repat in section `task`. Known keys: class_weights, label_names, repeat",
    ):
        RunConfig.from_dict({"model": {"task": "toy"}, "task": {"repat": 3}})
    with pytest.raises(ConfigError, match="`repeat` must be > 0"):
        RunConfig.from_dict({"model": {"task": "toy"}, "task": {"repeat": 0}})
    # API
    model = tfft.build_model(hf_model=tiny_bert_dir, task="toy", label_names=["neg", "pos"], repeat=2)
    assert model.tfft_spec.settings == {"labels": ["neg", "pos"], "repeat": 2}
    with pytest.raises(ConfigError, match="takes no option\\(s\\) threshold"):
        tfft.build_model(hf_model=tiny_bert_dir, task="toy", label_names=["neg", "pos"], threshold=0.5)
    # and a whole run through the command line, its option saved with the model
    result = CliRunner().invoke(
        fresh_cli(),
        [
            "fit",
            *("--hf-model", tiny_bert_dir, "--task", "toy", "--repeat", "2"),
            *("--train", tiny_sentiment["train"], "--text-column", "sentence", "--max-train-examples", "16"),
            *("--epochs", "1", "--batch-size", "8", "--no-xla", "--run-dir", tmp_path / "run"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["task"] == "toy" and saved["task"] == {
        "class_weights": None,
        "label_names": None,
        "repeat": 2,
    }


def test_the_toy_task_leaves_no_trace():
    assert "toy" not in tasks.task_names()
    help_text = CliRunner().invoke(fresh_cli(), ["fit", "--help"], terminal_width=200).output
    assert "Task options: toy" not in help_text


@pytest.mark.parametrize(
    ("command", "offered", "not_offered"),
    [
        ("fit", ["--doc-stride", "--epochs", "--xla / --no-xla", "--label-smoothing"], []),
        (
            "evaluate",
            ["--label-column ", "--label-columns", "--question-column", "--source-file"],
            ["--epochs"],
        ),
        (
            "predict",
            ["--text-column", "--question-column", "--source-prefix"],
            ["--epochs", "--label-column "],
        ),
    ],
)
def test_each_command_offers_its_options(command, offered, not_offered):
    help_text = CliRunner().invoke(fresh_cli(), [command, "--help"], terminal_width=200).output
    for name in offered:
        assert name in help_text, name
    for name in not_offered + ["--doc-stride"] * (command != "fit"):
        assert name not in help_text, name


def test_every_config_field_has_a_flag_that_reaches_the_config():
    """Each generated option lands in its configuration field (the name map is derived)."""
    from tfft_cli.options import config_options, overrides

    for option in config_options("fit"):
        section, field = option.key.split(".")
        assert option.name == f"{section}__{field}"
        assert overrides({option.name: "x", "other": 1}) == {option.key: "x"}
