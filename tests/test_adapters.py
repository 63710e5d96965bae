"""LoRA adapters in and out: ``tfft export --adapters-only`` and ``--adapters PATH``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from helpers import tiny_run_config, write_tiny_bert

import tfft
from tfft.adapters import build_with_adapters
from tfft.backbones.lora import ADAPTER_FILE
from tfft.errors import ConfigError
from tfft_cli.main import cli

TEXTS = ["the movie was good", "the plot was boring", "great fun", "i hate it"]


@pytest.fixture(scope="module")
def lora_run(tiny_bert_dir, tiny_sentiment, tmp_path_factory):
    """A finished float32 LoRA run on the tiny BERT (query, value, intermediate; rank 4)."""
    root = tmp_path_factory.mktemp("lora_run")
    settings = {
        "data.eval": tiny_sentiment["dev"],
        "train.epochs": 1,
        "train.batch_size": 16,
        "train.learning_rate": 1e-2,
        "runtime.precision": "float32",  # the rebuilt model is float32: compare like with like
        "model.lora_rank": 4,
        "model.lora_targets": "query,value,intermediate",
        "export.run_dir": root / "run",
        "export.export_dir": root / "serving",
    }
    result = tfft.run_fit(tiny_run_config(tiny_bert_dir, tiny_sentiment, settings), verbose=0)
    return result, root


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def adapters_only(lora_run):
    result, root = lora_run
    done = invoke("export", result.run_dir, "--adapters-only", "--export-dir", root / "shipped")
    assert done.exit_code == 0, done.output
    return root / "shipped"


def test_adapters_only_export_is_small_and_self_contained(lora_run, adapters_only):
    result, _ = lora_run
    names = sorted(p.name for p in adapters_only.iterdir())
    assert names == ["adapters.json", ADAPTER_FILE, "config.yaml", "task.json"]
    size = (adapters_only / ADAPTER_FILE).stat().st_size
    export = sum(p.stat().st_size for p in result.export_path.rglob("*") if p.is_file())
    print(f"adapter file {size} bytes, export {export} bytes")
    assert size < export / 10
    info = json.loads((adapters_only / "adapters.json").read_text())
    assert info["task"] == "classify" and info["settings"]["labels"] == ["neg", "pos"]
    assert len(info["base_fingerprint"]) == 16
    # Never replaced.
    again = invoke("export", result.run_dir, "--adapters-only", "--export-dir", adapters_only)
    assert again.exit_code == 1 and "already holds adapters.weights.h5" in again.output


def assert_close(got, expected, where="metrics"):
    """Equal structure and text; numbers within 1e-6."""
    if isinstance(expected, dict):
        assert sorted(got) == sorted(expected), where
        for key in expected:
            assert_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for index, (a, b) in enumerate(zip(got, expected)):
            assert_close(a, b, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, abs=1e-6), where
    else:
        assert got == expected, where


@pytest.mark.long  # about 50 s; export and predict with adapters stay in the default suite
def test_evaluate_with_adapters_equals_the_run(lora_run, adapters_only, tiny_sentiment):
    result, _ = lora_run
    data = ("--data", tiny_sentiment["dev"], "--json")
    reference = json.loads(invoke("evaluate", result.run_dir, *data).stdout)
    for args in (
        ("--adapters", adapters_only),  # the settings beside the file
        ("--adapters", adapters_only / ADAPTER_FILE),
        (result.run_dir, "--adapters", result.run_dir),  # the run folder's settings and file
    ):
        done = invoke("evaluate", *args, *data)
        assert done.exit_code == 0, done.output
        metrics = json.loads(done.stdout)
        assert metrics["examples"] == reference["examples"] == 32 and "accuracy" in metrics
        assert metrics.pop("model") != reference["model"]
        assert_close(metrics, {k: v for k, v in reference.items() if k != "model"})


def test_predict_with_adapters_equals_the_run(lora_run, adapters_only):
    result, _ = lora_run
    texts = [arg for text in TEXTS for arg in ("--text", text)]
    rows = [
        [json.loads(line) for line in invoke("predict", *where, *texts).stdout.splitlines()]
        for where in ((result.run_dir,), ("--adapters", adapters_only))
    ]
    assert [r["label"] for r in rows[0]] == [r["label"] for r in rows[1]]
    np.testing.assert_allclose(
        [list(r["probabilities"].values()) for r in rows[0]],
        [list(r["probabilities"].values()) for r in rows[1]],
        atol=1e-5,
    )


def test_export_with_adapters_equals_the_normal_export(lora_run, adapters_only, tmp_path):
    result, _ = lora_run
    plain = invoke("export", result.run_dir, "--export-dir", tmp_path / "plain")
    adapted = invoke(
        "export", result.run_dir, "--adapters", adapters_only, "--export-dir", tmp_path / "adapted"
    )
    assert plain.exit_code == 0 and adapted.exit_code == 0, plain.output + adapted.output
    first, second = (
        tfft.ExportedClassifier(out.stdout.strip()).predict(TEXTS)["probabilities"]
        for out in (plain, adapted)
    )
    np.testing.assert_allclose(first, second, atol=1e-5)
    metadata = json.loads((tmp_path / "adapted" / "1" / "assets.extra" / "tfft.json").read_text())
    assert metadata["lora"]["merged"] is True and metadata["adapters"].endswith(ADAPTER_FILE)


def recorded_elsewhere(adapters_only, tmp_path, change_config=None, change_task=None):
    """A copy of the adapters folder whose recorded settings build another model."""
    copy = tmp_path / "copy"
    shutil.copytree(adapters_only, copy)
    if change_config:
        config = yaml.safe_load((copy / "config.yaml").read_text())
        change_config(config)
        (copy / "config.yaml").write_text(yaml.safe_dump(config))
    if change_task:
        task = json.loads((copy / "task.json").read_text())
        change_task(task)
        (copy / "task.json").write_text(json.dumps(task))
    return copy


def test_adapters_for_another_rank_targets_or_labels_are_refused(adapters_only, tmp_path):
    cases = [
        (lambda c: c["model"].update(lora_rank=8), None, "another LoRA rank: `lora.rank` is 4"),
        (lambda c: c["model"].update(lora_targets="query,key"), None, "other LoRA targets"),
        (lambda c: c["model"].update(lora_alpha=4.0), None, "another LoRA alpha"),
        (None, lambda t: t["settings"].update(labels=["neg", "neutral", "pos"]), "another label set"),
    ]
    for index, (config, task, message) in enumerate(cases):
        folder = recorded_elsewhere(adapters_only, tmp_path / str(index), config, task)
        with pytest.raises(ConfigError, match=message) as error:
            build_with_adapters(folder)
        assert str(folder / ADAPTER_FILE) in str(error.value)


def test_adapters_for_another_base_checkpoint_are_refused(adapters_only, tmp_path):
    other = write_tiny_bert(tmp_path / "other_bert", seed=1)  # same shapes, other random weights
    folder = recorded_elsewhere(adapters_only, tmp_path, lambda c: c["model"].update(hf_model=str(other)))
    done = invoke("evaluate", "--adapters", folder, "--data", folder / "missing.tsv")
    assert done.exit_code == 1
    assert "another base checkpoint" in done.output and "base_fingerprint" in done.output


def test_bad_adapter_paths_and_runs_without_lora(lora_run, adapters_only, tmp_path):
    result, _ = lora_run
    missing = invoke("evaluate", "--adapters", tmp_path / "nowhere", "--data", "x.tsv")
    assert missing.exit_code == 1 and "no such file or folder" in missing.output
    empty = invoke("predict", "--adapters", tmp_path, "--text", "hi")
    assert empty.exit_code == 1 and "no adapters.weights.h5 in this folder" in empty.output
    neither = invoke("predict", "--text", "hi")
    assert neither.exit_code == 1 and "Missing MODEL_DIR" in neither.output
    both = invoke("export", result.run_dir, "--adapters-only", "--adapters", adapters_only)
    assert both.exit_code == 1 and "not both" in both.output
    full = recorded_elsewhere(adapters_only, tmp_path, lambda c: c["model"].update(lora_rank=None))
    (full / "checkpoints").mkdir()
    no_lora = invoke("export", full, "--adapters-only")
    assert no_lora.exit_code == 1 and "trained without LoRA" in no_lora.output


def test_t5_adapters_go_back_on_the_base(tmp_path):
    """Seq2seq: the adapters (encoder and decoder attention, feed-forward) and recorded
    settings rebuild a model that computes what the adapted one did."""
    from helpers import ENGLISH, write_tiny_t5

    from tfft.backbones.lora import LoraAdapter, write_adapter_file
    from tfft.pipeline import build_run_model

    base = write_tiny_t5(tmp_path / "t5")
    overrides = {"model.hf_model": str(base), "model.task": "translate", "model.lora_rank": 2}
    config = tfft.load_config(None, {**overrides, "model.lora_targets": "query,value,intermediate"})
    settings = tfft.build_model(hf_model=str(base), task="translate").tfft_spec.settings
    model = build_run_model(config, settings)
    rng = np.random.default_rng(0)
    for adapter in (layer for layer in model._flatten_layers() if isinstance(layer, LoraAdapter)):
        adapter.lora_b.assign(rng.normal(0, 0.5, adapter.lora_b.shape).astype("float32"))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    write_adapter_file(model, shipped)
    config.save(shipped / "config.yaml")
    (shipped / "task.json").write_text(json.dumps({"task": "translate", "settings": settings}))

    rebuilt, _, _ = build_with_adapters(shipped)
    batch = next(iter(tfft.make_dataset(model, ENGLISH, ENGLISH, batch_size=6, max_length=16)))[0]
    np.testing.assert_allclose(rebuilt(batch).numpy(), model(batch).numpy(), atol=1e-6)
    fresh = build_run_model(config, settings)
    assert not np.allclose(fresh(batch).numpy(), model(batch).numpy(), atol=1e-3)  # B was zero there
