"""Exports are atomic, never overwrite, stay inside their root, and fail clearly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
from helpers import run_python

import tfft
from tfft import export as export_module
from tfft.config import ExportConfig
from tfft.errors import ConfigError, ExportError

KILL_DURING_EXPORT = textwrap.dedent("""
    import os, signal, sys
    import tensorflow as tf
    import tfft

    original = tf.saved_model.save

    def save_then_die(*args, **kwargs):
        original(*args, **kwargs)  # the SavedModel is written, the version not yet published
        os.kill(os.getpid(), signal.SIGKILL)

    tf.saved_model.save = save_then_die
    model = tfft.build_model(hf_model=sys.argv[1], num_labels=2)
    tfft.export_saved_model(model, sys.argv[2])
""")


EXPORT_AFTER_BARRIER = textwrap.dedent("""
    import pathlib, sys, time
    import tensorflow as tf
    import tfft

    model_dir, target, barrier, me = sys.argv[1:]
    model = tfft.build_model(hf_model=model_dir, num_labels=2)
    original = tf.saved_model.save

    def save_in_step(*args, **kwargs):
        original(*args, **kwargs)
        # Both processes have written their SavedModel before either publishes a version.
        pathlib.Path(barrier, me).touch()
        deadline = time.time() + 120
        while len(list(pathlib.Path(barrier).iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.05)

    tf.saved_model.save = save_in_step
    print(tfft.export_saved_model(model, target).name)
""")


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=2)


def versions(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.isdigit())


@pytest.mark.long  # a killed process; the staging rules are tested in-process by default
def test_killed_export_leaves_no_version_and_is_cleaned_up_later(tiny_bert_dir, tmp_path, model):
    target = tmp_path / "saved_models" / "m"
    run_python(KILL_DURING_EXPORT, tiny_bert_dir, target, timeout=300, exit_code=-signal.SIGKILL)
    assert versions(target) == []
    leftovers = [p for p in target.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1 and (leftovers[0] / "saved_model.pb").exists()

    path = tfft.export_saved_model(model, target)
    assert path.name == "1"
    assert versions(target) == ["1"]
    assert not leftovers[0].exists()  # its process is gone: removed


def test_two_exports_racing_for_a_version_get_distinct_ones(tmp_path, monkeypatch):
    target = tmp_path / "m"
    target.mkdir()
    first, second = target / ".tmp-a", target / ".tmp-b"
    for staging in (first, second):
        staging.mkdir()
        (staging / "saved_model.pb").write_text(staging.name)
    # Both exporters computed "1" before either renamed: the loser must move on to "2".
    calls = iter([1, 1, 2])
    monkeypatch.setattr(export_module, "next_version", lambda folder: next(calls))
    assert export_module._publish(first, target).name == "1"
    assert export_module._publish(second, target).name == "2"
    assert (target / "1" / "saved_model.pb").read_text() == ".tmp-a"
    assert (target / "2" / "saved_model.pb").read_text() == ".tmp-b"


@pytest.mark.long  # two processes; the staging rules are tested in-process by default
def test_two_processes_exporting_at_once_get_distinct_whole_versions(tiny_bert_dir, tmp_path):
    target, barrier = tmp_path / "saved_models" / "m", tmp_path / "barrier"
    barrier.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORT_AFTER_BARRIER, str(tiny_bert_dir), str(target), str(barrier), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    published = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        published.append(out.strip().splitlines()[-1])
    assert sorted(published) == ["1", "2"]
    assert versions(target) == ["1", "2"]
    assert not [p for p in target.iterdir() if p.name.startswith(".tmp-")]
    import tensorflow_text  # noqa: F401 - the ops of the in-graph tokenizer

    for version in ("1", "2"):
        loaded = tf.saved_model.load(str(target / version))
        assert "serving_default" in loaded.signatures


def test_full_disk_is_a_clear_error_and_keeps_earlier_versions(tmp_path, model, monkeypatch):
    target = tmp_path / "m"
    tfft.export_saved_model(model, target)

    def no_space(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", no_space)
    with pytest.raises(ExportError, match="No space left on device. Earlier versions are untouched"):
        tfft.export_saved_model(model, target)
    assert versions(target) == ["1"]
    assert (target / "1" / "saved_model.pb").is_file()
    assert not [p for p in target.iterdir() if p.name.startswith(".tmp-")]


def test_read_only_target_is_a_clear_error(model):
    with pytest.raises(ExportError, match="Cannot write the export folder /proc/"):
        tfft.export_saved_model(model, "/proc/tfft-export-test/m")


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/b", "..", ".", "", "a\\b", ".tmp-x"])
def test_export_names_cannot_escape_the_root(name):
    with pytest.raises(ConfigError, match="--name must be a plain folder name"):
        ExportConfig(name=name).target()


def test_export_name_goes_under_the_root(tmp_path):
    assert ExportConfig(name="sst2", export_root=str(tmp_path)).target() == tmp_path / "sst2"
    assert ExportConfig().target() is None
    with pytest.raises(ConfigError, match="not both"):
        ExportConfig(name="a", export_dir="b").target()


def test_cli_rejects_escaping_name(tiny_bert_dir, tiny_sentiment, tmp_path):
    from click.testing import CliRunner

    from tfft_cli.main import cli

    result = CliRunner().invoke(
        cli,
        [
            "fit",
            "--hf-model",
            str(tiny_bert_dir),
            "--train",
            str(tiny_sentiment["train"]),
            "--text-column",
            "sentence",
            "--name",
            "../../etc",
            "--run-dir",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1
    assert "--name must be a plain folder name" in result.output


def test_export_leaves_the_optimizer_out_and_keeps_it_for_training(tiny_bert_dir, tmp_path):
    from tfft.keras import keras

    model = tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=2)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(True)
    )
    features = {name: tf.ones([4, 8], tf.int32) for name in ("input_ids", "attention_mask")}
    features["token_type_ids"] = tf.zeros([4, 8], tf.int32)
    labels = tf.constant([1, 0, 1, 0])
    model.train_on_batch(features, labels)
    assert int(model.optimizer.iterations) == 1

    version = tfft.export_saved_model(model, tmp_path / "saved_models" / "m")
    saved = tf.train.load_checkpoint(str(version / "variables" / "variables")).get_variable_to_shape_map()
    assert saved and not [name for name in saved if "optimizer" in name]

    model.train_on_batch(features, labels)  # the optimizer is still the model's
    assert int(model.optimizer.iterations) == 2
    checkpoint = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt" / "c"))
    assert [
        name
        for name in tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
        if "optimizer" in name
    ]
