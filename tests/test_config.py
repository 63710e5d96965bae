"""Run configuration: the checks of every section, per-task options in the YAML ``task:``
section, and the YAML form (tfft/config.py, tfft/options.py)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from tfft.config import DataConfig, RunConfig, RuntimeConfig, TrainConfig, load_config
from tfft.errors import ConfigError


def test_config_validation_names_the_option():
    with pytest.raises(ConfigError, match=r"`precision` must be one of .* Received: precision='half'"):
        RuntimeConfig(precision="half")
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="max_length"):
        DataConfig(max_length=2)


def test_yaml_config_roundtrip_and_unknown_keys(tmp_path):
    path = tmp_path / "run.yaml"
    RunConfig(train=TrainConfig(epochs=5)).save(path)
    assert load_config(path).train.epochs == 5
    assert load_config(path, {"train.epochs": 1, "train.seed": None}).train.epochs == 1
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) epoch in section `train`"):
        load_config(path)
    path.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="unknown section `trian`"):
        load_config(path)
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="No such configuration file"):
        load_config(tmp_path / "missing.yaml")


def test_task_section_is_checked_against_the_chosen_task():
    with pytest.raises(
        ConfigError, match="--threshold is for --task multilabel and does not apply to --task ner"
    ):
        load_config(None, {"model.task": "ner", "task.threshold": 0.3})
    with pytest.raises(ConfigError, match="Known keys: class_weights, tag_column, tags_field, tokens_field"):
        RunConfig.from_dict({"model": {"task": "ner"}, "task": {"tag_colum": 1}})
    with pytest.raises(ConfigError, match="--label-columns is for --task regress or multilabel"):
        load_config(None, {"task.label_columns": "a,b"})
    with pytest.raises(ConfigError, match="`doc_stride` must be an integer. Received: doc_stride='64'"):
        load_config(None, {"model.task": "qa", "task.doc_stride": "64"})


def test_old_all_task_layout_still_loads(tmp_path):
    """Run folders written before options were per task list every task's options, at
    their defaults: they load; another task's option with a real value does not."""
    old = {
        "model": {"task": "multilabel"},
        "task": {
            "label_columns": None,
            "label_separator": "|",
            "threshold": 0.4,
            "loss": None,
            "scale_targets": False,
            "class_weights": None,
            "tag_column": None,
            "doc_stride": 128,
            "num_beams": 1,
            "decoder_model": None,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    config = load_config(path)
    assert (config.task.label_separator, config.task.threshold) == ("|", 0.4)
    old["task"]["doc_stride"] = 64
    path.write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match=f"{path}: --doc-stride is for --task qa"):
        load_config(path)


def test_config_round_trips_through_yaml(tmp_path):
    config = load_config(None, {"model.task": "translate", "task.num_beams": 4, "train.epochs": 3})
    config.save(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_with_task_keeps_shared_options():
    config = load_config(None, {"model.task": "regress", "task.label_columns": "a,b"})
    moved = config.with_task("multilabel")
    assert moved.model.task == "multilabel" and moved.task.label_columns == "a,b"
    assert dataclasses.asdict(moved.with_task("classify").task) == {
        "class_weights": None,
        "label_names": None,
    }
