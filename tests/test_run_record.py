"""The run record: config.yaml with the values that ran, summary.json with versions and
devices, log lines that say what ran."""

from __future__ import annotations

import json
import logging

import yaml
from helpers import tiny_run_config

import tfft
from tfft.config import load_config
from tfft.environment import cpu
from tfft.folders import setting_changes


def test_config_yaml_holds_resolved_values_and_runs_again(tiny_bert_dir, tiny_sentiment, tmp_path):
    run_dir = tmp_path / "run"
    settings = {"data.eval": tiny_sentiment["dev"], "train.epochs": 1, "export.run_dir": run_dir}
    config = tiny_run_config(tiny_bert_dir, tiny_sentiment, settings)
    assert (config.runtime.precision, config.runtime.xla, config.train.monitor) == ("auto", None, None)
    tfft.run_fit(config, verbose=0)

    text = (run_dir / "config.yaml").read_text()
    assert text.startswith("# resolved by tfft: 1 replica(s) on ")
    saved = yaml.safe_load(text)
    assert saved["runtime"]["precision"] in ("float32", "mixed_bfloat16", "mixed_float16")
    assert saved["runtime"]["strategy"] == "default" and isinstance(saved["runtime"]["xla"], bool)
    assert saved["train"]["monitor"] == "val_accuracy"
    assert saved["export"]["run_dir"] == str(run_dir)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["runtime"]["xla"] == saved["runtime"]["xla"]
    assert summary["runtime"]["precision"] == saved["runtime"]["precision"]
    assert set(summary["versions"]) == {
        "python",
        "tfft",
        "tensorflow",
        "tf_keras",
        "transformers",
        "tensorflow-text",
    }
    assert summary["versions"]["tensorflow"].startswith("2.")
    assert set(summary["devices"]["cpu"]) == {"model", "avx512_bf16", "amx_tile", "amx_bf16"}
    assert summary["devices"]["gpus"] == []

    # the saved file and the original settings both match it (resuming is allowed) ...
    reloaded = load_config(run_dir / "config.yaml")
    assert setting_changes(run_dir, reloaded) == [] and setting_changes(run_dir, config) == []
    # ... and the file runs again as it is (in another folder)
    again = load_config(run_dir / "config.yaml", {"export.run_dir": str(tmp_path / "again")})
    result = tfft.run_fit(again, verbose=0)
    assert json.loads((result.run_dir / "summary.json").read_text())["status"] == "finished"


def test_hub_run_logs_xla_off_before_the_runtime_line(
    tiny_text_embedding_dir, tiny_sentiment, tmp_path, caplog
):
    config = load_config(
        None,
        {
            "model.hub_url": str(tiny_text_embedding_dir),
            "data.train": str(tiny_sentiment["train"]),
            "data.text_column": "sentence",
            "train.epochs": 1,
            "export.run_dir": str(tmp_path / "r"),
        },
    )
    caplog.set_level(logging.INFO, logger="tfft")
    tfft.run_fit(config, verbose=0)
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("tfft")]
    off = next(i for i, line in enumerate(lines) if line.startswith("XLA is off by default"))
    runtime = next(i for i, line in enumerate(lines) if line.startswith("Runtime: "))
    assert off < runtime and "'xla': False" in lines[runtime]
    assert not any("'xla': True" in line for line in lines)
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["runtime"]["xla"] is False and saved["runtime"]["precision"] == "float32"


def test_cpu_features_from_cpuinfo():
    info = "model name\t: Example CPU @ 2GHz\nflags\t\t: fpu avx2 avx512_bf16 amx_tile\n"
    assert cpu(info) == {
        "model": "Example CPU @ 2GHz",
        "avx512_bf16": True,
        "amx_tile": True,
        "amx_bf16": False,
    }
